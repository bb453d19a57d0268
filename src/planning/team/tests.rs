use std::time::Duration;

use super::*;
use crate::workflow::{StepDef, WorkflowDef};

type Result<T = ()> = std::result::Result<T, crate::Error>;

fn id(n: u64) -> AgentId {
    AgentId::new(n)
}

/// A plan whose steps are `(key, capabilities)`, chained in order, cut
/// into phases of the given sizes named `p0`, `p1`, ….
fn plan(steps: &[(&str, &[&str])], sizes: &[usize]) -> Result<Plan> {
    plan_of(
        steps
            .iter()
            .map(|(key, caps)| StepDef::agent(*key).capabilities(caps.iter().copied()))
            .collect(),
        sizes,
    )
}

fn plan_of(steps: Vec<StepDef>, sizes: &[usize]) -> Result<Plan> {
    let keys: Vec<String> = steps.iter().map(|s| s.id.clone()).collect();
    let mut builder = WorkflowDef::builder("test", 1);
    for step in steps {
        builder = builder.step(step);
    }
    let workflow = builder.chain(keys.clone()).build()?;
    let mut phases = Vec::new();
    let mut rest = keys.as_slice();
    for (i, &size) in sizes.iter().enumerate() {
        let (head, tail) = rest.split_at(size.min(rest.len()));
        phases.push((format!("p{i}"), head.to_vec()));
        rest = tail;
    }
    Ok(Plan::new(workflow, phases)?)
}

fn matrix(agents: impl IntoIterator<Item = PlanAgent>) -> Result<CapabilityMatrix> {
    Ok(CapabilityMatrix::new(agents)?)
}

fn step(plan: &Plan, key: &str) -> StepId {
    plan.workflow()
        .step_id(key)
        .unwrap_or(StepId::new(u64::MAX))
}

#[test]
fn fewest_and_cheapest_choose_differently() -> Result {
    let plan = plan(&[("a", &["a"]), ("b", &["b"]), ("c", &["c"])], &[3])?;
    let matrix = matrix([
        PlanAgent::new(id(1), ["a", "b", "c"]).cost(10.0),
        PlanAgent::new(id(2), ["a"]),
        PlanAgent::new(id(3), ["b"]),
        PlanAgent::new(id(4), ["c"]),
    ])?;
    let fewest = TeamAssembler::new().assemble(&plan, &matrix)?;
    assert_eq!(fewest[0].members(), [id(1)]);
    assert_eq!(fewest[0].cost(), 10.0);
    let cheapest = TeamAssembler::new()
        .with_objective(TeamObjective::Cheapest)
        .assemble(&plan, &matrix)?;
    assert_eq!(cheapest[0].members(), [id(2), id(3), id(4)]);
    assert_eq!(cheapest[0].cost(), 3.0);
    assert_eq!(cheapest[0].assignment(step(&plan, "b")), Some(id(3)));
    Ok(())
}

#[test]
fn a_step_needs_one_member_with_its_whole_combination() -> Result {
    let plan = plan(&[("both", &["a", "b"])], &[1])?;
    let split = matrix([PlanAgent::new(id(1), ["a"]), PlanAgent::new(id(2), ["b"])])?;
    assert_eq!(
        TeamAssembler::new().assemble(&plan, &split),
        Err(PlanningError::UncoveredCapabilities {
            phase: "p0".into(),
            capabilities: vec![],
            combinations: vec![vec!["a".into(), "b".into()]],
            steps: vec!["both".into()],
        })
    );
    let whole = matrix([
        PlanAgent::new(id(1), ["a"]),
        PlanAgent::new(id(2), ["b"]),
        PlanAgent::new(id(3), ["b", "a", "c"]),
    ])?;
    assert_eq!(
        TeamAssembler::new().assemble(&plan, &whole)?[0].members(),
        [id(3)]
    );
    Ok(())
}

#[test]
fn the_error_names_every_uncovered_step_and_capability() -> Result {
    let plan = plan(
        &[
            ("ok", &["a"]),
            ("s1", &["a"]),
            ("s2", &["a", "z"]),
            ("s3", &["y"]),
            ("s4", &["a", "b"]),
            ("s5", &["b"]),
            ("s6", &["z", "y", "b"]),
            ("s7", &["b", "a"]),
        ],
        &[1, 7],
    )?;
    let matrix = matrix([PlanAgent::new(id(1), ["a"]), PlanAgent::new(id(2), ["b"])])?;
    let assembler = TeamAssembler::new();
    let expected = PlanningError::UncoveredCapabilities {
        phase: "p1".into(),
        capabilities: vec!["y".into(), "z".into()],
        combinations: vec![vec!["a".into(), "b".into()]],
        steps: ["s2", "s3", "s4", "s6", "s7"].map(String::from).to_vec(),
    };
    assert_eq!(assembler.assemble(&plan, &matrix), Err(expected.clone()));
    assert_eq!(
        assembler.assemble_phase(&plan, 1, &matrix, None),
        Err(expected)
    );
    // The first phase alone is fine.
    assert_eq!(
        assembler.assemble_phase(&plan, 0, &matrix, None)?.members(),
        [id(1)]
    );
    assert_eq!(
        assembler.assemble_phase(&plan, 2, &matrix, None),
        Err(PlanningError::PhaseOutOfRange {
            index: 2,
            phases: 2
        })
    );
    Ok(())
}

#[test]
fn an_empty_matrix_covers_nothing() -> Result {
    let plan = plan(&[("free", &[]), ("x", &["x"])], &[2])?;
    assert_eq!(
        TeamAssembler::new().assemble(&plan, &CapabilityMatrix::default()),
        Err(PlanningError::UncoveredCapabilities {
            phase: "p0".into(),
            capabilities: vec!["x".into()],
            combinations: vec![vec![]],
            steps: vec!["free".into(), "x".into()],
        })
    );
    // A step needing nothing is done by anyone.
    let one = matrix([PlanAgent::new(id(5), ["x"])])?;
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &one, None)?;
    assert_eq!(team.members(), [id(5)]);
    assert_eq!(team.steps_of(id(5)).count(), 2);
    Ok(())
}

#[test]
fn pruning_removes_a_member_others_make_redundant() -> Result {
    // The first agent covers two sets and is picked first (matrix order
    // breaks the tie), but the two after it cover its sets and the rest.
    let plan = plan(
        &[("a", &["a"]), ("b", &["b"]), ("c", &["c"]), ("d", &["d"])],
        &[4],
    )?;
    let matrix = matrix([
        PlanAgent::new(id(1), ["b", "c"]),
        PlanAgent::new(id(2), ["a", "b"]),
        PlanAgent::new(id(3), ["c", "d"]),
    ])?;
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &matrix, None)?;
    assert_eq!(team.members(), [id(2), id(3)]);
    assert!(!team.contains(id(1)));
    assert_eq!(team.workload(id(1)), None);
    Ok(())
}

#[test]
fn continuity_keeps_members_when_tied_and_lets_them_go_when_they_leave() -> Result {
    let plan = plan(&[("y", &["y"]), ("x", &["x"])], &[1, 1])?;
    let both = matrix([
        PlanAgent::new(id(1), ["x"]),
        PlanAgent::new(id(2), ["x", "y"]),
    ])?;
    let teams = TeamAssembler::new().assemble(&plan, &both)?;
    assert_eq!(teams[0].members(), [id(2)]);
    assert_eq!(teams[1].members(), [id(2)]);
    assert!(teams[1].changes_from(&teams[0]).is_unchanged());
    assert_eq!(teams[1].changes_from(&teams[0]).kept, [id(2)]);

    // Without continuity, the tie goes to the earlier agent of the matrix.
    let fresh = TeamAssembler::new().with_continuity(0.0)?;
    let teams_fresh = fresh.assemble(&plan, &both)?;
    assert_eq!(teams_fresh[1].members(), [id(1)]);

    // The same holds for cost: agent 2 costs 1.5 but is discounted by half.
    let pricey = matrix([
        PlanAgent::new(id(1), ["x"]),
        PlanAgent::new(id(2), ["x", "y"]).cost(1.5),
    ])?;
    let cheapest = TeamAssembler::new().with_objective(TeamObjective::Cheapest);
    assert_eq!(cheapest.assemble(&plan, &pricey)?[1].members(), [id(2)]);
    let change_pays = cheapest.with_continuity(0.25)?;
    assert_eq!(change_pays.assemble(&plan, &pricey)?[1].members(), [id(1)]);

    // Agent 2 leaves before the second phase: restructure it.
    let rest = matrix([PlanAgent::new(id(1), ["x"])])?;
    let team = TeamAssembler::new().assemble_phase(&plan, 1, &rest, Some(&teams[0]))?;
    assert_eq!(team.members(), [id(1)]);
    assert_eq!(team.phase(), "p1");
    assert_eq!(team.phase_index(), 1);
    assert_eq!(
        team.changes_from(&teams[0]),
        TeamChange {
            joined: vec![id(1)],
            left: vec![id(2)],
            kept: vec![],
        }
    );
    Ok(())
}

#[test]
fn load_and_performance_steer_the_choice() -> Result {
    let plan = plan(&[("x", &["x"])], &[1])?;
    let busy_first = matrix([
        PlanAgent::new(id(1), ["x"]).capacity(4).load(3),
        PlanAgent::new(id(2), ["x"]).capacity(4).load(1),
    ])?;
    let flaky_first = matrix([
        PlanAgent::new(id(1), ["x"]).success_rate(0.5),
        PlanAgent::new(id(2), ["x"]).success_rate(0.9),
    ])?;
    for objective in [TeamObjective::FewestAgents, TeamObjective::Cheapest] {
        let assembler = TeamAssembler::new().with_objective(objective);
        assert_eq!(
            assembler.assemble(&plan, &busy_first)?[0].members(),
            [id(2)]
        );
        assert_eq!(
            assembler.assemble(&plan, &flaky_first)?[0].members(),
            [id(2)]
        );
        let blind = assembler
            .with_load_weight(0.0)?
            .with_performance_weight(0.0)?;
        assert_eq!(blind.assemble(&plan, &busy_first)?[0].members(), [id(1)]);
        assert_eq!(blind.assemble(&plan, &flaky_first)?[0].members(), [id(1)]);
    }
    // For the cheapest team, a busy agent's cost rises with its load:
    // 1 · (1 + 0.75) = 1.75 > 1.5.
    let pricier = matrix([
        PlanAgent::new(id(1), ["x"]).capacity(4).load(3),
        PlanAgent::new(id(2), ["x"]).capacity(2).cost(1.5),
    ])?;
    let cheapest = TeamAssembler::new().with_objective(TeamObjective::Cheapest);
    assert_eq!(cheapest.assemble(&plan, &pricier)?[0].members(), [id(2)]);
    let blind = cheapest.with_load_weight(0.0)?;
    assert_eq!(blind.assemble(&plan, &pricier)?[0].members(), [id(1)]);
    Ok(())
}

#[test]
fn saturated_agents_are_a_last_resort() -> Result {
    let plan = plan(&[("x", &["x"]), ("y", &["y"])], &[2])?;
    // Agent 1 covers both steps but has no free slot.
    let matrix = matrix([
        PlanAgent::new(id(1), ["x", "y"]).capacity(2).load(2),
        PlanAgent::new(id(2), ["x"]),
        PlanAgent::new(id(3), ["y"]).capacity(0),
    ])?;
    let team = TeamAssembler::new()
        .with_load_weight(0.0)?
        .assemble_phase(&plan, 0, &matrix, None)?;
    // Agent 2 takes `x`. Agent 3 has capacity 0, so it is saturated too:
    // `y` needs a saturated agent, agent 1 is the earlier one, and since
    // it covers `x` as well, agent 2 is pruned.
    assert_eq!(team.members(), [id(1)]);
    let free = CapabilityMatrix::new(
        matrix
            .agents()
            .iter()
            .cloned()
            .map(|a| if a.id == id(3) { a.capacity(1) } else { a }),
    )?;
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &free, None)?;
    assert_eq!(team.members(), [id(2), id(3)]);
    Ok(())
}

#[test]
fn steps_are_spread_over_equal_members() -> Result {
    let plan = plan(
        &[
            ("xa", &["x", "a"]),
            ("xb", &["x", "b"]),
            ("x1", &["x"]),
            ("x2", &["x"]),
            ("x3", &["x"]),
            ("x4", &["x"]),
        ],
        &[6],
    )?;
    let twins = matrix([
        PlanAgent::new(id(1), ["x", "a"]),
        PlanAgent::new(id(2), ["x", "b"]),
    ])?;
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &twins, None)?;
    assert_eq!(team.members(), [id(1), id(2)]);
    assert_eq!(team.steps_of(id(1)).count(), 3);
    assert_eq!(team.steps_of(id(2)).count(), 3);
    assert_eq!(team.workload(id(1)), Some(Duration::from_secs(3)));
    assert_eq!(team.assignment(step(&plan, "xa")), Some(id(1)));
    assert_eq!(team.assignment(step(&plan, "xb")), Some(id(2)));

    // A member twice as fast takes twice the work.
    let fast = matrix([
        PlanAgent::new(id(1), ["x", "a"]).speed(2.0),
        PlanAgent::new(id(2), ["x", "b"]),
    ])?;
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &fast, None)?;
    assert_eq!(team.steps_of(id(1)).count(), 4);
    assert_eq!(team.steps_of(id(2)).count(), 2);
    Ok(())
}

#[test]
fn longest_steps_are_placed_first() -> Result {
    let secs = Duration::from_secs;
    let steps = vec![
        StepDef::agent("a")
            .capabilities(["x", "a"])
            .estimated_duration(secs(1)),
        StepDef::agent("b")
            .capabilities(["x", "b"])
            .estimated_duration(secs(1)),
        StepDef::agent("short1")
            .capabilities(["x"])
            .estimated_duration(secs(2)),
        StepDef::agent("short2")
            .capabilities(["x"])
            .estimated_duration(secs(2)),
        StepDef::agent("long")
            .capabilities(["x"])
            .estimated_duration(secs(4)),
    ];
    let plan = plan_of(steps, &[5])?;
    let twins = matrix([
        PlanAgent::new(id(1), ["x", "a"]),
        PlanAgent::new(id(2), ["x", "b"]),
    ])?;
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &twins, None)?;
    // long → 1; short1 → 2; short2 → 2 (2 + 2 ≤ 4); a → 1; b → 2.
    assert_eq!(team.assignment(step(&plan, "long")), Some(id(1)));
    assert_eq!(team.steps_of(id(2)).count(), 3);
    assert_eq!(team.workload(id(1)), Some(secs(5)));
    assert_eq!(team.workload(id(2)), Some(secs(5)));
    // Existing load counts as steps of the phase's mean work.
    let loaded = matrix([
        PlanAgent::new(id(1), ["x", "a"]).capacity(3).load(2),
        PlanAgent::new(id(2), ["x", "b"]).capacity(3),
    ])?;
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &loaded, None)?;
    assert!(team.workload(id(1)) < team.workload(id(2)));
    Ok(())
}

#[test]
fn settings_are_validated() {
    let invalid = |r: std::result::Result<TeamAssembler, PlanningError>| match r {
        Err(PlanningError::InvalidTeamSetting { setting, .. }) => setting,
        other => panic!("expected InvalidTeamSetting, got {other:?}"),
    };
    let a = TeamAssembler::new();
    assert_eq!(invalid(a.with_continuity(1.5)), "continuity");
    assert_eq!(invalid(a.with_continuity(-0.1)), "continuity");
    assert_eq!(invalid(a.with_continuity(f64::NAN)), "continuity");
    assert_eq!(invalid(a.with_load_weight(-1.0)), "load_weight");
    assert_eq!(invalid(a.with_load_weight(f64::INFINITY)), "load_weight");
    assert_eq!(
        invalid(a.with_performance_weight(f64::NAN)),
        "performance_weight"
    );
    let ok = a
        .with_continuity(1.0)
        .and_then(|a| a.with_load_weight(0.0))
        .and_then(|a| a.with_performance_weight(3.0))
        .map(|a| a.with_default_duration(Duration::from_millis(5)));
    assert_eq!(
        ok.map(|a| (
            a.continuity(),
            a.load_weight(),
            a.performance_weight(),
            a.default_duration(),
            a.objective()
        )),
        Ok((
            1.0,
            0.0,
            3.0,
            Duration::from_millis(5),
            TeamObjective::FewestAgents
        ))
    );
}

#[test]
fn extreme_numbers_do_not_panic() -> Result {
    let steps = vec![
        StepDef::agent("a")
            .capabilities(["x"])
            .estimated_duration(Duration::MAX),
        StepDef::agent("b").capabilities(["x"]),
    ];
    let plan = plan_of(steps, &[2])?;
    let matrix = matrix([
        PlanAgent::new(id(1), ["x"])
            .speed(f64::MIN_POSITIVE)
            .capacity(u32::MAX)
            .load(u32::MAX)
            .cost(f64::MAX),
        PlanAgent::new(id(2), ["x"]).speed(f64::MAX).cost(0.0),
    ])?;
    for objective in [TeamObjective::FewestAgents, TeamObjective::Cheapest] {
        let assembler = TeamAssembler::new()
            .with_objective(objective)
            .with_load_weight(f64::MAX)?
            .with_performance_weight(f64::MAX)?;
        let teams = assembler.assemble(&plan, &matrix)?;
        assert_eq!(teams[0].members(), [id(2)]);
        let slow = CapabilityMatrix::new([matrix.agents()[0].clone()])?;
        let team = assembler.assemble_phase(&plan, 0, &slow, Some(&teams[0]))?;
        assert_eq!(team.workload(id(1)), Some(Duration::MAX));
    }
    Ok(())
}

#[test]
fn assembly_is_deterministic() -> Result {
    let plan = plan(
        &[
            ("s0", &["a"]),
            ("s1", &["b", "c"]),
            ("s2", &["a", "c"]),
            ("s3", &["b"]),
            ("s4", &["c"]),
            ("s5", &["a", "b"]),
        ],
        &[2, 2, 2],
    )?;
    let matrix = matrix([
        PlanAgent::new(id(4), ["a", "c"]).cost(2.0),
        PlanAgent::new(id(1), ["a", "b"]).cost(2.0),
        PlanAgent::new(id(3), ["b", "c"]).cost(2.0),
        PlanAgent::new(id(2), ["a", "b", "c"]).cost(5.0),
    ])?;
    for objective in [TeamObjective::FewestAgents, TeamObjective::Cheapest] {
        let assembler = TeamAssembler::new().with_objective(objective);
        let first = assembler.assemble(&plan, &matrix)?;
        for _ in 0..5 {
            assert_eq!(assembler.assemble(&plan, &matrix)?, first);
        }
        for (i, team) in first.iter().enumerate() {
            let previous = i.checked_sub(1).and_then(|p| first.get(p));
            assert_eq!(
                &assembler.assemble_phase(&plan, i, &matrix, previous)?,
                team
            );
        }
    }
    Ok(())
}
