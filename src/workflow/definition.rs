//! [`WorkflowDef`]: a validated petgraph DAG of steps, and its builder.

use std::collections::HashMap;
use std::time::Duration;

use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};

use super::{DefinitionError, Join, StepDef, StepKind, TIMEOUT_LABEL};
use crate::StepId;
use crate::hash::StableHasher;
use crate::resilience::RetrySpec;

/// An edge of a workflow: its source's completion enables its target. A
/// labelled edge fires only when its source chose the label (a decision
/// step's branch, or a wait step's signal); an unlabelled edge always fires.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Edge {
    /// The branch label, if any.
    pub label: Option<String>,
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

/// A validated workflow definition: a DAG of [`StepDef`]s joined by
/// (optionally labelled) [`Edge`]s, with a name, a version and a stable
/// content hash.
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
    successors: Adjacency,
    predecessors: Adjacency,
    /// Input mapping resolved to predecessor step ids.
    inputs: Vec<Option<Vec<StepId>>>,
    /// Sub-workflow nesting depth below this definition (0: none), computed
    /// once: recomputing it through shared children is exponential.
    depth: u32,
    /// What runs need on their hot path, one per step.
    meta: Vec<StepMeta>,
    hash: u64,
}

impl PartialEq for WorkflowDef {
    /// Definitions are equal when their content hashes are.
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
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
        self.start
            .windows(2)
            .enumerate()
            .filter(|(_, range)| range[0] == range[1])
            .map(|(i, _)| StepId::new(i as u64))
            .collect()
    }

    /// The step with no neighbours, if exactly one has none.
    fn only_empty_one(&self) -> Option<StepId> {
        match self.empty_ones()[..] {
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

    /// Whether the entry steps are the default ones: every step without
    /// predecessors. (The data form leaves default entries out.)
    #[cfg(feature = "serde")]
    pub(crate) fn has_default_entries(&self) -> bool {
        self.entries == self.predecessors.empty_ones()
    }

    /// Whether the output step is the default one: the only sink, if there
    /// is exactly one. (The data form leaves a default output out.)
    #[cfg(feature = "serde")]
    pub(crate) fn has_default_output(&self) -> bool {
        self.output == self.successors.only_empty_one()
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

    /// The id of the step with this key.
    pub fn step_id(&self, key: &str) -> Option<StepId> {
        self.ids.get(key).copied()
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

    /// Every edge as (source, target, label), in declaration order.
    pub fn edges(&self) -> impl Iterator<Item = (StepId, StepId, Option<&str>)> + '_ {
        self.graph.raw_edges().iter().map(|edge| {
            (
                step_id(edge.source()),
                step_id(edge.target()),
                edge.weight.label.as_deref(),
            )
        })
    }

    /// The steps `step` depends on, with the edge's label.
    pub fn predecessors(
        &self,
        step: StepId,
    ) -> impl ExactSizeIterator<Item = (StepId, Option<&str>)> + '_ {
        self.predecessors
            .of(step)
            .iter()
            .map(|&(from, edge)| (from, self.label(edge)))
    }

    /// The steps that depend on `step`, with the edge's label.
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

/// Builds a [`WorkflowDef`]; [`build`](Self::build) validates everything.
#[derive(Clone, Debug)]
#[must_use]
pub struct WorkflowDefBuilder {
    name: String,
    version: u32,
    steps: Vec<StepDef>,
    edges: Vec<(String, String, Option<String>)>,
    deadline: Option<Duration>,
    output: Option<String>,
    entries: Option<Vec<String>>,
    max_depth: u32,
}

impl WorkflowDefBuilder {
    /// Adds a step.
    pub fn step(mut self, step: StepDef) -> Self {
        self.steps.push(step);
        self
    }

    /// Adds an unlabelled edge: `to` depends on `from`.
    pub fn edge(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.edges.push((from.into(), to.into(), None));
        self
    }

    /// Adds an edge taken only when `from` chooses `label`.
    pub fn branch(
        mut self,
        from: impl Into<String>,
        to: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        self.edges
            .push((from.into(), to.into(), Some(label.into())));
        self
    }

    /// Adds `steps` in sequence, each depending on the previous one.
    pub fn chain<I, S>(mut self, steps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let steps: Vec<String> = steps.into_iter().map(Into::into).collect();
        for pair in steps.windows(2) {
            self.edges.push((pair[0].clone(), pair[1].clone(), None));
        }
        self
    }

    /// Sets the run's deadline, counted from its start.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Names the step whose output is the run's output.
    pub fn output(mut self, step: impl Into<String>) -> Self {
        self.output = Some(step.into());
        self
    }

    /// Names the entry steps. By default every step without predecessors is
    /// an entry; naming them makes any other such step unreachable.
    pub fn entries<I, S>(mut self, steps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entries = Some(steps.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the sub-workflow nesting limit (default [`DEFAULT_MAX_DEPTH`]).
    pub fn max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Validates and builds the definition.
    ///
    /// # Errors
    ///
    /// A [`DefinitionError`] naming the steps involved: no steps, an empty
    /// or duplicate id, an unknown step in an edge, input mapping, entry or
    /// output, a duplicate edge, a cycle (with its path), an unreachable
    /// step, a merge or partial join with fewer than two inputs, an
    /// impossible N in N-of-M, an input that is not a predecessor, options
    /// that conflict, a wait branch label it can never choose,
    /// sub-workflows nested deeper than the limit, a name repeated in the
    /// entry list or in a step's inputs, signals or capabilities
    /// ([`DefinitionError::DuplicateName`]), a zero step or wait timeout
    /// ([`DefinitionError::ZeroTimeout`]), or a count above the
    /// crate's limits: retry attempts above [`MAX_ATTEMPTS`], a loop cap
    /// above [`MAX_ITERATIONS`], tolerated failures above
    /// [`MAX_INSTANCES`], a `max_depth` above [`MAX_DEPTH_LIMIT`]
    /// ([`DefinitionError::TooLarge`]).
    pub fn build(self) -> Result<WorkflowDef, DefinitionError> {
        if self.steps.is_empty() {
            return Err(DefinitionError::Empty(self.name));
        }
        if self.max_depth > MAX_DEPTH_LIMIT {
            return Err(DefinitionError::TooLarge {
                context: "the workflow".to_string(),
                field: "max_depth",
                value: self.max_depth.into(),
                limit: MAX_DEPTH_LIMIT.into(),
            });
        }
        let mut ids = HashMap::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            if step.id.is_empty() {
                return Err(DefinitionError::EmptyId);
            }
            if ids.insert(step.id.clone(), StepId::new(i as u64)).is_some() {
                return Err(DefinitionError::DuplicateStep(step.id.clone()));
            }
        }
        let lookup = |context: &dyn Fn() -> String, key: &str| {
            ids.get(key)
                .copied()
                .ok_or_else(|| DefinitionError::UnknownStep {
                    context: context(),
                    step: key.to_string(),
                })
        };
        // Edges are kept grouped by target, in declaration order within a
        // target: the order the data form lists them in, so a definition
        // read back from data has the same edge indices and hash.
        let mut edges = Vec::with_capacity(self.edges.len());
        let mut pairs = HashMap::with_capacity(self.edges.len());
        for (from, to, label) in self.edges {
            let context = || format!("edge `{from}` -> `{to}`");
            let (a, b) = (lookup(&context, &from)?, lookup(&context, &to)?);
            if pairs.insert((a, b), ()).is_some() {
                return Err(DefinitionError::DuplicateEdge { from, to });
            }
            edges.push((a, b, label));
        }
        edges.sort_by_key(|&(_, b, _)| b);
        let n = self.steps.len();
        let successors = Adjacency::build(
            n,
            edges
                .iter()
                .enumerate()
                .map(|(e, &(a, b, _))| (a.get() as usize, b, EdgeIndex::new(e))),
        );
        let predecessors = Adjacency::build(
            n,
            edges
                .iter()
                .enumerate()
                .map(|(e, &(a, b, _))| (b.get() as usize, a, EdgeIndex::new(e))),
        );
        if let Some(path) = find_cycle(n, &successors) {
            return Err(DefinitionError::Cycle {
                path: path
                    .into_iter()
                    .map(|s| self.steps[s.get() as usize].id.clone())
                    .collect(),
            });
        }
        let mut inputs = Vec::with_capacity(n);
        for (i, step) in self.steps.iter().enumerate() {
            let preds = predecessors.of(StepId::new(i as u64));
            validate_step(step, preds.len())?;
            inputs.push(match &step.inputs {
                None => None,
                Some(names) => Some(
                    names
                        .iter()
                        .map(|name| {
                            let context = || format!("the inputs of `{}`", step.id);
                            let input = lookup(&context, name)?;
                            if preds.iter().any(|&(p, _)| p == input) {
                                Ok(input)
                            } else {
                                Err(DefinitionError::InputNotPredecessor {
                                    step: step.id.clone(),
                                    input: name.clone(),
                                })
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            });
        }
        for &(a, b, ref label) in &edges {
            let from = &self.steps[a.get() as usize];
            if label.is_some() && from.multi_instance.is_some() {
                return Err(DefinitionError::ConflictingOptions {
                    step: from.id.clone(),
                    reason: "a multi-instance step cannot choose branches",
                });
            }
            if let (StepKind::Wait { signals, timeout }, Some(label)) = (&from.kind, label) {
                let known = signals.iter().any(|s| s == label)
                    || (label == TIMEOUT_LABEL && timeout.is_some());
                if !known {
                    return Err(DefinitionError::UnknownLabel {
                        from: from.id.clone(),
                        to: self.steps[b.get() as usize].id.clone(),
                        label: label.clone(),
                    });
                }
            }
        }
        let entries = match &self.entries {
            Some(names) => {
                no_duplicates("the entry list", names)?;
                names
                    .iter()
                    .map(|name| lookup(&|| "the entry list".to_string(), name))
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => predecessors.empty_ones(),
        };
        let unreachable = unreachable_steps(n, &entries, &successors);
        if !unreachable.is_empty() {
            return Err(DefinitionError::Unreachable {
                steps: unreachable
                    .into_iter()
                    .map(|s| self.steps[s.get() as usize].id.clone())
                    .collect(),
            });
        }
        let output = match &self.output {
            Some(name) => Some(lookup(&|| "the output".to_string(), name)?),
            None => successors.only_empty_one(),
        };
        let mut max_child_depth = 0;
        for step in &self.steps {
            if let StepKind::SubWorkflow(child) = &step.kind {
                let depth = child.depth().saturating_add(1);
                max_child_depth = max_child_depth.max(depth);
                if depth > self.max_depth {
                    return Err(DefinitionError::TooDeep {
                        step: step.id.clone(),
                        depth,
                        limit: self.max_depth,
                    });
                }
            }
        }

        let mut graph = DiGraph::with_capacity(n, edges.len());
        for step in self.steps {
            graph.add_node(step);
        }
        for (a, b, label) in edges {
            graph.add_edge(node(a), node(b), Edge { label });
        }
        let mut def = WorkflowDef {
            name: self.name,
            version: self.version,
            deadline: self.deadline,
            output,
            entries,
            max_depth: self.max_depth,
            graph,
            ids,
            successors,
            predecessors,
            inputs,
            depth: max_child_depth,
            meta: Vec::new(),
            hash: 0,
        };
        def.meta = def
            .steps()
            .map(|(step, d)| StepMeta {
                join: d.join,
                wait: d.is_wait(),
                multi: d.multi_instance.is_some(),
                decision: def.is_decision(step),
                in_degree: def.predecessor_edges(step).len() as u32,
                timeout: d.timeout,
                max_iterations: d.max_iterations,
            })
            .collect();
        def.hash = hash_definition(&def);
        Ok(def)
    }
}

/// Checks one step's own options against its number of incoming edges.
fn validate_step(step: &StepDef, inputs: usize) -> Result<(), DefinitionError> {
    let conflict = |reason| {
        Err(DefinitionError::ConflictingOptions {
            step: step.id.clone(),
            reason,
        })
    };
    match step.join {
        Join::All => {}
        Join::Merge if inputs < 2 => {
            return Err(DefinitionError::JoinTooFewInputs {
                step: step.id.clone(),
                inputs,
                join: "synchronizing merge",
            });
        }
        Join::Merge => {}
        Join::Quorum { n, .. } => {
            if inputs < 2 {
                return Err(DefinitionError::JoinTooFewInputs {
                    step: step.id.clone(),
                    inputs,
                    join: "partial",
                });
            }
            if n == 0 || n as usize > inputs {
                return Err(DefinitionError::ImpossibleQuorum {
                    step: step.id.clone(),
                    n,
                    m: inputs,
                });
            }
        }
    }
    if step.max_iterations == Some(0) {
        return conflict("a loop needs at least one iteration");
    }
    if step.max_iterations.is_some() && step.multi_instance.is_some() {
        return conflict("a step cannot be both a loop and multi-instance");
    }
    if step.is_wait() && (step.max_iterations.is_some() || step.multi_instance.is_some()) {
        return conflict("a wait step cannot loop or fan out");
    }
    if step.is_wait() && step.compensable {
        return conflict("a wait step has nothing to compensate");
    }
    validate_bounds(step)
}

/// Checks what untrusted data could make unbounded or meaningless: zero
/// timeouts, counts above the crate's limits and repeated names.
fn validate_bounds(step: &StepDef) -> Result<(), DefinitionError> {
    let wait_timeout = match &step.kind {
        StepKind::Wait { signals, timeout } => {
            no_duplicates(&format!("the signals of step `{}`", step.id), signals)?;
            if signals.is_empty() && timeout.is_none() {
                return Err(DefinitionError::WaitNeverEnds(step.id.clone()));
            }
            *timeout
        }
        _ => None,
    };
    if step.timeout == Some(Duration::ZERO) || wait_timeout == Some(Duration::ZERO) {
        return Err(DefinitionError::ZeroTimeout(step.id.clone()));
    }
    no_duplicates(
        &format!("the capabilities of step `{}`", step.id),
        &step.capabilities,
    )?;
    if let Some(inputs) = &step.inputs {
        no_duplicates(&format!("the inputs of step `{}`", step.id), inputs)?;
    }
    let too_large = |field, value: u32, limit: u32| {
        if value > limit {
            Err(DefinitionError::TooLarge {
                context: format!("step `{}`", step.id),
                field,
                value: value.into(),
                limit: limit.into(),
            })
        } else {
            Ok(())
        }
    };
    too_large(
        "retry max_attempts",
        step.retry.max_attempts(),
        MAX_ATTEMPTS,
    )?;
    too_large(
        "max_iterations",
        step.max_iterations.unwrap_or(0),
        MAX_ITERATIONS,
    )?;
    too_large(
        "multi_instance tolerated_failures",
        step.multi_instance.map_or(0, |m| m.tolerated_failures),
        MAX_INSTANCES,
    )
}

/// Refuses a list that names an item twice.
fn no_duplicates(context: &str, names: &[String]) -> Result<(), DefinitionError> {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    for name in names {
        if !seen.insert(name.as_str()) {
            return Err(DefinitionError::DuplicateName {
                context: context.to_string(),
                name: name.clone(),
            });
        }
    }
    Ok(())
}

/// A cycle's path (first step repeated at the end), found by an iterative
/// depth-first search, or `None` if the graph is acyclic.
fn find_cycle(n: usize, successors: &Adjacency) -> Option<Vec<StepId>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; n];
    let mut stack: Vec<(StepId, usize)> = Vec::new();
    for root in 0..n {
        if colour[root] != Colour::White {
            continue;
        }
        colour[root] = Colour::Grey;
        stack.push((StepId::new(root as u64), 0));
        while let Some(&mut (at, ref mut next)) = stack.last_mut() {
            let out = successors.of(at);
            if let Some(&(to, _)) = out.get(*next) {
                *next += 1;
                match colour[to.get() as usize] {
                    Colour::White => {
                        colour[to.get() as usize] = Colour::Grey;
                        stack.push((to, 0));
                    }
                    Colour::Grey => {
                        let from = stack.iter().position(|&(s, _)| s == to).unwrap_or(0);
                        let mut path: Vec<StepId> = stack[from..].iter().map(|&(s, _)| s).collect();
                        path.push(to);
                        return Some(path);
                    }
                    Colour::Black => {}
                }
            } else {
                colour[at.get() as usize] = Colour::Black;
                stack.pop();
            }
        }
    }
    None
}

/// Steps not reachable from `entries`, in declaration order.
fn unreachable_steps(n: usize, entries: &[StepId], successors: &Adjacency) -> Vec<StepId> {
    let mut seen = vec![false; n];
    let mut frontier: Vec<StepId> = entries.to_vec();
    for &entry in entries {
        seen[entry.get() as usize] = true;
    }
    while let Some(at) = frontier.pop() {
        for &(to, _) in successors.of(at) {
            if !std::mem::replace(&mut seen[to.get() as usize], true) {
                frontier.push(to);
            }
        }
    }
    (0..n)
        .filter(|&i| !seen[i])
        .map(|i| StepId::new(i as u64))
        .collect()
}

/// The content hash: every field, in a fixed order, through
/// [`StableHasher`].
fn hash_definition(def: &WorkflowDef) -> u64 {
    let mut h = StableHasher::new();
    h.str(&def.name);
    h.u64(def.version.into());
    hash_duration(&mut h, def.deadline);
    h.u64(def.output.map_or(u64::MAX, StepId::get));
    h.u64(def.entries.len() as u64);
    for entry in &def.entries {
        h.u64(entry.get());
    }
    h.u64(def.max_depth.into());
    h.u64(def.len() as u64);
    for (_, step) in def.steps() {
        hash_step(&mut h, step);
    }
    for (from, to, label) in def.edges() {
        h.u64(from.get());
        h.u64(to.get());
        hash_option_str(&mut h, label);
    }
    h.finish()
}

fn hash_step(h: &mut StableHasher, step: &StepDef) {
    h.str(&step.id);
    h.str(&step.name);
    match &step.kind {
        StepKind::Agent => h.u64(0),
        StepKind::Local => h.u64(1),
        StepKind::Wait { signals, timeout } => {
            h.u64(2);
            hash_strings(h, signals);
            hash_duration(h, *timeout);
        }
        StepKind::SubWorkflow(child) => {
            h.u64(3);
            h.u64(child.content_hash());
        }
    }
    hash_strings(h, &step.capabilities);
    h.u64(step.priority.index() as u64);
    match step.retry {
        RetrySpec::Never => h.u64(0),
        RetrySpec::Fixed(fixed) => {
            h.u64(1);
            hash_duration(h, Some(fixed.delay()));
            h.u64(fixed.max_attempts().into());
        }
        RetrySpec::Exponential(backoff) => {
            h.u64(2);
            hash_duration(h, Some(backoff.base()));
            h.u64(backoff.factor().to_bits());
            hash_duration(h, Some(backoff.cap()));
            h.u64(backoff.max_attempts().into());
            h.u64(backoff.jitter() as u64);
        }
    }
    hash_duration(h, step.timeout);
    h.u64(step.compensable.into());
    match step.join {
        Join::All => h.u64(0),
        Join::Merge => h.u64(1),
        Join::Quorum {
            n,
            cancel_remaining,
        } => {
            h.u64(2);
            h.u64(n.into());
            h.u64(cancel_remaining.into());
        }
    }
    h.u64(step.choice as u64);
    h.u64(step.max_iterations.map_or(u64::MAX, u64::from));
    h.u64(
        step.multi_instance
            .map_or(u64::MAX, |m| m.tolerated_failures.into()),
    );
    match &step.inputs {
        None => h.u64(u64::MAX),
        Some(inputs) => hash_strings(h, inputs),
    }
    hash_duration(h, step.estimated_duration);
}

fn hash_strings(h: &mut StableHasher, strings: &[String]) {
    h.u64(strings.len() as u64);
    for s in strings {
        h.str(s);
    }
}

fn hash_option_str(h: &mut StableHasher, value: Option<&str>) {
    match value {
        None => h.u64(0),
        Some(s) => {
            h.u64(1);
            h.str(s);
        }
    }
}

fn hash_duration(h: &mut StableHasher, duration: Option<Duration>) {
    h.u64(duration.map_or(u64::MAX, |d| {
        d.as_nanos().min(u128::from(u64::MAX - 1)) as u64
    }));
}
