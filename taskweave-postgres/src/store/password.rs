//! The password libpq would use when the connection string names none:
//! `PGPASSWORD`, else the password file (`PGPASSFILE`, else
//! `~/.pgpass`), so that no password needs to appear in a `--db` that
//! `ps` shows.

use std::path::PathBuf;

use tokio_postgres::Config;
use tokio_postgres::config::Host;

/// Sets `config`'s password from the environment, as libpq does, when it
/// has none: `PGPASSWORD`, else the first line of the password file that
/// matches its host, port, database and user. A password file readable
/// by its group or by others is ignored, as libpq ignores it.
pub(crate) fn from_environment(config: &mut Config) {
    if config.get_password().is_some() {
        return;
    }
    if let Some(password) = std::env::var_os("PGPASSWORD") {
        config.password(password.to_string_lossy().as_bytes());
        return;
    }
    let Some(path) = password_file() else {
        return;
    };
    if !private(&path) {
        return;
    }
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        // libpq matches a socket directory as "localhost".
        Some(Host::Unix(_)) | None => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let database = config
        .get_dbname()
        .map_or_else(|| user.clone(), str::to_string);
    if let Some(password) = lookup(&text, [&host, &port, &database, &user]) {
        config.password(password.as_bytes());
    }
}

fn password_file() -> Option<PathBuf> {
    match std::env::var_os("PGPASSFILE") {
        Some(file) => Some(PathBuf::from(file)),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pgpass")),
    }
}

/// Whether only its owner may read `path` (libpq's rule).
#[cfg(unix)]
fn private(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o077 == 0)
}

#[cfg(not(unix))]
fn private(path: &std::path::Path) -> bool {
    path.is_file()
}

/// The password of the first line of a password file that matches
/// `wanted` (host, port, database, user): `hostname:port:database:
/// username:password`, `*` matching anything, `\:` and `\\` escaping,
/// `#` starting a comment line.
pub(crate) fn lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = fields(line);
            let [host, port, database, user, password] = fields.as_slice() else {
                return None;
            };
            let matches = [host, port, database, user]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field.as_str() == "*" || field.as_str() == want);
            matches.then(|| password.clone())
        })
}

/// A password file line's fields, unescaped.
fn fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                let c = if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                };
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::lookup;

    const FILE: &str = "\
# comments and short lines are skipped
db.example:5432
db.example:5432:orders:node_login:s3cret
*:*:*:agent\\:one:with\\:colon\\\\
*:*:*:*:fallback:with:colons";

    #[test]
    fn the_first_matching_line_gives_the_password() {
        let get = |wanted| lookup(FILE, wanted);
        assert_eq!(
            get(["db.example", "5432", "orders", "node_login"]).as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            get(["localhost", "5433", "x", "agent:one"]).as_deref(),
            Some("with:colon\\")
        );
        assert_eq!(
            get(["db.example", "5433", "orders", "node_login"]).as_deref(),
            Some("fallback:with:colons"),
            "a wrong port falls through; the last field keeps its colons"
        );
        assert_eq!(lookup("", ["h", "1", "d", "u"]), None);
        assert_eq!(lookup("h:1:d:u", ["h", "1", "d", "u"]), None);
    }
}
