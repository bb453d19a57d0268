//! The checks a definition passes before it is built: each step's
//! options and bounds, unique names, no cycle, every step reachable.

use std::time::Duration;

use super::Adjacency;
use crate::StepId;
use crate::workflow::{
    DefinitionError, MAX_ATTEMPTS, MAX_INSTANCES, MAX_ITERATIONS, MAX_TIMEOUT, StepDef, StepKind,
};

/// Checks one step's own options against its number of incoming edges.
pub(super) fn validate_step(step: &StepDef, inputs: usize) -> Result<(), DefinitionError> {
    let conflict = |reason| {
        Err(DefinitionError::ConflictingOptions {
            step: step.id.clone(),
            reason,
        })
    };
    step.join.check(&step.id, inputs)?;
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
pub(super) fn validate_bounds(step: &StepDef) -> Result<(), DefinitionError> {
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
    for (field, timeout) in [("timeout", step.timeout), ("wait timeout", wait_timeout)] {
        if let Some(timeout) = timeout.filter(|t| *t > MAX_TIMEOUT) {
            return Err(DefinitionError::TimeoutTooLong {
                step: step.id.clone(),
                field,
                timeout,
            });
        }
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
pub(super) fn no_duplicates(context: &str, names: &[String]) -> Result<(), DefinitionError> {
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
pub(super) fn find_cycle(n: usize, successors: &Adjacency) -> Option<Vec<StepId>> {
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
pub(super) fn unreachable_steps(
    n: usize,
    entries: &[StepId],
    successors: &Adjacency,
) -> Vec<StepId> {
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
