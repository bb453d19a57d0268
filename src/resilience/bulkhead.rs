//! A bulkhead: a cap on concurrent calls per key, so that one slow kind of
//! task cannot take every slot.

use std::collections::HashMap;
use std::hash::Hash;

use thiserror::Error;

use super::ResilienceError;

/// [`Bulkhead::try_acquire`] refused: `key` already has `limit` calls in
/// flight. Hands the key back.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("bulkhead full for {key:?}: {limit} calls in flight")]
pub struct BulkheadFull<K> {
    /// The key that is full.
    pub key: K,
    /// Its limit.
    pub limit: u32,
}

/// [`Bulkhead::release`] was called for a key with no call in flight.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("released {key:?}, which has no call in flight")]
pub struct NotInFlight<K> {
    /// The key.
    pub key: K,
}

/// Caps the calls in flight per key (a task type, an agent, a tenant).
///
/// Every key gets the default limit unless it has its own. Acquire before a
/// call, release after it, whatever its outcome. Only counts are kept, and
/// only for keys with calls in flight, so memory follows the number of busy
/// keys. The hash maps are used for lookups only, so behaviour never depends
/// on their order. Every operation is `O(1)` expected. With the `serde`
/// feature the maps serialize as maps written in key order (equal bulkheads give
/// equal bytes, which needs `K: Ord`), and deserializing checks every limit
/// is at least 1 and every count of calls in flight too; a key given twice
/// is an error.
///
/// ```
/// use taskweave::resilience::{Bulkhead, BulkheadFull};
///
/// let mut bulkhead = Bulkhead::new(2)?;
/// bulkhead.set_limit("video", 1)?;
/// assert_eq!(bulkhead.try_acquire(&"video"), Ok(()));
/// assert_eq!(bulkhead.try_acquire(&"video"), Err(BulkheadFull { key: "video", limit: 1 }));
/// assert_eq!(bulkhead.try_acquire(&"text"), Ok(())); // other keys are unaffected
/// bulkhead.release(&"video")?;
/// assert_eq!(bulkhead.in_flight(&"video"), 0);
/// assert!(bulkhead.release(&"video").is_err()); // an error, not a panic
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(
        try_from = "BulkheadForm<K>",
        bound(
            serialize = "K: serde::Serialize + Ord",
            deserialize = "K: serde::Deserialize<'de> + Eq + std::hash::Hash"
        )
    )
)]
pub struct Bulkhead<K> {
    default_limit: u32,
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_map"))]
    limits: HashMap<K, u32>,
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_map"))]
    in_flight: HashMap<K, u32>,
}

/// The unchecked fields of a [`Bulkhead`], as deserialized.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(bound(deserialize = "K: serde::Deserialize<'de> + Eq + std::hash::Hash"))]
struct BulkheadForm<K> {
    default_limit: u32,
    #[serde(with = "crate::serde_maps::as_map")]
    limits: HashMap<K, u32>,
    #[serde(with = "crate::serde_maps::as_map")]
    in_flight: HashMap<K, u32>,
}

#[cfg(feature = "serde")]
impl<K> TryFrom<BulkheadForm<K>> for Bulkhead<K> {
    type Error = &'static str;

    /// Limits are at least 1, as [`Bulkhead::new`] and
    /// [`Bulkhead::set_limit`] require, and only keys with a call in flight
    /// have a count.
    fn try_from(form: BulkheadForm<K>) -> Result<Self, Self::Error> {
        if form.default_limit == 0 || form.limits.values().any(|&limit| limit == 0) {
            return Err("a bulkhead limit must be at least 1");
        }
        if form.in_flight.values().any(|&count| count == 0) {
            return Err("a bulkhead keeps counts only for keys with calls in flight");
        }
        Ok(Bulkhead {
            default_limit: form.default_limit,
            limits: form.limits,
            in_flight: form.in_flight,
        })
    }
}

/// Equal when the default limit, the per-key limits and the calls in flight
/// are equal (whatever the maps' internal order).
impl<K: Eq + Hash> PartialEq for Bulkhead<K> {
    fn eq(&self, other: &Self) -> bool {
        self.default_limit == other.default_limit
            && self.limits == other.limits
            && self.in_flight == other.in_flight
    }
}

impl<K: Eq + Hash> Eq for Bulkhead<K> {}

impl<K> Bulkhead<K> {
    /// Every key with calls in flight, with their number (in no set order).
    pub fn busy(&self) -> impl Iterator<Item = (&K, u32)> + '_ {
        self.in_flight.iter().map(|(key, &count)| (key, count))
    }
}

impl<K: Eq + Hash + Clone> Bulkhead<K> {
    /// A bulkhead that lets every key have `default_limit` calls in flight.
    ///
    /// # Errors
    ///
    /// [`ResilienceError::ZeroCount`] if `default_limit` is 0.
    pub fn new(default_limit: u32) -> Result<Self, ResilienceError> {
        Ok(Bulkhead {
            default_limit: validate_limit(default_limit)?,
            limits: HashMap::new(),
            in_flight: HashMap::new(),
        })
    }

    /// Gives `key` its own limit. Lowering it below the calls already in
    /// flight refuses new calls until enough have been released.
    ///
    /// # Errors
    ///
    /// [`ResilienceError::ZeroCount`] if `limit` is 0.
    pub fn set_limit(&mut self, key: K, limit: u32) -> Result<(), ResilienceError> {
        self.limits.insert(key, validate_limit(limit)?);
        Ok(())
    }

    /// The limit of `key`.
    pub fn limit(&self, key: &K) -> u32 {
        self.limits.get(key).copied().unwrap_or(self.default_limit)
    }

    /// Calls in flight for `key`.
    pub fn in_flight(&self, key: &K) -> u32 {
        self.in_flight.get(key).copied().unwrap_or(0)
    }

    /// Starts a call for `key` if it is under its limit.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`], with the key and its limit, if `key` is at its
    /// limit.
    pub fn try_acquire(&mut self, key: &K) -> Result<(), BulkheadFull<K>> {
        let limit = self.limit(key);
        let count = self.in_flight.entry(key.clone()).or_insert(0);
        if *count >= limit {
            return Err(BulkheadFull {
                key: key.clone(),
                limit,
            });
        }
        *count += 1;
        Ok(())
    }

    /// Ends a call for `key`.
    ///
    /// # Errors
    ///
    /// [`NotInFlight`], with the key, if `key` has no call in flight; the
    /// count stays at zero.
    pub fn release(&mut self, key: &K) -> Result<(), NotInFlight<K>> {
        match self.in_flight.get_mut(key) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                self.in_flight.remove(key);
            }
            None => return Err(NotInFlight { key: key.clone() }),
        }
        Ok(())
    }
}

fn validate_limit(limit: u32) -> Result<u32, ResilienceError> {
    if limit == 0 {
        return Err(ResilienceError::ZeroCount {
            parameter: "bulkhead limit",
        });
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limit_applies_per_key() {
        let mut b = Bulkhead::new(2).unwrap();
        assert_eq!(b.try_acquire(&"a"), Ok(()));
        assert_eq!(b.try_acquire(&"a"), Ok(()));
        assert_eq!(
            b.try_acquire(&"a"),
            Err(BulkheadFull { key: "a", limit: 2 })
        );
        assert_eq!(b.in_flight(&"a"), 2);
        assert_eq!(b.try_acquire(&"b"), Ok(()));
        assert_eq!(b.in_flight(&"b"), 1);
    }

    #[test]
    fn overrides_win_over_the_default() {
        let mut b = Bulkhead::new(1).unwrap();
        b.set_limit("wide", 3).unwrap();
        assert_eq!((b.limit(&"wide"), b.limit(&"other")), (3, 1));
        for _ in 0..3 {
            assert_eq!(b.try_acquire(&"wide"), Ok(()));
        }
        assert!(b.try_acquire(&"wide").is_err());
        // Lowering below the current count refuses until drained.
        b.set_limit("wide", 2).unwrap();
        b.release(&"wide").unwrap();
        assert!(b.try_acquire(&"wide").is_err());
        b.release(&"wide").unwrap();
        assert_eq!(b.try_acquire(&"wide"), Ok(()));
    }

    #[test]
    fn release_frees_a_slot() {
        let mut b = Bulkhead::new(1).unwrap();
        b.try_acquire(&7).unwrap();
        assert!(b.try_acquire(&7).is_err());
        assert_eq!(b.release(&7), Ok(()));
        assert_eq!(b.try_acquire(&7), Ok(()));
    }

    #[test]
    fn releasing_below_zero_is_an_error() {
        let mut b = Bulkhead::new(1).unwrap();
        assert_eq!(b.release(&"x"), Err(NotInFlight { key: "x" }));
        b.try_acquire(&"x").unwrap();
        b.release(&"x").unwrap();
        assert_eq!(b.release(&"x"), Err(NotInFlight { key: "x" }));
        assert_eq!(b.in_flight(&"x"), 0);
        assert_eq!(b.try_acquire(&"x"), Ok(()));
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let mut b = Bulkhead::new(1).unwrap();
        for key in 0..100 {
            b.try_acquire(&key).unwrap();
            b.release(&key).unwrap();
        }
        assert!(b.in_flight.is_empty());
    }

    #[test]
    fn zero_limits_are_rejected() {
        let zero = ResilienceError::ZeroCount {
            parameter: "bulkhead limit",
        };
        assert_eq!(Bulkhead::<u8>::new(0).unwrap_err(), zero);
        let mut b = Bulkhead::new(1).unwrap();
        assert_eq!(b.set_limit(1u8, 0), Err(zero));
        assert_eq!(b.limit(&1), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let full = BulkheadFull {
            key: "video",
            limit: 4,
        };
        assert_eq!(
            full.to_string(),
            "bulkhead full for \"video\": 4 calls in flight"
        );
        assert_eq!(
            NotInFlight { key: 3 }.to_string(),
            "released 3, which has no call in flight"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_is_canonical_and_checked() {
        let mut b = Bulkhead::new(2).unwrap();
        for key in ["zeta", "alpha", "mid"] {
            b.set_limit(key.to_string(), 3).unwrap();
            b.try_acquire(&key.to_string()).unwrap();
        }
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"default_limit":2,"limits":{"alpha":3,"mid":3,"zeta":3},"in_flight":{"alpha":1,"mid":1,"zeta":1}}"#
        );
        assert_eq!(serde_json::from_str::<Bulkhead<String>>(&json).unwrap(), b);
        for bad in [
            r#"{"default_limit":0,"limits":{},"in_flight":{}}"#,
            r#"{"default_limit":1,"limits":{"a":0},"in_flight":{}}"#,
            r#"{"default_limit":1,"limits":{},"in_flight":{"a":0}}"#,
            r#"{"default_limit":1,"limits":{"a":1,"a":2},"in_flight":{}}"#,
        ] {
            assert!(
                serde_json::from_str::<Bulkhead<String>>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
