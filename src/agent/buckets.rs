//! Bucketed FIFO lists of agent slots: the load and priority orders of the
//! availability index.
//!
//! Each bucket holds the agents that share a key (an exact load ratio, or a
//! priority and load ratio) in an intrusive doubly linked list, in the order
//! they entered the bucket. Moving an agent between buckets — what every
//! assignment and completion does — is an unlink and a link, `O(1)`, plus a
//! lookup among the few distinct keys. The smallest key's first agent is the
//! answer of least-loaded routing.

use std::cmp::Ordering;

use super::slot::Slot;

const NIL: Slot = Slot::MAX;

/// `load / capacity`, compared exactly by cross-multiplication; equal
/// fractions (1/2, 2/4) are the same bucket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ratio {
    pub(crate) load: u32,
    pub(crate) capacity: u32,
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        let lhs = u64::from(self.load) * u64::from(other.capacity);
        let rhs = u64::from(other.load) * u64::from(self.capacity);
        lhs.cmp(&rhs)
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ratio {}

/// Where one slot sits: its bucket and neighbours. Shared by all bucket
/// lists of one kind, since an agent is in at most one list of each kind.
#[derive(Clone, Copy, Debug)]
struct Link<B> {
    bucket: Option<B>,
    prev: Slot,
    next: Slot,
}

/// The links of every slot for one kind of bucket list.
#[derive(Clone, Debug)]
pub(crate) struct Links<B> {
    links: Vec<Link<B>>,
}

impl<B> Default for Links<B> {
    fn default() -> Self {
        Links { links: Vec::new() }
    }
}

impl<B: Copy> Links<B> {
    fn get(&self, slot: Slot) -> Option<&Link<B>> {
        self.links.get(slot as usize)
    }

    /// The link of a slot that is in a list.
    fn linked(&mut self, slot: Slot) -> &mut Link<B> {
        &mut self.links[slot as usize]
    }

    fn get_mut(&mut self, slot: Slot) -> &mut Link<B> {
        let at = slot as usize;
        if self.links.len() <= at {
            self.links.resize(
                at + 1,
                Link {
                    bucket: None,
                    prev: NIL,
                    next: NIL,
                },
            );
        }
        &mut self.links[at]
    }
}

/// Non-empty buckets by key, each a FIFO list of slots.
#[derive(Clone, Debug)]
pub(crate) struct BucketLists<B> {
    /// `(key, first slot, last slot)`, sorted by key. Distinct keys are few
    /// (load levels), so a sorted vector beats a tree here.
    buckets: Vec<(B, Slot, Slot)>,
}

impl<B> Default for BucketLists<B> {
    fn default() -> Self {
        BucketLists {
            buckets: Vec::new(),
        }
    }
}

impl<B: Ord + Copy> BucketLists<B> {
    /// Appends `slot` to the list of `bucket`.
    pub(crate) fn push(&mut self, slot: Slot, bucket: B, links: &mut Links<B>) {
        self.attach(slot, bucket, links);
    }

    /// [`push`](Self::push)'s steps, inlined where the hot path needs them.
    #[inline(always)]
    fn attach(&mut self, slot: Slot, bucket: B, links: &mut Links<B>) {
        let tail = self.append(slot, bucket);
        if tail != NIL {
            links.linked(tail).next = slot;
        }
        *links.get_mut(slot) = Link {
            bucket: Some(bucket),
            prev: tail,
            next: NIL,
        };
    }

    /// Unlinks `slot`; a slot in no list is ignored.
    pub(crate) fn remove(&mut self, slot: Slot, links: &mut Links<B>) {
        let Some(&Link {
            bucket: Some(bucket),
            prev,
            next,
        }) = links.get(slot)
        else {
            return;
        };
        self.unlink(bucket, prev, next, links);
        links.linked(slot).bucket = None;
    }

    /// Makes `slot` the last of `bucket`'s list in the bucket table (a new
    /// bucket if needed) and returns the former last slot, or `NIL`. The
    /// caller links the slot itself.
    #[inline(always)]
    fn append(&mut self, slot: Slot, bucket: B) -> Slot {
        match self.find(&bucket) {
            Ok(at) => std::mem::replace(&mut self.buckets[at].2, slot),
            Err(at) => {
                // Shifting a few entries by swaps beats a memmove call.
                self.buckets.push((bucket, slot, slot));
                for i in (at + 1..self.buckets.len()).rev() {
                    self.buckets.swap(i, i - 1);
                }
                NIL
            }
        }
    }

    /// Takes the slot linked in `bucket` between `prev` and `next`, out of
    /// its list: its neighbours and the bucket's ends no longer name it, and
    /// an emptied bucket is dropped. The slot's own link is left as it was.
    #[inline(always)]
    fn unlink(&mut self, bucket: B, prev: Slot, next: Slot, links: &mut Links<B>) {
        if prev != NIL {
            links.linked(prev).next = next;
        }
        if next != NIL {
            links.linked(next).prev = prev;
        }
        if prev != NIL && next != NIL {
            // From the middle of its list: the bucket's ends stay.
            return;
        }
        if let Ok(at) = self.find(&bucket) {
            match (prev, next) {
                (NIL, NIL) => {
                    for i in at + 1..self.buckets.len() {
                        self.buckets.swap(i - 1, i);
                    }
                    self.buckets.pop();
                }
                _ => {
                    let ends = &mut self.buckets[at];
                    if prev == NIL {
                        ends.1 = next;
                    }
                    if next == NIL {
                        ends.2 = prev;
                    }
                }
            }
        }
    }

    /// Moves `slot` to the back of `bucket`'s list, unless it is already in
    /// that bucket.
    ///
    /// What every assignment and completion does, so the slot's link is
    /// read once: it is unlinked from its old list, then pushed onto the new
    /// one (without `remove`'s second read of the link).
    pub(crate) fn update(&mut self, slot: Slot, bucket: B, links: &mut Links<B>) {
        let Some(&Link {
            bucket: Some(old),
            prev,
            next,
        }) = links.get(slot)
        else {
            // In no list: a plain push.
            self.push(slot, bucket, links);
            return;
        };
        if old == bucket {
            return;
        }
        self.unlink(old, prev, next, links);
        self.attach(slot, bucket, links);
    }

    /// Where `bucket` is in the table (`Ok`) or would go (`Err`). The last
    /// (highest) bucket is checked first: an agent taking a task usually
    /// moves up to it, or past it.
    fn find(&self, bucket: &B) -> Result<usize, usize> {
        let Some((last, ..)) = self.buckets.last() else {
            return Err(0);
        };
        let len = self.buckets.len();
        match last.cmp(bucket) {
            Ordering::Less => Err(len),
            Ordering::Equal => Ok(len - 1),
            Ordering::Greater => {
                self.buckets[..len - 1].binary_search_by(|(key, ..)| key.cmp(bucket))
            }
        }
    }

    /// Every slot with its bucket key: buckets in ascending order, each in
    /// list (arrival) order. Lazy: taking the first costs `O(log b)`.
    pub(crate) fn iter<'a>(&'a self, links: &'a Links<B>) -> impl Iterator<Item = (B, Slot)> + 'a {
        Iter {
            buckets: self.buckets.iter(),
            links,
            last: None,
        }
    }
}

/// [`BucketLists::iter`]: a bucket's slots by their links, then the next
/// bucket's. Lazy: a slot's link is read only when the slot after it is
/// asked for.
struct Iter<'a, B> {
    buckets: std::slice::Iter<'a, (B, Slot, Slot)>,
    links: &'a Links<B>,
    /// The slot returned last, with its bucket.
    last: Option<(B, Slot)>,
}

impl<B: Copy> Iterator for Iter<'_, B> {
    type Item = (B, Slot);

    fn next(&mut self) -> Option<(B, Slot)> {
        if let Some((bucket, slot)) = self.last {
            let next = self.links.get(slot).map_or(NIL, |l| l.next);
            if next != NIL {
                self.last = Some((bucket, next));
                return self.last;
            }
        }
        let &(bucket, head, _) = self.buckets.next()?;
        self.last = Some((bucket, head));
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Push(u8, u8),
        Remove(u8),
        Update(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..30, 0u8..6).prop_map(|(s, b)| Op::Push(s, b)),
            (0u8..30).prop_map(Op::Remove),
            (0u8..30, 0u8..6).prop_map(|(s, b)| Op::Update(s, b)),
        ]
    }

    proptest! {
        /// The lists agree with a model of per-bucket vectors at every step.
        #[test]
        fn matches_a_vector_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut lists = BucketLists::default();
            let mut links = Links::default();
            let mut model: BTreeMap<u8, Vec<Slot>> = BTreeMap::new();
            let bucket_of = |model: &BTreeMap<u8, Vec<Slot>>, s: Slot| {
                model.iter().find(|(_, v)| v.contains(&s)).map(|(&b, _)| b)
            };
            for op in ops {
                match op {
                    Op::Push(s, b) => {
                        let s = Slot::from(s);
                        if bucket_of(&model, s).is_none() {
                            lists.push(s, b, &mut links);
                            model.entry(b).or_default().push(s);
                        }
                    }
                    Op::Remove(s) => {
                        let s = Slot::from(s);
                        lists.remove(s, &mut links);
                        for v in model.values_mut() {
                            v.retain(|&x| x != s);
                        }
                    }
                    Op::Update(s, b) => {
                        let s = Slot::from(s);
                        if let Some(old) = bucket_of(&model, s) {
                            lists.update(s, b, &mut links);
                            if old != b {
                                model.values_mut().for_each(|v| v.retain(|&x| x != s));
                                model.entry(b).or_default().push(s);
                            }
                        }
                    }
                }
                model.retain(|_, v| !v.is_empty());
                let expected: Vec<(u8, Slot)> =
                    model.iter().flat_map(|(&b, v)| v.iter().map(move |&s| (b, s))).collect();
                prop_assert_eq!(lists.iter(&links).collect::<Vec<_>>(), expected);
            }
        }
    }

    #[test]
    fn equal_fractions_share_a_bucket() {
        let half = Ratio {
            load: 1,
            capacity: 2,
        };
        let two_quarters = Ratio {
            load: 2,
            capacity: 4,
        };
        assert_eq!(half, two_quarters);
        assert!(
            Ratio {
                load: 1,
                capacity: 3
            } < half
        );
    }
}
