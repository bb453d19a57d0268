//! Properties of team assembly on random capability matrices and phased
//! plans, checked against an independent model of coverage. Case counts
//! follow `PROPTEST_CASES`; inputs stay small.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::subsequence;
use taskweave::AgentId;
use taskweave::planning::{
    CapabilityMatrix, Plan, PlanAgent, PlanningError, Team, TeamAssembler, TeamObjective,
};
use taskweave::workflow::{StepDef, WorkflowDef};

const CAPABILITIES: [&str; 5] = ["a", "b", "c", "d", "e"];

fn capabilities(max: usize) -> impl Strategy<Value = Vec<&'static str>> {
    subsequence(CAPABILITIES.to_vec(), 0..=max)
}

fn agent(id: u64) -> impl Strategy<Value = PlanAgent> {
    (
        subsequence(CAPABILITIES.to_vec(), 1..=3),
        0u32..4,
        0u32..4,
        prop_oneof![Just(1.0), 0.0f64..5.0],
        prop_oneof![Just(1.0), 0.0f64..=1.0],
        prop_oneof![Just(1.0), 0.25f64..4.0],
    )
        .prop_map(move |(caps, capacity, load, cost, success, speed)| {
            PlanAgent::new(AgentId::new(id), caps)
                .capacity(capacity)
                .load(load)
                .cost(cost)
                .success_rate(success)
                .speed(speed)
        })
}

fn matrix() -> impl Strategy<Value = CapabilityMatrix> {
    (0usize..9)
        .prop_flat_map(|n| {
            // Ids out of matrix order, so order and id differ.
            (0..n as u64)
                .map(|i| agent(i * 7 % 11 + 1))
                .collect::<Vec<_>>()
        })
        .prop_map(|agents| CapabilityMatrix::new(agents).expect("valid agents"))
}

/// A chained workflow of 1–9 steps cut into contiguous phases.
fn plan() -> impl Strategy<Value = Plan> {
    let step = (
        prop_oneof![2 => capabilities(1), 1 => capabilities(2)],
        proptest::option::of((1u64..20).prop_map(Duration::from_secs)),
    );
    (
        proptest::collection::vec(step, 1..10),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(steps, cuts, more)| {
            // A cut after about one step in four.
            let cuts = cuts & more;
            let keys: Vec<String> = (0..steps.len()).map(|i| format!("s{i}")).collect();
            let mut builder = WorkflowDef::builder("random", 1);
            for (key, (caps, duration)) in keys.iter().zip(&steps) {
                let mut def = StepDef::agent(key.as_str()).capabilities(caps.iter().copied());
                if let Some(duration) = duration {
                    def = def.estimated_duration(*duration);
                }
                builder = builder.step(def);
            }
            let workflow = builder.chain(keys.clone()).build().expect("a chain");
            let mut phases: Vec<(String, Vec<String>)> = Vec::new();
            for (i, key) in keys.into_iter().enumerate() {
                match phases.last_mut() {
                    Some((_, phase)) if cuts & (1 << i) == 0 => phase.push(key),
                    _ => phases.push((format!("phase{}", phases.len()), vec![key])),
                }
            }
            Plan::new(workflow, phases).expect("contiguous phases")
        })
}

fn assembler() -> impl Strategy<Value = TeamAssembler> {
    (
        prop_oneof![
            Just(TeamObjective::FewestAgents),
            Just(TeamObjective::Cheapest)
        ],
        prop_oneof![Just(0.5), Just(0.0), Just(1.0), 0.0f64..=1.0],
        prop_oneof![Just(1.0), 0.0f64..3.0],
        prop_oneof![Just(1.0), 0.0f64..3.0],
    )
        .prop_map(|(objective, continuity, load, performance)| {
            TeamAssembler::new()
                .with_objective(objective)
                .with_continuity(continuity)
                .and_then(|a| a.with_load_weight(load))
                .and_then(|a| a.with_performance_weight(performance))
                .expect("valid settings")
        })
}

/// The model of a step: its key and capabilities.
struct ModelStep<'a> {
    key: &'a str,
    caps: &'a [String],
}

fn phase_steps(plan: &Plan, phase: usize) -> Vec<(taskweave::StepId, ModelStep<'_>)> {
    plan.phases()[phase]
        .steps()
        .iter()
        .map(|&id| {
            let def = plan.workflow().step(id).expect("step of the plan");
            (
                id,
                ModelStep {
                    key: &def.id,
                    caps: &def.capabilities,
                },
            )
        })
        .collect()
}

fn can_do(agent: &PlanAgent, step: &ModelStep<'_>) -> bool {
    step.caps.iter().all(|c| agent.capabilities.contains(c))
}

/// The error the model expects for a phase, if any.
fn expected_error(plan: &Plan, phase: usize, matrix: &CapabilityMatrix) -> Option<PlanningError> {
    let known: BTreeSet<&str> = matrix
        .agents()
        .iter()
        .flat_map(|a| a.capabilities.iter().map(String::as_str))
        .collect();
    let mut capabilities = BTreeSet::new();
    let mut combinations = BTreeSet::new();
    let mut steps = Vec::new();
    for (_, step) in phase_steps(plan, phase) {
        if matrix.agents().iter().any(|a| can_do(a, &step)) {
            continue;
        }
        steps.push(step.key.to_string());
        let absent: Vec<String> = step
            .caps
            .iter()
            .filter(|c| !known.contains(c.as_str()))
            .cloned()
            .collect();
        if absent.is_empty() {
            let set: BTreeSet<String> = step.caps.iter().cloned().collect();
            combinations.insert(set.into_iter().collect::<Vec<_>>());
        } else {
            capabilities.extend(absent);
        }
    }
    (!steps.is_empty()).then(|| PlanningError::UncoveredCapabilities {
        phase: plan.phases()[phase].name().to_string(),
        capabilities: capabilities.into_iter().collect(),
        combinations: combinations.into_iter().collect(),
        steps,
    })
}

/// Checks one team against the model.
fn check_team(
    plan: &Plan,
    phase: usize,
    matrix: &CapabilityMatrix,
    team: &Team,
) -> Result<(), TestCaseError> {
    let steps = phase_steps(plan, phase);
    prop_assert_eq!(team.phase(), plan.phases()[phase].name());
    prop_assert_eq!(team.phase_index(), phase);

    // Members: distinct, in the matrix, in matrix order.
    let positions: Vec<usize> = team
        .members()
        .iter()
        .map(|&m| matrix.position(m).expect("member in the matrix"))
        .collect();
    prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let member = |id: AgentId| matrix.get(id).expect("member in the matrix");
    let cost: f64 = team.members().iter().map(|&m| member(m).cost).sum();
    prop_assert_eq!(team.cost(), cost);

    // Every step exactly once, to a member able to do it.
    let assigned: Vec<_> = team.assignments().iter().map(|&(s, _)| s).collect();
    let expected: Vec<_> = steps.iter().map(|&(s, _)| s).collect();
    prop_assert_eq!(assigned, expected);
    for (id, step) in &steps {
        let agent = team.assignment(*id).expect("assigned");
        prop_assert!(team.contains(agent));
        prop_assert!(
            can_do(member(agent), step),
            "{} cannot do {}",
            agent,
            step.key
        );
    }

    // Irredundant: each member is the only one able to do some step, so
    // removing it uncovers that step; hence each member has work.
    for &m in team.members() {
        let needed = steps.iter().any(|(_, step)| {
            team.members()
                .iter()
                .filter(|&&o| can_do(member(o), step))
                .eq([m].iter())
        });
        prop_assert!(needed, "member {} is redundant", m);
        prop_assert!(team.steps_of(m).next().is_some());
        prop_assert!(team.workload(m).is_some());
    }

    // No larger than the number of distinct requirement sets.
    let sets: BTreeSet<BTreeSet<&String>> = steps
        .iter()
        .map(|(_, step)| step.caps.iter().collect())
        .collect();
    prop_assert!(team.members().len() <= sets.len());

    // A member without a free slot does a step no agent with one can do.
    for &m in team.members() {
        let agent = member(m);
        if agent.load >= agent.capacity {
            let last_resort = team.steps_of(m).any(|s| {
                let (_, step) = steps.iter().find(|(id, _)| *id == s).expect("step");
                !matrix
                    .agents()
                    .iter()
                    .any(|a| a.load < a.capacity && can_do(a, step))
            });
            prop_assert!(last_resort, "saturated member {} was avoidable", m);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn teams_cover_every_step_irredundantly(
        matrix in matrix(),
        plan in plan(),
        assembler in assembler(),
    ) {
        let result = assembler.assemble(&plan, &matrix);
        // Assembling twice gives the same answer.
        prop_assert_eq!(&assembler.assemble(&plan, &matrix), &result);

        let first_failing = (0..plan.phases().len())
            .find_map(|p| expected_error(&plan, p, &matrix));
        match (result, first_failing) {
            (Err(err), Some(expected)) => prop_assert_eq!(err, expected),
            (Ok(teams), None) => {
                prop_assert_eq!(teams.len(), plan.phases().len());
                for (phase, team) in teams.iter().enumerate() {
                    check_team(&plan, phase, &matrix, team)?;
                    let previous = phase.checked_sub(1).map(|p| &teams[p]);
                    // One phase on its own, given the team before, agrees.
                    prop_assert_eq!(
                        &assembler.assemble_phase(&plan, phase, &matrix, previous)?,
                        team
                    );
                    if let Some(previous) = previous {
                        let change = team.changes_from(previous);
                        let now: BTreeSet<_> = change.joined.iter().chain(&change.kept).collect();
                        let before: BTreeSet<_> = change.left.iter().chain(&change.kept).collect();
                        prop_assert_eq!(now, team.members().iter().collect());
                        prop_assert_eq!(before, previous.members().iter().collect());
                        for list in [&change.joined, &change.left, &change.kept] {
                            prop_assert!(list.windows(2).all(|w| w[0] < w[1]));
                        }
                    }
                }
            }
            (result, expected) => {
                prop_assert!(false, "got {:?}, the model expects {:?}", result, expected);
            }
        }
    }

    #[test]
    fn restructuring_after_an_agent_leaves(
        matrix in matrix(),
        plan in plan(),
        assembler in assembler(),
        leaver in 0usize..7,
    ) {
        let Ok(teams) = assembler.assemble(&plan, &matrix) else {
            return Ok(());
        };
        let Some(gone) = matrix.agents().get(leaver).map(|a| a.id) else {
            return Ok(());
        };
        let rest = CapabilityMatrix::new(
            matrix.agents().iter().filter(|a| a.id != gone).cloned(),
        )?;
        for (phase, team) in teams.iter().enumerate() {
            match assembler.assemble_phase(&plan, phase, &rest, Some(team)) {
                Ok(new) => {
                    check_team(&plan, phase, &rest, &new)?;
                    prop_assert!(!new.contains(gone));
                    let change = new.changes_from(team);
                    prop_assert_eq!(change.left.contains(&gone), team.contains(gone));
                }
                Err(err) => {
                    prop_assert_eq!(Some(err), expected_error(&plan, phase, &rest));
                }
            }
        }
        prop_assert_eq!(
            assembler.assemble_phase(&plan, plan.phases().len(), &rest, None),
            Err(PlanningError::PhaseOutOfRange {
                index: plan.phases().len(),
                phases: plan.phases().len(),
            })
        );
    }
}
