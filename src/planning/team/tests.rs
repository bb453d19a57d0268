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
    // Three steps at 10 a task.
    assert_eq!(fewest[0].cost(), 30.0);
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
        assembler.assemble_phase(&plan, 1, &matrix, &[]),
        Err(expected)
    );
    // The first phase alone is fine.
    assert_eq!(
        assembler.assemble_phase(&plan, 0, &matrix, &[])?.members(),
        [id(1)]
    );
    assert_eq!(
        assembler.assemble_phase(&plan, 2, &matrix, &[]),
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
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &one, &[])?;
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
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &matrix, &[])?;
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
    let team = TeamAssembler::new().assemble_phase(&plan, 1, &rest, teams[0].members())?;
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
    let team =
        TeamAssembler::new()
            .with_load_weight(0.0)?
            .assemble_phase(&plan, 0, &matrix, &[])?;
    // Agent 2 takes `x`. Agent 3 has capacity 0, so it is saturated too:
    // `y` needs a saturated agent, and agent 1 is the earlier one. It
    // covers `x` as well, but a free member keeps the steps it can do.
    assert_eq!(team.members(), [id(1), id(2)]);
    assert_eq!(team.assignment(step(&plan, "x")), Some(id(2)));
    assert_eq!(team.assignment(step(&plan, "y")), Some(id(1)));
    let free = CapabilityMatrix::new(
        matrix
            .agents()
            .iter()
            .cloned()
            .map(|a| if a.id == id(3) { a.capacity(1) } else { a }),
    )?;
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &free, &[])?;
    assert_eq!(team.members(), [id(2), id(3)]);
    Ok(())
}

#[test]
fn a_saturated_member_does_not_take_what_a_free_one_can_do() -> Result {
    // The reviewer's case: greedy takes agent 1 for `a` and agent 2 for
    // `b`; pruning used to drop agent 1 (agent 2 covers `a` too), leaving
    // all four steps to the saturated agent.
    let plan = plan(
        &[
            ("a1", &["a"]),
            ("a2", &["a"]),
            ("a3", &["a"]),
            ("b", &["b"]),
        ],
        &[4],
    )?;
    let matrix = matrix([
        PlanAgent::new(id(1), ["a"]).capacity(4),
        PlanAgent::new(id(2), ["a", "b"]).capacity(2).load(2),
    ])?;
    for objective in [TeamObjective::FewestAgents, TeamObjective::Cheapest] {
        let team = TeamAssembler::new()
            .with_objective(objective)
            .assemble_phase(&plan, 0, &matrix, &[])?;
        assert_eq!(team.members(), [id(1), id(2)]);
        assert_eq!(
            team.steps_of(id(1)).collect::<Vec<_>>(),
            ["a1", "a2", "a3"].map(|k| step(&plan, k))
        );
        assert_eq!(team.steps_of(id(2)).collect::<Vec<_>>(), [step(&plan, "b")]);
    }
    // With no step only it can do, the saturated agent is pruned.
    let only_a = self::plan(&[("a1", &["a"]), ("a2", &["a"])], &[2])?;
    let team = TeamAssembler::new().assemble_phase(&only_a, 0, &matrix, &[])?;
    assert_eq!(team.members(), [id(1)]);
    Ok(())
}

#[test]
fn only_agent_steps_are_staffed() -> Result {
    let child = std::sync::Arc::new(
        WorkflowDef::builder("child", 1)
            .step(StepDef::agent("inner").capabilities(["nobody"]))
            .build()?,
    );
    // Non-agent steps list capabilities no agent has: they are ignored.
    let steps = vec![
        StepDef::local("prepare").capabilities(["nobody"]),
        StepDef::agent("work").capabilities(["x"]),
        StepDef::wait("approval", ["approved"]).capabilities(["nobody"]),
        StepDef::sub_workflow("nested", child).capabilities(["nobody"]),
        StepDef::local("report"),
    ];
    let plan = plan_of(steps, &[3, 2])?;
    let matrix = matrix([
        PlanAgent::new(id(1), ["x"]).cost(2.0),
        PlanAgent::new(id(2), ["y"]),
    ])?;
    for objective in [TeamObjective::FewestAgents, TeamObjective::Cheapest] {
        let teams = TeamAssembler::new()
            .with_objective(objective)
            .assemble(&plan, &matrix)?;
        assert_eq!(teams[0].members(), [id(1)]);
        assert_eq!(teams[0].assignments(), [(step(&plan, "work"), id(1))]);
        assert_eq!(teams[0].assignment(step(&plan, "prepare")), None);
        assert_eq!(teams[0].assignment(step(&plan, "approval")), None);
        assert_eq!(teams[0].cost(), 2.0);
        // A phase with no agent step: an empty team, not an error.
        assert_eq!(teams[1].phase(), "p1");
        assert!(teams[1].members().is_empty());
        assert!(teams[1].assignments().is_empty());
        assert_eq!(teams[1].cost(), 0.0);
        assert!(teams[1].changes_from(&teams[0]).left == [id(1)]);
    }
    // Even with no agent at all.
    let empty = TeamAssembler::new().assemble_phase(&plan, 1, &CapabilityMatrix::default(), &[])?;
    assert!(empty.members().is_empty());
    assert_eq!(
        TeamAssembler::new().assemble(&plan, &CapabilityMatrix::default()),
        Err(PlanningError::UncoveredCapabilities {
            phase: "p0".into(),
            capabilities: vec!["x".into()],
            combinations: vec![],
            steps: vec!["work".into()],
        })
    );
    Ok(())
}

#[test]
fn cost_is_per_task_and_cheapest_minimizes_it() -> Result {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let steps = vec![
        StepDef::agent("a1")
            .capabilities(["a"])
            .estimated_duration(hours(10)),
        StepDef::agent("a2")
            .capabilities(["a"])
            .estimated_duration(hours(10)),
        StepDef::agent("b")
            .capabilities(["b"])
            .estimated_duration(hours(1)),
    ];
    let plan = plan_of(steps, &[3])?;
    let pair = matrix([
        PlanAgent::new(id(1), ["a"]).cost(0.1),
        PlanAgent::new(id(2), ["a", "b"]).cost(5.0),
    ])?;
    let cheapest = TeamAssembler::new()
        .with_objective(TeamObjective::Cheapest)
        .assemble_phase(&plan, 0, &pair, &[])?;
    // Agent 2 alone would cost 15; agent 1 does the `a` steps at 0.1.
    assert_eq!(cheapest.members(), [id(1), id(2)]);
    assert_eq!(cheapest.steps_of(id(1)).count(), 2);
    assert_eq!(cheapest.assignment(step(&plan, "b")), Some(id(2)));
    // 0.1 + 0.1 + 5, summed by step.
    assert_eq!(cheapest.cost(), 5.2);
    let fewest = TeamAssembler::new().assemble_phase(&plan, 0, &pair, &[])?;
    assert_eq!(fewest.members(), [id(2)]);
    assert_eq!(fewest.cost(), 15.0);

    // Pruning under Cheapest keeps cost from rising, FewestAgents does
    // not care: agent 3 covers everything at 1 a task, agent 1 does `a`
    // at 0.5.
    let three = matrix([
        PlanAgent::new(id(1), ["a"]).cost(0.5),
        PlanAgent::new(id(2), ["b"]).cost(0.5),
        PlanAgent::new(id(3), ["a", "b"]).cost(1.0),
    ])?;
    let cheapest = TeamAssembler::new()
        .with_objective(TeamObjective::Cheapest)
        .assemble_phase(&plan, 0, &three, &[])?;
    assert_eq!(cheapest.members(), [id(1), id(2)]);
    assert_eq!(cheapest.cost(), 1.5);
    // The load factor raises a task's price: agent 1, half busy, now
    // costs 0.5 · 1.5 = 0.75 a task, still under agent 3's 1.
    let busy = matrix([
        PlanAgent::new(id(1), ["a"]).cost(0.5).capacity(2).load(1),
        PlanAgent::new(id(3), ["a", "b"]).cost(1.0),
    ])?;
    let team = TeamAssembler::new()
        .with_objective(TeamObjective::Cheapest)
        .assemble_phase(&plan, 0, &busy, &[])?;
    assert_eq!(team.members(), [id(1), id(3)]);
    assert_eq!(team.cost(), 2.0);
    let team = TeamAssembler::new()
        .with_objective(TeamObjective::Cheapest)
        .with_load_weight(3.0)?
        .assemble_phase(&plan, 0, &busy, &[])?;
    assert_eq!(team.members(), [id(3)]);
    assert_eq!(team.cost(), 3.0);
    Ok(())
}

#[test]
fn the_previous_staff_is_any_list_of_ids() -> Result {
    let plan = plan(&[("x", &["x"])], &[1])?;
    let matrix = matrix([PlanAgent::new(id(1), ["x"]), PlanAgent::new(id(2), ["x"])])?;
    let assembler = TeamAssembler::new();
    assert_eq!(
        assembler.assemble_phase(&plan, 0, &matrix, &[])?.members(),
        [id(1)]
    );
    // A host's own list, with an id the matrix lacks.
    let staff = [id(9), id(2)];
    assert_eq!(
        assembler
            .assemble_phase(&plan, 0, &matrix, &staff)?
            .members(),
        [id(2)]
    );
    // Continuity 0 ignores it.
    let fresh = assembler.with_continuity(0.0)?;
    assert_eq!(
        fresh.assemble_phase(&plan, 0, &matrix, &staff)?.members(),
        [id(1)]
    );
    Ok(())
}

#[test]
fn with_full_continuity_the_previous_staff_wins_ties_with_free_agents() -> Result {
    // Agent 1 costs nothing and could do both steps; agents 2 and 3 are
    // the previous staff, which full continuity also makes free.
    let plan = plan(&[("x", &["x"]), ("y", &["y"])], &[2])?;
    let matrix = matrix([
        PlanAgent::new(id(1), ["x", "y"]).cost(0.0),
        PlanAgent::new(id(2), ["x"]).cost(4.0),
        PlanAgent::new(id(3), ["y"]).cost(4.0),
    ])?;
    let staff = [id(2), id(3)];
    for objective in [TeamObjective::FewestAgents, TeamObjective::Cheapest] {
        let assembler = TeamAssembler::new()
            .with_objective(objective)
            .with_continuity(1.0)?;
        let team = assembler.assemble_phase(&plan, 0, &matrix, &staff)?;
        assert_eq!(team.members(), [id(2), id(3)]);
    }
    // Short of full continuity, agent 1 wins when it pays: for the fewest
    // agents once two discounted members count more than one (2 · (1 −
    // 0.4) > 1); for the cheapest as soon as the staff costs anything.
    for (objective, continuity) in [
        (TeamObjective::FewestAgents, 0.4),
        (TeamObjective::Cheapest, 0.99),
    ] {
        let assembler = TeamAssembler::new()
            .with_objective(objective)
            .with_continuity(continuity)?;
        let team = assembler.assemble_phase(&plan, 0, &matrix, &staff)?;
        assert_eq!(team.members(), [id(1)], "{objective:?}");
    }
    Ok(())
}

#[test]
fn pruning_tries_the_higher_quality_factor_first() -> Result {
    // Agents 1 and 2 are the previous staff (price 0.2 each), agent 3
    // covers three sets at full price. Greedy takes 1 and 2 (the order
    // depends on `q`), then 3 for `d`. Then 1 and 2 are each redundant,
    // but not both: pruning removes the one with the higher `q`, or the
    // later one in the matrix when the factors tie.
    let plan = plan(
        &[("a", &["a"]), ("b", &["b"]), ("c", &["c"]), ("d", &["d"])],
        &[4],
    )?;
    let assembler = TeamAssembler::new().with_continuity(0.8)?;
    let staff = [id(1), id(2)];
    let agents = |load_of_1| {
        matrix([
            PlanAgent::new(id(1), ["a", "b"])
                .capacity(4)
                .load(load_of_1),
            PlanAgent::new(id(2), ["a", "c"]).capacity(4),
            PlanAgent::new(id(3), ["b", "c", "d"]).capacity(4),
        ])
    };
    let tied = assembler.assemble_phase(&plan, 0, &agents(0)?, &staff)?;
    assert_eq!(tied.members(), [id(1), id(3)]);
    let busier = assembler.assemble_phase(&plan, 0, &agents(1)?, &staff)?;
    assert_eq!(busier.members(), [id(2), id(3)]);
    Ok(())
}

#[test]
fn overflowing_prices_stay_ordered() -> Result {
    // q overflows to +inf with these weights; a cost of 0 (or a full
    // continuity discount) times that would be NaN without the cap.
    let plan = plan(&[("x", &["x"])], &[1])?;
    let matrix = matrix([
        PlanAgent::new(id(1), ["x"]).cost(1.0),
        PlanAgent::new(id(2), ["x"])
            .cost(0.0)
            .success_rate(0.0)
            .capacity(2)
            .load(1),
    ])?;
    let assembler = TeamAssembler::new()
        .with_objective(TeamObjective::Cheapest)
        .with_load_weight(f64::MAX)?
        .with_performance_weight(f64::MAX)?;
    // Free of charge is free of charge, however unreliable.
    let team = assembler.assemble_phase(&plan, 0, &matrix, &[])?;
    assert_eq!(team.members(), [id(2)]);
    assert_eq!(team.cost(), 0.0);
    let priced = CapabilityMatrix::new(
        matrix
            .agents()
            .iter()
            .cloned()
            .map(|a| if a.id == id(2) { a.cost(1.0) } else { a }),
    )?;
    let team = assembler.assemble_phase(&plan, 0, &priced, &[])?;
    assert_eq!(team.members(), [id(1)]);
    // A full discount takes the unreliable agent back.
    let team = assembler
        .with_continuity(1.0)?
        .assemble_phase(&plan, 0, &priced, &[id(2)])?;
    assert_eq!(team.members(), [id(2)]);
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
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &twins, &[])?;
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
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &fast, &[])?;
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
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &twins, &[])?;
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
    let team = TeamAssembler::new().assemble_phase(&plan, 0, &loaded, &[])?;
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
        let team = assembler.assemble_phase(&plan, 0, &slow, teams[0].members())?;
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
            let previous = i
                .checked_sub(1)
                .and_then(|p| first.get(p))
                .map_or(&[][..], Team::members);
            assert_eq!(
                &assembler.assemble_phase(&plan, i, &matrix, previous)?,
                team
            );
        }
    }
    Ok(())
}
