//! The pieces flowcharts and DOT graphs share: node ids, labels, shapes,
//! the colour table of step states, and the two graph writers.

use std::fmt::Write as _;

use super::text::{NodeId, display_name};
use crate::StepId;
use crate::diagram::{dot_escape, escaped_label, line, mermaid_escape};
use crate::workflow::{StepDef, StepKind, StepState, WorkflowDef};

/// A node's label, unescaped: the lines of the step's name, then one line
/// per annotation (join, loop, fan-out, wait, sub-workflow).
pub(super) fn label_lines(def: &WorkflowDef, id: StepId, step: &StepDef) -> Vec<String> {
    let mut lines: Vec<String> = display_name(id, step).lines().map(str::to_string).collect();
    let inputs = def.predecessors(id).len();
    lines.extend(step.join.describe(inputs));
    if let Some(max) = step.max_iterations {
        lines.push(format!("loop, up to {max}"));
    }
    if let Some(multi) = step.multi_instance {
        lines.push(match multi.tolerated_failures {
            0 => "for each item".to_string(),
            n => format!("for each item, {n} may fail"),
        });
    }
    if !step.gate.is_always() {
        lines.push(step.gate.to_string());
    }
    match &step.kind {
        StepKind::Agent | StepKind::Local => {}
        StepKind::Wait { signals, timeout } => {
            let mut ends: Vec<String> = signals.clone();
            ends.extend(timeout.map(|t| format!("{t:?}")));
            lines.push(match ends.split_last() {
                None => "waits".to_string(),
                Some((last, [])) => format!("waits for {last}"),
                Some((last, rest)) => format!("waits for {} or {last}", rest.join(", ")),
            });
        }
        StepKind::SubWorkflow(child) => {
            lines.push(format!("runs {} v{}", child.name(), child.version()));
        }
    }
    lines
}

/// Every edge with its label: the branch label, then the gate if any.
fn edge_labels(def: &WorkflowDef) -> impl Iterator<Item = (StepId, StepId, Option<String>)> + '_ {
    def.graph().raw_edges().iter().map(|edge| {
        let (label, gate) = (&edge.weight.label, edge.weight.gate);
        let text = match (label, gate.is_always()) {
            (None, true) => None,
            (Some(label), true) => Some(label.clone()),
            (None, false) => Some(gate.to_string()),
            (Some(label), false) => Some(format!("{label}, {gate}")),
        };
        let id = |node: petgraph::graph::NodeIndex<u32>| StepId::new(node.index() as u64);
        (id(edge.source()), id(edge.target()), text)
    })
}

/// How a node is drawn, by step kind.
#[derive(Clone, Copy)]
pub(super) enum Shape {
    Rectangle,
    Rounded,
    Hexagon,
    Subroutine,
}

impl Shape {
    fn of(kind: &StepKind) -> Shape {
        match kind {
            StepKind::Agent => Shape::Rectangle,
            StepKind::Local => Shape::Rounded,
            StepKind::Wait { .. } => Shape::Hexagon,
            StepKind::SubWorkflow(_) => Shape::Subroutine,
        }
    }

    /// The Mermaid delimiters around a quoted label.
    fn mermaid(self) -> (&'static str, &'static str) {
        match self {
            Shape::Rectangle => ("[", "]"),
            Shape::Rounded => ("(", ")"),
            Shape::Hexagon => ("{{", "}}"),
            Shape::Subroutine => ("[[", "]]"),
        }
    }

    /// The DOT `shape`, whether its corners are rounded, and its number of
    /// outlines.
    fn dot(self) -> (&'static str, bool, u32) {
        match self {
            Shape::Rectangle => ("box", false, 1),
            Shape::Rounded => ("box", true, 1),
            Shape::Hexagon => ("hexagon", false, 1),
            Shape::Subroutine => ("box", false, 2),
        }
    }
}

/// How a step in a given state is coloured, in every format.
pub(super) struct StateStyle {
    pub(super) state: StepState,
    /// The Mermaid class name.
    pub(super) class: &'static str,
    pub(super) fill: &'static str,
    pub(super) stroke: &'static str,
    pub(super) text: &'static str,
    pub(super) dashed: bool,
}

/// The colour table, one row per [`StepState`], in declaration order.
pub(super) const STATE_STYLES: [StateStyle; 8] = [
    StateStyle {
        state: StepState::Pending,
        class: "state_pending",
        fill: "#ffffff",
        stroke: "#9e9e9e",
        text: "#212121",
        dashed: false,
    },
    StateStyle {
        state: StepState::Waiting,
        class: "state_waiting",
        fill: "#dbeafe",
        stroke: "#2563eb",
        text: "#1e3a8a",
        dashed: false,
    },
    StateStyle {
        state: StepState::Expanding,
        class: "state_expanding",
        fill: "#dbeafe",
        stroke: "#2563eb",
        text: "#1e3a8a",
        dashed: false,
    },
    StateStyle {
        state: StepState::Active,
        class: "state_active",
        fill: "#fff3cd",
        stroke: "#d39e00",
        text: "#5c4400",
        dashed: false,
    },
    StateStyle {
        state: StepState::Completed,
        class: "state_completed",
        fill: "#d4edda",
        stroke: "#28a745",
        text: "#155724",
        dashed: false,
    },
    StateStyle {
        state: StepState::Skipped,
        class: "state_skipped",
        fill: "#eeeeee",
        stroke: "#9e9e9e",
        text: "#616161",
        dashed: true,
    },
    StateStyle {
        state: StepState::Cancelled,
        class: "state_cancelled",
        fill: "#e0e0e0",
        stroke: "#757575",
        text: "#424242",
        dashed: false,
    },
    StateStyle {
        state: StepState::Failed,
        class: "state_failed",
        fill: "#f8d7da",
        stroke: "#dc3545",
        text: "#721c24",
        dashed: false,
    },
];

pub(super) fn state_style(state: StepState) -> &'static StateStyle {
    // Every state has a row; the fallback is never taken.
    STATE_STYLES
        .iter()
        .find(|style| style.state == state)
        .unwrap_or(&STATE_STYLES[0])
}

pub(super) fn write_mermaid_graph(out: &mut String, def: &WorkflowDef) {
    out.push_str("flowchart TD\n");
    for (id, step) in def.steps() {
        let label = escaped_label(&label_lines(def, id, step), mermaid_escape, "<br>");
        let (open, close) = Shape::of(&step.kind).mermaid();
        line(
            out,
            1,
            format_args!("{}{open}\"{label}\"{close}", NodeId(id)),
        );
    }
    for (from, to, label) in edge_labels(def) {
        let (from, to) = (NodeId(from), NodeId(to));
        match label {
            Some(label) => {
                let label = mermaid_escape(&label);
                line(out, 1, format_args!("{from} -->|\"{label}\"| {to}"));
            }
            None => line(out, 1, format_args!("{from} --> {to}")),
        }
    }
}

pub(super) fn write_dot(def: &WorkflowDef, state: impl Fn(StepId) -> Option<StepState>) -> String {
    let mut out = String::new();
    line(
        &mut out,
        0,
        format_args!("digraph \"{}\" {{", dot_escape(def.name())),
    );
    for (id, step) in def.steps() {
        let label = escaped_label(&label_lines(def, id, step), dot_escape, "\\n");
        let (shape, rounded, peripheries) = Shape::of(&step.kind).dot();
        let mut attrs = format!("label=\"{label}\", shape=\"{shape}\"");
        let colours = state(id).map(state_style);
        let mut styles: Vec<&str> = Vec::new();
        if rounded {
            styles.push("rounded");
        }
        if colours.is_some() {
            styles.push("filled");
        }
        if colours.is_some_and(|c| c.dashed) {
            styles.push("dashed");
        }
        if !styles.is_empty() {
            let _ = write!(attrs, ", style=\"{}\"", styles.join(","));
        }
        if peripheries != 1 {
            let _ = write!(attrs, ", peripheries=\"{peripheries}\"");
        }
        if let Some(c) = colours {
            let _ = write!(
                attrs,
                ", fillcolor=\"{}\", color=\"{}\", fontcolor=\"{}\"",
                c.fill, c.stroke, c.text
            );
        }
        line(&mut out, 1, format_args!("\"{}\" [{attrs}];", NodeId(id)));
    }
    for (from, to, label) in edge_labels(def) {
        let (from, to) = (NodeId(from), NodeId(to));
        match label {
            Some(label) => line(
                &mut out,
                1,
                format_args!("\"{from}\" -> \"{to}\" [label=\"{}\"];", dot_escape(&label)),
            ),
            None => line(&mut out, 1, format_args!("\"{from}\" -> \"{to}\";")),
        }
    }
    out.push_str("}\n");
    out
}
