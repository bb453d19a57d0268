//! The attempts holding one concurrency key, oldest start first.
//!
//! Every assignment of a keyed task adds a holder and every end of its
//! attempt removes one, so this is on the keyed cycle twice. Attempt
//! tokens only grow, so a new holder goes at the back in `O(1)`; a removal
//! takes the oldest holder at once, or finds its holder by binary search
//! and marks it gone, and gone holders at either end are dropped at once,
//! so attempts that end in the order they started cost `O(1)` and move
//! nothing. Gone holders inside are swept out once they outnumber the live
//! ones (more than `2 · live + 8` entries): amortized `O(1)` per removal
//! on top of its search. (A `BTreeSet` of the same pairs, which this
//! replaces, walked and compared its nodes on every insertion and
//! removal.)
//!
//! Travels as the ascending sequence of live `(token, task)` pairs, the
//! form the `BTreeSet` had; a sequence read back is sorted and deduplicated
//! the way the set's was.

use std::collections::VecDeque;

use crate::{AttemptToken, TaskId};

/// A holder: the attempt and its task.
pub(crate) type Holder = (AttemptToken, TaskId);

/// The holders of one key: an ordered set of [`Holder`]s.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(from = "Vec<Holder>", into = "Vec<Holder>"))]
pub(crate) struct Holders {
    /// Ascending; `false` marks a holder removed but not yet swept out.
    /// Neither end is a removed holder.
    entries: VecDeque<(Holder, bool)>,
    live: usize,
}

impl Holders {
    /// How many attempts hold the key.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The holder with the oldest attempt.
    pub(crate) fn first(&self) -> Option<&Holder> {
        self.entries.front().map(|(holder, _)| holder)
    }

    /// The holder with the newest attempt.
    pub(crate) fn last(&self) -> Option<&Holder> {
        self.entries.back().map(|(holder, _)| holder)
    }

    /// The holders, oldest attempt first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Holder> + '_ {
        self.entries
            .iter()
            .filter(|(_, live)| *live)
            .map(|(holder, _)| holder)
    }

    /// Adds `holder`; whether it was not there. `O(1)` for a holder newer
    /// than every other (the dispatcher's tokens only grow), `O(n)`
    /// otherwise.
    pub(crate) fn insert(&mut self, holder: Holder) -> bool {
        if self.entries.back().is_none_or(|(last, _)| *last < holder) {
            self.entries.push_back((holder, true));
            self.live += 1;
            return true;
        }
        match self.position(&holder) {
            Ok(at) if self.entries[at].1 => false,
            Ok(at) => {
                self.entries[at].1 = true;
                self.live += 1;
                true
            }
            Err(at) => {
                self.entries.insert(at, (holder, true));
                self.live += 1;
                true
            }
        }
    }

    /// Removes `holder`; whether it was there. `O(1)` for the oldest
    /// holder (attempts mostly end in the order they started), `O(log n)`
    /// amortized for any other.
    pub(crate) fn remove(&mut self, holder: &Holder) -> bool {
        let oldest = self.first() == Some(holder);
        let Ok(at) = (if oldest { Ok(0) } else { self.position(holder) }) else {
            return false;
        };
        if !std::mem::replace(&mut self.entries[at].1, false) {
            return false;
        }
        self.live -= 1;
        while self.entries.front().is_some_and(|(_, live)| !live) {
            self.entries.pop_front();
        }
        while self.entries.back().is_some_and(|(_, live)| !live) {
            self.entries.pop_back();
        }
        if self.entries.len() > 2 * self.live + 8 {
            self.entries.retain(|(_, live)| *live);
        }
        true
    }

    /// Where `holder` is among the entries, live or not (`Ok`), or would go.
    fn position(&self, holder: &Holder) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(entry, _)| entry.cmp(holder))
    }
}

impl From<Vec<Holder>> for Holders {
    fn from(mut holders: Vec<Holder>) -> Self {
        holders.sort_unstable();
        holders.dedup();
        Holders {
            live: holders.len(),
            entries: holders.into_iter().map(|holder| (holder, true)).collect(),
        }
    }
}

impl From<Holders> for Vec<Holder> {
    fn from(holders: Holders) -> Self {
        holders.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn holder(token: u64, task: u64) -> Holder {
        (AttemptToken::new(token), TaskId::new(task))
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u64),
        Remove(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..40, 0u64..4).prop_map(|(t, k)| Op::Insert(t, k)),
            (0u64..40, 0u64..4).prop_map(|(t, k)| Op::Remove(t, k)),
        ]
    }

    proptest! {
        /// The holders agree with a `BTreeSet` model after every step, in
        /// answers, length, ends and order, whatever the order of tokens.
        #[test]
        fn holders_behave_as_an_ordered_set(ops in proptest::collection::vec(op(), 0..200)) {
            let (mut holders, mut model) = (Holders::default(), BTreeSet::new());
            for op in ops {
                match op {
                    Op::Insert(t, k) => {
                        prop_assert_eq!(holders.insert(holder(t, k)), model.insert(holder(t, k)));
                    }
                    Op::Remove(t, k) => {
                        prop_assert_eq!(holders.remove(&holder(t, k)), model.remove(&holder(t, k)));
                    }
                }
                prop_assert_eq!(holders.len(), model.len());
                prop_assert_eq!(holders.first(), model.first());
                prop_assert_eq!(holders.last(), model.last());
                prop_assert!(holders.iter().eq(model.iter()));
                prop_assert!(holders.entries.len() <= 2 * holders.len() + 8);
                prop_assert!(holders.entries.front().is_none_or(|e| e.1));
                prop_assert!(holders.entries.back().is_none_or(|e| e.1));
            }
            let round_trip = Holders::from(Vec::from(holders.clone()));
            prop_assert_eq!(round_trip.len(), holders.len());
            prop_assert!(round_trip.iter().eq(holders.iter()));
        }

        /// A sequence read back (any order, duplicates) is the set of it.
        #[test]
        fn read_back_holders_are_sorted_and_distinct(
            pairs in proptest::collection::vec((0u64..20, 0u64..3), 0..40),
        ) {
            let read = Holders::from(pairs.iter().map(|&(t, k)| holder(t, k)).collect::<Vec<_>>());
            let model: BTreeSet<Holder> = pairs.iter().map(|&(t, k)| holder(t, k)).collect();
            prop_assert_eq!(read.len(), model.len());
            prop_assert!(read.iter().eq(model.iter()));
        }
    }

    /// Stored holders read and write the form the `BTreeSet` had.
    #[cfg(feature = "serde")]
    #[test]
    fn holders_travel_as_the_set_did() {
        let set: BTreeSet<Holder> = [holder(7, 1), holder(3, 2), holder(9, 0)].into();
        let mut holders = Holders::default();
        for &h in [holder(3, 2), holder(5, 5), holder(7, 1), holder(9, 0)].iter() {
            holders.insert(h);
        }
        holders.remove(&holder(5, 5));
        let json = serde_json::to_string(&set).expect("a set writes");
        assert_eq!(
            serde_json::to_string(&holders).expect("holders write"),
            json
        );
        let read: Holders = serde_json::from_str(&json).expect("holders read");
        assert!(read.iter().eq(set.iter()));
    }

    #[test]
    fn holders_ending_in_start_order_keep_no_gone_entries() {
        let mut holders = Holders::default();
        for token in 0..100 {
            holders.insert(holder(token, token));
            if token >= 4 {
                assert!(holders.remove(&holder(token - 4, token - 4)));
            }
        }
        assert_eq!(holders.len(), 4);
        assert_eq!(holders.entries.len(), 4);
        assert_eq!(holders.first(), Some(&holder(96, 96)));
    }
}
