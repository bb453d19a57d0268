//! [`WorkflowDef`]: a validated petgraph DAG of steps, and its builder.

use std::collections::HashMap;
use std::time::Duration;

use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};

use super::{Join, StepDef};
use crate::{StepId, TaskRequirements};

/// An edge of a workflow: its source's completion enables its target. A
/// labelled edge fires only when its source chose the label (a decision
/// step's branch, or a wait step's signal); an unlabelled edge always fires.
/// A gated edge exists only for the runs whose origin its gate admits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Edge {
    /// The branch label, if any.
    pub label: Option<String>,
    /// The versions the edge exists in.
    pub gate: Gate,
}

/// The graph type of a definition: steps on nodes, edges between them.
/// A definition's graph is acyclic: the builder refuses cycles, and the graph
/// is never handed out mutably. (petgraph's `Acyclic` wrapper is not used
/// because its interior mutability would make definitions `!Sync`.)
pub type WorkflowGraph = DiGraph<StepDef, Edge, u32>;

/// Sub-workflows nest at most this deep unless the builder says otherwise.
pub const DEFAULT_MAX_DEPTH: u32 = 8;

/// The largest [`WorkflowDefBuilder::max_depth`] a definition may set.
pub const MAX_DEPTH_LIMIT: u32 = 64;

/// The most attempts a step's retry policy may allow (counting the first);
/// every attempt is kept in the run's timeline.
pub const MAX_ATTEMPTS: u32 = 10_000;

/// The largest iteration cap of a structured loop ([`StepDef::repeat`]).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The most instances a multi-instance step runs (items in one
/// [`RunInput::Expanded`](super::RunInput::Expanded)), and the largest
/// `tolerated_failures`.
pub const MAX_INSTANCES: u32 = 1_000_000;

/// The longest step or wait timeout a definition may set: a hundred years.
/// [`Instant`](crate::Instant) counts nanoseconds in 64 bits (about 584
/// years), so a much longer timeout, such as `Duration::MAX`, would
/// saturate to "never" and could never fire.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A validated workflow definition: a DAG of [`StepDef`]s joined by
/// (optionally labelled) [`Edge`]s, with a name, a version and a stable
/// content hash.
///
/// Steps and edges may carry a [`Gate`], so that one definition serves
/// the runs of several versions: [`at_version`](Self::at_version) gives
/// the definition as the runs that started under an earlier version see
/// it. The topology this type answers ([`entries`](Self::entries),
/// [`output`](Self::output), [`predecessors`](Self::predecessors),
/// [`successors`](Self::successors)) is the one of its
/// [origin](Self::origin); [`steps`](Self::steps) and
/// [`edges`](Self::edges) list every part, gated or not.
///
/// A `WorkflowDef` can only be obtained from [`WorkflowDef::builder`] (or
/// by deserializing its data form, which goes through the same builder), so
/// every instance is valid: acyclic, every reference resolved, every join
/// satisfiable, every step reachable. [`StepId`]s are dense indices in
/// declaration order.
///
/// ```
/// use taskweave::workflow::{Join, StepDef, WorkflowDef};
///
/// let def = WorkflowDef::builder("etl", 1)
///     .step(StepDef::agent("extract_a"))
///     .step(StepDef::agent("extract_b"))
///     .step(StepDef::local("merge"))
///     .edge("extract_a", "merge")
///     .edge("extract_b", "merge")
///     .build()?;
/// let merge = def.step_id("merge").unwrap();
/// assert_eq!(def.predecessors(merge).count(), 2);
///
/// // A cycle is refused with its path.
/// let err = WorkflowDef::builder("loop", 1)
///     .step(StepDef::local("a"))
///     .step(StepDef::local("b"))
///     .edge("a", "b")
///     .edge("b", "a")
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "cycle: a -> b -> a");
/// # Ok::<(), taskweave::workflow::DefinitionError>(())
/// ```
#[derive(Clone, Debug)]
pub struct WorkflowDef {
    name: String,
    version: u32,
    deadline: Option<Duration>,
    output: Option<StepId>,
    entries: Vec<StepId>,
    max_depth: u32,
    graph: WorkflowGraph,
    ids: HashMap<String, StepId>,
    /// Earlier keys of steps ([`StepDef::aliases`]).
    aliases: HashMap<String, StepId>,
    successors: Adjacency,
    predecessors: Adjacency,
    /// Input mapping resolved to predecessor step ids.
    inputs: Vec<Option<Vec<StepId>>>,
    /// Sub-workflow nesting depth below this definition (0: none), computed
    /// once: recomputing it through shared children is exponential.
    depth: u32,
    /// What runs need on their hot path, one per step.
    meta: Vec<StepMeta>,
    /// What each step asks of its agent, built once: the engine hands a
    /// clone (a shared pointer) to the pool for every attempt.
    requirements: Vec<TaskRequirements>,
    hash: u64,
    /// The version whose runs the topology above serves.
    origin: u32,
    /// The entries the builder was given, if any.
    declared_entries: Option<Vec<StepId>>,
    /// The output the builder was given, if any.
    declared_output: Option<StepId>,
    /// Where the gates change the shape ([`gated_versions`](Self::gated_versions)).
    gated: Vec<u32>,
    /// Steps and edge indices absent for the origin's runs, sorted.
    absent: Vec<StepId>,
    absent_edges: Vec<u32>,
}

impl PartialEq for WorkflowDef {
    /// Definitions are equal when their content hashes are, and they
    /// serve the runs of the same [origin](Self::origin).
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.origin == other.origin
    }
}

/// What a run's hot path needs to know about a step, packed: reading these
/// from the `StepDef`s (about 250 bytes each, several cache lines apart)
/// cost more than half of a run's time on large definitions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepMeta {
    pub(crate) join: Join,
    pub(crate) wait: bool,
    pub(crate) multi: bool,
    pub(crate) decision: bool,
    pub(crate) in_degree: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_iterations: Option<u32>,
}

/// Compressed adjacency: the neighbours of step `i` with the edge joining
/// them, in declaration order.
#[derive(Clone, Debug, Default)]
struct Adjacency {
    start: Vec<u32>,
    items: Vec<(StepId, EdgeIndex<u32>)>,
}

impl Adjacency {
    fn build(steps: usize, edges: impl Iterator<Item = (usize, StepId, EdgeIndex<u32>)>) -> Self {
        let mut lists: Vec<Vec<(StepId, EdgeIndex<u32>)>> = vec![Vec::new(); steps];
        for (at, neighbour, edge) in edges {
            lists[at].push((neighbour, edge));
        }
        let mut start = Vec::with_capacity(steps + 1);
        let mut items = Vec::with_capacity(lists.iter().map(Vec::len).sum());
        for list in lists {
            start.push(items.len() as u32);
            items.extend(list);
        }
        start.push(items.len() as u32);
        Adjacency { start, items }
    }

    /// The steps with no neighbours (sources in a predecessor list, sinks
    /// in a successor list), in step order.
    fn empty_ones(&self) -> Vec<StepId> {
        self.empty_ones_among(|_| true)
    }

    /// The steps `keep` accepts that have no neighbours, in step order.
    fn empty_ones_among(&self, keep: impl Fn(&StepId) -> bool) -> Vec<StepId> {
        self.start
            .windows(2)
            .enumerate()
            .filter(|(_, range)| range[0] == range[1])
            .map(|(i, _)| StepId::new(i as u64))
            .filter(keep)
            .collect()
    }

    /// The step with no neighbours, if exactly one has none.
    fn only_empty_one(&self) -> Option<StepId> {
        self.only_empty_one_among(|_| true)
    }

    /// The step `keep` accepts with no neighbours, if exactly one of them
    /// has none.
    fn only_empty_one_among(&self, keep: impl Fn(&StepId) -> bool) -> Option<StepId> {
        match self.empty_ones_among(keep)[..] {
            [only] => Some(only),
            _ => None,
        }
    }

    fn of(&self, step: StepId) -> &[(StepId, EdgeIndex<u32>)] {
        let i = step.get() as usize;
        match (self.start.get(i), self.start.get(i + 1)) {
            (Some(&from), Some(&to)) => &self.items[from as usize..to as usize],
            _ => &[],
        }
    }
}

impl WorkflowDef {
    /// Starts a definition.
    pub fn builder(name: impl Into<String>, version: u32) -> WorkflowDefBuilder {
        WorkflowDefBuilder {
            name: name.into(),
            version,
            steps: Vec::new(),
            edges: Vec::new(),
            deadline: None,
            output: None,
            entries: None,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The whole run's deadline, counted from its start.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The step whose output is the run's output: the declared one, or the
    /// only sink if there is exactly one.
    pub fn output(&self) -> Option<StepId> {
        self.output
    }

    /// The steps a run starts with.
    pub fn entries(&self) -> &[StepId] {
        &self.entries
    }

    /// The entry steps the data form writes: the declared ones, unless
    /// the definition is ungated and they are the default (every step
    /// without predecessors).
    #[cfg(feature = "serde")]
    pub(crate) fn written_entries(&self) -> Option<&[StepId]> {
        self.declared_entries
            .as_deref()
            .filter(|e| !self.gated.is_empty() || *e != self.predecessors.empty_ones())
    }

    /// The output step the data form writes: the declared one, unless the
    /// definition is ungated and it is the default (the only sink, if
    /// there is exactly one).
    #[cfg(feature = "serde")]
    pub(crate) fn written_output(&self) -> Option<StepId> {
        self.declared_output
            .filter(|&o| !self.gated.is_empty() || Some(o) != self.successors.only_empty_one())
    }

    /// The sub-workflow nesting limit this definition was validated with.
    pub fn max_depth(&self) -> u32 {
        self.max_depth
    }

    /// A stable 64-bit hash of the whole content (name, version, steps,
    /// edges, options, nested definitions): equal definitions hash equally
    /// on every machine and in every release of this major version.
    pub fn content_hash(&self) -> u64 {
        self.hash
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Always `false`: a definition has at least one step.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The petgraph graph (node index `i` is [`StepId`] `i`).
    pub fn graph(&self) -> &WorkflowGraph {
        &self.graph
    }

    /// The step with this id.
    pub fn step(&self, step: StepId) -> Option<&StepDef> {
        self.graph.node_weight(node(step))
    }

    /// What `step` asks of its agent (its capabilities, required), built
    /// with the definition; cloning it shares it.
    pub(crate) fn step_requirements(&self, step: StepId) -> Option<&TaskRequirements> {
        self.requirements.get(step.get() as usize)
    }

    /// The key of `step` (empty for an id out of range).
    pub(crate) fn key(&self, step: StepId) -> &str {
        self.step(step).map_or("", |s| s.id.as_str())
    }

    /// The id of the step with this key.
    pub fn step_id(&self, key: &str) -> Option<StepId> {
        self.ids.get(key).copied()
    }

    /// The step with this key, or else the step that names it as an
    /// [alias](StepDef::alias): how a key recorded under an earlier
    /// version is read under this one.
    pub fn find_step(&self, key: &str) -> Option<StepId> {
        self.step_id(key).or_else(|| self.aliases.get(key).copied())
    }

    /// Every step with its id, in declaration order.
    pub fn steps(&self) -> impl ExactSizeIterator<Item = (StepId, &StepDef)> + '_ {
        self.graph
            .raw_nodes()
            .iter()
            .map(|node| &node.weight)
            .enumerate()
            .map(|(i, step)| (StepId::new(i as u64), step))
    }

    /// Every edge as (source, target, label), in declaration order, gated
    /// ones included.
    pub fn edges(&self) -> impl Iterator<Item = (StepId, StepId, Option<&str>)> + '_ {
        self.graph.raw_edges().iter().map(|edge| {
            (
                step_id(edge.source()),
                step_id(edge.target()),
                edge.weight.label.as_deref(),
            )
        })
    }

    /// The steps `step` depends on, with the edge's label (the edges
    /// present for the [origin](Self::origin)'s runs).
    pub fn predecessors(
        &self,
        step: StepId,
    ) -> impl ExactSizeIterator<Item = (StepId, Option<&str>)> + '_ {
        self.predecessors
            .of(step)
            .iter()
            .map(|&(from, edge)| (from, self.label(edge)))
    }

    /// The steps that depend on `step`, with the edge's label (the edges
    /// present for the [origin](Self::origin)'s runs).
    pub fn successors(
        &self,
        step: StepId,
    ) -> impl ExactSizeIterator<Item = (StepId, Option<&str>)> + '_ {
        self.successors
            .of(step)
            .iter()
            .map(|&(to, edge)| (to, self.label(edge)))
    }

    /// The predecessors whose outputs form `step`'s input, in order.
    pub fn input_steps(&self, step: StepId) -> Vec<StepId> {
        match self.inputs.get(step.get() as usize) {
            Some(Some(mapped)) => mapped.clone(),
            _ => self.predecessors.of(step).iter().map(|&(s, _)| s).collect(),
        }
    }

    /// Whether `step` has labelled outgoing edges: its completion chooses
    /// among them.
    pub fn is_decision(&self, step: StepId) -> bool {
        self.successors
            .of(step)
            .iter()
            .any(|&(_, edge)| self.label(edge).is_some())
    }

    pub(crate) fn meta(&self, step: StepId) -> StepMeta {
        self.meta[step.get() as usize]
    }

    pub(crate) fn successor_edges(&self, step: StepId) -> &[(StepId, EdgeIndex<u32>)] {
        self.successors.of(step)
    }

    pub(crate) fn predecessor_edges(&self, step: StepId) -> &[(StepId, EdgeIndex<u32>)] {
        self.predecessors.of(step)
    }

    pub(crate) fn label(&self, edge: EdgeIndex<u32>) -> Option<&str> {
        self.graph
            .edge_weight(edge)
            .and_then(|edge| edge.label.as_deref())
    }

    /// Nesting depth of sub-workflows below this definition (0: none).
    fn depth(&self) -> u32 {
        self.depth
    }
}

pub(crate) fn node(step: StepId) -> NodeIndex<u32> {
    NodeIndex::new(step.get() as usize)
}

pub(crate) fn step_id(node: NodeIndex<u32>) -> StepId {
    StepId::new(node.index() as u64)
}

mod builder;
mod gate;
mod hash;
mod shape;
mod validate;

pub use builder::WorkflowDefBuilder;
pub use gate::{Gate, MAX_GATED_VERSIONS};
