//! Capabilities: host-named strings interned into compact bitsets.
//!
//! A host names capabilities with strings (`"gpu"`, `"python"`, `"eu-data"`).
//! A [`CapabilityInterner`] gives each distinct name a dense [`CapabilityId`],
//! and a [`CapabilitySet`] stores a set of ids as a bitset, so "agent has every
//! required capability" is a handful of word operations rather than string
//! comparisons. There is no fixed limit on the number of names: the first 64
//! ids live inline, further ones in a heap-allocated tail.
//!
//! ```
//! use taskweave::capability::CapabilityInterner;
//!
//! let mut names = CapabilityInterner::new();
//! let agent = names.intern_all(["gpu", "python", "rust"]);
//! let task = names.lookup_all(["python", "gpu"]).unwrap();
//! assert!(agent.is_superset(&task));
//! // A name nobody registered is reported, not invented.
//! assert_eq!(names.lookup_all(["cobol"]).unwrap_err(), "cobol");
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Dense id of one interned capability name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CapabilityId(u32);

impl CapabilityId {
    /// The id as an index (`0..interner.len()`).
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of [`CapabilityId`]s stored as a bitset.
///
/// Ids below 64 live in one inline word; larger ids in a tail vector that
/// never ends in a zero word, so equal sets are equal values (and hash alike).
///
/// Cost: `is_superset` is `O(max id / 64)` word operations, with no
/// allocation; for up to 64 distinct capabilities it is one AND and compare.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "SetWords"))]
pub struct CapabilitySet {
    low: u64,
    high: Vec<u64>,
}

impl CapabilitySet {
    /// The empty set.
    pub const fn new() -> Self {
        CapabilitySet {
            low: 0,
            high: Vec::new(),
        }
    }

    fn word(&self, word: usize) -> u64 {
        match word {
            0 => self.low,
            w => self.high.get(w - 1).copied().unwrap_or(0),
        }
    }

    fn word_count(&self) -> usize {
        1 + self.high.len()
    }

    /// Adds `id`; returns whether it was new.
    pub fn insert(&mut self, id: CapabilityId) -> bool {
        let (word, bit) = (id.index() / 64, id.index() % 64);
        let slot = if word == 0 {
            &mut self.low
        } else {
            if self.high.len() < word {
                self.high.resize(word, 0);
            }
            &mut self.high[word - 1]
        };
        let fresh = *slot & (1 << bit) == 0;
        *slot |= 1 << bit;
        fresh
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: CapabilityId) -> bool {
        self.word(id.index() / 64) & (1 << (id.index() % 64)) != 0
    }

    /// Whether every id of `other` is in `self`.
    pub fn is_superset(&self, other: &CapabilitySet) -> bool {
        if other.high.len() > self.high.len() {
            return false;
        }
        other.low & !self.low == 0
            && other
                .high
                .iter()
                .zip(&self.high)
                .all(|(needed, have)| needed & !have == 0)
    }

    /// Whether the two sets share at least one id.
    pub fn intersects(&self, other: &CapabilitySet) -> bool {
        self.low & other.low != 0 || self.high.iter().zip(&other.high).any(|(a, b)| a & b != 0)
    }

    /// Number of ids present in both sets.
    pub fn intersection_len(&self, other: &CapabilitySet) -> usize {
        let high: u32 = self
            .high
            .iter()
            .zip(&other.high)
            .map(|(a, b)| (a & b).count_ones())
            .sum();
        ((self.low & other.low).count_ones() + high) as usize
    }

    /// Number of ids in the set.
    pub fn len(&self) -> usize {
        (self.low.count_ones() + self.high.iter().map(|w| w.count_ones()).sum::<u32>()) as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.low == 0 && self.high.is_empty()
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = CapabilityId> + '_ {
        (0..self.word_count()).flat_map(move |w| {
            let bits = self.word(w);
            (0..64u32)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| CapabilityId(w as u32 * 64 + b))
        })
    }
}

impl FromIterator<CapabilityId> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = CapabilityId>>(iter: I) -> Self {
        let mut set = CapabilitySet::new();
        for id in iter {
            set.insert(id);
        }
        set
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|id| id.0)).finish()
    }
}

/// Maps capability names to dense [`CapabilityId`]s, append-only.
///
/// Ids are handed out in first-seen order and never reused, so a
/// [`CapabilitySet`] built once stays valid for the interner's lifetime.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(into = "Vec<String>", try_from = "Vec<String>")
)]
pub struct CapabilityInterner {
    ids: HashMap<Arc<str>, CapabilityId>,
    names: Vec<Arc<str>>,
}

impl CapabilityInterner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, creating it if needed.
    ///
    /// # Panics
    ///
    /// Panics if more than `u32::MAX` distinct names are interned.
    pub fn intern(&mut self, name: &str) -> CapabilityId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = CapabilityId(
            u32::try_from(self.names.len()).expect("more than u32::MAX capability names"),
        );
        let name: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&name));
        self.ids.insert(name, id);
        id
    }

    /// Interns every name and returns their set.
    pub fn intern_all<I, S>(&mut self, names: I) -> CapabilitySet
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names.into_iter().map(|n| self.intern(n.as_ref())).collect()
    }

    /// The id of `name`, if it was interned.
    pub fn lookup(&self, name: &str) -> Option<CapabilityId> {
        self.ids.get(name).copied()
    }

    /// The set of already-interned names.
    ///
    /// # Errors
    ///
    /// Returns the first name that was never interned.
    pub fn lookup_all<I, S>(&self, names: I) -> Result<CapabilitySet, S>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = CapabilitySet::new();
        for name in names {
            match self.lookup(name.as_ref()) {
                Some(id) => set.insert(id),
                None => return Err(name),
            };
        }
        Ok(set)
    }

    /// The name of `id`, if this interner issued it.
    pub fn name(&self, id: CapabilityId) -> Option<&str> {
        self.names.get(id.index()).map(|n| &**n)
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name was interned yet.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Serialized as its names in id order; deserializing re-interns them, so
/// every id keeps its number.
impl From<CapabilityInterner> for Vec<String> {
    fn from(interner: CapabilityInterner) -> Self {
        interner.names.iter().map(|n| n.to_string()).collect()
    }
}

/// Reads an interner back from its names in id order.
///
/// # Errors
///
/// A name that appears twice (the ids after it would shift), or more than
/// `u32::MAX` names.
impl TryFrom<Vec<String>> for CapabilityInterner {
    type Error = String;

    fn try_from(names: Vec<String>) -> Result<Self, String> {
        if u32::try_from(names.len()).is_err() {
            return Err(format!("{} capability names exceed u32::MAX", names.len()));
        }
        let mut interner = CapabilityInterner::new();
        for name in names {
            if interner.lookup(&name).is_some() {
                return Err(format!("capability name {name:?} appears twice"));
            }
            interner.intern(&name);
        }
        Ok(interner)
    }
}

/// A [`CapabilitySet`] as stored: its words, checked on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct SetWords {
    low: u64,
    high: Vec<u64>,
}

#[cfg(feature = "serde")]
impl TryFrom<SetWords> for CapabilitySet {
    type Error = &'static str;

    /// Refuses a trailing zero word: equal sets must be equal values.
    fn try_from(words: SetWords) -> Result<Self, Self::Error> {
        if words.high.last() == Some(&0) {
            return Err("a capability set ends in a zero word");
        }
        Ok(CapabilitySet {
            low: words.low,
            high: words.high,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set(ids: &BTreeSet<u32>) -> CapabilitySet {
        ids.iter().map(|&i| CapabilityId(i)).collect()
    }

    #[test]
    fn ids_beyond_64_work_and_trailing_zero_words_do_not_break_equality() {
        let mut names = CapabilityInterner::new();
        let all = names.intern_all((0..200).map(|i| format!("cap{i}")));
        assert_eq!(all.len(), 200);
        let high = names.lookup_all(["cap150", "cap3"]).unwrap();
        assert!(all.is_superset(&high));
        assert!(!high.is_superset(&all));
        assert_eq!(names.name(names.lookup("cap150").unwrap()), Some("cap150"));
        let low_only: CapabilitySet = [CapabilityId(1)].into_iter().collect();
        let mut grown = low_only.clone();
        grown.insert(CapabilityId(1));
        assert_eq!(low_only, grown);
    }

    #[test]
    fn interning_is_idempotent() {
        let mut names = CapabilityInterner::new();
        let a = names.intern("gpu");
        assert_eq!(names.intern("gpu"), a);
        assert_eq!(names.len(), 1);
        assert!(names.lookup("tpu").is_none());
    }

    proptest! {
        #[test]
        fn bitset_matches_btreeset_model(
            a in proptest::collection::btree_set(0u32..300, 0..20),
            b in proptest::collection::btree_set(0u32..300, 0..20),
        ) {
            let (sa, sb) = (set(&a), set(&b));
            prop_assert_eq!(sa.is_superset(&sb), a.is_superset(&b));
            prop_assert_eq!(sa.intersects(&sb), !a.is_disjoint(&b));
            prop_assert_eq!(sa.intersection_len(&sb), a.intersection(&b).count());
            prop_assert_eq!(sa.len(), a.len());
            prop_assert_eq!(sa.iter().map(|i| i.0).collect::<Vec<_>>(), a.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(sa == sb, a == b);
        }
    }
}
