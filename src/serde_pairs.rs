//! Serde helpers for hash maps in stored state: they travel as a list of
//! `(key, value)` pairs **sorted by key**, which every format — JSON
//! included — can carry, and which makes the bytes canonical: two equal maps
//! serialize alike whatever their hasher or insertion history. Reading a
//! list back refuses a key that appears twice. Use with
//! `#[serde(with = "crate::serde_pairs")]`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes the map as a sequence of pairs in key order.
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

/// Reads a sequence of pairs back into a map.
///
/// # Errors
///
/// A key that appears twice.
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
        if map.insert(key, value).is_some() {
            return Err(D::Error::custom("a key appears twice in a stored map"));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "super")]
        map: HashMap<u32, u32>,
    }

    #[test]
    fn pairs_are_sorted_and_duplicates_refused() {
        let forward = Holder {
            map: (0..50).map(|k| (k, k * 2)).collect(),
        };
        let backward = Holder {
            map: (0..50).rev().map(|k| (k, k * 2)).collect(),
        };
        let a = serde_json::to_string(&forward).unwrap();
        assert_eq!(a, serde_json::to_string(&backward).unwrap());
        assert!(a.starts_with(r#"{"map":[[0,0],[1,2],"#));
        assert_eq!(serde_json::from_str::<Holder>(&a).unwrap(), forward);
        let twice = r#"{"map":[[1,2],[1,3]]}"#;
        assert!(serde_json::from_str::<Holder>(twice).is_err());
    }
}
