//! Canonical serde form of a `HashMap`: the same map as serde's own
//! (so snapshots written before keep reading), but written in key order,
//! so that equal maps serialize to equal bytes whatever the hasher's order;
//! reading refuses a key given twice instead of keeping the last one. Use
//! with `#[serde(with = "crate::resilience::sorted_map")]`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes the map with its entries sorted by key.
pub(crate) fn serialize<K, V, H, S>(
    map: &HashMap<K, V, H>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    K: Serialize + Ord,
    V: Serialize,
    S: Serializer,
{
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

/// Reads a map; a repeated key is an error.
pub(crate) fn deserialize<'de, K, V, H, D>(deserializer: D) -> Result<HashMap<K, V, H>, D::Error>
where
    K: Deserialize<'de> + Eq + Hash,
    V: Deserialize<'de>,
    H: BuildHasher + Default,
    D: Deserializer<'de>,
{
    deserializer.deserialize_map(UniqueKeys(PhantomData))
}

/// What [`UniqueKeys`] builds, as a marker that owns no value.
type Builds<K, V, H> = PhantomData<fn() -> HashMap<K, V, H>>;

/// Collects map entries, refusing a key seen before.
struct UniqueKeys<K, V, H>(Builds<K, V, H>);

impl<'de, K, V, H> Visitor<'de> for UniqueKeys<K, V, H>
where
    K: Deserialize<'de> + Eq + Hash,
    V: Deserialize<'de>,
    H: BuildHasher + Default,
{
    type Value = HashMap<K, V, H>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a map with no key given twice")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        // No reservation from the size hint: it comes from the input.
        let mut map = HashMap::with_hasher(H::default());
        while let Some((key, value)) = access.next_entry::<K, V>()? {
            if map.contains_key(&key) {
                return Err(A::Error::custom("a key is given twice"));
            }
            map.insert(key, value);
        }
        Ok(map)
    }
}
