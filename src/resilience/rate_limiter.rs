//! Rate limiting with the generic cell rate algorithm (GCRA), on time the
//! host passes in, in the style of the `governor` crate.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use thiserror::Error;

use super::{ResilienceError, saturating_nanos};
use crate::Instant;

/// A validated rate: `cells` per `period`, with bursts of up to `burst`
/// cells at once.
///
/// Cells are spaced by the emission interval `period / cells` (rounded down
/// to whole nanoseconds); a limiter that has been idle long enough admits
/// `burst` cells back to back, then one per interval.
///
/// ```
/// use std::time::Duration;
/// use taskweave::resilience::{Quota, ResilienceError};
///
/// let quota = Quota::new(10, Duration::from_secs(1))?.with_burst(3)?;
/// assert_eq!(quota.interval(), Duration::from_millis(100));
/// assert_eq!(quota.burst(), 3);
/// assert!(matches!(Quota::new(0, Duration::from_secs(1)), Err(ResilienceError::ZeroCount { .. })));
/// # Ok::<(), ResilienceError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "QuotaParts"))]
pub struct Quota {
    cells: u32,
    period: Duration,
    burst: u32,
}

/// The unvalidated fields of a [`Quota`], as deserialized.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct QuotaParts {
    cells: u32,
    period: Duration,
    burst: Option<u32>,
}

#[cfg(feature = "serde")]
impl TryFrom<QuotaParts> for Quota {
    type Error = ResilienceError;

    fn try_from(parts: QuotaParts) -> Result<Self, ResilienceError> {
        let quota = Quota::new(parts.cells, parts.period)?;
        match parts.burst {
            Some(burst) => quota.with_burst(burst),
            None => Ok(quota),
        }
    }
}

impl Quota {
    /// `cells` per `period`, with a burst of `cells`. A period longer than
    /// `u64::MAX` nanoseconds (about 584 years) is clamped to it; the
    /// emission interval and tolerance saturate, and a cell that would
    /// arrive past [`Instant::MAX`] is refused (see [`RateLimiter`]).
    ///
    /// # Errors
    ///
    /// [`ResilienceError::ZeroCount`] for zero cells,
    /// [`ResilienceError::ZeroDuration`] for a zero period and
    /// [`ResilienceError::QuotaTooFine`] if the period has fewer nanoseconds
    /// than cells.
    pub fn new(cells: u32, period: Duration) -> Result<Self, ResilienceError> {
        if cells == 0 {
            return Err(ResilienceError::ZeroCount { parameter: "cells" });
        }
        if period.is_zero() {
            return Err(ResilienceError::ZeroDuration {
                parameter: "period",
            });
        }
        if saturating_nanos(period) < u64::from(cells) {
            return Err(ResilienceError::QuotaTooFine { cells, period });
        }
        Ok(Quota {
            cells,
            period,
            burst: cells,
        })
    }

    /// The same rate with bursts of up to `burst` cells.
    ///
    /// # Errors
    ///
    /// [`ResilienceError::ZeroCount`] for a zero burst.
    pub fn with_burst(self, burst: u32) -> Result<Self, ResilienceError> {
        if burst == 0 {
            return Err(ResilienceError::ZeroCount { parameter: "burst" });
        }
        Ok(Quota { burst, ..self })
    }

    /// Cells per period.
    pub fn cells(&self) -> u32 {
        self.cells
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The most cells admitted at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The emission interval: the spacing of cells after a burst.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos())
    }

    /// How far ahead of `now` the theoretical arrival time may run: the
    /// interval times the burst (saturating).
    fn tolerance_nanos(&self) -> u64 {
        self.interval_nanos().saturating_mul(u64::from(self.burst))
    }

    fn interval_nanos(&self) -> u64 {
        // At least 1: `new` checks period ≥ cells nanoseconds.
        saturating_nanos(self.period) / u64::from(self.cells.max(1))
    }
}

/// A rate limiter's answer when a cell does not conform: it would at
/// `earliest`, if nothing else is admitted first.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::resilience::{Quota, RateLimiter};
///
/// let mut limiter = RateLimiter::new(Quota::new(1, Duration::from_secs(1))?);
/// limiter.check(Instant::ZERO)?;
/// let denied = limiter.check(Instant::from_millis(250)).unwrap_err();
/// assert_eq!(denied.earliest(), Instant::from_secs(1));
/// assert_eq!(denied.wait_time_from(Instant::from_millis(250)), Duration::from_millis(750));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[error("rate limited until {earliest}")]
pub struct NotUntil {
    earliest: Instant,
}

impl NotUntil {
    /// The earliest instant the same request would be admitted.
    pub fn earliest(&self) -> Instant {
        self.earliest
    }

    /// How long after `now` that is (zero if already passed).
    pub fn wait_time_from(&self, now: Instant) -> Duration {
        self.earliest.saturating_duration_since(now)
    }
}

/// [`RateLimiter::check_n`] was asked for more cells than the burst, which
/// can never be admitted at once.
///
/// ```
/// use taskweave::resilience::InsufficientCapacity;
///
/// let err = InsufficientCapacity { requested: 5, burst: 3 };
/// assert_eq!(err.to_string(), "5 cells requested at once, but the burst is 3");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[error("{requested} cells requested at once, but the burst is {burst}")]
pub struct InsufficientCapacity {
    /// Cells asked for.
    pub requested: u32,
    /// The quota's burst.
    pub burst: u32,
}

/// GCRA state: the theoretical arrival time of the next cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Gcra {
    /// Theoretical arrival time, in nanoseconds.
    tat: u64,
    /// The latest `now` seen, so that time never goes backwards.
    latest: u64,
}

impl Gcra {
    /// Admits `cells` cells at `now` if they conform; never more than the
    /// burst (checked by the caller) for a useful answer.
    ///
    /// A theoretical arrival time that would pass the end of time
    /// (`u64::MAX` nanoseconds) is refused with `earliest` =
    /// [`Instant::MAX`], "never", rather than saturated: a saturated time
    /// would stop advancing and admit every later request.
    fn admit(&mut self, quota: &Quota, now: Instant, cells: u32) -> Result<(), NotUntil> {
        let now = now.as_nanos().max(self.latest);
        self.latest = now;
        let interval = quota.interval_nanos();
        let tolerance = quota.tolerance_nanos();
        let Some(tat) = interval
            .checked_mul(u64::from(cells))
            .and_then(|increment| self.tat.max(now).checked_add(increment))
        else {
            return Err(NotUntil {
                earliest: Instant::MAX,
            });
        };
        let earliest = tat.saturating_sub(tolerance);
        if now < earliest {
            return Err(NotUntil {
                earliest: Instant::from_nanos(earliest),
            });
        }
        self.tat = tat;
        Ok(())
    }

    fn check_n(
        &mut self,
        quota: &Quota,
        now: Instant,
        cells: u32,
    ) -> Result<Result<(), NotUntil>, InsufficientCapacity> {
        if cells > quota.burst {
            return Err(InsufficientCapacity {
                requested: cells,
                burst: quota.burst,
            });
        }
        Ok(self.admit(quota, now, cells))
    }

    /// Whether the limiter is back to a full burst at `now`, i.e. no
    /// different from a fresh one.
    fn is_idle(&self, now: Instant) -> bool {
        self.tat <= now.as_nanos().max(self.latest)
    }

    /// Whether this state can have been reached under `quota`: the
    /// theoretical arrival time runs at most one tolerance ahead of the
    /// latest instant seen.
    #[cfg(feature = "serde")]
    fn fits(&self, quota: &Quota) -> bool {
        self.tat <= self.latest.saturating_add(quota.tolerance_nanos())
    }

    /// A fresh state that has already seen `latest`.
    fn seen(latest: u64) -> Self {
        Gcra { tat: 0, latest }
    }
}

/// A GCRA rate limiter on host-supplied time: one `u64` of state, `O(1)`
/// per check, no clock.
///
/// Time that goes backwards is treated as no time passing, never a panic.
/// Near the end of time the limiter refuses rather than saturates: a cell
/// whose theoretical arrival would pass [`Instant::MAX`] is answered with
/// [`NotUntil`] at [`Instant::MAX`], "never". With the `serde` feature the
/// quota is validated again and the state must be reachable under it.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::resilience::{Quota, RateLimiter};
///
/// // 2 per second, bursts of 3.
/// let mut limiter = RateLimiter::new(Quota::new(2, Duration::from_secs(1))?.with_burst(3)?);
/// let t0 = Instant::from_secs(10);
/// assert!((0..3).all(|_| limiter.check(t0).is_ok()));
/// let denied = limiter.check(t0).unwrap_err();
/// assert_eq!(denied.earliest(), t0 + Duration::from_millis(500));
/// assert!(limiter.check(denied.earliest()).is_ok());
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "LimiterForm"))]
pub struct RateLimiter {
    quota: Quota,
    state: Gcra,
}

/// The unchecked fields of a [`RateLimiter`], as deserialized.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct LimiterForm {
    quota: Quota,
    state: Gcra,
}

#[cfg(feature = "serde")]
impl TryFrom<LimiterForm> for RateLimiter {
    type Error = &'static str;

    fn try_from(form: LimiterForm) -> Result<Self, Self::Error> {
        if !form.state.fits(&form.quota) {
            return Err("the limiter's arrival time runs further ahead than its quota allows");
        }
        Ok(RateLimiter {
            quota: form.quota,
            state: form.state,
        })
    }
}

impl RateLimiter {
    /// A limiter with a full burst available.
    pub fn new(quota: Quota) -> Self {
        RateLimiter {
            quota,
            state: Gcra::default(),
        }
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The latest instant the limiter has seen: a restored limiter that
    /// has seen past its owner's clock is corrupt.
    pub(crate) fn latest_seen(&self) -> Instant {
        Instant::from_nanos(self.state.latest)
    }

    /// Whether the limiter is back to a full burst at `now`: no different
    /// from a fresh one.
    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        self.state.is_idle(now)
    }

    /// Admits one cell at `now` if it conforms.
    ///
    /// # Errors
    ///
    /// [`NotUntil`] with the earliest instant it would conform; nothing is
    /// consumed.
    pub fn check(&mut self, now: Instant) -> Result<(), NotUntil> {
        self.state.admit(&self.quota, now, 1)
    }

    /// Admits `n` cells at once at `now` if they all conform (0 always
    /// does).
    ///
    /// # Errors
    ///
    /// The outer [`InsufficientCapacity`] if `n` exceeds the burst, so no
    /// wait would help; the inner [`NotUntil`] with the earliest instant
    /// the `n` cells would conform. Nothing is consumed either way.
    pub fn check_n(
        &mut self,
        now: Instant,
        n: u32,
    ) -> Result<Result<(), NotUntil>, InsufficientCapacity> {
        self.state.check_n(&self.quota, now, n)
    }
}

/// One GCRA rate limiter per key (an agent, a task type, a tenant), each
/// with the default quota unless given its own.
///
/// State is created on a key's first check; [`retain_recent`](Self::retain_recent)
/// drops the state of keys that are back to a full burst, which is
/// indistinguishable from no state, to bound memory. The hash maps are used
/// for lookups only, so answers never depend on their order; with the
/// `serde` feature they serialize as maps written in key order (so equal limiters
/// give equal bytes, which needs `K: Ord`), and a key given twice is a
/// deserialization error; quotas are validated again, but a key's state is
/// not checked against its quota (which [`set_quota`](Self::set_quota) may
/// have changed since): a corrupt arrival time can only delay that key.
/// Time that goes backwards, for any key, counts as no time passing: the
/// limiter remembers the latest instant it has seen.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::resilience::{KeyedRateLimiter, Quota};
///
/// let mut limiter = KeyedRateLimiter::new(Quota::new(1, Duration::from_secs(1))?);
/// limiter.set_quota("vip", Quota::new(5, Duration::from_secs(1))?);
/// let now = Instant::ZERO;
/// assert!(limiter.check(&"agent-1", now).is_ok());
/// assert!(limiter.check(&"agent-1", now).is_err());
/// assert!(limiter.check(&"agent-2", now).is_ok());
/// assert!((0..5).all(|_| limiter.check(&"vip", now).is_ok()));
///
/// limiter.retain_recent(Instant::from_secs(2));
/// assert!(limiter.is_empty());
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(
        from = "KeyedForm<K>",
        bound(
            serialize = "K: serde::Serialize + Ord",
            deserialize = "K: serde::Deserialize<'de> + Eq + std::hash::Hash"
        )
    )
)]
pub struct KeyedRateLimiter<K> {
    default_quota: Quota,
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_map"))]
    quotas: HashMap<K, Quota>,
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_map"))]
    states: HashMap<K, Gcra>,
    /// The latest `now` seen by any key, so that a key whose state was
    /// dropped does not go back in time.
    #[cfg_attr(feature = "serde", serde(default))]
    latest: u64,
}

/// The fields of a [`KeyedRateLimiter`], as deserialized: each quota is
/// validated on its own, and the latest instant seen is made at least that
/// of every key (snapshots from before it was recorded carry none).
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(bound(deserialize = "K: serde::Deserialize<'de> + Eq + std::hash::Hash"))]
struct KeyedForm<K> {
    default_quota: Quota,
    #[serde(with = "crate::serde_maps::as_map")]
    quotas: HashMap<K, Quota>,
    #[serde(with = "crate::serde_maps::as_map")]
    states: HashMap<K, Gcra>,
    #[serde(default)]
    latest: u64,
}

#[cfg(feature = "serde")]
impl<K> From<KeyedForm<K>> for KeyedRateLimiter<K> {
    fn from(form: KeyedForm<K>) -> Self {
        let latest = form
            .states
            .values()
            .map(|state| state.latest)
            .fold(form.latest, u64::max);
        KeyedRateLimiter {
            default_quota: form.default_quota,
            quotas: form.quotas,
            states: form.states,
            latest,
        }
    }
}

/// Equal when the quotas, the per-key states and the latest instant seen
/// are equal (whatever the maps' internal order).
impl<K: Eq + Hash> PartialEq for KeyedRateLimiter<K> {
    fn eq(&self, other: &Self) -> bool {
        self.default_quota == other.default_quota
            && self.quotas == other.quotas
            && self.states == other.states
            && self.latest == other.latest
    }
}

impl<K: Eq + Hash> Eq for KeyedRateLimiter<K> {}

impl<K: Eq + Hash + Clone> KeyedRateLimiter<K> {
    /// The latest instant any key has seen: a restored limiter that has
    /// seen past its owner's clock is corrupt.
    pub(crate) fn latest_seen(&self) -> Instant {
        Instant::from_nanos(self.latest)
    }

    /// A limiter giving every key `default_quota`.
    pub fn new(default_quota: Quota) -> Self {
        KeyedRateLimiter {
            default_quota,
            quotas: HashMap::new(),
            states: HashMap::new(),
            latest: 0,
        }
    }

    /// Gives `key` its own quota; state already built up is kept.
    pub fn set_quota(&mut self, key: K, quota: Quota) {
        self.quotas.insert(key, quota);
    }

    /// The quota of `key`.
    pub fn quota(&self, key: &K) -> Quota {
        self.quotas.get(key).copied().unwrap_or(self.default_quota)
    }

    /// Admits one cell for `key` at `now` if it conforms.
    ///
    /// # Errors
    ///
    /// [`NotUntil`] with the earliest instant it would conform.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), NotUntil> {
        let quota = self.quota(key);
        let now = self.observe(now);
        let latest = self.latest;
        self.states
            .entry(key.clone())
            .or_insert_with(|| Gcra::seen(latest))
            .admit(&quota, now, 1)
    }

    /// `now`, or the latest instant seen if that is later; remembers it.
    fn observe(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now.as_nanos());
        Instant::from_nanos(self.latest)
    }

    /// Admits `n` cells for `key` at once at `now` if they all conform.
    ///
    /// # Errors
    ///
    /// As [`RateLimiter::check_n`]: [`InsufficientCapacity`] if `n` exceeds
    /// the key's burst, [`NotUntil`] if the cells do not conform yet.
    pub fn check_n(
        &mut self,
        key: &K,
        now: Instant,
        n: u32,
    ) -> Result<Result<(), NotUntil>, InsufficientCapacity> {
        let quota = self.quota(key);
        let now = self.observe(now);
        let latest = self.latest;
        self.states
            .entry(key.clone())
            .or_insert_with(|| Gcra::seen(latest))
            .check_n(&quota, now, n)
    }

    /// Forgets the state of every key that is back to a full burst at
    /// `now`. `O(keys)`.
    pub fn retain_recent(&mut self, now: Instant) {
        let now = self.observe(now);
        self.states.retain(|_, state| !state.is_idle(now));
    }

    /// Keys with state.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no key has state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn quota(cells: u32, period: Duration, burst: u32) -> Quota {
        Quota::new(cells, period)
            .and_then(|q| q.with_burst(burst))
            .unwrap()
    }

    #[test]
    fn burst_then_spacing() {
        let mut l = RateLimiter::new(quota(2, 1_000 * MS, 3));
        let t0 = Instant::from_secs(100);
        for _ in 0..3 {
            assert_eq!(l.check(t0), Ok(()));
        }
        for k in 1..=5 {
            let slot = t0 + 500 * k * MS;
            let just_before = Instant::from_nanos(slot.as_nanos() - 1);
            assert_eq!(l.check(just_before).map_err(|e| e.earliest()), Err(slot));
            assert_eq!(l.check(slot), Ok(()), "slot {k}");
        }
    }

    #[test]
    fn not_until_is_exact_for_uneven_intervals() {
        // 3 per 1 s: interval 333_333_333 ns.
        let mut l = RateLimiter::new(quota(3, 1_000 * MS, 1));
        l.check(Instant::ZERO).unwrap();
        let denied = l.check(Instant::from_nanos(1)).unwrap_err();
        assert_eq!(denied.earliest(), Instant::from_nanos(333_333_333));
        assert_eq!(
            denied.wait_time_from(Instant::from_nanos(1)),
            Duration::from_nanos(333_333_332)
        );
        assert!(l.check(Instant::from_nanos(333_333_332)).is_err());
        assert!(l.check(Instant::from_nanos(333_333_333)).is_ok());
    }

    #[test]
    fn idle_time_refills_up_to_the_burst_only() {
        let mut l = RateLimiter::new(quota(1, 100 * MS, 2));
        let t = Instant::from_secs(1_000);
        assert!((0..2).all(|_| l.check(t).is_ok()));
        assert!(l.check(t).is_err());
    }

    #[test]
    fn check_n_takes_several_cells_or_none() {
        let mut l = RateLimiter::new(quota(10, 1_000 * MS, 5));
        let t0 = Instant::ZERO;
        assert_eq!(l.check_n(t0, 3), Ok(Ok(())));
        let denied = l.check_n(t0, 3).unwrap().unwrap_err();
        assert_eq!(denied.earliest(), t0 + 100 * MS);
        // The denied call consumed nothing: two cells are still there.
        assert_eq!(l.check_n(t0, 2), Ok(Ok(())));
        assert_eq!(l.check_n(t0, 0), Ok(Ok(())));
        assert_eq!(
            l.check_n(t0, 6),
            Err(InsufficientCapacity {
                requested: 6,
                burst: 5
            })
        );
    }

    #[test]
    fn backwards_time_is_no_time_passing() {
        let mut l = RateLimiter::new(quota(1, 1_000 * MS, 1));
        let t = Instant::from_secs(50);
        l.check(t).unwrap();
        let denied = l.check(Instant::ZERO).unwrap_err();
        assert_eq!(denied.earliest(), Instant::from_secs(51));
        assert!(l.check(Instant::from_secs(51)).is_ok());
        assert!(l.check(Instant::from_secs(1)).is_err());
    }

    #[test]
    fn extreme_values_saturate() {
        let never = Err(NotUntil {
            earliest: Instant::MAX,
        });
        let mut l = RateLimiter::new(quota(1, Duration::MAX, u32::MAX));
        assert_eq!(l.check_n(Instant::ZERO, 1), Ok(Ok(())));
        // The next cell would arrive past the end of time: never.
        assert_eq!(l.check(Instant::from_secs(1)), never);
        assert_eq!(l.check_n(Instant::MAX, u32::MAX), Ok(never));
        // At the end of representable time nothing more fits, however fast
        // the quota: a refusal, not a saturated admission.
        let mut fast = RateLimiter::new(quota(1, Duration::from_nanos(1), 1));
        assert_eq!(fast.check(Instant::MAX), never);
        let mut near = RateLimiter::new(quota(1, Duration::from_secs(1), 1));
        let t = Instant::from_nanos(u64::MAX - 1_500_000_000);
        assert!(near.check(t).is_ok());
        assert!(near.check(t).is_err());
        let admitted = (0..10)
            .filter(|_| near.check(Instant::from_nanos(u64::MAX - 1)).is_ok())
            .count();
        assert_eq!(admitted, 0);
    }

    #[test]
    fn a_keyed_limiter_remembers_time_across_dropped_keys() {
        let mut l = KeyedRateLimiter::new(quota(1, 1_000 * MS, 1));
        assert!(l.check(&"a", Instant::from_secs(10)).is_ok());
        l.retain_recent(Instant::from_secs(20));
        assert!(l.is_empty());
        // Stamped earlier than the latest instant seen: counts as at 20 s.
        assert!(l.check(&"a", Instant::from_secs(5)).is_ok());
        assert_eq!(
            l.check(&"a", Instant::from_secs(5)).unwrap_err().earliest(),
            Instant::from_secs(21)
        );
    }

    #[test]
    fn invalid_quotas_are_rejected() {
        assert_eq!(
            Quota::new(0, MS),
            Err(ResilienceError::ZeroCount { parameter: "cells" })
        );
        assert_eq!(
            Quota::new(1, Duration::ZERO),
            Err(ResilienceError::ZeroDuration {
                parameter: "period"
            })
        );
        assert_eq!(
            Quota::new(11, Duration::from_nanos(10)),
            Err(ResilienceError::QuotaTooFine {
                cells: 11,
                period: Duration::from_nanos(10)
            })
        );
        assert!(Quota::new(10, Duration::from_nanos(10)).is_ok());
        assert_eq!(
            Quota::new(1, MS).and_then(|q| q.with_burst(0)),
            Err(ResilienceError::ZeroCount { parameter: "burst" })
        );
    }

    #[test]
    fn keyed_limits_are_independent_and_overridable() {
        let mut l = KeyedRateLimiter::new(quota(1, 1_000 * MS, 1));
        l.set_quota("wide", quota(1, 1_000 * MS, 3));
        let t = Instant::from_secs(1);
        assert!(l.check(&"a", t).is_ok());
        assert_eq!(
            l.check(&"a", t).map_err(|e| e.earliest()),
            Err(Instant::from_secs(2))
        );
        assert!(l.check(&"b", t).is_ok());
        assert_eq!(l.check_n(&"wide", t, 3), Ok(Ok(())));
        assert_eq!(
            l.check_n(&"a", t, 2),
            Err(InsufficientCapacity {
                requested: 2,
                burst: 1
            })
        );
        assert_eq!(l.quota(&"wide").burst(), 3);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn retain_recent_drops_only_idle_keys() {
        let mut l = KeyedRateLimiter::new(quota(1, 1_000 * MS, 1));
        l.check(&1, Instant::from_secs(1)).unwrap();
        l.check(&2, Instant::from_secs(5)).unwrap();
        l.retain_recent(Instant::from_secs(3));
        assert_eq!(l.len(), 1);
        // Key 2 kept its state: still limited.
        assert!(l.check(&2, Instant::from_secs(5)).is_err());
        assert!(l.check(&1, Instant::from_secs(3)).is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn quota_serde_round_trip_validates() {
        let q = quota(5, 1_000 * MS, 2);
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<Quota>(&json).unwrap(), q);
        let no_burst: Quota =
            serde_json::from_str(r#"{"cells":4,"period":{"secs":1,"nanos":0}}"#).unwrap();
        assert_eq!(no_burst.burst(), 4);
        let bad = json.replace("\"cells\":5", "\"cells\":0");
        let err = serde_json::from_str::<Quota>(&bad).unwrap_err();
        assert!(
            err.to_string().contains("cells must be at least 1"),
            "{err}"
        );
    }
}
