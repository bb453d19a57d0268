//! What the crate's sans-IO state machines have in common.

use taskweave::Instant;
use taskweave::routing::RoutingStrategy;
use taskweave::scheduler::{Action, Dispatcher};

/// Actions out, timers in: the face [`super::Harness`] drives.
pub(crate) trait Machine {
    type Action;

    /// The next action, if any.
    fn poll_action(&mut self) -> Option<Self::Action>;

    /// When the machine next wants `handle_timeout`.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Fires what is due at `now`.
    fn handle_timeout(&mut self, now: Instant);
}

impl<P, S: RoutingStrategy> Machine for Dispatcher<P, S> {
    type Action = Action;

    fn poll_action(&mut self) -> Option<Action> {
        Dispatcher::poll_action(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Dispatcher::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Dispatcher::handle_timeout(self, now);
    }
}

#[cfg(feature = "workflow")]
impl<P: Clone> Machine for taskweave::workflow::WorkflowRun<P> {
    type Action = taskweave::workflow::RunAction;

    fn poll_action(&mut self) -> Option<Self::Action> {
        taskweave::workflow::WorkflowRun::poll_action(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        taskweave::workflow::WorkflowRun::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        taskweave::workflow::WorkflowRun::handle_timeout(self, now);
    }
}
