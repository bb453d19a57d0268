//! Host metadata on a task: a small map of strings (trace context such as
//! `traceparent`, a tenant, labels) the dispatcher stores, hands back with
//! every assignment and keeps in snapshots, and never interprets.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A small, bounded map of host strings carried by a task.
///
/// Empty metadata allocates nothing; a non-empty map is shared, so handing
/// it back with an assignment or a snapshot copies a pointer. The size is
/// bounded ([`MAX_ENTRIES`](Self::MAX_ENTRIES) entries of at most
/// [`MAX_BYTES`](Self::MAX_BYTES) bytes of keys and values together): a
/// larger map is refused at submission with
/// [`SubmitErrorKind::MetadataTooLarge`](crate::scheduler::SubmitErrorKind::MetadataTooLarge)
/// and fails to deserialize, so metadata read from a snapshot or a message
/// is bounded too.
///
/// ```
/// use taskweave::scheduler::{Dispatcher, DispatcherConfig, Metadata, TaskSpec};
/// use taskweave::Instant;
///
/// let mut d: Dispatcher<&str> = Dispatcher::new(DispatcherConfig::default());
/// let spec = TaskSpec::new("summarize")
///     .metadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
///     .metadata("tenant", "acme");
/// let task = d.submit(spec, Instant::ZERO)?.id();
/// let metadata: &Metadata = d.metadata(task).unwrap();
/// assert_eq!(metadata.get("tenant"), Some("acme"));
/// assert_eq!(metadata.len(), 2);
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        try_from = "BTreeMap<String, String>",
        into = "BTreeMap<String, String>"
    )
)]
pub struct Metadata {
    entries: Option<Arc<BTreeMap<String, String>>>,
}

/// Metadata over its bounds: too many entries or too many bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "metadata of {entries} entries and {bytes} bytes exceeds {} entries or {} bytes",
    Metadata::MAX_ENTRIES,
    Metadata::MAX_BYTES
)]
pub struct MetadataTooLarge {
    /// Entries in the refused map.
    pub entries: usize,
    /// Bytes of keys and values in the refused map.
    pub bytes: usize,
}

impl Metadata {
    /// Most entries a task's metadata may hold.
    pub const MAX_ENTRIES: usize = 32;
    /// Most bytes of keys and values together.
    pub const MAX_BYTES: usize = 4096;

    /// Empty metadata.
    pub const fn new() -> Self {
        Metadata { entries: None }
    }

    /// Sets `key` to `value`, replacing an earlier value. Bounds are checked
    /// at submission ([`check`](Self::check)).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let entries = self.entries.get_or_insert_with(Default::default);
        Arc::make_mut(entries).insert(key.into(), value.into());
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.as_ref()?.get(key).map(String::as_str)
    }

    /// The entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .flat_map(|m| m.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |m| m.len())
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the bounds.
    ///
    /// # Errors
    ///
    /// [`MetadataTooLarge`] with the map's size.
    pub fn check(&self) -> Result<(), MetadataTooLarge> {
        let bytes: usize = self.iter().map(|(k, v)| k.len() + v.len()).sum();
        let entries = self.len();
        if entries > Self::MAX_ENTRIES || bytes > Self::MAX_BYTES {
            return Err(MetadataTooLarge { entries, bytes });
        }
        Ok(())
    }
}

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = MetadataTooLarge;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        let metadata = Metadata {
            entries: (!map.is_empty()).then(|| Arc::new(map)),
        };
        metadata.check()?;
        Ok(metadata)
    }
}

impl From<Metadata> for BTreeMap<String, String> {
    fn from(metadata: Metadata) -> Self {
        metadata
            .entries
            .map(|m| Arc::try_unwrap(m).unwrap_or_else(|shared| (*shared).clone()))
            .unwrap_or_default()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut metadata = Metadata::new();
        for (key, value) in pairs {
            metadata.insert(key, value);
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_metadata_allocates_nothing_and_shares_on_clone() {
        let empty = Metadata::new();
        assert!(empty.entries.is_none() && empty.is_empty());
        let mut m = Metadata::new();
        m.insert("tenant", "acme");
        let copy = m.clone();
        assert!(Arc::ptr_eq(
            m.entries.as_ref().unwrap(),
            copy.entries.as_ref().unwrap()
        ));
        m.insert("tenant", "globex");
        assert_eq!(
            (m.get("tenant"), copy.get("tenant")),
            (Some("globex"), Some("acme"))
        );
    }

    #[test]
    fn bounds_are_checked() {
        let many: Metadata = (0..=Metadata::MAX_ENTRIES)
            .map(|i| (i.to_string(), ""))
            .collect();
        assert_eq!(
            many.check(),
            Err(MetadataTooLarge {
                entries: Metadata::MAX_ENTRIES + 1,
                bytes: many.iter().map(|(k, _)| k.len()).sum()
            })
        );
        let big: Metadata = [("k", "v".repeat(Metadata::MAX_BYTES))]
            .into_iter()
            .collect();
        assert!(big.check().is_err());
        let fine: Metadata = [("k", "v".repeat(Metadata::MAX_BYTES - 1))]
            .into_iter()
            .collect();
        assert_eq!(fine.check(), Ok(()));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trips_and_refuses_oversized_maps() {
        let m: Metadata = [("a", "1"), ("b", "2")].into_iter().collect();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"a":"1","b":"2"}"#);
        assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), m);
        let huge = format!(r#"{{"k":"{}"}}"#, "x".repeat(Metadata::MAX_BYTES + 1));
        assert!(serde_json::from_str::<Metadata>(&huge).is_err());
        let empty: Metadata = serde_json::from_str("{}").unwrap();
        assert!(empty.entries.is_none());
    }
}
