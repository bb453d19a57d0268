//! The text helpers every diagram shares — Mermaid's and DOT's escaping,
//! display names, indented lines, milliseconds — crate-private, so
//! planning's Gantt chart writes text the same way.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::workflow::StepDef;
use crate::{Instant, StepId};

/// A step's node id in both formats: `s` and its index.
#[derive(Clone, Copy)]
pub(super) struct NodeId(pub(super) StepId);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0.get())
    }
}

/// Appends `indent` levels of four spaces, the formatted text and a line
/// break.
pub(crate) fn line(out: &mut String, indent: usize, text: fmt::Arguments<'_>) {
    for _ in 0..indent {
        out.push_str("    ");
    }
    // Writing to a String cannot fail.
    let _ = out.write_fmt(text);
    out.push('\n');
}

/// The step's name, or its key if the name is blank (only whitespace,
/// controls and line separators), or its node id if both are.
pub(crate) fn display_name(id: StepId, step: &StepDef) -> Cow<'_, str> {
    if !is_blank(&step.name) {
        Cow::Borrowed(&step.name)
    } else if !is_blank(&step.id) {
        Cow::Borrowed(&step.id)
    } else {
        Cow::Owned(NodeId(id).to_string())
    }
}

/// Whether `c` ends or splits a line somewhere: every control character
/// (C0, DEL, C1 — `\n`, `\r`, U+0085 NEL among them) and the Unicode line
/// and paragraph separators U+2028 and U+2029, which JavaScript (Mermaid)
/// treats as line terminators.
pub(crate) fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `text` shows nothing: only whitespace, controls and separators.
pub(super) fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || breaks_line(c))
}

/// Text for anywhere in a Mermaid diagram: Mermaid's entity codes for the
/// characters that could end a label, start a comment, markdown or HTML,
/// or split a Gantt line; control characters and line separators
/// ([`breaks_line`]) become spaces.
pub(crate) fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            ':' => out.push_str("#58;"),
            ';' => out.push_str("#59;"),
            '%' => out.push_str("#37;"),
            '`' => out.push_str("#96;"),
            c if breaks_line(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text for a DOT quoted string: `"` and `\` escaped (so no `\l`, `\N`…
/// sneaks in), control characters and line separators ([`breaks_line`])
/// become spaces.
pub(super) fn dot_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if breaks_line(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A label's lines, each escaped, joined by `separator`.
pub(super) fn escaped_label(
    lines: &[String],
    escape: fn(&str) -> String,
    separator: &str,
) -> String {
    lines
        .iter()
        .map(|l| escape(l))
        .collect::<Vec<_>>()
        .join(separator)
}

/// Milliseconds from `origin` to `at` (zero if earlier), rounded down, or
/// up if `round_up`.
pub(super) fn millis_since(at: Instant, origin: Instant, round_up: bool) -> u64 {
    let nanos = at.as_nanos().saturating_sub(origin.as_nanos());
    if round_up {
        nanos.div_ceil(1_000_000)
    } else {
        nanos / 1_000_000
    }
}
