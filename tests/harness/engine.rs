//! A workflow engine on a dispatcher the test owns, driven as one machine.

use taskweave::Instant;
use taskweave::scheduler::{Action, Dispatcher};
use taskweave::workflow::{EngineAction, StepTask, WorkflowEngine};

use super::Machine;

/// An engine and its pool: every pool action goes through the engine
/// first, and what the engine hands back is a plain task's.
pub(crate) struct EngineOnPool<P, J> {
    pub(crate) engine: WorkflowEngine<P>,
    pub(crate) pool: Dispatcher<J>,
}

/// An action of an [`EngineOnPool`]: the engine's, or a plain task's that
/// the engine handed back.
#[derive(Debug)]
pub(crate) enum PoolAction<P> {
    Engine(EngineAction<P>),
    Plain(Action),
}

impl<P: Clone, J: From<StepTask>> Machine for EngineOnPool<P, J> {
    type Action = PoolAction<P>;

    fn poll_action(&mut self) -> Option<PoolAction<P>> {
        while let Some(action) = self.pool.poll_action() {
            if let Some(plain) = self.engine.handle_action(&mut self.pool, action) {
                return Some(PoolAction::Plain(plain));
            }
        }
        self.engine.poll_action().map(PoolAction::Engine)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.engine.poll_timeout(), self.pool.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.pool.handle_timeout(now);
        self.engine.handle_timeout(&mut self.pool, now);
    }
}
