//! A research team of agents takes on "comprehensive market analysis".
//!
//! 1. **Decompose** the goal with the built-in templates into a phased
//!    workflow (scoping → research → analysis → synthesis).
//! 2. **Assemble** a team per phase from the pool's capability matrix, then
//!    restructure the teams from the analysis phase on when one agent
//!    leaves.
//! 3. **Plan** the workflow with HEFT on the remaining pool: print the plan
//!    as a Mermaid Gantt chart, its makespan and critical path, and the
//!    plan as the task tensor `T[tasks, agents, 4]` (shape and a slice).
//! 4. **Run** it: each ready step is auctioned (contract net, second price)
//!    among the members of its phase's team who can do it; the winner works
//!    on a virtual clock, one step at a time. The run's timeline is printed
//!    as a Gantt chart too.
//!
//! The example checks that the run succeeded, that every step went to a
//! capable member of its phase's team, and that the agent who left did no
//! work after leaving; it exits non-zero otherwise.
//!
//! `cargo run --release --example research_team`

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use taskweave::agent::{AgentProfile, Outcome, Registry};
use taskweave::coordination::{Announcement, Auction, Bid, Pricing};
use taskweave::planning::{
    CapabilityMatrix, Decomposer, PlanningError, TaskTensor, Team, TeamAssembler,
    TemplateDecomposer, TensorOptions, heft,
};
use taskweave::workflow::{RunAction, RunOutcome, StepOutput, WorkflowRun, mermaid_gantt};
use taskweave::{AgentId, AttemptToken, Instant, TaskRequirements, WorkflowId};

const GOAL: &str = "Comprehensive market analysis of home EV chargers";

/// One agent of the pool.
struct Member {
    name: &'static str,
    capabilities: &'static [&'static str],
    /// Price of one task: the phase cost team assembly minimises; in
    /// the auctions it bids this price per hour the task takes it.
    cost: f64,
    speed: f64,
    /// Past tasks that succeeded and failed.
    record: (u32, u32),
}

/// The pool; agent `i + 1` is `POOL[i]`.
const POOL: [Member; 8] = [
    Member {
        name: "ada",
        capabilities: &["strategy", "writing"],
        cost: 3.0,
        speed: 1.5,
        record: (40, 2),
    },
    Member {
        name: "ben",
        capabilities: &["research", "statistics"],
        cost: 2.0,
        speed: 1.0,
        record: (30, 3),
    },
    Member {
        name: "cai",
        capabilities: &["research"],
        cost: 1.0,
        speed: 0.8,
        record: (12, 4),
    },
    Member {
        name: "dee",
        capabilities: &["survey", "research"],
        cost: 1.5,
        speed: 1.2,
        record: (25, 1),
    },
    Member {
        name: "eve",
        capabilities: &["statistics", "data-analysis"],
        cost: 2.5,
        speed: 2.0,
        record: (50, 1),
    },
    Member {
        name: "fay",
        capabilities: &["legal"],
        cost: 4.0,
        speed: 1.0,
        record: (8, 0),
    },
    Member {
        name: "gus",
        capabilities: &["writing"],
        cost: 1.2,
        speed: 1.0,
        record: (20, 5),
    },
    Member {
        name: "hal",
        capabilities: &["strategy", "statistics", "data-analysis"],
        cost: 3.5,
        speed: 1.0,
        record: (15, 1),
    },
];

/// How long the auction for one step stays open.
const BIDDING: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("research_team: a check failed");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("research_team: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The registry's online agents as planners see them, with their speeds.
fn matrix_of(registry: &Registry) -> Result<CapabilityMatrix, PlanningError> {
    let mut matrix = CapabilityMatrix::from_registry(registry);
    for agent in matrix.ids() {
        matrix.set_speed(agent, POOL[(agent.get() - 1) as usize].speed)?;
    }
    Ok(matrix)
}

fn hours(duration: Duration) -> f64 {
    duration.as_secs_f64() / 3600.0
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let mut ok = true;
    let name = |agent: AgentId| POOL[(agent.get() - 1) as usize].name;

    // 1. Decompose.
    let plan = TemplateDecomposer::builtin().decompose(GOAL)?;
    let workflow = Arc::clone(plan.workflow());
    println!("# Goal: {GOAL}");
    println!(
        "template {:?}: {} steps in {} phases",
        workflow.name(),
        workflow.len(),
        plan.phases().len()
    );
    for phase in plan.phases() {
        let steps: Vec<&str> = phase
            .steps()
            .iter()
            .filter_map(|&s| workflow.step(s).map(|s| s.id.as_str()))
            .collect();
        println!("  {:<10} {}", phase.name(), steps.join(", "));
    }

    // The pool, with a track record.
    let mut registry = Registry::new();
    for (i, member) in POOL.iter().enumerate() {
        let id = AgentId::new(i as u64 + 1);
        let (good, bad) = member.record;
        let profile = AgentProfile::builder()
            .capabilities(member.capabilities.iter().copied())
            .capacity(1)
            .cost_per_task(member.cost)
            .label("name", member.name)
            .build()?;
        registry.register(id, profile, Instant::ZERO)?;
        for outcome in 0..good + bad {
            let latency = Duration::from_secs(3600);
            let outcome = if outcome < good {
                Outcome::success(latency)
            } else {
                Outcome::failure(latency)
            };
            registry.record_outcome(id, outcome)?;
        }
    }
    let matrix = matrix_of(&registry)?;

    // 2. Teams, then Hal leaves before the analysis phase.
    println!("\n# Teams (fewest agents, preferring last phase's members)");
    let assembler = TeamAssembler::new();
    let mut teams = assembler.assemble(&plan, &matrix)?;
    let leaver = AgentId::new(8);
    let analysis = plan
        .phases()
        .iter()
        .position(|p| p.name() == "analysis")
        .ok_or("the template has no analysis phase")?;
    let planned: Vec<&str> = teams[analysis].members().iter().map(|&a| name(a)).collect();
    println!("  (analysis team as first planned: {})", planned.join(", "));
    registry.unregister(leaver)?;
    let remaining = matrix_of(&registry)?;
    for phase in analysis..plan.phases().len() {
        let previous = phase.checked_sub(1).map_or(&[][..], |p| teams[p].members());
        teams[phase] = assembler.assemble_phase(&plan, phase, &remaining, previous)?;
    }
    for (i, team) in teams.iter().enumerate() {
        let members: Vec<&str> = team.members().iter().map(|&a| name(a)).collect();
        let change = match i.checked_sub(1) {
            Some(p) => {
                let change = team.changes_from(&teams[p]);
                let list = |ids: &[AgentId]| ids.iter().map(|&a| name(a)).collect::<Vec<_>>();
                format!(
                    " (joined {:?}, left {:?})",
                    list(&change.joined),
                    list(&change.left)
                )
            }
            None => String::new(),
        };
        println!(
            "  {:<10} {:<28} phase cost {:>4.1}{change}",
            team.phase(),
            members.join(", "),
            team.cost()
        );
    }
    println!("  ({} left before the analysis phase)", name(leaver));
    if teams.iter().skip(analysis).any(|t| t.contains(leaver)) {
        eprintln!("check: {} is still on a team after leaving", name(leaver));
        ok = false;
    }
    // Nobody can do a step that needs a skill the pool lacks: an answer.
    let no_lawyers = CapabilityMatrix::new(
        remaining
            .agents()
            .iter()
            .filter(|a| !a.capabilities.contains("legal"))
            .cloned(),
    )?;
    match assembler.assemble(&plan, &no_lawyers) {
        Err(PlanningError::UncoveredCapabilities {
            phase,
            capabilities,
            steps,
            ..
        }) => println!("  without a lawyer: phase {phase:?} lacks {capabilities:?} for {steps:?}"),
        other => {
            eprintln!("check: expected uncovered capabilities, got {other:?}");
            ok = false;
        }
    }

    // 3. HEFT on the remaining pool.
    let schedule = heft(&workflow, &remaining)?;
    println!(
        "\n# HEFT plan: makespan {:.1} h, critical path {}",
        hours(schedule.makespan()),
        schedule
            .critical_path()
            .iter()
            .filter_map(|&s| workflow.step(s).map(|s| s.id.as_str()))
            .collect::<Vec<_>>()
            .join(" → ")
    );
    println!(
        "```mermaid\n{}```",
        schedule.mermaid_gantt_named(|agent| name(agent).to_string())
    );
    let tensor = TaskTensor::from_plan(
        &remaining.ids(),
        &schedule.tensor_tasks(),
        &TensorOptions::new(),
    )?;
    let [tasks, agents, levels] = tensor.shape();
    println!("task tensor T[{tasks}, {agents}, {levels}] (one-hot: the HEFT plan)");
    println!(
        "slice T[step, :, its priority] (columns: {}):",
        remaining
            .ids()
            .iter()
            .map(|&a| format!("{:>3}", name(a)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (i, (_, step)) in workflow.steps().enumerate() {
        let row: Vec<String> = (0..agents)
            .map(|a| format!("{:>3}", tensor.get(i, a, step.priority).unwrap_or(0.0)))
            .collect();
        println!(
            "  {:<12} {:<8} {}",
            step.id,
            format!("{:?}", step.priority),
            row.join(" ")
        );
    }
    if tensor.row_sums().iter().any(|&sum| sum != 1.0) {
        eprintln!("check: a step of the plan is not one-hot in the tensor");
        ok = false;
    }

    // 4. Run: auction each ready step among its phase's team.
    println!("\n# Run (second-price auctions within each phase's team)");
    let run_outcome = execute(&plan, &teams, &registry, &remaining, &name, &mut ok)?;
    println!("```mermaid\n{}```", run_outcome.gantt);
    // The phase teams are as small as coverage allows, so the run takes
    // longer than HEFT's plan over the whole pool.
    println!(
        "run finished after {:.1} h with the phase teams ({:.1} h planned by HEFT on the whole pool); paid {:.1}",
        hours(run_outcome.elapsed),
        hours(schedule.makespan()),
        run_outcome.paid
    );
    if run_outcome.outcome != RunOutcome::Succeeded {
        eprintln!("check: the run ended {:?}", run_outcome.outcome);
        ok = false;
    }
    Ok(ok)
}

/// What a run left behind.
struct Executed {
    outcome: RunOutcome,
    gantt: String,
    elapsed: Duration,
    paid: f64,
}

fn execute(
    plan: &taskweave::planning::Plan,
    teams: &[Team],
    registry: &Registry,
    matrix: &CapabilityMatrix,
    name: &dyn Fn(AgentId) -> &'static str,
    ok: &mut bool,
) -> Result<Executed, Box<dyn std::error::Error>> {
    let workflow = Arc::clone(plan.workflow());
    let start = Instant::ZERO;
    let mut run: WorkflowRun<String> =
        WorkflowRun::new(Arc::clone(&workflow), WorkflowId::new(1), None, start);
    let mut busy_until: BTreeMap<AgentId, Instant> = BTreeMap::new();
    let mut agenda: BinaryHeap<Reverse<(Instant, AttemptToken)>> = BinaryHeap::new();
    let mut now = start;
    let mut paid = 0.0;
    loop {
        while let Some(action) = run.poll_action() {
            match action {
                RunAction::Start { step, token, .. } => {
                    let def = workflow.step(step).ok_or("unknown step")?;
                    let phase = plan.phase_of(step).ok_or("step without phase")?;
                    let team = &teams[phase];
                    let work = def.estimated_duration.unwrap_or_default();
                    let needs = TaskRequirements::new().require(def.capabilities.iter().cloned());
                    let deadline = now.saturating_add(BIDDING);
                    let valid_until = deadline.saturating_add(BIDDING);
                    let announcement = Announcement::for_task(registry, &needs, deadline)?
                        .pricing(Pricing::SecondPrice)
                        .invite(team.members().iter().copied());
                    let mut auction = Auction::open(announcement)?;
                    for agent in matrix.capable(&def.capabilities) {
                        if !team.contains(agent.id) {
                            continue;
                        }
                        let time = agent.time_for(work);
                        let free = busy_until.get(&agent.id).copied().unwrap_or(start);
                        let wait = free.saturating_duration_since(deadline);
                        let bid =
                            Bid::new(agent.id, agent.cost * hours(time), wait + time, valid_until);
                        auction.bid(registry, bid, now)?;
                    }
                    let outcome = auction.close(deadline)?;
                    let award = outcome.award().ok_or("no bids for a step")?;
                    let winner = award.winner.agent;
                    let Some(agent) = matrix.get(winner) else {
                        return Err("the winner is not in the pool".into());
                    };
                    if !agent.has_all(&def.capabilities) || !team.contains(winner) {
                        eprintln!("check: {} went to {}", def.id, name(winner));
                        *ok = false;
                    }
                    let begin = busy_until
                        .get(&winner)
                        .copied()
                        .unwrap_or(start)
                        .max(deadline);
                    let done = begin.saturating_add(agent.time_for(work));
                    busy_until.insert(winner, done);
                    agenda.push(Reverse((done, token)));
                    paid += award.price;
                    println!(
                        "  {:<12} → {:<4} bids {}, paid {:>5.2} (asked {:.2}), {:>4.1} h → {:>4.1} h",
                        def.id,
                        name(winner),
                        award.valid_bids,
                        award.price,
                        award.winner.cost,
                        hours(begin.saturating_duration_since(start)),
                        hours(done.saturating_duration_since(start)),
                    );
                }
                RunAction::Finished => {
                    return Ok(Executed {
                        outcome: run.outcome().cloned().ok_or("finished without outcome")?,
                        gantt: mermaid_gantt(&run, now),
                        elapsed: now.saturating_duration_since(start),
                        paid,
                    });
                }
                other => return Err(format!("unexpected action {other:?}").into()),
            }
        }
        let Some(Reverse((at, token))) = agenda.pop() else {
            return Err("the run stalled".into());
        };
        now = at;
        let step = run.input(token).map(|input| input.step)?;
        let id = workflow
            .step(step)
            .map(|s| s.id.clone())
            .unwrap_or_default();
        run.succeed(token, StepOutput::new(format!("{id} done")), now)?;
    }
}
