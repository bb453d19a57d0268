//! Diagrams of definitions and runs, as text: Mermaid flowcharts and Gantt
//! charts, Graphviz DOT. Pure functions from a [`WorkflowDef`] or a
//! [`WorkflowRun`] to a `String`; nothing is read or written.
//!
//! The pieces both formats share are single helpers: node ids, labels,
//! shapes and the colour table (`graph`); each format has one escaping
//! function, with the other text helpers (`text`, crate-private: planning's
//! Gantt chart uses them too).

use super::{AttemptEnd, TimelineEntry, WorkflowDef, WorkflowRun};
#[cfg(doc)]
use super::{Join, StepKind, StepState};
use crate::{Instant, StepId};

// ---- public API --------------------------------------------------------

/// A Mermaid flowchart (`flowchart TD`) of `def`: one node per step in
/// declaration order, then the edges in [`WorkflowDef::edges`] order, a
/// labelled edge with its label (`s0 -->|"approve"| s1`).
///
/// # Nodes
///
/// A step's node id is `s` followed by its [`StepId`] (`s0`, `s1`, …), so
/// any step key is safe; [`dot_graph`] uses the same ids. The label is the
/// step's name (its key if the name is blank), one line per line of the
/// name, then one line per annotation:
///
/// - its join unless [`Join::All`]: `merge`, `first`,
///   `first, cancel others`, `2 of 3`, `2 of 3, cancel others`;
/// - a loop: `loop, up to 5`; a multi-instance step: `for each item`
///   (`for each item, 2 may fail` with tolerated failures);
/// - a wait step: `waits for paid, refused or 3600s` (its signals, then its
///   timeout);
/// - a sub-workflow: `runs child v1`.
///
/// The shape tells the [`StepKind`]:
///
/// | kind | Mermaid | DOT ([`dot_graph`]) |
/// |---|---|---|
/// | [`StepKind::Agent`] | rectangle `s0["…"]` | `shape="box"` |
/// | [`StepKind::Local`] | rounded rectangle `s0("…")` | `shape="box", style="rounded"` |
/// | [`StepKind::Wait`] | hexagon `s0{{"…"}}` | `shape="hexagon"` |
/// | [`StepKind::SubWorkflow`] | subroutine `s0[["…"]]` | `shape="box", peripheries="2"` |
///
/// # Escaping
///
/// Mermaid text (labels here, sections and title in [`mermaid_gantt`]) is
/// always quoted where the syntax allows and written with Mermaid's entity
/// codes, which every diagram type decodes: `"` → `#quot;`, `#` → `#35;`,
/// `&` → `#amp;`, `<` → `#lt;`, `>` → `#gt;`, `:` → `#58;`, `;` → `#59;`,
/// `%` → `#37;`, `` ` `` → `#96;`. No name can close a label, or start a
/// comment, markdown, HTML or a Gantt task's data. DOT text escapes `"` and
/// `\`. In both, control characters (line breaks included) become spaces,
/// except the line breaks of a step's name, which separate label lines
/// (`<br>` in Mermaid, `\n` in DOT).
///
/// ```
/// use taskweave::workflow::{Join, StepDef, WorkflowDef, mermaid_flowchart};
///
/// let def = WorkflowDef::builder("review", 1)
///     .step(StepDef::agent("check").name("Check \"order\""))
///     .step(StepDef::local("ship"))
///     .step(StepDef::local("refund"))
///     .step(StepDef::local("notify").join(Join::Merge))
///     .branch("check", "ship", "approve")
///     .branch("check", "refund", "reject")
///     .edge("ship", "notify")
///     .edge("refund", "notify")
///     .build()?;
/// assert_eq!(
///     mermaid_flowchart(&def),
///     "flowchart TD\n\
///      \x20   s0[\"Check #quot;order#quot;\"]\n\
///      \x20   s1(\"ship\")\n\
///      \x20   s2(\"refund\")\n\
///      \x20   s3(\"notify<br>merge\")\n\
///      \x20   s0 -->|\"approve\"| s1\n\
///      \x20   s0 -->|\"reject\"| s2\n\
///      \x20   s1 --> s3\n\
///      \x20   s2 --> s3\n"
/// );
/// # Ok::<(), taskweave::workflow::DefinitionError>(())
/// ```
pub fn mermaid_flowchart(def: &WorkflowDef) -> String {
    let mut out = String::new();
    write_mermaid_graph(&mut out, def);
    out
}

/// A Mermaid flowchart of `run`'s definition, each step coloured by its
/// current [`StepState`]: the [`mermaid_flowchart`] lines, then a
/// `classDef` per state and a `class sN state_<state>` line per step.
///
/// The class names carry a `state_` prefix so that a page's own `.active`
/// or `.failed` CSS cannot reach the diagram. [`dot_run_graph`] uses the
/// same colours.
///
/// | state | class | fill | stroke |
/// |---|---|---|---|
/// | [`StepState::Pending`] | `state_pending` | white `#ffffff` | `#9e9e9e` |
/// | [`StepState::Waiting`] | `state_waiting` | blue `#dbeafe` | `#2563eb` |
/// | [`StepState::Expanding`] | `state_expanding` | blue `#dbeafe` | `#2563eb` |
/// | [`StepState::Active`] | `state_active` | amber `#fff3cd` | `#d39e00` |
/// | [`StepState::Completed`] | `state_completed` | green `#d4edda` | `#28a745` |
/// | [`StepState::Skipped`] | `state_skipped` | grey `#eeeeee`, dashed outline | `#9e9e9e` |
/// | [`StepState::Cancelled`] | `state_cancelled` | grey `#e0e0e0` | `#757575` |
/// | [`StepState::Failed`] | `state_failed` | red `#f8d7da` | `#dc3545` |
///
/// Waiting and expanding share blue: both wait for the host (a signal, the
/// items); amber means work is running.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{RunAction, StepDef, StepOutput, WorkflowDef, WorkflowRun, mermaid_run_flowchart};
/// use taskweave::{Instant, WorkflowId};
///
/// let def = Arc::new(
///     WorkflowDef::builder("pair", 1)
///         .step(StepDef::local("a"))
///         .step(StepDef::local("b"))
///         .edge("a", "b")
///         .build()?,
/// );
/// let mut run: WorkflowRun<()> = WorkflowRun::new(def, WorkflowId::new(1), None, Instant::ZERO);
/// let Some(RunAction::Start { token, .. }) = run.poll_action() else { unreachable!() };
/// run.succeed(token, StepOutput::empty(), Instant::ZERO)?;
///
/// let chart = mermaid_run_flowchart(&run);
/// assert!(chart.starts_with("flowchart TD\n    s0(\"a\")\n"));
/// assert!(chart.contains("    classDef state_completed fill:#d4edda,stroke:#28a745,color:#155724\n"));
/// assert!(chart.ends_with("    class s0 state_completed\n    class s1 state_active\n"));
/// # Ok::<(), taskweave::Error>(())
/// ```
pub fn mermaid_run_flowchart<P: Clone>(run: &WorkflowRun<P>) -> String {
    let def = run.definition();
    let mut out = String::new();
    write_mermaid_graph(&mut out, def);
    for style in &STATE_STYLES {
        let dash = if style.dashed {
            ",stroke-dasharray:5 5"
        } else {
            ""
        };
        line(
            &mut out,
            1,
            format_args!(
                "classDef {} fill:{},stroke:{},color:{}{dash}",
                style.class, style.fill, style.stroke, style.text
            ),
        );
    }
    for (id, _) in def.steps() {
        if let Some(state) = run.step_state(id) {
            let class = state_style(state).class;
            line(&mut out, 1, format_args!("class {} {class}", NodeId(id)));
        }
    }
    out
}

/// A Mermaid Gantt chart of `run`'s timeline, finished or not.
///
/// - Times are milliseconds since [`WorkflowRun::started_at`] (a `%%`
///   comment says so; `dateFormat x`: Mermaid reads each bar's start and end as a Unix
///   millisecond timestamp, so the axis starts at the epoch and
///   `axisFormat %s.%L` labels it in seconds and milliseconds since the
///   run's start, whatever the viewer's time zone). A start is rounded
///   down and an end up to the millisecond, so no attempt that took time is
///   drawn empty. `todayMarker off` hides the marker that would show the
///   viewer's date.
/// - One section per step with attempts, named after it, in declaration
///   order; then one section per compensated step, named
///   `<name> (compensation)`, in the order the compensations started.
///   Steps without attempts (waits, skipped or pending steps) have none.
/// - One bar per attempt, in start order: `attempt N`, after `instance I, `
///   for a multi-instance step and `iteration K, ` for a loop; an attempt
///   still running ends at `now`.
/// - Tags and labels by outcome: succeeded `done`; running `active`,
///   `(running)`; failed `crit`, `(failed)`; timed out `crit`,
///   `(timed out)`; cancelled `crit, done`, `(cancelled)`.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{RunAction, StepDef, StepFailure, StepOutput, WorkflowDef, WorkflowRun, mermaid_gantt};
/// use taskweave::{Instant, WorkflowId};
///
/// let def = Arc::new(
///     WorkflowDef::builder("pair", 1)
///         .step(StepDef::local("a"))
///         .step(StepDef::agent("b").name("Step b"))
///         .edge("a", "b")
///         .build()?,
/// );
/// let start = Instant::from_secs(100);
/// let mut run: WorkflowRun<()> = WorkflowRun::new(def, WorkflowId::new(3), None, start);
/// let Some(RunAction::Start { token, .. }) = run.poll_action() else { unreachable!() };
/// run.succeed(token, StepOutput::empty(), Instant::from_millis(100_250))?;
///
/// // b has been running for 500 ms.
/// assert_eq!(
///     mermaid_gantt(&run, Instant::from_millis(100_750)),
///     "gantt\n\
///      \x20   title pair (workflow-3)\n\
///      \x20   %% times: milliseconds since the start\n\
///      \x20   dateFormat x\n\
///      \x20   axisFormat %s.%L\n\
///      \x20   todayMarker off\n\
///      \x20   section a\n\
///      \x20       attempt 1 :done, 0, 250\n\
///      \x20   section Step b\n\
///      \x20       attempt 1 (running) :active, 250, 750\n"
/// );
/// # Ok::<(), taskweave::Error>(())
/// ```
pub fn mermaid_gantt<P: Clone>(run: &WorkflowRun<P>, now: Instant) -> String {
    let def = run.definition();
    let origin = run.started_at();
    let timeline: Vec<TimelineEntry> = run.timeline().collect();
    let mut out = gantt_head(&format!("{} ({})", def.name(), run.id()));

    let mut compensated: Vec<StepId> = Vec::new();
    for entry in timeline.iter().filter(|e| e.compensation) {
        if !compensated.contains(&entry.step) {
            compensated.push(entry.step);
        }
    }
    let forward = def.steps().map(|(id, _)| (id, false));
    let sections = forward.chain(compensated.into_iter().map(|id| (id, true)));
    for (id, compensation) in sections {
        let Some(step) = def.step(id) else { continue };
        let mut bars = timeline
            .iter()
            .filter(|e| e.step == id && e.compensation == compensation)
            .peekable();
        if bars.peek().is_none() {
            continue;
        }
        let name = mermaid_escape(&display_name(id, step));
        let suffix = if compensation { " (compensation)" } else { "" };
        line(&mut out, 1, format_args!("section {name}{suffix}"));
        for entry in bars {
            let start = millis_since(entry.start, origin, false);
            let end = millis_since(entry.end.unwrap_or(now), origin, true).max(start);
            let (tags, outcome) = match entry.outcome {
                AttemptEnd::Succeeded => ("done", ""),
                AttemptEnd::Running => ("active", " (running)"),
                AttemptEnd::Failed => ("crit", " (failed)"),
                AttemptEnd::TimedOut => ("crit", " (timed out)"),
                AttemptEnd::Cancelled => ("crit, done", " (cancelled)"),
            };
            let instance = entry
                .instance
                .map(|i| format!("instance {i}, "))
                .unwrap_or_default();
            let iteration = if step.max_iterations.is_some() {
                format!("iteration {}, ", entry.iteration)
            } else {
                String::new()
            };
            line(
                &mut out,
                2,
                format_args!(
                    "{instance}{iteration}attempt {}{outcome} :{tags}, {start}, {end}",
                    entry.attempt
                ),
            );
        }
    }
    out
}

/// A Graphviz `digraph` of `def`: one node per step in declaration order,
/// then the edges, every id and label quoted and escaped. Ids, labels,
/// shapes and escaping are those of [`mermaid_flowchart`].
///
/// ```
/// use taskweave::workflow::{StepDef, WorkflowDef, dot_graph};
///
/// let def = WorkflowDef::builder("say \"hi\"", 1)
///     .step(StepDef::agent("ask"))
///     .step(StepDef::wait("reply", ["yes", "no"]))
///     .step(StepDef::local("done"))
///     .edge("ask", "reply")
///     .branch("reply", "done", "yes")
///     .build()?;
/// assert_eq!(
///     dot_graph(&def),
///     "digraph \"say \\\"hi\\\"\" {\n\
///      \x20   \"s0\" [label=\"ask\", shape=\"box\"];\n\
///      \x20   \"s1\" [label=\"reply\\nwaits for yes or no\", shape=\"hexagon\"];\n\
///      \x20   \"s2\" [label=\"done\", shape=\"box\", style=\"rounded\"];\n\
///      \x20   \"s0\" -> \"s1\";\n\
///      \x20   \"s1\" -> \"s2\" [label=\"yes\"];\n\
///      }\n"
/// );
/// # Ok::<(), taskweave::workflow::DefinitionError>(())
/// ```
pub fn dot_graph(def: &WorkflowDef) -> String {
    write_dot(def, |_| None)
}

/// A Graphviz `digraph` of `run`'s definition, each step filled with the
/// colour of its current [`StepState`] (the same table as
/// [`mermaid_run_flowchart`]'s).
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{StepDef, WorkflowDef, WorkflowRun, dot_run_graph};
/// use taskweave::{Instant, WorkflowId};
///
/// let def = Arc::new(WorkflowDef::builder("one", 1).step(StepDef::agent("a")).build()?);
/// let run: WorkflowRun<()> = WorkflowRun::new(def, WorkflowId::new(1), None, Instant::ZERO);
/// assert_eq!(
///     dot_run_graph(&run),
///     "digraph \"one\" {\n\
///      \x20   \"s0\" [label=\"a\", shape=\"box\", style=\"filled\", fillcolor=\"#fff3cd\", color=\"#d39e00\", fontcolor=\"#5c4400\"];\n\
///      }\n"
/// );
/// # Ok::<(), taskweave::Error>(())
/// ```
pub fn dot_run_graph<P: Clone>(run: &WorkflowRun<P>) -> String {
    write_dot(run.definition(), |id| run.step_state(id))
}

mod graph;
mod text;

use crate::diagram::{gantt_head, line, mermaid_escape, millis_since};
use graph::{STATE_STYLES, state_style, write_dot, write_mermaid_graph};
use text::NodeId;
pub(crate) use text::display_name;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::WorkflowId;
    use crate::diagram::dot_escape;
    use crate::resilience::Fixed;
    use crate::workflow::{Join, RunAction, StepDef, StepFailure, StepOutput};

    /// A decision with labelled branches, a wait step, a local step and a
    /// sub-workflow with a merge join.
    fn order() -> WorkflowDef {
        let child = WorkflowDef::builder("notify", 1)
            .step(StepDef::agent("send"))
            .build()
            .unwrap();
        WorkflowDef::builder("order", 1)
            .step(StepDef::agent("check").name("Check order"))
            .step(
                StepDef::wait("pay", ["paid"])
                    .name("Await payment")
                    .timeout(Duration::from_secs(3600)),
            )
            .step(StepDef::local("refund").name("Refund"))
            .step(
                StepDef::sub_workflow("notify", Arc::new(child))
                    .name("Notify")
                    .join(Join::Merge),
            )
            .branch("check", "pay", "approve")
            .branch("check", "refund", "reject")
            .edge("pay", "notify")
            .edge("refund", "notify")
            .build()
            .unwrap()
    }

    const ORDER_NODES: &str = "flowchart TD
    s0[\"Check order\"]
    s1{{\"Await payment<br>waits for paid or 3600s\"}}
    s2(\"Refund\")
    s3[[\"Notify<br>merge<br>runs notify v1\"]]
    s0 -->|\"approve\"| s1
    s0 -->|\"reject\"| s2
    s1 --> s3
    s2 --> s3
";

    const CLASS_DEFS: &str = "    classDef state_pending fill:#ffffff,stroke:#9e9e9e,color:#212121
    classDef state_waiting fill:#dbeafe,stroke:#2563eb,color:#1e3a8a
    classDef state_expanding fill:#dbeafe,stroke:#2563eb,color:#1e3a8a
    classDef state_active fill:#fff3cd,stroke:#d39e00,color:#5c4400
    classDef state_completed fill:#d4edda,stroke:#28a745,color:#155724
    classDef state_skipped fill:#eeeeee,stroke:#9e9e9e,color:#616161,stroke-dasharray:5 5
    classDef state_cancelled fill:#e0e0e0,stroke:#757575,color:#424242
    classDef state_failed fill:#f8d7da,stroke:#dc3545,color:#721c24
";

    fn start(run: &mut WorkflowRun<()>) -> (StepId, crate::AttemptToken) {
        match run.poll_action() {
            Some(RunAction::Start { step, token, .. }) => (step, token),
            other => panic!("expected a start, got {other:?}"),
        }
    }

    #[test]
    fn flowchart_of_a_definition_is_exact() {
        assert_eq!(mermaid_flowchart(&order()), ORDER_NODES);
    }

    #[test]
    fn dot_of_a_definition_is_exact() {
        assert_eq!(
            dot_graph(&order()),
            r#"digraph "order" {
    "s0" [label="Check order", shape="box"];
    "s1" [label="Await payment\nwaits for paid or 3600s", shape="hexagon"];
    "s2" [label="Refund", shape="box", style="rounded"];
    "s3" [label="Notify\nmerge\nruns notify v1", shape="box", peripheries="2"];
    "s0" -> "s1" [label="approve"];
    "s0" -> "s2" [label="reject"];
    "s1" -> "s3";
    "s2" -> "s3";
}
"#
        );
    }

    #[test]
    fn joins_loops_and_fan_outs_are_annotated() {
        let def = WorkflowDef::builder("joins", 1)
            .step(StepDef::local("a").repeat(5))
            .step(StepDef::local("b").multi_instance(0))
            .step(StepDef::local("c").multi_instance(2))
            .step(StepDef::local("first").join(Join::first()))
            .step(StepDef::local("firstc").join(Join::first_cancelling()))
            .step(StepDef::local("two").join(Join::Quorum {
                n: 2,
                cancel_remaining: false,
            }))
            .step(StepDef::local("twoc").join(Join::Quorum {
                n: 2,
                cancel_remaining: true,
            }))
            .step(StepDef::wait("w", ["go"]))
            .step(StepDef::wait("w2", ["x", "y", "z"]))
            .step(StepDef::wait("w3", Vec::<String>::new()).timeout(Duration::from_millis(1500)))
            .edge("a", "first")
            .edge("b", "first")
            .edge("a", "firstc")
            .edge("b", "firstc")
            .edge("a", "two")
            .edge("b", "two")
            .edge("c", "two")
            .edge("a", "twoc")
            .edge("b", "twoc")
            .edge("c", "twoc")
            .build()
            .unwrap();
        let chart = mermaid_flowchart(&def);
        let nodes: Vec<&str> = chart.lines().skip(1).take(10).collect();
        assert_eq!(
            nodes,
            [
                "    s0(\"a<br>loop, up to 5\")",
                "    s1(\"b<br>for each item\")",
                "    s2(\"c<br>for each item, 2 may fail\")",
                "    s3(\"first<br>first\")",
                "    s4(\"firstc<br>first, cancel others\")",
                "    s5(\"two<br>2 of 3\")",
                "    s6(\"twoc<br>2 of 3, cancel others\")",
                "    s7{{\"w<br>waits for go\"}}",
                "    s8{{\"w2<br>waits for x, y or z\"}}",
                "    s9{{\"w3<br>waits for 1.5s\"}}",
            ]
        );
    }

    #[test]
    fn hostile_names_are_escaped() {
        let hostile = "say \"hi\"] --> x[\"#quot; <b>&amp;</b>\nline2; 100% `md` a:b \\ end\r";
        let def = WorkflowDef::builder(hostile, 1)
            .step(StepDef::agent("s0\"]-->evil").name(hostile))
            .step(StepDef::local("b").name("   "))
            .step(StepDef::local("   ").name(""))
            .branch("s0\"]-->evil", "b", "go\"| s1 --> s2 |\"\n%% x")
            .edge("s0\"]-->evil", "   ")
            .build()
            .unwrap();

        let chart = mermaid_flowchart(&def);
        let expected_label = "say #quot;hi#quot;] --#gt; x[#quot;#35;quot#59; #lt;b#gt;#amp;amp#59;#lt;/b#gt;\
            <br>line2#59; 100#37; #96;md#96; a#58;b \\ end ";
        assert_eq!(
            chart,
            format!(
                "flowchart TD\n    s0[\"{expected_label}\"]\n    s1(\"b\")\n    s2(\"s2\")\n    \
                 s0 -->|\"go#quot;| s1 --#gt; s2 |#quot; #37;#37; x\"| s1\n    s0 --> s2\n"
            )
        );
        // Structure survives: one line per node and edge, two quotes each,
        // nothing that could end a label or start a comment, markdown or
        // HTML.
        assert_eq!(chart.lines().count(), 1 + 3 + 2);
        for line in chart.lines().skip(1) {
            let quotes = if line == "    s0 --> s2" { 0 } else { 2 };
            assert_eq!(line.matches('"').count(), quotes, "{line}");
            let text = line
                .replace("<br>", "")
                .replace(" --> ", "")
                .replace("-->|", "");
            assert!(!text.contains(['%', '<', '>', '`', ':', '\r']), "{line}");
        }

        let dot = dot_graph(&def);
        assert_eq!(
            dot.lines().nth(1),
            Some(
                "    \"s0\" [label=\"say \\\"hi\\\"] --> x[\\\"#quot; <b>&amp;</b>\\nline2; 100% `md` a:b \\\\ end \", shape=\"box\"];"
            )
        );
        assert!(dot.starts_with("digraph \"say \\\"hi\\\"] --> x[\\\"#quot; <b>&amp;</b> line2;"));
        assert!(dot.contains("    \"s0\" -> \"s1\" [label=\"go\\\"| s1 --> s2 |\\\" %% x\"];\n"));
        assert_eq!(dot.lines().count(), 1 + 3 + 2 + 1);

        let run: WorkflowRun<()> =
            WorkflowRun::new(Arc::new(def), WorkflowId::new(9), None, Instant::ZERO);
        let gantt = mermaid_gantt(&run, Instant::from_millis(5));
        let one_line = expected_label.replace("<br>", " ");
        assert_eq!(
            gantt.lines().collect::<Vec<_>>(),
            [
                "gantt",
                &format!("    title {one_line} (workflow-9)"),
                "    %% times: milliseconds since the start",
                "    dateFormat x",
                "    axisFormat %s.%L",
                "    todayMarker off",
                &format!("    section {one_line}"),
                "        attempt 1 (running) :active, 0, 5",
            ]
        );
    }

    #[test]
    fn run_flowchart_colours_a_partly_run_workflow() {
        let def = Arc::new(order());
        let mut run: WorkflowRun<()> =
            WorkflowRun::new(Arc::clone(&def), WorkflowId::new(1), None, Instant::ZERO);
        let (step, token) = start(&mut run);
        assert_eq!(step, StepId::new(0));
        let before = mermaid_run_flowchart(&run);
        assert!(before.ends_with(
            "    class s0 state_active\n    class s1 state_pending\n    \
             class s2 state_pending\n    class s3 state_pending\n"
        ));

        run.succeed(token, StepOutput::empty().branch("approve"), Instant::ZERO)
            .unwrap();
        assert_eq!(
            mermaid_run_flowchart(&run),
            format!(
                "{ORDER_NODES}{CLASS_DEFS}    class s0 state_completed\n    \
                 class s1 state_waiting\n    class s2 state_skipped\n    \
                 class s3 state_pending\n"
            )
        );
        assert_eq!(
            dot_run_graph(&run).lines().take(4).collect::<Vec<_>>(),
            [
                "digraph \"order\" {",
                "    \"s0\" [label=\"Check order\", shape=\"box\", style=\"filled\", fillcolor=\"#d4edda\", color=\"#28a745\", fontcolor=\"#155724\"];",
                "    \"s1\" [label=\"Await payment\\nwaits for paid or 3600s\", shape=\"hexagon\", style=\"filled\", fillcolor=\"#dbeafe\", color=\"#2563eb\", fontcolor=\"#1e3a8a\"];",
                "    \"s2\" [label=\"Refund\", shape=\"box\", style=\"rounded,filled,dashed\", fillcolor=\"#eeeeee\", color=\"#9e9e9e\", fontcolor=\"#616161\"];",
            ]
        );
    }

    #[test]
    fn run_flowchart_after_a_failure() {
        let def = Arc::new(
            WorkflowDef::builder("fan", 1)
                .step(StepDef::local("a"))
                .step(StepDef::local("b"))
                .step(StepDef::local("c"))
                .step(StepDef::local("d"))
                .edge("a", "d")
                .edge("b", "d")
                .edge("c", "d")
                .build()
                .unwrap(),
        );
        let mut run: WorkflowRun<()> =
            WorkflowRun::new(def, WorkflowId::new(2), None, Instant::ZERO);
        let (_, a) = start(&mut run);
        let (_, _b) = start(&mut run);
        let (_, c) = start(&mut run);
        run.succeed(a, StepOutput::empty(), Instant::ZERO).unwrap();
        assert!(mermaid_run_flowchart(&run).ends_with(
            "    class s0 state_completed\n    class s1 state_active\n    \
             class s2 state_active\n    class s3 state_pending\n"
        ));
        run.fail(c, StepFailure::fatal("boom"), Instant::ZERO)
            .unwrap();
        assert!(mermaid_run_flowchart(&run).ends_with(
            "    class s0 state_completed\n    class s1 state_cancelled\n    \
             class s2 state_failed\n    class s3 state_cancelled\n"
        ));
        // The Gantt marks the cancelled and the failed attempt.
        assert_eq!(
            mermaid_gantt(&run, Instant::ZERO)
                .lines()
                .skip(6)
                .collect::<Vec<_>>(),
            [
                "    section a",
                "        attempt 1 :done, 0, 0",
                "    section b",
                "        attempt 1 (cancelled) :crit, done, 0, 0",
                "    section c",
                "        attempt 1 (failed) :crit, 0, 0",
            ]
        );
    }

    #[test]
    fn gantt_shows_a_retry_and_a_compensation_relative_to_the_start() {
        let def = Arc::new(
            WorkflowDef::builder("order", 1)
                .step(StepDef::local("reserve").name("Reserve").compensable())
                .step(
                    StepDef::agent("charge")
                        .name("Charge")
                        .retry(Fixed::new(Duration::from_millis(100), 2).unwrap()),
                )
                .edge("reserve", "charge")
                .build()
                .unwrap(),
        );
        let ms = Instant::from_millis;
        let mut run: WorkflowRun<()> =
            WorkflowRun::new(Arc::clone(&def), WorkflowId::new(7), None, ms(1_000));
        let (_, reserve) = start(&mut run);
        run.succeed(reserve, StepOutput::empty(), ms(1_250))
            .unwrap();
        let (_, charge1) = start(&mut run);
        run.fail(charge1, StepFailure::retryable("declined"), ms(1_400))
            .unwrap();
        assert_eq!(run.poll_timeout(), Some(ms(1_500)));
        run.handle_timeout(ms(1_500));
        let (_, charge2) = start(&mut run);
        // Drawn up to `now` while it runs.
        assert!(
            mermaid_gantt(&run, ms(1_600))
                .ends_with("        attempt 2 (running) :active, 500, 600\n")
        );
        run.fail(charge2, StepFailure::retryable("declined"), ms(1_700))
            .unwrap();
        let undo = match run.poll_action() {
            Some(RunAction::Compensate { token, .. }) => token,
            other => panic!("expected a compensation, got {other:?}"),
        };
        // Sub-millisecond times: the end rounds up, the start down.
        run.compensated(undo, Ok(()), Instant::from_nanos(1_800_000_001))
            .unwrap();
        assert!(run.is_finished());
        assert_eq!(
            mermaid_gantt(&run, ms(9_999)),
            "gantt
    title order (workflow-7)
    %% times: milliseconds since the start
    dateFormat x
    axisFormat %s.%L
    todayMarker off
    section Reserve
        attempt 1 :done, 0, 250
    section Charge
        attempt 1 (failed) :crit, 250, 400
        attempt 2 (failed) :crit, 500, 700
    section Reserve (compensation)
        attempt 1 :done, 700, 801
"
        );
    }

    #[test]
    fn gantt_labels_instances_iterations_and_timeouts() {
        let def = Arc::new(
            WorkflowDef::builder("shapes", 1)
                .step(StepDef::local("each").multi_instance(0))
                .step(StepDef::local("again").repeat(3))
                .step(StepDef::agent("slow").timeout(Duration::from_millis(10)))
                .edge("each", "again")
                .edge("again", "slow")
                .build()
                .unwrap(),
        );
        let ms = Instant::from_millis;
        let mut run: WorkflowRun<()> = WorkflowRun::new(def, WorkflowId::new(4), None, ms(0));
        assert!(matches!(run.poll_action(), Some(RunAction::Expand { .. })));
        run.expand(StepId::new(0), vec![(), ()], ms(1)).unwrap();
        let (_, i0) = start(&mut run);
        let (_, i1) = start(&mut run);
        run.succeed(i1, StepOutput::empty(), ms(3)).unwrap();
        run.succeed(i0, StepOutput::empty(), ms(4)).unwrap();
        let (_, it1) = start(&mut run);
        run.succeed(it1, StepOutput::empty().again(), ms(5))
            .unwrap();
        let (_, it2) = start(&mut run);
        run.succeed(it2, StepOutput::empty(), ms(6)).unwrap();
        let _ = start(&mut run);
        run.handle_timeout(ms(16));
        assert_eq!(
            mermaid_gantt(&run, ms(16))
                .lines()
                .skip(6)
                .collect::<Vec<_>>(),
            [
                "    section each",
                "        instance 0, attempt 1 :done, 1, 4",
                "        instance 1, attempt 1 :done, 1, 3",
                "    section again",
                "        iteration 1, attempt 1 :done, 4, 5",
                "        iteration 2, attempt 1 :done, 5, 6",
                "    section slow",
                "        attempt 1 (timed out) :crit, 6, 16",
            ]
        );
    }

    #[test]
    fn escaping_helpers() {
        assert_eq!(
            mermaid_escape("a\"b#c&d<e>f:g;h%i`j\nk\tl"),
            "a#quot;b#35;c#amp;d#lt;e#gt;f#58;g#59;h#37;i#96;j k l"
        );
        assert_eq!(dot_escape("a\"b\\c\nd"), "a\\\"b\\\\c d");
        assert_eq!(
            millis_since(Instant::from_nanos(1_500_000), Instant::ZERO, false),
            1
        );
        assert_eq!(
            millis_since(Instant::from_nanos(1_500_000), Instant::ZERO, true),
            2
        );
        assert_eq!(millis_since(Instant::ZERO, Instant::from_secs(1), true), 0);
        for state in STATE_STYLES.iter().map(|s| s.state) {
            assert_eq!(state_style(state).state, state);
        }
    }
}
