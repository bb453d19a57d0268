//! A run's trace: every event folded into one hash (two runs of a seed
//! must end with the same), and the last lines kept to show around a
//! violation.

use std::collections::VecDeque;
use std::fmt::Write as _;

/// Lines of trace kept for a violation's context: the last events, and
/// the last notable lines (faults, what the roles reported).
const KEPT: usize = 20;
const NOTABLE: usize = 40;

/// FNV-1a over written text (and, for routine events, over words).
struct Fnv(u64);

impl Fnv {
    fn fold(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// FNV-1a's step on a whole word, its high bits folded down so that
    /// every bit of `word` reaches the low bits of the next steps.
    fn fold_word(&mut self, word: u64) {
        let mixed = (self.0 ^ word).wrapping_mul(0x0100_0000_01b3);
        self.0 = mixed ^ (mixed >> 29);
    }
}

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.fold(text.as_bytes());
        Ok(())
    }
}

/// The trace of one run.
#[derive(Debug)]
pub(crate) struct Trace {
    hash: u64,
    recent: VecDeque<String>,
    notable: VecDeque<String>,
    keep: bool,
}

impl Trace {
    /// A trace that keeps its recent lines when `keep` (hashing alone is
    /// cheaper).
    pub(crate) fn new(keep: bool) -> Self {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            recent: VecDeque::new(),
            notable: VecDeque::new(),
            keep,
        }
    }

    /// Folds `line` (FNV-1a) and keeps it when asked to.
    pub(crate) fn record(&mut self, at_ms: u64, line: std::fmt::Arguments<'_>, notable: bool) {
        if !self.keep {
            // Hash as the text is written: no line is built.
            let mut hasher = Fnv(self.hash);
            let _ = write!(hasher, "{at_ms:>9} ms  {line}");
            self.hash = hasher.0;
            return;
        }
        let text = format!("{at_ms:>9} ms  {line}");
        let mut hasher = Fnv(self.hash);
        hasher.fold(text.as_bytes());
        self.hash = hasher.0;
        self.keep_line(text, notable);
    }

    /// Folds a routine event, `kind` of `who` at `at_ms`, as numbers (the
    /// same whether lines are kept or not), and keeps its line when asked
    /// to.
    pub(crate) fn record_event(&mut self, at_ms: u64, kind: &'static str, who: usize) {
        // A word at a time: this runs for every event.
        let mut hasher = Fnv(self.hash);
        hasher.fold_word(at_ms);
        for chunk in kind.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            hasher.fold_word(u64::from_le_bytes(word));
        }
        hasher.fold_word(who as u64);
        self.hash = hasher.0;
        if self.keep {
            self.keep_line(format!("{at_ms:>9} ms  {kind} {who}"), false);
        }
    }

    fn keep_line(&mut self, text: String, notable: bool) {
        let (ring, most) = if notable {
            (&mut self.notable, NOTABLE)
        } else {
            (&mut self.recent, KEPT)
        };
        if ring.len() == most {
            ring.pop_front();
        }
        ring.push_back(text);
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// The notable lines, then the last events.
    pub(crate) fn recent(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.notable.iter().cloned().collect();
        lines.push("  … the last events:".into());
        lines.extend(self.recent.iter().cloned());
        lines
    }
}
