//! The data form of a [`WorkflowDef`]: what serde reads and writes.
//!
//! ```json
//! { "name": "etl", "version": 1,
//!   "tasks": [ { "id": "extract", "capabilities": ["sql"] },
//!              { "id": "load", "depends_on": ["extract"] } ] }
//! ```
//!
//! Deserializing goes through [`WorkflowDef::builder`], so a definition
//! read from data is validated exactly like one built in code.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Choice, DefinitionError, Gate, Join, MultiInstance, StepDef, StepKind, WorkflowDef};
use crate::resilience::RetrySpec;
use crate::{Priority, StepId};

/// A definition as data.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkflowData {
    name: String,
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadline: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entries: Option<Vec<String>>,
    #[serde(default = "default_max_depth")]
    max_depth: u32,
    tasks: Vec<TaskData>,
}

fn default_max_depth() -> u32 {
    super::DEFAULT_MAX_DEPTH
}

/// One step as data, with the edges into it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskData {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    kind: KindData,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    priority: Priority,
    #[serde(default, skip_serializing_if = "is_default")]
    retry: RetrySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "is_default")]
    compensable: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    join: Join,
    #[serde(default, skip_serializing_if = "is_default")]
    choice: Choice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_iterations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multi_instance: Option<MultiInstance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inputs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    estimated_duration: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<Dependency>,
}

/// [`StepKind`] as data; a wait's timeout is the step's `timeout`.
#[derive(Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindData {
    #[default]
    Agent,
    Local,
    Wait {
        signals: Vec<String>,
    },
    SubWorkflow(Arc<WorkflowDef>),
}

/// An edge into a step: a plain step id, or a step id with a branch label
/// or a gate.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Dependency {
    Step(String),
    Edge(EdgeData),
}

/// An edge into a step with its label or its gate.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeData {
    step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<u32>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl TryFrom<WorkflowData> for WorkflowDef {
    type Error = DefinitionError;

    fn try_from(data: WorkflowData) -> Result<Self, Self::Error> {
        let mut builder = WorkflowDef::builder(data.name, data.version).max_depth(data.max_depth);
        if let Some(deadline) = data.deadline {
            builder = builder.deadline(deadline);
        }
        if let Some(output) = data.output {
            builder = builder.output(output);
        }
        if let Some(entries) = data.entries {
            builder = builder.entries(entries);
        }
        for task in data.tasks {
            for dependency in &task.depends_on {
                builder = match dependency {
                    Dependency::Step(step) => builder.edge(step.as_str(), task.id.as_str()),
                    Dependency::Edge(edge) => {
                        let gate = Gate {
                            since: edge.since,
                            until: edge.until,
                        };
                        let (from, to) = (edge.step.as_str(), task.id.as_str());
                        match &edge.label {
                            None => builder.gated_edge(from, to, gate),
                            Some(label) => builder.gated_branch(from, to, label.as_str(), gate),
                        }
                    }
                };
            }
            let (kind, timeout) = match task.kind {
                KindData::Agent => (StepKind::Agent, task.timeout),
                KindData::Local => (StepKind::Local, task.timeout),
                KindData::Wait { signals } => (
                    StepKind::Wait {
                        signals,
                        timeout: task.timeout,
                    },
                    None,
                ),
                KindData::SubWorkflow(child) => (StepKind::SubWorkflow(child), task.timeout),
            };
            let mut step = StepDef::new(task.id, kind);
            if let Some(name) = task.name {
                step.name = name;
            }
            step.capabilities = task.capabilities;
            step.priority = task.priority;
            step.retry = task.retry;
            step.timeout = timeout;
            step.compensable = task.compensable;
            step.join = task.join;
            step.choice = task.choice;
            step.max_iterations = task.max_iterations;
            step.multi_instance = task.multi_instance;
            step.inputs = task.inputs;
            step.estimated_duration = task.estimated_duration;
            step.aliases = task.aliases;
            step.gate = Gate {
                since: task.since,
                until: task.until,
            };
            builder = builder.step(step);
        }
        builder.build()
    }
}

/// Every step's incoming edges as data, gated ones included, in edge
/// order (the builder keeps edges grouped by target).
fn dependencies(def: &WorkflowDef) -> Vec<Vec<Dependency>> {
    let mut into = Vec::new();
    into.resize_with(def.len(), Vec::new);
    for edge in def.graph().raw_edges() {
        let (step, label, gate) = (
            def.key(StepId::new(edge.source().index() as u64)),
            &edge.weight.label,
            edge.weight.gate,
        );
        into[edge.target().index()].push(match (label, gate.is_always()) {
            (None, true) => Dependency::Step(step.to_string()),
            _ => Dependency::Edge(EdgeData {
                step: step.to_string(),
                label: label.clone(),
                since: gate.since,
                until: gate.until,
            }),
        });
    }
    into
}

impl From<&WorkflowDef> for WorkflowData {
    fn from(def: &WorkflowDef) -> Self {
        let key = |step| def.key(step).to_string();
        let mut dependencies = dependencies(def).into_iter();
        WorkflowData {
            name: def.name().to_string(),
            version: def.version(),
            deadline: def.deadline(),
            output: def.written_output().map(key),
            entries: def
                .written_entries()
                .map(|entries| entries.iter().map(|&s| key(s)).collect()),
            max_depth: def.max_depth(),
            tasks: def
                .steps()
                .map(|(_, step)| {
                    let (kind, timeout) = match &step.kind {
                        StepKind::Agent => (KindData::Agent, step.timeout),
                        StepKind::Local => (KindData::Local, step.timeout),
                        StepKind::Wait { signals, timeout } => (
                            KindData::Wait {
                                signals: signals.clone(),
                            },
                            *timeout,
                        ),
                        StepKind::SubWorkflow(child) => {
                            (KindData::SubWorkflow(Arc::clone(child)), step.timeout)
                        }
                    };
                    TaskData {
                        id: step.id.clone(),
                        name: (step.name != step.id).then(|| step.name.clone()),
                        kind,
                        capabilities: step.capabilities.clone(),
                        priority: step.priority,
                        retry: step.retry,
                        timeout,
                        compensable: step.compensable,
                        join: step.join,
                        choice: step.choice,
                        max_iterations: step.max_iterations,
                        multi_instance: step.multi_instance,
                        inputs: step.inputs.clone(),
                        estimated_duration: step.estimated_duration,
                        aliases: step.aliases.clone(),
                        since: step.gate.since,
                        until: step.gate.until,
                        depends_on: dependencies.next().unwrap_or_default(),
                    }
                })
                .collect(),
        }
    }
}

impl Serialize for WorkflowDef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WorkflowData::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WorkflowDef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = WorkflowData::deserialize(deserializer)?;
        WorkflowDef::try_from(data).map_err(serde::de::Error::custom)
    }
}
