//! The connection settings libpq takes from the environment when the
//! connection string leaves them out — `PGHOST`, `PGPORT`, `PGUSER`,
//! `PGDATABASE` — as `psql` does (the password: `password.rs`).

use tokio_postgres::Config;

use super::errors::PgError;

/// Fills in what `config` leaves out from the environment.
///
/// # Errors
///
/// [`PgError::Environment`] for a `PGPORT` that is not a port.
pub(crate) fn defaults(config: &mut Config) -> Result<(), PgError> {
    defaults_from(config, |name| std::env::var(name).ok())
}

fn defaults_from(config: &mut Config, var: impl Fn(&str) -> Option<String>) -> Result<(), PgError> {
    if config.get_hosts().is_empty() {
        for host in var("PGHOST").iter().flat_map(|hosts| hosts.split(',')) {
            match host.trim() {
                "" => {}
                #[cfg(unix)]
                path if path.starts_with('/') => {
                    config.host_path(path);
                }
                name => {
                    config.host(name);
                }
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = var("PGPORT") {
            let parsed = port
                .trim()
                .parse::<u16>()
                .map_err(|_| PgError::Environment {
                    variable: "PGPORT",
                    value: port.clone(),
                    problem: "is not a port number (1 to 65535)",
                })?;
            config.port(parsed);
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = var("PGUSER") {
            config.user(&user);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(database) = var("PGDATABASE") {
            config.dbname(&database);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::Host;

    fn env<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_fills_in_what_the_string_leaves_out() {
        let vars = [
            ("PGHOST", "db.internal,/run/postgresql"),
            ("PGPORT", "6543"),
            ("PGUSER", "node_login"),
            ("PGDATABASE", "jobs"),
        ];
        let mut config: Config = "".parse().unwrap();
        defaults_from(&mut config, env(&vars)).unwrap();
        assert_eq!(config.get_hosts()[0], Host::Tcp("db.internal".into()));
        assert_eq!(config.get_hosts().len(), 2);
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_user(), Some("node_login"));
        assert_eq!(config.get_dbname(), Some("jobs"));

        // What the string names wins.
        let mut config: Config = "host=a port=1 user=u dbname=d".parse().unwrap();
        defaults_from(&mut config, env(&vars)).unwrap();
        assert_eq!(config.get_hosts(), [Host::Tcp("a".into())]);
        assert_eq!(
            (config.get_ports(), config.get_user()),
            (&[1][..], Some("u"))
        );
        assert_eq!(config.get_dbname(), Some("d"));
    }

    #[test]
    fn a_port_that_is_not_one_is_named() {
        let mut config: Config = "".parse().unwrap();
        let error = defaults_from(&mut config, env(&[("PGPORT", "fifty")])).unwrap_err();
        assert!(error.to_string().contains("PGPORT"), "{error}");
        assert!(error.to_string().contains("fifty"), "{error}");
    }
}
