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
}

/// The map of keys to tasks.
pub(in crate::scheduler) type KeyMap = HashMap<Arc<str>, TaskId>;
/// The keys in expiry order.
pub(in crate::scheduler) type ExpiryQueue = VecDeque<(Instant, Arc<str>)>;

impl IdempotencyKeys {
    /// Keys as a snapshot stores them: the map, and the expiry queue.
    pub(in crate::scheduler) fn from_parts(by_key: KeyMap, expiry: ExpiryQueue) -> Self {
        IdempotencyKeys { by_key, expiry }
    }

    /// The map and the expiry queue, for a snapshot and its checks.
    pub(in crate::scheduler) fn parts(&self) -> (&KeyMap, &ExpiryQueue) {
        (&self.by_key, &self.expiry)
    }

    /// The task `key` names, while its window lasts.
    #[inline]
    pub(in crate::scheduler) fn get(&self, key: &str) -> Option<TaskId> {
        self.by_key.get(key).copied()
    }

    /// Names `task` by `key` until `expires`, which is no earlier than
    /// any key's before it.
    #[inline]
    pub(in crate::scheduler) fn insert(&mut self, key: String, task: TaskId, expires: Instant) {
        let key: Arc<str> = key.into();
        self.by_key.insert(Arc::clone(&key), task);
        self.expiry.push_back((expires, key));
    }

    /// Forgets the keys whose window has passed by `now`.
    #[inline(always)]
    pub(in crate::scheduler) fn forget_expired(&mut self, now: Instant) {
        while self.expiry.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, key)) = self.expiry.pop_front() {
                self.by_key.remove(&key);
            }
        }
    }
}
