//! A definition's stable content hash.

use std::time::Duration;

use super::WorkflowDef;
use crate::StepId;
use crate::hash::StableHasher;
use crate::resilience::RetrySpec;
use crate::workflow::{Gate, StepDef, StepKind};

/// The content hash: every field, in a fixed order, through
/// [`StableHasher`].
pub(super) fn hash_definition(def: &WorkflowDef) -> u64 {
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
    for edge in def.graph().raw_edges() {
        h.u64(edge.source().index() as u64);
        h.u64(edge.target().index() as u64);
        hash_option_str(&mut h, edge.weight.label.as_deref());
        hash_gate(&mut h, edge.weight.gate);
    }
    h.finish()
}

/// Added after format 1 like the aliases: a gate is hashed only when it
/// is not [`Gate::ALWAYS`], so every definition without gates keeps the
/// hash it had.
fn hash_gate(h: &mut StableHasher, gate: Gate) {
    if !gate.is_always() {
        h.u64(GATE_TAG);
        h.u64(gate.since.map_or(u64::MAX, u64::from));
        h.u64(gate.until.map_or(u64::MAX, u64::from));
    }
}

/// Marks a gate in a step's or an edge's hash.
const GATE_TAG: u64 = 0x6A7E_0F0E;

pub(super) fn hash_step(h: &mut StableHasher, step: &StepDef) {
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
    step.join.hash(h);
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
    // Added after format 1: hashed only when set, so every definition
    // without aliases keeps the hash it had.
    if !step.aliases.is_empty() {
        h.u64(ALIASES_TAG);
        hash_strings(h, &step.aliases);
    }
    hash_gate(h, step.gate);
}

/// Marks the aliases in a step's hash.
const ALIASES_TAG: u64 = 0x0A11_A5E5;

pub(super) fn hash_strings(h: &mut StableHasher, strings: &[String]) {
    h.u64(strings.len() as u64);
    for s in strings {
        h.str(s);
    }
}

pub(super) fn hash_option_str(h: &mut StableHasher, value: Option<&str>) {
    match value {
        None => h.u64(0),
        Some(s) => {
            h.u64(1);
            h.str(s);
        }
    }
}

pub(super) fn hash_duration(h: &mut StableHasher, duration: Option<Duration>) {
    h.u64(duration.map_or(u64::MAX, |d| {
        d.as_nanos().min(u128::from(u64::MAX - 1)) as u64
    }));
}
