//! Agents and the registry that knows them.
//!
//! * [`Agent`] is what a host implements for an agent it runs in-process;
//!   [`FnAgent`] turns a closure into one.
//! * [`AgentProfile`] describes what an agent can do (capabilities, capacity,
//!   weight, priority, cost, labels); its builder rejects invalid profiles.
//! * [`Registry`] tracks every agent's status, load, heartbeats and
//!   [`PerformanceStats`], and keeps the availability indexes that routing
//!   reads, current on every change.
//!
//! ```
//! use taskweave::agent::{Agent, AgentProfile, FnAgent, Registry};
//! use taskweave::{AgentId, Instant};
//!
//! let doubler = FnAgent::new(
//!     AgentId::new(1),
//!     AgentProfile::builder().capability("math").build()?,
//!     |x: u64| Ok::<u64, String>(x * 2),
//! );
//! assert_eq!(doubler.execute(21), Ok(42));
//!
//! let mut registry = Registry::new();
//! registry.register(doubler.id(), doubler.profile().clone(), Instant::ZERO)?;
//! assert_eq!(registry.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod availability;
mod buckets;
mod index;
mod profile;
mod record;
mod registry;
mod registry_form;
mod slot;
mod stats;

use std::fmt;
use std::marker::PhantomData;

pub use profile::{AgentProfile, AgentProfileBuilder, ProfileError};
pub use registry::{AgentRecord, AgentStatus, DEFAULT_SMOOTHING, Registry, RegistryError};
pub(crate) use registry_form::COUNTER_LIMIT;
pub use stats::{Outcome, PerformanceStats};

pub(crate) use availability::Availability;
pub(crate) use index::{Class, Slot};
pub(crate) use registry::label_token;

use crate::AgentId;

/// An agent the host runs in-process.
///
/// Routing and scheduling only need [`id`](Agent::id) and
/// [`profile`](Agent::profile); the sans-IO core never calls
/// [`execute`](Agent::execute). The ready-made host loop that does is
/// `driver::AgentRunner` (feature `driver`): it registers the agents with a
/// dispatcher and runs each task assigned to one on a worker thread, so
/// `execute` takes `&self`; an agent with mutable state uses interior
/// mutability.
pub trait Agent {
    /// What one task hands the agent.
    type Input;
    /// What the agent produces on success.
    type Output;
    /// What the agent reports on failure.
    type Error;

    /// The agent's id.
    fn id(&self) -> AgentId;

    /// What the agent can do.
    fn profile(&self) -> &AgentProfile;

    /// Runs one task to completion, synchronously.
    ///
    /// # Errors
    ///
    /// Whatever the agent reports as a failed task.
    fn execute(&self, input: Self::Input) -> Result<Self::Output, Self::Error>;
}

/// An [`Agent`] made of an id, a profile and a closure.
pub struct FnAgent<F, I, O, E> {
    id: AgentId,
    profile: AgentProfile,
    run: F,
    _types: PhantomData<fn(I) -> Result<O, E>>,
}

impl<F, I, O, E> FnAgent<F, I, O, E>
where
    F: Fn(I) -> Result<O, E>,
{
    /// An agent that runs `run` for every task.
    pub fn new(id: AgentId, profile: AgentProfile, run: F) -> Self {
        FnAgent {
            id,
            profile,
            run,
            _types: PhantomData,
        }
    }
}

impl<F, I, O, E> Agent for FnAgent<F, I, O, E>
where
    F: Fn(I) -> Result<O, E>,
{
    type Input = I;
    type Output = O;
    type Error = E;

    fn id(&self) -> AgentId {
        self.id
    }

    fn profile(&self) -> &AgentProfile {
        &self.profile
    }

    fn execute(&self, input: I) -> Result<O, E> {
        (self.run)(input)
    }
}

impl<F, I, O, E> fmt::Debug for FnAgent<F, I, O, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnAgent")
            .field("id", &self.id)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}
