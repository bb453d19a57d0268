//! Events: every [`Event`] the dispatcher emits goes through here, into
//! the metrics and to the observer.

use super::super::Event;
use super::super::stats::Recorder;
use super::Dispatcher;
use crate::Instant;
use crate::routing::RoutingStrategy;

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// Records an event in the metrics and hands it to the observer.
    /// Inline, so the recorder's match on the event folds at each call.
    #[inline(always)]
    pub(super) fn emit(&mut self, event: Event, now: Instant) {
        self.emit_on::<false>(event, now);
    }

    /// [`emit`](Self::emit) on the cycle's paths: the plain instance has
    /// no observer to tell.
    #[inline(always)]
    pub(super) fn emit_on<const PLAIN: bool>(&mut self, event: Event, now: Instant) {
        self.state.recorder.record(&event, now);
        if PLAIN {
            return;
        }
        if let Some(observer) = &mut self.observer {
            observer.on_event(&event);
        }
    }

    /// [`emit`](Self::emit) for the timed events of every task's cycle:
    /// `record` feeds the metrics with nanoseconds, and the event, whose
    /// `Duration` costs a division to build and more to take apart again,
    /// is built only for an observer.
    #[inline(always)]
    pub(super) fn emit_timed<const PLAIN: bool>(
        &mut self,
        record: impl FnOnce(&mut Recorder),
        event: impl FnOnce() -> Event,
    ) {
        record(&mut self.state.recorder);
        if PLAIN {
            return;
        }
        if let Some(observer) = &mut self.observer {
            observer.on_event(&event());
        }
    }
}
