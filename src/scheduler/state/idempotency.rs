//! Idempotency keys: the task each key named, for as long as the
//! dispatcher's window keeps it, and the order in which keys expire. A key
//! is scoped to its task's tenant: two tenants' same key are two keys.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::{Instant, TaskId, TenantId};

/// An idempotency key in its tenant's scope. Shared by the map and the
/// expiry queue (`Arc<str>`), so a state's clone copies no key.
///
/// Stored as the key alone when it has no tenant (as every key was
/// stored before tenants), else as `[tenant, key]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(untagged))]
pub(in crate::scheduler) enum ScopedKey {
    /// A key of a task with no tenant.
    Unscoped(Arc<str>),
    /// A key of a task of the tenant.
    Tenant(TenantId, Arc<str>),
}

impl ScopedKey {
    /// `key` in `tenant`'s scope.
    #[inline]
    pub(in crate::scheduler) fn new(tenant: Option<TenantId>, key: &str) -> Self {
        match tenant {
            None => ScopedKey::Unscoped(key.into()),
            Some(tenant) => ScopedKey::Tenant(tenant, key.into()),
        }
    }
}

/// Reads a key as [`ScopedKey`]'s `Serialize` writes it, without the
/// buffering of an untagged enum (a snapshot holds tens of thousands).
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ScopedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ScopedKey;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an idempotency key, or [tenant, key]")
            }

            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<ScopedKey, E> {
                Ok(ScopedKey::Unscoped(key.into()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ScopedKey, A::Error> {
                use serde::de::Error;
                let tenant = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let key = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(3, &self));
                }
                Ok(ScopedKey::Tenant(tenant, key))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The live idempotency keys and their expiry queue, which name the same
/// keys, each once, in expiry order (the restore checks hold a snapshot to
/// that).
#[derive(Clone, Debug, Default)]
pub(in crate::scheduler) struct IdempotencyKeys {
    by_key: HashMap<ScopedKey, TaskId>,
    expiry: VecDeque<(Instant, ScopedKey)>,
    /// The payload fingerprint each key's task was submitted with, for
    /// the keys whose task had one.
    fingerprints: Fingerprints,
}

/// The map of keys to tasks.
pub(in crate::scheduler) type KeyMap = HashMap<ScopedKey, TaskId>;
/// The keys in expiry order.
pub(in crate::scheduler) type ExpiryQueue = VecDeque<(Instant, ScopedKey)>;
/// The payload fingerprint of each key's task, where it had one.
pub(in crate::scheduler) type Fingerprints = HashMap<ScopedKey, u64>;

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
    pub(in crate::scheduler) fn get(&self, key: &ScopedKey) -> Option<(TaskId, Option<u64>)> {
        let task = *self.by_key.get(key)?;
        Some((task, self.fingerprints.get(key).copied()))
    }

    /// Names `task` by `key` until `expires`, which is no earlier than
    /// any key's before it, with the payload's `fingerprint` if it has
    /// one.
    #[inline]
    pub(in crate::scheduler) fn insert(
        &mut self,
        key: ScopedKey,
        task: TaskId,
        expires: Instant,
        fingerprint: Option<u64>,
    ) {
        if let Some(fingerprint) = fingerprint {
            self.fingerprints.insert(key.clone(), fingerprint);
        }
        self.by_key.insert(key.clone(), task);
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
