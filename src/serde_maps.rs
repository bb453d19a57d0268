//! Canonical serde forms of the hash maps in stored state: entries are
//! written **in key order**, so two equal maps serialize to equal bytes
//! whatever their hasher or insertion history, and reading refuses a key
//! given twice instead of keeping the last one. Nothing is reserved from a
//! size the input announces.
//!
//! * [`as_map`]: serde's own map form (a JSON object for string keys), for
//!   maps whose stored form was a map before.
//! * [`as_pairs`]: a list of `(key, value)` pairs, which every format —
//!   JSON included — can carry whatever the key type.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// The entries of `map`, sorted by key.
fn sorted<K: Ord, V, H>(map: &HashMap<K, V, H>) -> Vec<(&K, &V)> {
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Inserts an entry read back, refusing a key seen before.
fn insert_unique<K: Eq + Hash, V, H: BuildHasher, E: serde::de::Error>(
    map: &mut HashMap<K, V, H>,
    key: K,
    value: V,
) -> Result<(), E> {
    if map.contains_key(&key) {
        return Err(E::custom("a key is given twice in a stored map"));
    }
    map.insert(key, value);
    Ok(())
}

/// A map as serde's map form, in key order. Use with
/// `#[serde(with = "crate::serde_maps::as_map")]`.
pub(crate) mod as_map {
    use std::collections::HashMap;
    use std::fmt;
    use std::hash::{BuildHasher, Hash};
    use std::marker::PhantomData;

    use serde::de::{MapAccess, Visitor};
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
        serializer.collect_map(super::sorted(map))
    }

    /// Reads a map; a repeated key is an error.
    pub(crate) fn deserialize<'de, K, V, H, D>(
        deserializer: D,
    ) -> Result<HashMap<K, V, H>, D::Error>
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
            let mut map = HashMap::with_hasher(H::default());
            while let Some((key, value)) = access.next_entry::<K, V>()? {
                super::insert_unique(&mut map, key, value)?;
            }
            Ok(map)
        }
    }
}

/// A map as a list of `(key, value)` pairs, in key order. Use with
/// `#[serde(with = "crate::serde_maps::as_pairs")]`.
pub(crate) mod as_pairs {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash};

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
        serializer.collect_seq(super::sorted(map))
    }

    /// Reads a sequence of pairs back; a repeated key is an error.
    pub(crate) fn deserialize<'de, K, V, H, D>(
        deserializer: D,
    ) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        let pairs: Vec<(K, V)> = Vec::deserialize(deserializer)?;
        let mut map = HashMap::with_capacity_and_hasher(pairs.len(), H::default());
        for (key, value) in pairs {
            super::insert_unique(&mut map, key, value)?;
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "super::as_pairs")]
        pairs: HashMap<u32, u32>,
        #[serde(with = "super::as_map")]
        map: HashMap<String, u32>,
    }

    fn holder(keys: impl Iterator<Item = u32> + Clone) -> Holder {
        Holder {
            pairs: keys.clone().map(|k| (k, k * 2)).collect(),
            map: keys.map(|k| (format!("k{k:02}"), k)).collect(),
        }
    }

    #[test]
    fn entries_are_sorted_and_repeated_keys_refused() {
        let forward = holder(0..50);
        let json = serde_json::to_string(&forward).unwrap();
        assert_eq!(json, serde_json::to_string(&holder((0..50).rev())).unwrap());
        assert!(json.starts_with(r#"{"pairs":[[0,0],[1,2],"#), "{json}");
        assert!(json.contains(r#""map":{"k00":0,"k01":1,"#), "{json}");
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), forward);
        let pairs_twice = r#"{"pairs":[[1,2],[1,3]],"map":{}}"#;
        assert!(serde_json::from_str::<Holder>(pairs_twice).is_err());
        let map_twice = r#"{"pairs":[],"map":{"a":1,"a":2}}"#;
        assert!(serde_json::from_str::<Holder>(map_twice).is_err());
    }
}
