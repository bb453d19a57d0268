//! A per-agent circuit breaker: stop calling an agent that keeps failing,
//! then let a few trial calls find out whether it has recovered.

use std::time::Duration;

use thiserror::Error;

use super::ResilienceError;
use super::window::SlidingWindow;
use crate::Instant;

#[cfg(feature = "serde")]
mod form;

/// What a [`CircuitBreaker`] currently lets through.
///
/// ```
/// use taskweave::Instant;
/// use taskweave::resilience::BreakerState;
///
/// let open = BreakerState::Open { until: Instant::from_secs(30) };
/// assert!(!open.is_closed());
/// assert!(BreakerState::Closed.is_closed());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum BreakerState {
    /// Healthy: every call is admitted.
    Closed,
    /// Tripped: no call is admitted before `until`, when it turns half-open.
    Open {
        /// The end of the cooldown.
        until: Instant,
    },
    /// Testing: a limited number of concurrent trial calls (probes) are
    /// admitted; their outcomes close or re-open the breaker.
    HalfOpen,
}

impl BreakerState {
    /// Whether the breaker is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, BreakerState::Closed)
    }
}

/// Why [`CircuitBreaker::try_acquire`] refused a call.
///
/// ```
/// use taskweave::Instant;
/// use taskweave::resilience::BreakerRejected;
///
/// let err = BreakerRejected::Open { until: Instant::from_secs(3) };
/// assert_eq!(err.to_string(), "circuit open until 3.000000000s");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum BreakerRejected {
    /// The breaker is open; ask again at `until` (see
    /// [`CircuitBreaker::next_transition`]).
    #[error("circuit open until {until}")]
    Open {
        /// The end of the cooldown.
        until: Instant,
    },
    /// The breaker is half-open and every probe permit is taken; ask again
    /// after a probe reports.
    #[error("circuit half-open with all {probes} probe permits taken")]
    ProbesBusy {
        /// The number of concurrent probes allowed.
        probes: u32,
    },
}

/// A validated [`CircuitBreaker`] configuration, built by
/// [`BreakerConfig::builder`]. Cheap to clone: build it once and give each
/// agent its own breaker.
///
/// ```
/// use std::time::Duration;
/// use taskweave::resilience::{BreakerConfig, CircuitBreaker};
///
/// let config = BreakerConfig::builder()
///     .consecutive_failures(5)
///     .failure_rate(0.5)
///     .minimum_calls(20)
///     .window(Duration::from_secs(60))
///     .cooldown(Duration::from_secs(30))
///     .probes(2)
///     .successes_to_close(3)
///     .build()?;
/// let breakers: Vec<CircuitBreaker> = (0..4).map(|_| CircuitBreaker::new(config.clone())).collect();
/// assert_eq!(breakers[3].config().probes(), 2);
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "BreakerConfigBuilder"))]
pub struct BreakerConfig {
    consecutive_failures: u32,
    failure_rate: f64,
    minimum_calls: u32,
    window: Duration,
    buckets: u32,
    cooldown: Duration,
    probes: u32,
    successes_to_close: u32,
    /// The empty outcome window every new breaker starts from.
    #[cfg_attr(feature = "serde", serde(skip))]
    empty_window: SlidingWindow,
}

impl BreakerConfig {
    /// A builder with 5 consecutive failures, failure rate 0.5 over at least
    /// 20 calls in a 60 s window of 10 buckets, a 30 s cooldown, 1 probe and
    /// 1 success to close.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder::default()
    }

    /// Consecutive failures that trip the breaker.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Failure share, in `(0, 1]`, that trips the breaker.
    pub fn failure_rate(&self) -> f64 {
        self.failure_rate
    }

    /// Calls the window must hold before the failure rate counts.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }

    /// How far back the failure rate looks.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How many buckets the window is split into.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// How long the breaker stays open before admitting probes.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Concurrent trial calls admitted while half-open.
    pub fn probes(&self) -> u32 {
        self.probes
    }

    /// Successful probes that close the breaker.
    pub fn successes_to_close(&self) -> u32 {
        self.successes_to_close
    }
}

impl TryFrom<BreakerConfigBuilder> for BreakerConfig {
    type Error = ResilienceError;

    fn try_from(builder: BreakerConfigBuilder) -> Result<Self, ResilienceError> {
        builder.build()
    }
}

/// Builder of [`BreakerConfig`]; [`build`](Self::build) validates.
///
/// To trip on one criterion only, make the other unreachable:
/// `consecutive_failures(u32::MAX)` or `minimum_calls(u32::MAX)`.
///
/// ```
/// use taskweave::resilience::{BreakerConfig, ResilienceError};
///
/// let err = BreakerConfig::builder().probes(0).build().unwrap_err();
/// assert_eq!(err, ResilienceError::ZeroCount { parameter: "probes" });
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct BreakerConfigBuilder {
    consecutive_failures: u32,
    failure_rate: f64,
    minimum_calls: u32,
    window: Duration,
    buckets: u32,
    cooldown: Duration,
    probes: u32,
    successes_to_close: u32,
}

impl Default for BreakerConfigBuilder {
    fn default() -> Self {
        BreakerConfigBuilder {
            consecutive_failures: 5,
            failure_rate: 0.5,
            minimum_calls: 20,
            window: Duration::from_secs(60),
            buckets: 10,
            cooldown: Duration::from_secs(30),
            probes: 1,
            successes_to_close: 1,
        }
    }
}

impl BreakerConfigBuilder {
    /// Trip after this many failures in a row; at least 1.
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.consecutive_failures = failures;
        self
    }

    /// Trip when failures are at least this share of the calls in the
    /// window; within `(0, 1]`.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = rate;
        self
    }

    /// The failure rate counts only once the window holds this many calls;
    /// at least 1.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// How far back the failure rate looks; longer than zero. A window
    /// longer than `u64::MAX` nanoseconds (about 584 years) is clamped to it.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many buckets the window is split into: between 1 and 1024, and
    /// at most one per nanosecond of window.
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets;
        self
    }

    /// How long the breaker stays open before admitting probes (zero means
    /// half-open at once). The end of the cooldown saturates at
    /// [`Instant::MAX`], which means never: `Duration::MAX` keeps a tripped
    /// breaker open for good.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Concurrent trial calls admitted while half-open; at least 1.
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// Successful probes that close the breaker; at least 1.
    pub fn successes_to_close(mut self, successes: u32) -> Self {
        self.successes_to_close = successes;
        self
    }

    /// Validates and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`ResilienceError::ZeroCount`] for a zero `consecutive_failures`,
    /// `minimum_calls`, `probes` or `successes_to_close`;
    /// [`ResilienceError::OutOfRange`] for a failure rate outside `(0, 1]`;
    /// [`ResilienceError::ZeroDuration`] for a zero window and
    /// [`ResilienceError::InvalidBuckets`] for a bucket count that does not
    /// fit it.
    pub fn build(self) -> Result<BreakerConfig, ResilienceError> {
        let counts = [
            ("consecutive failures", self.consecutive_failures),
            ("minimum calls", self.minimum_calls),
            ("probes", self.probes),
            ("successes to close", self.successes_to_close),
        ];
        if let Some(&(parameter, _)) = counts.iter().find(|(_, count)| *count == 0) {
            return Err(ResilienceError::ZeroCount { parameter });
        }
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return Err(ResilienceError::OutOfRange {
                parameter: "failure rate",
                value: self.failure_rate,
                expected: "within (0, 1]",
            });
        }
        Ok(BreakerConfig {
            empty_window: SlidingWindow::new(self.window, self.buckets)?,
            consecutive_failures: self.consecutive_failures,
            failure_rate: self.failure_rate,
            minimum_calls: self.minimum_calls,
            window: self.window,
            buckets: self.buckets,
            cooldown: self.cooldown,
            probes: self.probes,
            successes_to_close: self.successes_to_close,
        })
    }
}

/// Whether a cooldown ending at `until` is over at `now`. An end of
/// [`Instant::MAX`] — a cooldown that saturated — means never: it does not
/// end even at `now == Instant::MAX`.
fn cooled_down(now: Instant, until: Instant) -> bool {
    until != Instant::MAX && now >= until
}

/// Where the breaker is, with the bookkeeping each phase needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probes: u32, successes: u32 },
}

/// Stops sending calls to an agent that keeps failing, then probes it.
///
/// * **Closed**: every call is admitted. The breaker trips (opens) on the
///   `consecutive_failures`-th failure in a row, or on a failure when the
///   window holds at least `minimum_calls` outcomes of which at least
///   `failure_rate` are failures. The window is a fixed ring of time
///   buckets, so memory does not grow with traffic.
/// * **Open**: nothing is admitted until `cooldown` has passed;
///   [`next_transition`](Self::next_transition) tells the host when to look
///   again.
/// * **Half-open**: at most `probes` calls are in flight at once. After
///   `successes_to_close` successful probes it closes with a clean slate;
///   any failure re-opens it with a fresh cooldown.
///
/// The host brackets each call: [`try_acquire`](Self::try_acquire) before,
/// then exactly one of [`on_success`](Self::on_success),
/// [`on_failure`](Self::on_failure) or (for a probe that ended without an
/// outcome, e.g. was cancelled) [`release_probe`](Self::release_probe).
/// Outcomes that arrive while open are ignored; in half-open a success
/// counts only if a probe is outstanding, while any failure re-opens.
/// Time that goes backwards counts as no time passing: a `now` earlier
/// than the latest seen is taken as the latest, so a clock stepping back
/// never shortens a cooldown. The end of a cooldown saturates at
/// [`Instant::MAX`], which means never: a breaker opened with a cooldown
/// that does not fit stays open. Every method is `O(1)` except those that
/// consult the window, `O(buckets)`.
///
/// With the `serde` feature a breaker deserializes only if its parts agree
/// (the outcome window has the configuration's shape, the phase's counters
/// are within the configuration), so a corrupt snapshot is an error when
/// read, not a misbehaving breaker later.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::resilience::{BreakerConfig, BreakerRejected, BreakerState, CircuitBreaker};
///
/// let config = BreakerConfig::builder()
///     .consecutive_failures(2)
///     .cooldown(Duration::from_secs(10))
///     .build()?;
/// let mut breaker = CircuitBreaker::new(config);
/// let t = Instant::from_secs(1);
/// assert!(!breaker.on_failure(t));
/// assert!(breaker.on_failure(t)); // second in a row: tripped
/// let until = t + Duration::from_secs(10);
/// assert_eq!(breaker.try_acquire(t), Err(BreakerRejected::Open { until }));
/// assert_eq!(breaker.next_transition(), Some(until));
///
/// assert_eq!(breaker.state(until), BreakerState::HalfOpen);
/// assert_eq!(breaker.try_acquire(until), Ok(())); // the probe
/// assert_eq!(breaker.try_acquire(until), Err(BreakerRejected::ProbesBusy { probes: 1 }));
/// breaker.on_success(until);
/// assert_eq!(breaker.state(until), BreakerState::Closed);
/// assert_eq!(breaker.trips(), 1);
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "form::BreakerForm"))]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
    consecutive_failures: u32,
    /// `[successes, failures]` while closed.
    outcomes: SlidingWindow,
    trips: u64,
    /// The latest `now` seen: an earlier one counts as this one.
    latest: Instant,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            outcomes: config.empty_window.clone(),
            config,
            phase: Phase::Closed,
            consecutive_failures: 0,
            trips: 0,
            latest: Instant::ZERO,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state at `now` (an open breaker whose cooldown has ended is
    /// half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        let now = now.max(self.latest);
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if !cooled_down(now, until) => BreakerState::Open { until },
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to start a call at `now`. In half-open this takes a probe
    /// permit, which the call's outcome (or
    /// [`release_probe`](Self::release_probe)) gives back.
    ///
    /// # Errors
    ///
    /// [`BreakerRejected::Open`] while open, with the end of the cooldown;
    /// [`BreakerRejected::ProbesBusy`] while half-open with every probe
    /// permit taken.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), BreakerRejected> {
        let now = self.observe(now);
        self.end_cooldown(now);
        match &mut self.phase {
            Phase::Closed => Ok(()),
            Phase::Open { until } => Err(BreakerRejected::Open { until: *until }),
            Phase::HalfOpen { probes, .. } if *probes < self.config.probes => {
                *probes += 1;
                Ok(())
            }
            Phase::HalfOpen { .. } => Err(BreakerRejected::ProbesBusy {
                probes: self.config.probes,
            }),
        }
    }

    /// Records a successful call at `now`. Closes a half-open breaker once
    /// enough probes have succeeded.
    pub fn on_success(&mut self, now: Instant) {
        let now = self.observe(now);
        self.end_cooldown(now);
        match &mut self.phase {
            Phase::Closed => {
                self.consecutive_failures = 0;
                self.outcomes.add(now, [1, 0]);
            }
            Phase::HalfOpen { probes, successes } if *probes > 0 => {
                *probes -= 1;
                *successes += 1;
                if *successes >= self.config.successes_to_close {
                    self.reset(Phase::Closed);
                }
            }
            Phase::HalfOpen { .. } | Phase::Open { .. } => {}
        }
    }

    /// Records a failed call at `now`; returns whether this failure opened
    /// the breaker (tripped it while closed, or re-opened it while
    /// half-open).
    pub fn on_failure(&mut self, now: Instant) -> bool {
        let now = self.observe(now);
        self.end_cooldown(now);
        let opens = match self.phase {
            Phase::Closed => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.outcomes.add(now, [0, 1]);
                self.consecutive_failures >= self.config.consecutive_failures
                    || self.failure_rate_exceeded(now)
            }
            Phase::HalfOpen { .. } => true,
            Phase::Open { .. } => false,
        };
        if opens {
            self.trips = self.trips.saturating_add(1);
            self.reset(Phase::Open {
                until: now + self.config.cooldown,
            });
        }
        opens
    }

    /// Gives back a probe permit for a trial call that ended without an
    /// outcome (cancelled, timed out on the host's side and not counted).
    /// Returns whether a permit was outstanding.
    pub fn release_probe(&mut self) -> bool {
        match &mut self.phase {
            Phase::HalfOpen { probes, .. } if *probes > 0 => {
                *probes -= 1;
                true
            }
            _ => false,
        }
    }

    /// Probe permits currently taken (0 unless half-open).
    pub fn probes_in_flight(&self) -> u32 {
        match self.phase {
            Phase::HalfOpen { probes, .. } => probes,
            Phase::Closed | Phase::Open { .. } => 0,
        }
    }

    /// The instant the host should call back: the end of the cooldown while
    /// open, otherwise `None` (nothing changes by the passing of time).
    pub fn next_transition(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open { until } => Some(until),
            Phase::Closed | Phase::HalfOpen { .. } => None,
        }
    }

    /// How many times the breaker has opened (trips and re-opens).
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// The latest instant the breaker has seen: a restored breaker that has
    /// seen past its owner's clock is corrupt.
    pub(crate) fn latest_seen(&self) -> Instant {
        self.latest
    }

    /// `now`, or the latest instant seen if that is later; remembers it.
    fn observe(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }

    /// Turns an open breaker half-open once its cooldown has ended.
    fn end_cooldown(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Open { until } if cooled_down(now, until)) {
            self.phase = Phase::HalfOpen {
                probes: 0,
                successes: 0,
            };
        }
    }

    fn failure_rate_exceeded(&self, now: Instant) -> bool {
        let [successes, failures] = self.outcomes.totals(now);
        let calls = successes.saturating_add(failures);
        calls >= u64::from(self.config.minimum_calls)
            && failures as f64 >= self.config.failure_rate * calls as f64
    }

    /// Enters `phase` with a clean slate of outcomes.
    fn reset(&mut self, phase: Phase) {
        self.phase = phase;
        self.consecutive_failures = 0;
        self.outcomes.clear();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn breaker(f: impl FnOnce(BreakerConfigBuilder) -> BreakerConfigBuilder) -> CircuitBreaker {
        let builder = BreakerConfig::builder()
            .consecutive_failures(3)
            .minimum_calls(u32::MAX)
            .cooldown(10 * SEC);
        CircuitBreaker::new(f(builder).build().unwrap())
    }

    fn at(secs: u64) -> Instant {
        Instant::from_secs(secs)
    }

    #[test]
    fn trips_on_consecutive_failures_and_a_success_resets_the_run() {
        let mut b = breaker(|b| b);
        assert!(!b.on_failure(at(1)));
        assert!(!b.on_failure(at(1)));
        b.on_success(at(1));
        assert!(!b.on_failure(at(2)));
        assert!(!b.on_failure(at(2)));
        assert_eq!(b.state(at(2)), BreakerState::Closed);
        assert!(b.on_failure(at(2)));
        assert_eq!(b.state(at(2)), BreakerState::Open { until: at(12) });
        assert_eq!(b.trips(), 1);
        assert_eq!(b.next_transition(), Some(at(12)));
    }

    #[test]
    fn trips_on_failure_rate_once_minimum_calls_reached() {
        let mut b = breaker(|b| {
            b.consecutive_failures(u32::MAX)
                .failure_rate(0.5)
                .minimum_calls(4)
        });
        b.on_success(at(1));
        assert!(!b.on_failure(at(1)));
        b.on_success(at(1));
        assert!(b.state(at(1)).is_closed());
        // 2 failures in 4 calls: 50 %.
        assert!(b.on_failure(at(1)));
        assert_eq!(b.trips(), 1);
    }

    #[test]
    fn failure_rate_below_threshold_does_not_trip() {
        let mut b = breaker(|b| {
            b.consecutive_failures(u32::MAX)
                .failure_rate(0.5)
                .minimum_calls(4)
        });
        for _ in 0..10 {
            b.on_success(at(1));
            b.on_success(at(1));
            assert!(!b.on_failure(at(1)));
        }
    }

    #[test]
    fn old_outcomes_leave_the_rate_window() {
        let mut b = breaker(|b| {
            b.consecutive_failures(u32::MAX)
                .failure_rate(0.5)
                .minimum_calls(3)
                .window(10 * SEC)
        });
        assert!(!b.on_failure(at(0)));
        assert!(!b.on_failure(at(0)));
        // Twenty seconds later both failures are forgotten: one call only.
        assert!(!b.on_failure(at(20)));
        b.on_success(at(20));
        assert!(b.state(at(20)).is_closed());
        // Two failures in three recent calls.
        assert!(b.on_failure(at(21)));
    }

    #[test]
    fn cooldown_then_half_open_then_close() {
        let mut b = breaker(|b| b);
        for _ in 0..3 {
            b.on_failure(at(0));
        }
        assert_eq!(
            b.try_acquire(at(9)),
            Err(BreakerRejected::Open { until: at(10) })
        );
        assert_eq!(b.state(at(10)), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(at(10)), Ok(()));
        assert_eq!(b.probes_in_flight(), 1);
        assert_eq!(b.next_transition(), None);
        b.on_success(at(11));
        assert_eq!(b.state(at(11)), BreakerState::Closed);
        assert_eq!(b.probes_in_flight(), 0);
        // Closing starts from a clean slate: three new failures to trip.
        assert!(!b.on_failure(at(12)));
        assert!(!b.on_failure(at(12)));
        assert!(b.on_failure(at(12)));
    }

    #[test]
    fn probe_failure_reopens_with_a_fresh_cooldown() {
        let mut b = breaker(|b| b);
        for _ in 0..3 {
            b.on_failure(at(0));
        }
        assert_eq!(b.try_acquire(at(15)), Ok(()));
        assert!(b.on_failure(at(16)));
        assert_eq!(b.state(at(16)), BreakerState::Open { until: at(26) });
        assert_eq!(b.next_transition(), Some(at(26)));
        assert_eq!(b.trips(), 2);
        assert_eq!(b.probes_in_flight(), 0);
    }

    #[test]
    fn probe_limit_and_successes_to_close() {
        let mut b = breaker(|b| b.probes(2).successes_to_close(3));
        for _ in 0..3 {
            b.on_failure(at(0));
        }
        let t = at(10);
        assert_eq!(b.try_acquire(t), Ok(()));
        assert_eq!(b.try_acquire(t), Ok(()));
        assert_eq!(
            b.try_acquire(t),
            Err(BreakerRejected::ProbesBusy { probes: 2 })
        );
        b.on_success(t);
        assert_eq!(b.state(t), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(t), Ok(()));
        b.on_success(t);
        b.on_success(t);
        assert_eq!(b.state(t), BreakerState::Closed);
    }

    #[test]
    fn released_probe_frees_its_permit_without_counting() {
        let mut b = breaker(|b| b);
        for _ in 0..3 {
            b.on_failure(at(0));
        }
        assert!(!b.release_probe());
        assert_eq!(b.try_acquire(at(10)), Ok(()));
        assert!(b.try_acquire(at(10)).is_err());
        assert!(b.release_probe());
        assert!(!b.release_probe());
        assert_eq!(b.state(at(10)), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(at(10)), Ok(()));
    }

    #[test]
    fn outcomes_while_open_and_stray_successes_are_ignored() {
        let mut b = breaker(|b| b);
        for _ in 0..3 {
            b.on_failure(at(0));
        }
        b.on_success(at(1));
        assert!(!b.on_failure(at(1)));
        assert_eq!(b.state(at(1)), BreakerState::Open { until: at(10) });
        assert_eq!(b.trips(), 1);
        // Half-open, no probe outstanding: a late success does not close it.
        b.on_success(at(10));
        assert_eq!(b.state(at(10)), BreakerState::HalfOpen);
    }

    #[test]
    fn backwards_time_keeps_it_open() {
        let mut b = breaker(|b| b);
        for _ in 0..3 {
            b.on_failure(at(100));
        }
        assert_eq!(
            b.try_acquire(at(5)),
            Err(BreakerRejected::Open { until: at(110) })
        );
        assert_eq!(b.try_acquire(at(110)), Ok(()));
        b.on_success(at(3));
        assert!(b.state(at(0)).is_closed());
    }

    #[test]
    fn huge_cooldown_saturates() {
        let mut b = breaker(|b| b.consecutive_failures(1).cooldown(Duration::MAX));
        assert!(b.on_failure(at(1)));
        assert_eq!(b.next_transition(), Some(Instant::MAX));
        // A saturated end of cooldown means never, even at the end of time.
        assert_eq!(
            b.try_acquire(Instant::MAX),
            Err(BreakerRejected::Open {
                until: Instant::MAX
            })
        );
        assert_eq!(
            b.state(Instant::MAX),
            BreakerState::Open {
                until: Instant::MAX
            }
        );
    }

    #[test]
    fn a_clock_stepping_back_does_not_shorten_a_cooldown() {
        let mut b = breaker(|b| b.consecutive_failures(1));
        b.on_success(at(100));
        // A failure stamped before the latest instant seen counts as at it.
        assert!(b.on_failure(at(1)));
        assert_eq!(b.next_transition(), Some(at(110)));
        assert!(b.try_acquire(at(50)).is_err());
        assert_eq!(b.state(at(11)), BreakerState::Open { until: at(110) });
    }

    #[test]
    fn zero_cooldown_is_half_open_at_once() {
        let mut b = breaker(|b| b.consecutive_failures(1).cooldown(Duration::ZERO));
        assert!(b.on_failure(at(1)));
        assert_eq!(b.state(at(1)), BreakerState::HalfOpen);
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let b = BreakerConfig::builder;
        for (builder, parameter) in [
            (b().consecutive_failures(0), "consecutive failures"),
            (b().minimum_calls(0), "minimum calls"),
            (b().probes(0), "probes"),
            (b().successes_to_close(0), "successes to close"),
        ] {
            assert_eq!(
                builder.build(),
                Err(ResilienceError::ZeroCount { parameter })
            );
        }
        for rate in [0.0, -1.0, 1.5, f64::NAN] {
            assert!(
                matches!(
                    b().failure_rate(rate).build(),
                    Err(ResilienceError::OutOfRange { parameter: "failure rate", value, .. })
                        if value.to_bits() == rate.to_bits()
                ),
                "{rate}"
            );
        }
        assert!(b().failure_rate(1.0).build().is_ok());
        assert_eq!(
            b().window(Duration::ZERO).build(),
            Err(ResilienceError::ZeroDuration {
                parameter: "window"
            })
        );
        assert!(matches!(
            b().buckets(2000).build(),
            Err(ResilienceError::InvalidBuckets { buckets: 2000, .. })
        ));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn config_serde_round_trip_validates() {
        let config = BreakerConfig::builder().probes(3).build().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<BreakerConfig>(&json).unwrap(),
            config
        );
        let bad = json.replace("\"probes\":3", "\"probes\":0");
        let err = serde_json::from_str::<BreakerConfig>(&bad).unwrap_err();
        assert!(
            err.to_string().contains("probes must be at least 1"),
            "{err}"
        );
        let state = BreakerState::Open { until: at(4) };
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<BreakerState>(&json).unwrap(), state);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Advance(u64),
        Rewind(u64),
        Acquire,
        Success,
        Failure,
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0u64..3_000).prop_map(Op::Advance),
            1 => (0u64..1_000).prop_map(Op::Rewind),
            4 => Just(Op::Acquire),
            3 => Just(Op::Success),
            3 => Just(Op::Failure),
            1 => Just(Op::Release),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn never_admits_while_open_and_never_exceeds_probes(
            probes in 1u32..4,
            successes_to_close in 1u32..4,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let config = BreakerConfig::builder()
                .consecutive_failures(3)
                .failure_rate(0.5)
                .minimum_calls(4)
                .window(Duration::from_secs(2))
                .buckets(4)
                .cooldown(Duration::from_millis(1_500))
                .probes(probes)
                .successes_to_close(successes_to_close)
                .build()
                .unwrap();
            let mut breaker = CircuitBreaker::new(config);
            let mut now = Instant::from_secs(10);
            for op in ops {
                let before = breaker.state(now);
                match op {
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                    Op::Rewind(ms) => now = Instant::from_nanos(now.as_nanos().saturating_sub(ms * 1_000_000)),
                    Op::Acquire => {
                        let admitted = breaker.try_acquire(now);
                        if let BreakerState::Open { until } = before {
                            prop_assert_eq!(admitted, Err(BreakerRejected::Open { until }));
                        }
                        if before.is_closed() {
                            prop_assert_eq!(admitted, Ok(()));
                        }
                    }
                    Op::Success => breaker.on_success(now),
                    Op::Failure => {
                        let trips = breaker.trips();
                        let opened = breaker.on_failure(now);
                        prop_assert_eq!(opened, breaker.trips() == trips + 1);
                        if matches!(before, BreakerState::Open { .. }) {
                            prop_assert!(!opened);
                        }
                        if before == BreakerState::HalfOpen {
                            prop_assert!(opened);
                        }
                        if opened {
                            let open_now = matches!(breaker.state(now), BreakerState::Open { .. });
                            prop_assert!(open_now, "tripped but not open");
                        }
                    }
                    Op::Release => {
                        breaker.release_probe();
                    }
                }
                prop_assert!(breaker.probes_in_flight() <= probes);
                let state = breaker.state(now);
                prop_assert_eq!(
                    matches!(state, BreakerState::Open { .. }),
                    breaker.next_transition().is_some_and(|until| now < until)
                );
                if let BreakerState::Open { until } = state {
                    prop_assert_eq!(breaker.try_acquire(now), Err(BreakerRejected::Open { until }));
                }
            }
        }
    }
}
