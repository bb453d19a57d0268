//! [`WorkflowDefBuilder`]: building and validating a definition.

use std::collections::HashMap;
use std::time::Duration;

use petgraph::graph::{DiGraph, EdgeIndex};

use super::gate::gated_versions;
use super::hash::hash_definition;
use super::shape::{Shape, step_meta};
use super::validate::{find_cycle, no_duplicates, unreachable_steps, validate_step};
use super::{Adjacency, Edge, Gate, MAX_DEPTH_LIMIT, WorkflowDef, node};
#[cfg(doc)]
use crate::workflow::{DEFAULT_MAX_DEPTH, MAX_ATTEMPTS, MAX_INSTANCES, MAX_ITERATIONS};
use crate::workflow::{DefinitionError, StepDef, StepKind, TIMEOUT_LABEL};
use crate::{StepId, TaskRequirements};

/// Builds a [`WorkflowDef`]; [`build`](Self::build) validates everything.
#[derive(Clone, Debug)]
#[must_use]
pub struct WorkflowDefBuilder {
    pub(super) name: String,
    pub(super) version: u32,
    pub(super) steps: Vec<StepDef>,
    pub(super) edges: Vec<(String, String, Option<String>, Gate)>,
    pub(super) deadline: Option<Duration>,
    pub(super) output: Option<String>,
    pub(super) entries: Option<Vec<String>>,
    pub(super) max_depth: u32,
}

impl WorkflowDefBuilder {
    /// Adds a step.
    pub fn step(mut self, step: StepDef) -> Self {
        self.steps.push(step);
        self
    }

    /// Adds an unlabelled edge: `to` depends on `from`.
    pub fn edge(self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.gated_edge(from, to, Gate::ALWAYS)
    }

    /// Adds an unlabelled edge that exists only for the runs whose origin
    /// `gate` admits (see [`WorkflowDef::at_version`]).
    pub fn gated_edge(
        mut self,
        from: impl Into<String>,
        to: impl Into<String>,
        gate: Gate,
    ) -> Self {
        self.edges.push((from.into(), to.into(), None, gate));
        self
    }

    /// Adds an edge taken only when `from` chooses `label`.
    pub fn branch(
        self,
        from: impl Into<String>,
        to: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        self.gated_branch(from, to, label, Gate::ALWAYS)
    }

    /// Adds a labelled edge that exists only for the runs whose origin
    /// `gate` admits.
    pub fn gated_branch(
        mut self,
        from: impl Into<String>,
        to: impl Into<String>,
        label: impl Into<String>,
        gate: Gate,
    ) -> Self {
        self.edges
            .push((from.into(), to.into(), Some(label.into()), gate));
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
            self.edges
                .push((pair[0].clone(), pair[1].clone(), None, Gate::ALWAYS));
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
    /// [`MAX_INSTANCES`], a `max_depth` above [`MAX_DEPTH_LIMIT`], more
    /// gated versions than [`MAX_GATED_VERSIONS`]
    /// ([`DefinitionError::TooLarge`]), a [`Gate`] that admits no run
    /// ([`DefinitionError::BadGate`]), or a definition that is not valid
    /// as the runs of some version see it
    /// ([`DefinitionError::AtVersion`]).
    ///
    /// [`MAX_GATED_VERSIONS`]: super::MAX_GATED_VERSIONS
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
        let mut aliases = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            for alias in &step.aliases {
                let id = StepId::new(i as u64);
                if ids.contains_key(alias) || aliases.insert(alias.clone(), id).is_some() {
                    return Err(DefinitionError::AliasConflict {
                        step: step.id.clone(),
                        alias: alias.clone(),
                    });
                }
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
        for (from, to, label, gate) in self.edges {
            let context = || format!("edge `{from}` -> `{to}`");
            let (a, b) = (lookup(&context, &from)?, lookup(&context, &to)?);
            if pairs.insert((a, b), ()).is_some() {
                return Err(DefinitionError::DuplicateEdge { from, to });
            }
            gate.check(context, self.version)?;
            edges.push((a, b, label, gate));
        }
        edges.sort_by_key(|&(_, b, _, _)| b);
        let n = self.steps.len();
        let successors = Adjacency::build(
            n,
            edges
                .iter()
                .enumerate()
                .map(|(e, &(a, b, _, _))| (a.get() as usize, b, EdgeIndex::new(e))),
        );
        let predecessors = Adjacency::build(
            n,
            edges
                .iter()
                .enumerate()
                .map(|(e, &(a, b, _, _))| (b.get() as usize, a, EdgeIndex::new(e))),
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
            step.gate
                .check(|| format!("step `{}`", step.id), self.version)?;
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
        for &(a, b, ref label, _) in &edges {
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
        let gated = gated_versions(
            self.steps
                .iter()
                .map(|s| s.gate)
                .chain(edges.iter().map(|e| e.3)),
            self.version,
        )?;
        let declared_entries = self.entries.is_some().then(|| entries.clone());
        let declared_output = output.filter(|_| self.output.is_some());
        for step in self.steps {
            graph.add_node(step);
        }
        for (a, b, label, gate) in edges {
            graph.add_edge(node(a), node(b), Edge { label, gate });
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
            aliases,
            successors,
            predecessors,
            inputs,
            depth: max_child_depth,
            meta: Vec::new(),
            requirements: Vec::new(),
            hash: 0,
            origin: self.version,
            declared_entries,
            declared_output,
            gated,
            absent: Vec::new(),
            absent_edges: Vec::new(),
        };
        def.meta = step_meta(&def, &def.successors, &def.predecessors);
        // Steps that ask the same share one set: the dispatcher compares a
        // task's requirements with the last task's, and shared ones compare
        // by pointer.
        let mut shared: HashMap<&[String], TaskRequirements> = HashMap::new();
        let requirements = def
            .steps()
            .map(|(_, d)| match d.capabilities.is_empty() {
                // No allocation for a step that asks nothing.
                true => TaskRequirements::new(),
                false => shared
                    .entry(d.capabilities.as_slice())
                    .or_insert_with(|| {
                        TaskRequirements::new().require(d.capabilities.iter().cloned())
                    })
                    .clone(),
            })
            .collect();
        drop(shared);
        def.requirements = requirements;
        def.hash = hash_definition(&def);
        // Each stretch of versions the gates tell apart is checked; the
        // last one holds the definition's own version, its new runs'.
        let mut current = None;
        for &version in &def.gated {
            let shape = Shape::at(&def, version).map_err(|source| DefinitionError::AtVersion {
                version,
                source: Box::new(source),
            })?;
            current = Some(shape);
        }
        if let Some(shape) = current {
            def.install(shape);
        }
        Ok(def)
    }
}
