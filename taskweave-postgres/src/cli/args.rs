//! A small, strict command-line reader: known flags only, each value
//! checked, every mistake answered with the subcommand's usage.

use std::str::FromStr;

/// The arguments of one subcommand.
pub(crate) struct Args {
    usage: &'static str,
    /// Each flag given, with its value (`None` for a switch), in order.
    items: Vec<(String, Option<String>)>,
    /// The words after `--`, untouched.
    pub(crate) rest: Vec<String>,
    /// The words that are neither flags nor their values.
    pub(crate) positional: Vec<String>,
    help: bool,
}

impl Args {
    /// Reads `raw`, refusing any flag not in `flags` (`--name` takes a
    /// value, `--name!` is a switch).
    pub(crate) fn parse(
        raw: &[String],
        usage: &'static str,
        flags: &[&str],
    ) -> Result<Self, String> {
        let (own, rest) = match raw.iter().position(|a| a == "--") {
            Some(i) => (&raw[..i], raw[i + 1..].to_vec()),
            None => (raw, Vec::new()),
        };
        let mut args = Args {
            usage,
            items: Vec::new(),
            rest,
            positional: Vec::new(),
            help: false,
        };
        let mut i = 0;
        while i < own.len() {
            let arg = &own[i];
            if arg == "--help" || arg == "-h" {
                args.help = true;
            } else if flags.contains(&format!("{arg}!").as_str()) {
                args.items.push((arg.clone(), None));
            } else if flags.contains(&arg.as_str()) {
                let value = own
                    .get(i + 1)
                    .ok_or_else(|| args.wrong(&format!("{arg} needs a value")))?;
                args.items.push((arg.clone(), Some(value.clone())));
                i += 1;
            } else if arg.starts_with('-') {
                return Err(args.wrong(&format!("unknown flag {arg}")));
            } else {
                args.positional.push(arg.clone());
            }
            i += 1;
        }
        Ok(args)
    }

    /// `--help` was given.
    pub(crate) fn wants_help(&self) -> bool {
        self.help
    }

    /// An error with the usage.
    pub(crate) fn wrong(&self, what: &str) -> String {
        format!("{what}\n\n{}", self.usage)
    }

    /// The last value of `--name`.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.values(name).last().copied()
    }

    /// Every value of a repeatable `--name`.
    pub(crate) fn values(&self, name: &str) -> Vec<&str> {
        self.items
            .iter()
            .filter(|(flag, _)| flag == name)
            .filter_map(|(_, value)| value.as_deref())
            .collect()
    }

    /// Whether the switch `--name` was given.
    pub(crate) fn switch(&self, name: &str) -> bool {
        self.items
            .iter()
            .any(|(flag, value)| flag == name && value.is_none())
    }

    /// `--name` read as a `T`, or `default`.
    pub(crate) fn parsed<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| self.wrong(&format!("{name}: cannot read {v:?}"))),
        }
    }

    /// The connection string: `--db`, else `$TASKWEAVE_DB`.
    /// The connection string: `--db`, else `$TASKWEAVE_DB`, else empty
    /// when `$PGHOST` names the server (libpq's variables fill in what a
    /// string leaves out, as for `psql`).
    pub(crate) fn db(&self) -> Result<String, String> {
        self.value("--db")
            .map(str::to_string)
            .or_else(|| std::env::var("TASKWEAVE_DB").ok())
            .or_else(|| std::env::var_os("PGHOST").map(|_| String::new()))
            .ok_or_else(|| {
                self.wrong(
                    "--db CONNINFO is required (or $TASKWEAVE_DB, or libpq's $PGHOST with \
                     $PGPORT, $PGUSER, $PGDATABASE)",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[&str]) -> Args {
        let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
        Args::parse(&raw, "usage", &["--db", "--pool", "--private!"]).unwrap()
    }

    #[test]
    fn a_value_that_looks_like_a_flag_is_read_as_a_value() {
        let args = parse(&["--pool", "--db", "--db", "host=x", "--pool", "--private"]);
        assert_eq!(args.values("--pool"), ["--db", "--private"]);
        assert_eq!(args.value("--db"), Some("host=x"));
        assert!(!args.switch("--private"));
        let args = parse(&["--private", "--db", "d", "task-1"]);
        assert!(args.switch("--private"));
        assert_eq!(args.positional, ["task-1"]);
    }
}
