//! Idempotency keys: the task each key named, for as long as the
//! dispatcher's window keeps it, and the order in which keys expire.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::{Instant, TaskId};

/// The live idempotency keys and their expiry queue, which name the same
/// keys, each once, in expiry order (the restore checks hold a snapshot to
/// that). A key is shared by the two (`Arc<str>`), so a state's clone — a
/// snapshot's — copies no key.
#[derive(Clone, Debug, Default)]
pub(in crate::scheduler) struct IdempotencyKeys {
    by_key: HashMap<Arc<str>, TaskId>,
    expiry: VecDeque<(Instant, Arc<str>)>,
    /// The payload fingerprint each key's task was submitted with, for
    /// the keys whose task had one.
    fingerprints: Fingerprints,
}

/// The map of keys to tasks.
pub(in crate::scheduler) type KeyMap = HashMap<Arc<str>, TaskId>;
/// The keys in expiry order.
pub(in crate::scheduler) type ExpiryQueue = VecDeque<(Instant, Arc<str>)>;
/// The payload fingerprint of each key's task, where it had one.
pub(in crate::scheduler) type Fingerprints = HashMap<Arc<str>, u64>;

impl IdempotencyKeys {
    /// Keys as a snapshot stores them: the map, and the expiry queue.
    pub(in crate::scheduler) fn from_parts(
        by_key: KeyMap,
        expiry: ExpiryQueue,
        fingerprints: Fingerprints,
    ) -> Self {
        IdempotencyKeys {
            by_key,
            expiry,
            fingerprints,
        }
    }

    /// The map, the expiry queue and the fingerprints, for a snapshot and
    /// its checks.
    pub(in crate::scheduler) fn parts(&self) -> (&KeyMap, &ExpiryQueue, &Fingerprints) {
        (&self.by_key, &self.expiry, &self.fingerprints)
    }

    /// The task `key` names while its window lasts, and the fingerprint
    /// of the payload it was submitted with, if it had one.
    #[inline]
    pub(in crate::scheduler) fn get(&self, key: &str) -> Option<(TaskId, Option<u64>)> {
        let task = *self.by_key.get(key)?;
        Some((task, self.fingerprints.get(key).copied()))
    }

    /// Names `task` by `key` until `expires`, which is no earlier than
    /// any key's before it, with the payload's `fingerprint` if it has
    /// one.
    #[inline]
    pub(in crate::scheduler) fn insert(
        &mut self,
        key: String,
        task: TaskId,
        expires: Instant,
        fingerprint: Option<u64>,
    ) {
        let key: Arc<str> = key.into();
        if let Some(fingerprint) = fingerprint {
            self.fingerprints.insert(Arc::clone(&key), fingerprint);
        }
        self.by_key.insert(Arc::clone(&key), task);
        self.expiry.push_back((expires, key));
    }

    /// Forgets the keys whose window has passed by `now`.
    #[inline(always)]
    pub(in crate::scheduler) fn forget_expired(&mut self, now: Instant) {
        while self.expiry.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, key)) = self.expiry.pop_front() {
                self.by_key.remove(&key);
                self.fingerprints.remove(&key);
            }
        }
    }
}
