//! What a definition looks like to the runs of one version: its gated
//! parts left out, the joins counting only the edges that remain.

use petgraph::graph::EdgeIndex;

use super::validate::unreachable_steps;
use super::{Adjacency, StepMeta, WorkflowDef};
use crate::StepId;
use crate::workflow::DefinitionError;

/// The graph as the runs of one version see it: the parts whose
/// [`Gate`](super::Gate) admits the version, and what follows from them.
pub(super) struct Shape {
    pub(super) successors: Adjacency,
    pub(super) predecessors: Adjacency,
    pub(super) entries: Vec<StepId>,
    pub(super) output: Option<StepId>,
    pub(super) meta: Vec<StepMeta>,
    pub(super) absent: Vec<StepId>,
    pub(super) absent_edges: Vec<u32>,
}

impl Shape {
    /// `def` as runs of `version` see it, checked as the builder checks a
    /// whole definition: every join satisfiable with the edges that remain,
    /// every input mapped to a remaining predecessor, every remaining step
    /// reachable, the declared output present.
    pub(super) fn at(def: &WorkflowDef, version: u32) -> Result<Shape, DefinitionError> {
        let n = def.len();
        let present: Vec<bool> = def.steps().map(|(_, s)| s.gate.admits(version)).collect();
        let mut kept = Vec::with_capacity(def.graph.edge_count());
        let mut absent_edges = Vec::new();
        for (e, edge) in def.graph.raw_edges().iter().enumerate() {
            let (a, b) = (edge.source().index(), edge.target().index());
            if edge.weight.gate.admits(version) && present[a] && present[b] {
                kept.push((e, a, b));
            } else {
                absent_edges.push(e as u32);
            }
        }
        let step = |i: usize| StepId::new(i as u64);
        let successors = Adjacency::build(
            n,
            kept.iter()
                .map(|&(e, a, b)| (a, step(b), EdgeIndex::new(e))),
        );
        let predecessors = Adjacency::build(
            n,
            kept.iter()
                .map(|&(e, a, b)| (b, step(a), EdgeIndex::new(e))),
        );
        let absent: Vec<StepId> = (0..n).filter(|&i| !present[i]).map(step).collect();
        if absent.len() == n {
            return Err(DefinitionError::Empty(def.name.clone()));
        }
        let is_present = |s: &StepId| present[s.get() as usize];
        let entries: Vec<StepId> = match &def.declared_entries {
            Some(declared) => declared.iter().copied().filter(is_present).collect(),
            None => predecessors.empty_ones_among(is_present),
        };
        for (id, step) in def.steps().filter(|(id, _)| is_present(id)) {
            let inputs = predecessors.of(id);
            step.join.check(&step.id, inputs.len())?;
            let mapped = def.inputs[id.get() as usize].iter().flatten();
            if let Some(&input) = mapped
                .into_iter()
                .find(|&&m| !inputs.iter().any(|&(p, _)| p == m))
            {
                return Err(DefinitionError::InputNotPredecessor {
                    step: step.id.clone(),
                    input: def.key(input).to_string(),
                });
            }
        }
        let unreachable: Vec<String> = unreachable_steps(n, &entries, &successors)
            .into_iter()
            .filter(is_present)
            .map(|s| def.key(s).to_string())
            .collect();
        if !unreachable.is_empty() {
            return Err(DefinitionError::Unreachable { steps: unreachable });
        }
        let output = match def.declared_output {
            Some(output) if is_present(&output) => Some(output),
            Some(output) => {
                return Err(DefinitionError::UnknownStep {
                    context: "the output".to_string(),
                    step: def.key(output).to_string(),
                });
            }
            None => successors.only_empty_one_among(is_present),
        };
        let meta = step_meta(def, &successors, &predecessors);
        Ok(Shape {
            successors,
            predecessors,
            entries,
            output,
            meta,
            absent,
            absent_edges,
        })
    }
}

/// What a run's hot path needs of each step, given the edges it sees.
pub(super) fn step_meta(
    def: &WorkflowDef,
    successors: &Adjacency,
    predecessors: &Adjacency,
) -> Vec<StepMeta> {
    def.steps()
        .map(|(id, d)| StepMeta {
            join: d.join,
            wait: d.is_wait(),
            multi: d.multi_instance.is_some(),
            decision: successors
                .of(id)
                .iter()
                .any(|&(_, edge)| def.label(edge).is_some()),
            in_degree: predecessors.of(id).len() as u32,
            timeout: d.timeout,
            max_iterations: d.max_iterations,
        })
        .collect()
}

impl WorkflowDef {
    /// This definition as the runs that started under `version` see it:
    /// the steps and edges whose [`Gate`](super::Gate) does not admit
    /// `version` are absent (their steps are skipped silently, and the
    /// joins count only the edges that remain). A run started on the
    /// result, or resumed or migrated to it, keeps `version` as its
    /// [origin](Self::origin). Every stretch of versions the gates tell
    /// apart was checked when the definition was built, so only a
    /// version later than the definition's is refused. Linear in the
    /// steps and edges.
    ///
    /// ```
    /// use taskweave::workflow::{Gate, StepDef, WorkflowDef};
    ///
    /// // Version 2 adds a fraud check between reserve and ship, and keeps
    /// // the direct edge for the runs that started under version 1.
    /// let def = WorkflowDef::builder("order", 2)
    ///     .step(StepDef::agent("reserve"))
    ///     .step(StepDef::agent("fraud").since(2))
    ///     .step(StepDef::agent("ship"))
    ///     .edge("reserve", "fraud")
    ///     .edge("fraud", "ship")
    ///     .gated_edge("reserve", "ship", Gate::until(2))
    ///     .build()?;
    /// let ship = def.step_id("ship").unwrap();
    /// assert_eq!(def.predecessors(ship).count(), 1);
    /// assert!(def.is_present(def.step_id("fraud").unwrap()));
    ///
    /// let old = def.at_version(1)?;
    /// assert_eq!(old.origin(), 1);
    /// assert!(!old.is_present(old.step_id("fraud").unwrap()));
    /// let (before_ship, _) = old.predecessors(ship).next().unwrap();
    /// assert_eq!(old.step(before_ship).unwrap().id, "reserve");
    /// assert!(def.at_version(3).is_err());
    /// # Ok::<(), taskweave::workflow::DefinitionError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`DefinitionError::LaterVersion`] when `version` is later than the
    /// definition's.
    pub fn at_version(&self, version: u32) -> Result<WorkflowDef, DefinitionError> {
        if version > self.version {
            return Err(DefinitionError::LaterVersion {
                version,
                latest: self.version,
            });
        }
        let mut def = self.clone();
        if !self.gated.is_empty() {
            def.install(Shape::at(self, version)?);
        }
        def.origin = version;
        Ok(def)
    }

    pub(super) fn install(&mut self, shape: Shape) {
        self.successors = shape.successors;
        self.predecessors = shape.predecessors;
        self.entries = shape.entries;
        self.output = shape.output;
        self.meta = shape.meta;
        self.absent = shape.absent;
        self.absent_edges = shape.absent_edges;
    }

    /// The version whose runs this definition serves: its own
    /// [version](Self::version), unless [`at_version`](Self::at_version)
    /// made it for an earlier one.
    pub fn origin(&self) -> u32 {
        self.origin
    }

    /// The [origin](Self::origin) as checkpoints and journals store it:
    /// only when it is earlier than the version.
    pub(crate) fn earlier_origin(&self) -> Option<u32> {
        (self.origin != self.version).then_some(self.origin)
    }

    /// Whether `step` exists for the runs of the [origin](Self::origin):
    /// its [`Gate`](super::Gate) admits it.
    pub fn is_present(&self, step: StepId) -> bool {
        (step.get() as usize) < self.len() && self.absent.binary_search(&step).is_err()
    }

    /// The steps absent for the runs of the [origin](Self::origin), in
    /// declaration order: a run marks them skipped when it starts.
    pub fn absent_steps(&self) -> &[StepId] {
        &self.absent
    }

    /// Whether the edge with this index ([`edges`](Self::edges) order)
    /// exists for the runs of the origin.
    pub(crate) fn is_edge_present(&self, index: usize) -> bool {
        index < self.graph.edge_count() && self.absent_edges.binary_search(&(index as u32)).is_err()
    }

    /// The versions at which the gates change what a run sees, from 0
    /// ([`MAX_GATED_VERSIONS`](super::MAX_GATED_VERSIONS) at most); empty
    /// when nothing is gated.
    pub fn gated_versions(&self) -> &[u32] {
        &self.gated
    }
}
