//! The crate-wide error type.

use thiserror::Error;

use crate::agent::{ProfileError, RegistryError};
use crate::metrics::MetricsError;
use crate::resilience::ResilienceError;
use crate::routing::RoutingError;
use crate::scheduler::{ReportError, ScaleError, SchedulerError, SubmitErrorKind};

/// Any error taskweave returns. Each module has its own error enum; this one
/// wraps them so a host can use `?` across modules. New variants may be added
/// as modules are added.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid agent profile.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A refused registry operation.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A task that could not be routed, or an invalid strategy parameter.
    #[error(transparent)]
    Routing(#[from] RoutingError),
    /// A dispatcher configuration or request error.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// A refused submission (the task itself is returned by
    /// [`SubmitError`](crate::scheduler::SubmitError)).
    #[error(transparent)]
    Submit(#[from] SubmitErrorKind),
    /// A rejected report.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// An invalid scale policy, or a pool not watched.
    #[error(transparent)]
    Scale(#[from] ScaleError),
    /// An invalid metrics setting.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// An invalid or misdirected protocol message.
    #[cfg(feature = "serde")]
    #[error(transparent)]
    Protocol(#[from] crate::protocol::ProtocolError),
    /// An invalid resilience policy.
    #[error(transparent)]
    Resilience(#[from] ResilienceError),
    /// An invalid schedule, or a call about one refused.
    #[cfg(feature = "schedule")]
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    /// An invalid workflow definition.
    #[cfg(feature = "workflow")]
    #[error(transparent)]
    Definition(#[from] crate::workflow::DefinitionError),
    /// A workflow run refused an input.
    #[cfg(feature = "workflow")]
    #[error(transparent)]
    Run(#[from] crate::workflow::RunError),
    /// A workflow engine refused a call.
    #[cfg(feature = "workflow")]
    #[error(transparent)]
    Engine(#[from] crate::workflow::EngineError),
    /// The threaded driver could not run a workflow.
    #[cfg(feature = "driver")]
    #[error(transparent)]
    Driver(#[from] crate::driver::DriverError),
    /// An invalid planning input (task tensor, plan).
    #[cfg(feature = "planning")]
    #[error(transparent)]
    Planning(#[from] crate::planning::PlanningError),
    /// A refused auction bid, ballot vote or delegation step.
    #[cfg(feature = "coordination")]
    #[error(transparent)]
    Coordination(#[from] crate::coordination::CoordinationError),
}

/// Each coordination concept's error converts straight into the crate's.
#[cfg(feature = "coordination")]
mod coordination {
    use super::Error;
    use crate::coordination::{AuctionError, ConsensusError, DelegationError};

    impl From<AuctionError> for Error {
        fn from(error: AuctionError) -> Self {
            Error::Coordination(error.into())
        }
    }

    impl From<ConsensusError> for Error {
        fn from(error: ConsensusError) -> Self {
            Error::Coordination(error.into())
        }
    }

    impl From<DelegationError> for Error {
        fn from(error: DelegationError) -> Self {
            Error::Coordination(error.into())
        }
    }
}

/// The dispatcher's `apply` error spreads over the variants a host already
/// matches on (a refused task is dropped here; match on the
/// [`ApplyError`](crate::scheduler::ApplyError) to keep it).
impl<P> From<crate::scheduler::ApplyError<P>> for Error {
    fn from(error: crate::scheduler::ApplyError<P>) -> Self {
        use crate::scheduler::ApplyError;
        match error {
            ApplyError::Submit(error) => Error::Submit(error.kind),
            ApplyError::Report(error) => Error::Report(error),
            ApplyError::Scheduler(error) => Error::Scheduler(error),
        }
    }
}

impl<P> From<crate::scheduler::SubmitError<P>> for Error {
    fn from(error: crate::scheduler::SubmitError<P>) -> Self {
        Error::Submit(error.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentId;

    #[test]
    fn module_errors_convert_and_keep_their_message() {
        let err: Error = RegistryError::UnknownAgent(AgentId::new(4)).into();
        assert_eq!(err.to_string(), "agent agent-4 is not registered");
        assert!(matches!(
            err,
            Error::Registry(RegistryError::UnknownAgent(_))
        ));
    }
}
