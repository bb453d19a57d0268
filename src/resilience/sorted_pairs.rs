//! Canonical serde form of a `HashMap`: a list of `(key, value)` pairs
//! sorted by key, so that equal maps serialize to equal bytes whatever the
//! hasher's order; reading refuses a key given twice. Use with
//! `#[serde(with = "crate::resilience::sorted_pairs")]`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes the map as a sequence of pairs, sorted by key.
pub(crate) fn serialize<K, V, H, S>(
    map: &HashMap<K, V, H>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    K: Serialize + Ord,
    V: Serialize,
    S: Serializer,
{
    let mut pairs: Vec<(&K, &V)> = map.iter().collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_seq(pairs)
}

/// Reads a sequence of pairs back into a map; a repeated key is an error.
pub(crate) fn deserialize<'de, K, V, H, D>(deserializer: D) -> Result<HashMap<K, V, H>, D::Error>
where
    K: Deserialize<'de> + Eq + Hash,
    V: Deserialize<'de>,
    H: BuildHasher + Default,
    D: Deserializer<'de>,
{
    let pairs: Vec<(K, V)> = Vec::deserialize(deserializer)?;
    let mut map = HashMap::with_capacity_and_hasher(pairs.len(), H::default());
    for (key, value) in pairs {
        if map.contains_key(&key) {
            return Err(D::Error::custom("a key is given twice"));
        }
        map.insert(key, value);
    }
    Ok(map)
}
