//! A phased plan: a workflow whose steps are grouped into ordered phases
//! (design, development, testing, …).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::StepId;
use crate::planning::PlanningError;
use crate::workflow::WorkflowDef;

/// One phase of a [`Plan`]: a name and its steps, in declaration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    name: String,
    steps: Vec<StepId>,
}

impl Phase {
    /// The phase's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its steps, in the workflow's declaration order.
    pub fn steps(&self) -> &[StepId] {
        &self.steps
    }
}

/// A workflow and its steps grouped into phases, in order. Every step
/// belongs to exactly one phase, and no step depends on a step of a later
/// phase, so phases can be staffed and run one after the other.
///
/// A [`Decomposer`](super::Decomposer) produces one; [`TeamAssembler`](super::TeamAssembler)
/// staffs each phase; the workflow itself goes to a
/// [`WorkflowRun`](crate::workflow::WorkflowRun), an engine or
/// [`heft`](super::heft).
///
/// ```
/// use taskweave::planning::{Plan, PlanningError};
/// use taskweave::workflow::{StepDef, WorkflowDef};
///
/// let workflow = WorkflowDef::builder("feature", 1)
///     .step(StepDef::agent("spec").capabilities(["design"]))
///     .step(StepDef::agent("code").capabilities(["rust"]))
///     .step(StepDef::agent("review").capabilities(["rust"]))
///     .chain(["spec", "code", "review"])
///     .build()?;
/// let plan = Plan::new(workflow, [("design", vec!["spec"]), ("build", vec!["code", "review"])])?;
/// assert_eq!(plan.phases().len(), 2);
/// assert_eq!(plan.phases()[1].name(), "build");
/// let code = plan.workflow().step_id("code").unwrap();
/// assert_eq!(plan.phase_of(code), Some(1));
///
/// // A phase may not need the work of a later one.
/// let backwards = Plan::new(
///     (**plan.workflow()).clone(),
///     [("build", vec!["code", "review"]), ("design", vec!["spec"])],
/// );
/// assert!(matches!(backwards, Err(PlanningError::PhaseOrder { .. })));
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    workflow: Arc<WorkflowDef>,
    phases: Vec<Phase>,
    /// Phase index of each step, by step index.
    phase_of: Vec<usize>,
}

impl Plan {
    /// A plan of `workflow` with `phases` given as `(name, step keys)`, in
    /// order.
    ///
    /// # Errors
    ///
    /// [`PlanningError::EmptyPhase`] or [`PlanningError::DuplicatePhase`]
    /// for a phase without steps or a name given twice;
    /// [`PlanningError::UnknownPlanStep`] for a key the workflow lacks;
    /// [`PlanningError::StepListedTwice`] /
    /// [`PlanningError::StepWithoutPhase`] unless every step is in exactly
    /// one phase; [`PlanningError::PhaseOrder`] when a step depends on a
    /// step of a later phase.
    pub fn new<W, P, N, I, S>(workflow: W, phases: P) -> Result<Self, PlanningError>
    where
        W: Into<Arc<WorkflowDef>>,
        P: IntoIterator<Item = (N, I)>,
        N: Into<String>,
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let workflow = workflow.into();
        let mut phase_of: Vec<Option<usize>> = vec![None; workflow.len()];
        let mut names = BTreeSet::new();
        let mut built = Vec::new();
        for (index, (name, keys)) in phases.into_iter().enumerate() {
            let name: String = name.into();
            let mut steps = Vec::new();
            for key in keys {
                let key = key.as_ref();
                let step = workflow
                    .step_id(key)
                    .ok_or_else(|| PlanningError::UnknownPlanStep {
                        phase: name.clone(),
                        step: key.to_string(),
                    })?;
                let slot = &mut phase_of[step.get() as usize];
                if let Some(first) = *slot {
                    let first_phase = built.get(first).map_or(&name, |p: &Phase| &p.name);
                    return Err(PlanningError::StepListedTwice {
                        step: key.to_string(),
                        first_phase: first_phase.clone(),
                        second_phase: name,
                    });
                }
                *slot = Some(index);
                steps.push(step);
            }
            if steps.is_empty() {
                return Err(PlanningError::EmptyPhase { phase: name });
            }
            if !names.insert(name.clone()) {
                return Err(PlanningError::DuplicatePhase { phase: name });
            }
            steps.sort_unstable();
            built.push(Phase { name, steps });
        }
        let key = |step: StepId| {
            workflow
                .step(step)
                .map(|s| s.id.clone())
                .unwrap_or_default()
        };
        let phase_of = phase_of
            .into_iter()
            .enumerate()
            .map(|(i, phase)| {
                phase.ok_or_else(|| PlanningError::StepWithoutPhase {
                    step: key(StepId::new(i as u64)),
                })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        for (from, to, _) in workflow.edges() {
            let (early, late) = (phase_of[to.get() as usize], phase_of[from.get() as usize]);
            if late > early {
                return Err(PlanningError::PhaseOrder {
                    step: key(to),
                    phase: built[early].name.clone(),
                    depends_on: key(from),
                    later_phase: built[late].name.clone(),
                });
            }
        }
        Ok(Plan {
            workflow,
            phases: built,
            phase_of,
        })
    }

    /// A plan of one phase, named after the workflow, holding every step.
    pub fn single_phase(workflow: impl Into<Arc<WorkflowDef>>) -> Self {
        let workflow = workflow.into();
        let steps: Vec<StepId> = workflow.steps().map(|(id, _)| id).collect();
        Plan {
            phase_of: vec![0; steps.len()],
            phases: vec![Phase {
                name: workflow.name().to_string(),
                steps,
            }],
            workflow,
        }
    }

    /// The workflow.
    pub fn workflow(&self) -> &Arc<WorkflowDef> {
        &self.workflow
    }

    /// The phases, in order.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// The index of the phase holding `step`.
    pub fn phase_of(&self, step: StepId) -> Option<usize> {
        self.phase_of.get(step.get() as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::StepDef;

    fn diamond() -> WorkflowDef {
        WorkflowDef::builder("diamond", 1)
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::agent("c"))
            .step(StepDef::agent("d"))
            .edge("a", "b")
            .edge("a", "c")
            .edge("b", "d")
            .edge("c", "d")
            .build()
            .expect("valid")
    }

    #[test]
    fn every_step_in_exactly_one_phase() {
        let err = |phases: Vec<(&str, Vec<&str>)>| Plan::new(diamond(), phases).unwrap_err();
        assert_eq!(
            err(vec![("one", vec!["a", "b"]), ("two", vec!["b", "c", "d"])]),
            PlanningError::StepListedTwice {
                step: "b".into(),
                first_phase: "one".into(),
                second_phase: "two".into()
            }
        );
        assert_eq!(
            err(vec![("one", vec!["a", "b", "a"])]),
            PlanningError::StepListedTwice {
                step: "a".into(),
                first_phase: "one".into(),
                second_phase: "one".into()
            }
        );
        assert_eq!(
            err(vec![("one", vec!["a", "b", "c"])]),
            PlanningError::StepWithoutPhase { step: "d".into() }
        );
        assert_eq!(
            err(vec![("one", vec!["a", "x"])]),
            PlanningError::UnknownPlanStep {
                phase: "one".into(),
                step: "x".into()
            }
        );
        assert_eq!(
            err(vec![("one", vec!["a", "b", "c", "d"]), ("two", vec![])]),
            PlanningError::EmptyPhase {
                phase: "two".into()
            }
        );
        assert_eq!(
            err(vec![("one", vec!["a", "b"]), ("one", vec!["c", "d"])]),
            PlanningError::DuplicatePhase {
                phase: "one".into()
            }
        );
        assert_eq!(
            err(vec![("one", vec!["a", "b", "d"]), ("two", vec!["c"])]),
            PlanningError::PhaseOrder {
                step: "d".into(),
                phase: "one".into(),
                depends_on: "c".into(),
                later_phase: "two".into()
            }
        );
    }

    #[test]
    fn steps_within_a_phase_may_depend_on_each_other() -> Result<(), PlanningError> {
        let plan = Plan::new(diamond(), [("one", ["d", "a"]), ("two", ["b", "c"])]);
        assert!(matches!(plan, Err(PlanningError::PhaseOrder { .. })));
        let plan = Plan::new(
            diamond(),
            [("one", vec!["a"]), ("two", vec!["d", "c", "b"])],
        )?;
        let workflow = plan.workflow();
        let keys: Vec<&str> = plan.phases()[1]
            .steps()
            .iter()
            .map(|&s| workflow.step(s).map_or("", |s| s.id.as_str()))
            .collect();
        assert_eq!(keys, ["b", "c", "d"]);
        let single = Plan::single_phase(diamond());
        assert_eq!(single.phases().len(), 1);
        assert_eq!(single.phases()[0].name(), "diamond");
        assert_eq!(single.phases()[0].steps().len(), 4);
        Ok(())
    }
}
