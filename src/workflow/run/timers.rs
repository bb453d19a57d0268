//! A run's timers and the queries that say what it waits for: firing a
//! bounded batch per call, and "never" at [`Instant::MAX`].

use std::time::Duration;

use super::{CompensationState, ExecState, Phase, StepState, Timer, WorkflowRun};
use crate::Instant;
use crate::workflow::{
    AttemptEnd, FailureCause, RunAction, StepCancelReason, StepFailure, TIMEOUT_LABEL,
};

impl<P: Clone> WorkflowRun<P> {
    /// The latest `now` the run accepted (its start, at first). An input
    /// with an earlier `now` is applied at this instant.
    pub fn latest_now(&self) -> Instant {
        self.state.latest
    }

    /// Whether a wait step is waiting for a signal (or for its timer, if
    /// it has one). Such a run may have nothing else to do: it is not
    /// stuck, it waits for [`signal`](Self::signal).
    pub fn is_waiting_for_signal(&self) -> bool {
        !self.state.waiting.is_empty()
    }

    /// Whether the run waits for the host: an attempt (of a step or of a
    /// compensation) it handed out is still running, or a multi-instance
    /// step waits for its items ([`expand`](Self::expand)).
    ///
    /// A run without an [`outcome`](Self::outcome) always has an action to
    /// hand out, a timer pending ([`poll_timeout`](Self::poll_timeout)),
    /// or waits for the host or for a signal
    /// ([`is_waiting_for_signal`](Self::is_waiting_for_signal)). A run with
    /// an outcome has no step active and no attempt running.
    pub fn is_waiting_for_host(&self) -> bool {
        self.state.attempts.iter().any(|a| a.end.is_none())
            || self
                .state
                .steps
                .iter()
                .any(|s| s.state == StepState::Expanding)
    }

    pub(super) fn timer(&mut self, at: Instant, timer: Timer) {
        // `Instant::MAX` is "never": such a timer would fire together with
        // every other saturated one the moment a host passes the last
        // instant, so it is not kept at all.
        if at != Instant::MAX {
            self.state.timers.insert((at, timer));
        }
    }

    pub(super) fn fire_timers(&mut self, now: Instant) {
        // Only the timers due when the call began: the ones firing sets are
        // left for the next call, so a call's work is bounded.
        let later = self
            .state
            .timers
            .split_off(&(now.saturating_add(Duration::from_nanos(1)), Timer::Deadline));
        let due = std::mem::replace(&mut self.state.timers, later);
        for (at, timer) in due {
            if self.is_finished() {
                break;
            }
            match timer {
                Timer::Deadline => {
                    if matches!(self.state.phase, Phase::Running) {
                        self.abort(FailureCause::DeadlineExceeded, now);
                    }
                }
                Timer::Wait(step) => {
                    if self.slot(step).map(|s| s.state) == Some(StepState::Waiting) {
                        self.end_wait(step, None, TIMEOUT_LABEL, now);
                    }
                }
                Timer::Retry(exec) => {
                    let state = self.state.execs.get(exec as usize).map(|e| e.state);
                    if state == Some(ExecState::Delayed { until: at }) {
                        self.start_attempt(exec, now);
                    }
                }
                Timer::AttemptTimeout(token) => {
                    let Some(&attempt) = self.state.attempts.get(token.get() as usize) else {
                        continue;
                    };
                    if attempt.end.is_none() && attempt.deadline == Some(at) {
                        let step = self.state.execs[attempt.exec as usize].step;
                        self.end_attempt(token, AttemptEnd::TimedOut, now);
                        self.state.actions.push_back(RunAction::Cancel {
                            step,
                            token,
                            reason: StepCancelReason::TimedOut,
                        });
                        self.attempt_failed(
                            attempt.exec,
                            StepFailure::retryable("the attempt timed out"),
                            now,
                        );
                    }
                }
                Timer::CompensationRetry(exec) => {
                    let state = self.state.execs.get(exec as usize).map(|e| e.compensation);
                    if state == Some(CompensationState::Delayed { until: at }) {
                        self.start_compensation(exec, now);
                    }
                }
            }
        }
    }
}
