//! The text every diagram shares, Mermaid's and DOT's escaping, indented
//! lines, milliseconds: the workflow exports and planning's Gantt chart
//! write text the same way.

use std::fmt::{self, Write as _};

use crate::Instant;

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

/// Whether `c` ends or splits a line somewhere: every control character
/// (C0, DEL, C1 — `\n`, `\r`, U+0085 NEL among them) and the Unicode line
/// and paragraph separators U+2028 and U+2029, which JavaScript (Mermaid)
/// treats as line terminators.
pub(crate) fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `text` shows nothing: only whitespace, controls and separators.
pub(crate) fn is_blank(text: &str) -> bool {
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
pub(crate) fn dot_escape(text: &str) -> String {
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
pub(crate) fn escaped_label(
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

/// The head of a Mermaid Gantt chart whose times are milliseconds from a
/// start: `title` (escaped), a `%%` comment saying so, `dateFormat x`
/// (each number is a Unix millisecond timestamp), `axisFormat %s.%L`
/// (seconds since the epoch, which is the start here, in any time zone)
/// and `todayMarker off`.
pub(crate) fn gantt_head(title: &str) -> String {
    let mut out = String::from("gantt\n");
    line(&mut out, 1, format_args!("title {}", mermaid_escape(title)));
    line(
        &mut out,
        1,
        format_args!("%% times: milliseconds since the start"),
    );
    line(&mut out, 1, format_args!("dateFormat x"));
    line(&mut out, 1, format_args!("axisFormat %s.%L"));
    line(&mut out, 1, format_args!("todayMarker off"));
    out
}

/// Milliseconds from `origin` to `at` (zero if earlier), rounded down, or
/// up if `round_up`.
pub(crate) fn millis_since(at: Instant, origin: Instant, round_up: bool) -> u64 {
    let nanos = at.as_nanos().saturating_sub(origin.as_nanos());
    if round_up {
        nanos.div_ceil(1_000_000)
    } else {
        nanos / 1_000_000
    }
}
