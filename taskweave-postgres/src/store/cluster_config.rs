//! The cluster's dispatcher configuration, kept in the database (schema
//! version 10): every node, `audit` and an embedding host run the same
//! one, since a journal replays to the same state only under the same
//! configuration and a snapshot is refused under another.
//!
//! The first node of a cluster stores its configuration if none is
//! (`init` stores `taskweave-pg`'s defaults); every later one must agree,
//! or it is refused with the setting and both values named. An operator
//! changes it ([`set_cluster_config`], `taskweave-pg config set`) while
//! the cluster has no journal: before its first start, or after a drain
//! and a [`reset`](crate::reset). It takes effect when the nodes start
//! again.

use postgres::Client;
use serde_json::Value;
use taskweave::scheduler::DispatcherConfig;

use super::PgStore;
use super::errors::PgError;

const READ: &str = "SELECT body FROM taskweave.cluster_config WHERE id = 1";

/// The configuration a PostgreSQL cluster runs with, if one is stored.
///
/// # Errors
///
/// [`PgError::Db`] when the query fails, [`PgError::Corrupt`] when the
/// stored configuration does not read (a builder would refuse it).
pub fn cluster_config(
    client: &mut impl postgres::GenericClient,
) -> Result<Option<DispatcherConfig>, PgError> {
    let Some(row) = client.query_opt(READ, &[])? else {
        return Ok(None);
    };
    let body: String = row.get(0);
    serde_json::from_str(&body)
        .map(Some)
        .map_err(|e| PgError::Corrupt {
            table: "cluster_config",
            key: "1".into(),
            problem: e.to_string(),
        })
}

/// Stores `config` as the cluster's, replacing the one stored, while the
/// cluster has no journal (it never started, or was drained and reset):
/// the nodes read it when they start.
///
/// # Errors
///
/// [`PgError::JournalNotEmpty`] while the cluster has a journal,
/// [`PgError::ConfigNotData`] for a configuration that does not serialize
/// (a host retry policy), [`PgError::Db`] when a statement fails.
pub fn set_cluster_config(client: &mut Client, config: &DispatcherConfig) -> Result<(), PgError> {
    let body = encode(config)?;
    let mut tx = client.transaction()?;
    tx.batch_execute("LOCK TABLE taskweave.lease IN EXCLUSIVE MODE")?;
    let entries: i64 = tx
        .query_one("SELECT count(*) FROM taskweave.journal", &[])?
        .get(0);
    if entries > 0 {
        return Err(PgError::JournalNotEmpty {
            entries: u64::try_from(entries).unwrap_or(0),
        });
    }
    tx.execute(
        "INSERT INTO taskweave.cluster_config (id, body) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, set_at = clock_timestamp()",
        &[&body],
    )?;
    tx.commit()?;
    Ok(())
}

/// `config`'s stored form.
fn encode(config: &DispatcherConfig) -> Result<String, PgError> {
    serde_json::to_string(config).map_err(|e| PgError::ConfigNotData {
        problem: e.to_string(),
    })
}

impl<P> PgStore<P> {
    /// The configuration the cluster runs with, if one is stored
    /// ([`cluster_config`]).
    ///
    /// # Errors
    ///
    /// As [`cluster_config`], or a reconnection error.
    pub fn stored_config(&mut self) -> Result<Option<DispatcherConfig>, PgError> {
        cluster_config(&mut self.conn()?.client)
    }

    /// Stores `config` as the cluster's if none is, then checks that the
    /// stored one is `config`: a node (or an audit) of a cluster runs
    /// with the cluster's configuration or not at all.
    ///
    /// # Errors
    ///
    /// [`PgError::ConfigDisagrees`], naming the first setting that
    /// differs and both values; [`PgError::ConfigNotData`] for a
    /// configuration that does not serialize (a host retry policy);
    /// [`PgError::Corrupt`] for a stored one that does not read;
    /// [`PgError::Db`] when a statement fails.
    pub fn agree_config(&mut self, config: &DispatcherConfig) -> Result<(), PgError> {
        let body = encode(config)?;
        let conn = self.conn()?;
        conn.client.execute(
            "INSERT INTO taskweave.cluster_config (id, body) VALUES (1, $1)
             ON CONFLICT (id) DO NOTHING",
            &[&body],
        )?;
        let stored: String = conn.client.query_one(READ, &[])?.get(0);
        let (stored, given) = (parse(&stored)?, parse(&body)?);
        match first_difference(&stored, &given, String::new()) {
            None => Ok(()),
            Some((setting, stored, given)) => Err(PgError::ConfigDisagrees {
                setting,
                stored,
                given,
            }),
        }
    }
}

fn parse(body: &str) -> Result<Value, PgError> {
    serde_json::from_str(body).map_err(|e| PgError::Corrupt {
        table: "cluster_config",
        key: "1".into(),
        problem: e.to_string(),
    })
}

/// The first path (in key order) where `a` and `b` differ, with both
/// values as JSON.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<(String, String, String)> {
    match (a, b) {
        _ if a == b => None,
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let (left, right) = (
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                );
                let path = match path.is_empty() {
                    true => key.clone(),
                    false => format!("{path}.{key}"),
                };
                first_difference(left, right, path)
            })
        }
        _ => Some((path, a.to_string(), b.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_difference_names_its_path_and_both_values() {
        let a = json!({"settings": {"seed": 13, "heartbeats": {"every": 1}}, "retry": "never"});
        let b = json!({"settings": {"seed": 13, "heartbeats": {"every": 2}}, "retry": "never"});
        assert_eq!(
            first_difference(&a, &b, String::new()),
            Some(("settings.heartbeats.every".into(), "1".into(), "2".into()))
        );
        assert_eq!(first_difference(&a, &a, String::new()), None);
        let c = json!({"settings": {"seed": 13}});
        assert_eq!(
            first_difference(
                &c,
                &json!({"settings": {"seed": 13, "x": 1}}),
                String::new()
            ),
            Some(("settings.x".into(), "null".into(), "1".into()))
        );
    }
}
