//! Diagram export under hostile names: whatever the step names, workflow
//! name and signal labels (arbitrary Unicode, control characters, line and
//! paragraph separators, quotes, backslashes, brackets, entity look-alikes,
//! Gantt keywords), every step is drawn exactly once, no control character
//! or line separator reaches the output, and every line is a statement the
//! format knows. Case counts follow `PROPTEST_CASES`.

#![cfg(feature = "planning")]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use taskweave::planning::{CapabilityMatrix, PlanAgent, heft};
use taskweave::workflow::{
    StepDef, WorkflowDef, WorkflowRun, dot_graph, dot_run_graph, mermaid_flowchart, mermaid_gantt,
    mermaid_run_flowchart,
};
use taskweave::{AgentId, Instant, WorkflowId};

/// Characters that break one diagram syntax or another.
const NASTY: &[char] = &[
    '"', '\'', '\\', '[', ']', '(', ')', '{', '}', '<', '>', '|', '#', ';', ':', '%', '`', '&',
    '-', '\n', '\r', '\t', '\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{2028}',
    '\u{2029}', '\u{200b}', '\u{202e}', '\u{feff}', ' ',
];

/// Strings rich in the characters above, in keywords and entity codes.
fn nasty() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(NASTY).prop_map(String::from),
        1 => proptest::sample::select(&[
            "section", "title", "click", "dateFormat x", "%%", "-->", "#quot;", "&amp;", "<br>",
            "\\n", "\\l", "subgraph", "end", "graph", "digraph", "}", "];", "\" -> \"",
        ][..])
        .prop_map(String::from),
        2 => "[a-zA-Z0-9 ]{0,4}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), nasty()]
}

/// Is `c` something that must never reach a diagram?
fn forbidden(c: char) -> bool {
    (c.is_control() && c != '\n') || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

/// A chain of agent steps with hostile names; step `i` waits for a signal
/// with a hostile label when `waits[i]`, and its outgoing edge carries it.
fn workflow(title: &str, names: &[String], labels: &[String]) -> WorkflowDef {
    let mut builder = WorkflowDef::builder(title, 1);
    for (i, name) in names.iter().enumerate() {
        let key = format!("k{i}");
        let step = match labels.get(i) {
            Some(label) if i + 1 < names.len() => StepDef::wait(key, [label.clone()]),
            _ => StepDef::agent(key).estimated_duration(Duration::from_millis(10)),
        };
        builder = builder.step(step.name(name.clone()));
    }
    for i in 1..names.len() {
        let (from, to) = (format!("k{}", i - 1), format!("k{i}"));
        builder = match labels.get(i - 1) {
            Some(label) => builder.branch(from, to, label.clone()),
            None => builder.edge(from, to),
        };
    }
    builder.build().expect("a chain with unique keys is valid")
}

/// Checks a Mermaid flowchart line by line; returns the node ids drawn.
fn check_flowchart(chart: &str, steps: usize) -> Result<(), TestCaseError> {
    let mut lines = chart.lines();
    prop_assert_eq!(lines.next(), Some("flowchart TD"));
    let mut nodes = vec![0usize; steps];
    for line in lines {
        let body = line
            .strip_prefix("    ")
            .ok_or_else(|| TestCaseError::fail(format!("unindented line {line:?}")))?;
        if body.starts_with("classDef state_") || body.starts_with("class s") {
            prop_assert!(!body.contains('"'), "{}", line);
            continue;
        }
        // A node `sN<open>"label"<close>` or an edge.
        let digits = body[1..].chars().take_while(char::is_ascii_digit).count();
        prop_assert!(body.starts_with('s') && digits > 0, "{}", line);
        let id: usize = body[1..=digits].parse().unwrap();
        let rest = &body[1 + digits..];
        prop_assert!(id < steps, "{}", line);
        prop_assert!(
            rest.matches('"').count() % 2 == 0,
            "unbalanced quotes: {}",
            line
        );
        if let Some(edge) = rest.strip_prefix(" --> ") {
            prop_assert!(edge.starts_with('s'), "{}", line);
        } else if let Some(edge) = rest.strip_prefix(" -->|\"") {
            let (label, to) = edge
                .split_once("\"| s")
                .ok_or_else(|| TestCaseError::fail(format!("bad edge {line:?}")))?;
            prop_assert!(
                !label.contains('"') && to.chars().all(|c| c.is_ascii_digit()),
                "{}",
                line
            );
            check_mermaid_text(label)?;
        } else {
            let shapes = [
                ("[\"", "\"]"),
                ("(\"", "\")"),
                ("{{\"", "\"}}"),
                ("[[\"", "\"]]"),
            ];
            let label = shapes
                .iter()
                .find_map(|(open, close)| rest.strip_prefix(open)?.strip_suffix(close))
                .ok_or_else(|| TestCaseError::fail(format!("bad node {line:?}")))?;
            prop_assert!(!label.contains('"'), "{}", line);
            check_mermaid_text(&label.replace("<br>", " "))?;
            nodes[id] += 1;
        }
    }
    prop_assert!(nodes.iter().all(|&n| n == 1), "nodes drawn {:?}", nodes);
    Ok(())
}

/// Escaped Mermaid text: no quote, no comment, no HTML or markdown, every
/// `#` the start of an entity code.
fn check_mermaid_text(text: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !text.contains(['"', '%', '<', '>', '`', ':', ';', '&']) || entity_only(text),
        "{}",
        text
    );
    prop_assert!(!text.chars().any(forbidden), "{:?}", text);
    Ok(())
}

/// Whether every `;` and `#` in `text` belongs to an entity code `#...;`.
fn entity_only(text: &str) -> bool {
    let mut rest = text;
    while let Some(at) = rest.find(['#', ';', '"', '%', '<', '>', '`', ':', '&']) {
        let tail = &rest[at..];
        if !tail.starts_with('#') {
            return false;
        }
        let Some(end) = tail.find(';') else {
            return false;
        };
        if !tail[1..end].chars().all(|c| c.is_ascii_alphanumeric()) || end == 1 {
            return false;
        }
        rest = &tail[end + 1..];
    }
    true
}

/// Splits a DOT line into its tokens outside strings, checking that every
/// string is closed and uses only `\"` and `\\` escapes.
fn dot_tokens(line: &str) -> Result<Vec<String>, TestCaseError> {
    let mut outside = Vec::new();
    let mut chars = line.chars();
    let mut current = String::new();
    while let Some(c) = chars.next() {
        if c == '"' {
            outside.push(std::mem::take(&mut current));
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"' | '\\' | 'n') => {}
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "bad escape {other:?} in {line:?}"
                            )));
                        }
                    },
                    Some(_) => {}
                    None => return Err(TestCaseError::fail(format!("open string: {line:?}"))),
                }
            }
            outside.push("\"\"".to_string());
        } else {
            current.push(c);
        }
    }
    outside.push(current);
    Ok(outside)
}

fn check_dot(dot: &str, steps: usize) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = dot.lines().collect();
    prop_assert!(lines.len() >= 2);
    prop_assert_eq!(dot_tokens(lines[0])?.concat(), "digraph \"\" {");
    prop_assert_eq!(lines[lines.len() - 1], "}");
    let mut nodes = vec![0usize; steps];
    for line in &lines[1..lines.len() - 1] {
        let shape = dot_tokens(line)?.concat();
        prop_assert!(
            shape == "    \"\" -> \"\";"
                || shape == "    \"\" -> \"\" [label=\"\"];"
                || (shape.starts_with("    \"\" [label=\"\", shape=\"\"") && shape.ends_with("];")),
            "{}",
            line
        );
        if !shape.contains("->") {
            let id: usize = line
                .trim_start()
                .strip_prefix("\"s")
                .and_then(|r| r.split('"').next())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| TestCaseError::fail(format!("bad node {line:?}")))?;
            prop_assert!(id < steps);
            nodes[id] += 1;
        }
    }
    prop_assert!(nodes.iter().all(|&n| n == 1), "nodes drawn {:?}", nodes);
    Ok(())
}

/// Checks a Gantt chart; returns the number of bars.
fn check_gantt(gantt: &str) -> Result<usize, TestCaseError> {
    let mut lines = gantt.lines();
    prop_assert_eq!(lines.next(), Some("gantt"));
    let mut bars = 0;
    for line in lines {
        if let Some(bar) = line.strip_prefix("        ") {
            let (name, data) = bar
                .rsplit_once(" :")
                .ok_or_else(|| TestCaseError::fail(format!("bar without data {line:?}")))?;
            prop_assert!(!name.trim().is_empty(), "{}", line);
            let lower = name.trim_start().to_ascii_lowercase();
            prop_assert!(
                ![
                    "section",
                    "title",
                    "click",
                    "dateformat",
                    "axisformat",
                    "todaymarker",
                    "excludes"
                ]
                .iter()
                .any(|k| lower.starts_with(k)),
                "{}",
                line
            );
            check_mermaid_text(name)?;
            prop_assert!(
                data.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == ',' || c == ' '),
                "{}",
                line
            );
            bars += 1;
        } else {
            let body = line.strip_prefix("    ").unwrap_or("");
            let known = [
                "title ",
                "%% times: milliseconds since the start",
                "dateFormat x",
                "axisFormat %s.%L",
                "todayMarker off",
                "section ",
            ];
            prop_assert!(known.iter().any(|k| body.starts_with(k)), "{}", line);
            if let Some(text) = body
                .strip_prefix("title ")
                .or(body.strip_prefix("section "))
            {
                check_mermaid_text(text)?;
                prop_assert!(!text.trim().is_empty(), "{}", line);
            }
        }
    }
    Ok(bars)
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn hostile_names_keep_diagrams_parseable(
        title in name(),
        names in proptest::collection::vec(name(), 1..6),
        labels in proptest::collection::vec(name(), 0..5),
    ) {
        let labels: Vec<String> = labels.into_iter().take(names.len().saturating_sub(1)).collect();
        let def = Arc::new(workflow(&title, &names, &labels));
        let steps = names.len();
        let outputs = [
            mermaid_flowchart(&def),
            dot_graph(&def),
        ];
        for out in &outputs {
            prop_assert!(!out.chars().any(forbidden), "{:?}", out);
        }
        check_flowchart(&outputs[0], steps)?;
        check_dot(&outputs[1], steps)?;

        let run: WorkflowRun<()> = WorkflowRun::new(def.clone(), WorkflowId::new(1), None, Instant::ZERO);
        let run_chart = mermaid_run_flowchart(&run);
        let run_dot = dot_run_graph(&run);
        let gantt = mermaid_gantt(&run, Instant::from_millis(5));
        for out in [&run_chart, &run_dot, &gantt] {
            prop_assert!(!out.chars().any(forbidden), "{:?}", out);
        }
        check_flowchart(&run_chart, steps)?;
        check_dot(&run_dot, steps)?;
        check_gantt(&gantt)?;

        let agents = CapabilityMatrix::new([PlanAgent::new(AgentId::new(1), ["any"])]).unwrap();
        let schedule = heft(&def, &agents).unwrap();
        let heft_gantt = schedule.mermaid_gantt();
        prop_assert!(!heft_gantt.chars().any(forbidden), "{:?}", heft_gantt);
        // Each step is one bar, exactly once.
        prop_assert_eq!(check_gantt(&heft_gantt)?, steps, "{}", heft_gantt);
    }
}
