//! [`StepDef`]: one step of a workflow definition, and how it joins,
//! branches, repeats and fans out.

use std::sync::Arc;
use std::time::Duration;

use super::{Gate, Join, WorkflowDef};
use crate::Priority;
use crate::resilience::RetrySpec;

/// Who executes a step.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum StepKind {
    /// An agent chosen by the step's required capabilities (through the
    /// dispatcher, when run by a [`WorkflowEngine`](super::WorkflowEngine)).
    #[default]
    Agent,
    /// In-process code: a [`Step`](super::Step) the host (or the threaded
    /// driver) runs itself.
    Local,
    /// Deferred choice: waits for one of the named signals, or for the
    /// timeout, whichever comes first. The step completes with the signal's
    /// payload and takes the branches labelled with the signal's name (or
    /// [`TIMEOUT_LABEL`]). Nothing is executed.
    Wait {
        /// Signals that end the wait.
        signals: Vec<String>,
        /// How long to wait before taking the `timeout` branches; `None`
        /// waits until a signal, a cancellation or the workflow deadline.
        timeout: Option<Duration>,
    },
    /// A child workflow; the step completes with the child run's output.
    SubWorkflow(Arc<WorkflowDef>),
}

/// The branch label a [`StepKind::Wait`] step takes when its timeout fires.
pub const TIMEOUT_LABEL: &str = "timeout";

/// How many labelled branches a decision step may choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Choice {
    /// Exactly one (exclusive choice, pattern 4).
    #[default]
    Exclusive,
    /// One or more (multi-choice, pattern 6).
    Multi,
}

/// A step that fans out over items known only at run time (patterns 12–14
/// and 34): when it becomes ready the run asks the host for the items, then
/// runs one instance per item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MultiInstance {
    /// Instances that may fail for good while the step still succeeds.
    pub tolerated_failures: u32,
}

/// One step of a [`WorkflowDef`].
///
/// Fields are public data; the definition's builder validates them together
/// with the edges. The setters chain:
///
/// ```
/// use std::time::Duration;
/// use taskweave::Priority;
/// use taskweave::workflow::StepDef;
///
/// let step = StepDef::agent("charge")
///     .name("Charge the card")
///     .capabilities(["payments"])
///     .priority(Priority::High)
///     .timeout(Duration::from_secs(30))
///     .compensable();
/// assert_eq!(step.id, "charge");
/// assert!(step.compensable);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StepDef {
    /// Unique key within the definition, used by edges and input mappings.
    pub id: String,
    /// Human-readable name (defaults to the id).
    pub name: String,
    /// Who executes it.
    pub kind: StepKind,
    /// Capabilities the executing agent must have.
    pub capabilities: Vec<String>,
    /// Priority of its tasks.
    pub priority: Priority,
    /// Retries of a failed attempt (and of a failed compensation).
    pub retry: RetrySpec,
    /// Longest time one attempt may run; it then counts as a failure.
    pub timeout: Option<Duration>,
    /// Whether a completed execution is undone when the workflow fails.
    pub compensable: bool,
    /// When the step starts, given its incoming edges.
    pub join: Join,
    /// How many labelled outgoing branches it may choose.
    pub choice: Choice,
    /// Structured loop (pattern 21): the step runs again while its output
    /// asks for it, at most this many iterations in all.
    pub max_iterations: Option<u32>,
    /// Fan-out over run-time items.
    pub multi_instance: Option<MultiInstance>,
    /// The predecessors whose outputs form the step's input, in order;
    /// `None`: all of them, in edge order.
    pub inputs: Option<Vec<String>>,
    /// Expected run time, for planners.
    pub estimated_duration: Option<Duration>,
    /// The keys this step had in earlier versions of the definition:
    /// [`WorkflowDef::diff`] reads a step of an older version under one
    /// of them as this step, renamed.
    pub aliases: Vec<String>,
    /// The versions the step exists in: for the runs of other versions it
    /// is absent, with its edges (see [`WorkflowDef::at_version`]).
    pub gate: Gate,
}

impl StepDef {
    /// A step of the given kind with every option at its default.
    pub fn new(id: impl Into<String>, kind: StepKind) -> Self {
        let id = id.into();
        StepDef {
            name: id.clone(),
            id,
            kind,
            capabilities: Vec::new(),
            priority: Priority::Normal,
            retry: RetrySpec::Never,
            timeout: None,
            compensable: false,
            join: Join::All,
            choice: Choice::Exclusive,
            max_iterations: None,
            multi_instance: None,
            inputs: None,
            estimated_duration: None,
            aliases: Vec::new(),
            gate: Gate::ALWAYS,
        }
    }

    /// A step executed by an agent.
    pub fn agent(id: impl Into<String>) -> Self {
        StepDef::new(id, StepKind::Agent)
    }

    /// A step executed in-process.
    pub fn local(id: impl Into<String>) -> Self {
        StepDef::new(id, StepKind::Local)
    }

    /// A deferred choice between `signals` and, if set with
    /// [`timeout`](Self::timeout), a timer.
    pub fn wait<I, S>(id: impl Into<String>, signals: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StepDef::new(
            id,
            StepKind::Wait {
                signals: signals.into_iter().map(Into::into).collect(),
                timeout: None,
            },
        )
    }

    /// A step that runs `child` as a sub-workflow.
    pub fn sub_workflow(id: impl Into<String>, child: Arc<WorkflowDef>) -> Self {
        StepDef::new(id, StepKind::SubWorkflow(child))
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the required capabilities.
    pub fn capabilities<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities = capabilities.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: impl Into<RetrySpec>) -> Self {
        self.retry = retry.into();
        self
    }

    /// Sets the attempt timeout; for a [`StepKind::Wait`] step, the wait's
    /// timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        match &mut self.kind {
            StepKind::Wait { timeout: wait, .. } => *wait = Some(timeout),
            _ => self.timeout = Some(timeout),
        }
        self
    }

    /// Marks the step compensable.
    pub fn compensable(mut self) -> Self {
        self.compensable = true;
        self
    }

    /// Sets the join.
    pub fn join(mut self, join: Join) -> Self {
        self.join = join;
        self
    }

    /// Sets the choice rule for labelled outgoing branches.
    pub fn choice(mut self, choice: Choice) -> Self {
        self.choice = choice;
        self
    }

    /// Makes the step a structured loop of at most `max_iterations`
    /// iterations (0 is rejected when the definition is built).
    pub fn repeat(mut self, max_iterations: u32) -> Self {
        self.max_iterations = Some(max_iterations);
        self
    }

    /// Makes the step fan out over run-time items, tolerating
    /// `tolerated_failures` failed instances.
    pub fn multi_instance(mut self, tolerated_failures: u32) -> Self {
        self.multi_instance = Some(MultiInstance { tolerated_failures });
        self
    }

    /// Sets the input mapping: the outputs of these predecessors, in order.
    pub fn inputs<I, S>(mut self, inputs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inputs = Some(inputs.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the estimated duration.
    pub fn estimated_duration(mut self, duration: Duration) -> Self {
        self.estimated_duration = Some(duration);
        self
    }

    /// Records that earlier versions of the definition called this step
    /// `key`, so [`WorkflowDef::diff`] reads it as renamed rather than
    /// removed and added. An alias may not be another step's id or alias.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::workflow::{StepChange, StepDef, WorkflowDef};
    ///
    /// let v1 = Arc::new(WorkflowDef::builder("pay", 1).step(StepDef::agent("charge")).build()?);
    /// let v2 = Arc::new(WorkflowDef::builder("pay", 2).step(StepDef::agent("capture").alias("charge")).build()?);
    /// let diff = WorkflowDef::diff(&v1, &v2);
    /// assert_eq!(diff.steps()[0].renamed_from.as_deref(), Some("charge"));
    /// assert_eq!(diff.steps()[0].change, StepChange::Unchanged);
    /// # Ok::<(), taskweave::workflow::DefinitionError>(())
    /// ```
    pub fn alias(mut self, key: impl Into<String>) -> Self {
        self.aliases.push(key.into());
        self
    }

    /// Makes the step exist from `version` on: runs that started under an
    /// earlier version do not run it (see [`WorkflowDef::at_version`]).
    pub fn since(mut self, version: u32) -> Self {
        self.gate.since = Some(version);
        self
    }

    /// Makes the step exist only before `version`: runs that started
    /// under `version` or later do not run it.
    pub fn until(mut self, version: u32) -> Self {
        self.gate.until = Some(version);
        self
    }

    /// Whether an agent executes the step ([`StepKind::Agent`]).
    pub fn is_agent(&self) -> bool {
        matches!(self.kind, StepKind::Agent)
    }

    /// Whether the step is a deferred choice.
    pub fn is_wait(&self) -> bool {
        matches!(self.kind, StepKind::Wait { .. })
    }
}
