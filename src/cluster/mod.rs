//! The cluster as sans-IO roles (feature `cluster`).
//!
//! A dispatcher in one process loses its state with the process. A
//! cluster keeps it in a **store**: every input goes to a journal before
//! anything it decides leaves the leader, under a lease whose epoch fences
//! a deposed leader out, and standbys tail the journal to take over. This
//! module holds the roles as state machines that do no I/O — the same
//! shape as the [`Dispatcher`](crate::scheduler::Dispatcher), one level up:
//!
//! | role | it asks the store | the host gives it |
//! |---|---|---|
//! | [`Node`] (leader or follower) | [`NodeOp`]: read the lease, take it, commit a batch, read the journal, … | [`NodeReply`] or a [`StoreFailure`], and `now` |
//! | [`AgentSession`] | [`AgentOp`]: register, heartbeat, claim, report | [`AgentReply`], results of the work it handed out |
//! | a client | [`ClientOp`]: submit, cancel, drain, status, outcomes | [`ClientReply`] |
//! | `WorkflowClient` (with `workflow`): a workflow engine whose agent steps are cluster tasks | [`ClientOp`]: post steps and cancels, read verdicts and outcomes | [`ClientReply`], `now` |
//!
//! The **store contract** — what each operation does, which writes are
//! atomic together, what each failure means — is written once, in the
//! docs of [`Store`], and is executable: [`check_store`] runs it against
//! any store, and [`check_store_races`] runs it with connections racing on
//! the same rows (the host sends each race at once; the library starts no
//! thread). [`MemStore`] keeps it in memory for tests and simulations;
//! the `taskweave-postgres` crate keeps it on PostgreSQL. [`Auditor`]
//! replays a journal and checks the invariants: no task ends twice, no
//! report from a fenced attempt is accepted, epochs never go back.
//!
//! **Liveness.** After any store failure a role backs off and resumes from
//! the journal; a leader whose commit failed sends the same commit again
//! (after reading it back when its answer was lost) until it lands, and
//! throws its state away only when deposed. An answer a role cannot use
//! (corrupt, of another kind, or contradicting the store's earlier ones)
//! is reported as an event and asked again after a pause that grows while
//! such answers go on: no store can make a role spin at one instant. An
//! agent that restarts asks the store for a new
//! incarnation; registering it replaces the old one at once, whose
//! attempts go back to the queue (no heartbeat timeout to wait out), and
//! only the incarnation an outbox row was assigned to claims it.
//!
//! **Waking instead of polling.** A host whose store can tell it of an
//! inbox post or a journal append (PostgreSQL's `LISTEN`/`NOTIFY`) hands
//! each to [`Node::notice`] and builds its nodes with
//! [`NodeConfigBuilder::woken_by_notices`]: an idle leader then reads its
//! inbox on a notice or when a timer of its state is due, a follower its
//! journal on a notice, and both at least once per the poll given, so a
//! lost notice costs only time. [`MemStore::notified`] counts what a host
//! of in-memory nodes would tell them of.
//!
//! ```
//! use std::time::Duration;
//! use taskweave::agent::AgentProfile;
//! use taskweave::cluster::{
//!     AgentSession, ClientOp, MemStore, Message, Node, NodeConfig, Role, SessionConfig, Store,
//! };
//! use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec};
//! use taskweave::{AgentId, Instant};
//!
//! let dispatcher = DispatcherConfig::builder()
//!     .heartbeats(Duration::from_millis(250), 8)
//!     .build()?;
//! let mut store = MemStore::new();
//! let mut node = Node::new(NodeConfig::builder("node-1").build()?, dispatcher)?;
//! let profile = AgentProfile::builder().capacity(2).build()?;
//! let mut agent = AgentSession::new(AgentId::new(1), profile, SessionConfig::builder().build()?);
//! let mut now = Instant::from_secs(1);
//! store.client(ClientOp::Post(vec![Message::Submit(vec![TaskSpec::new("hello")])]), now)?;
//!
//! let mut done = 0;
//! while done < 1 {
//!     now = now.saturating_add(Duration::from_millis(1));
//!     // The host's loop: each role's due operations, executed on the store.
//!     while let Some(op) = node.poll_op(now) {
//!         let reply = store.node(op, now);
//!         node.handle_reply(reply, now);
//!     }
//!     while let Some(op) = agent.poll_op(now) {
//!         let reply = store.agent(op, now);
//!         agent.handle_reply(reply, now);
//!     }
//!     while let Some(work) = agent.poll_work() {
//!         assert_eq!(work.payload, "hello");
//!         agent.finish(work.task, work.token, AttemptOutcome::Success);
//!         done += 1;
//!     }
//! }
//! assert!(matches!(node.role(), Role::Leading { epoch: 1 }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod agent_grants;
mod agent_session;
mod audit;
mod authorizer;
mod check;
mod client_op;
mod config;
mod contract;
mod entry;
mod finished;
mod incarnation;
mod mem_store;
mod node;
mod node_state;
mod race;
mod redrive;
mod run_end_cursor;
mod runs;
mod sender;
pub mod sim;
mod status;
mod task_end;
mod workflow_client;

pub use agent_grants::{AgentGrants, Grant};
pub use agent_session::{AgentSession, MAX_REPORTS_PER_POST, SessionEvent};
pub use audit::{AuditReport, AuditTotals, Auditor, MAX_VIOLATIONS, RunTotals};
pub use authorizer::{Action, AllowRoles, Authorizer, Denied, Request};
pub use check::check_store;
pub use config::{ConfigError, NodeConfig, NodeConfigBuilder, SessionConfig, SessionConfigBuilder};
pub use contract::{
    AgentOp, AgentReply, Assignment, ClientOp, ClientReply, Entry, Finished, InboxMessage,
    JournalRow, Lease, Message, MessageId, NodeOp, NodeReply, NodeState, Outcome, Outputs,
    RunCommand, RunEnd, RunsSnapshot, ScheduleCommand, ScheduledStart, SchedulesSnapshot, Sender,
    Store, StoreFailure, TaskEnd, Verdict,
};
pub use incarnation::INCARNATION_LABEL;
pub use mem_store::{Fault, Kept, MemStore};
pub use node::{Node, NodeEvent, Notice, Role};
pub use race::{StoreAnswer, StoreCall, check_store_races};
pub use redrive::Redrive;
pub use run_end_cursor::{MAX_RUN_ENDS_PAGE, RunEndCursor};
pub use runs::{MAX_ACTIVE_RUNS, MAX_DEFINITIONS, MAX_SCHEDULES, RunCodec};
pub use status::{AgentLoad, InboxLoad, MAX_UNROUTABLE_LISTED, RunsStatus, Status};
pub use workflow_client::{ClientEvent, ClusterPool, WorkflowClient};
