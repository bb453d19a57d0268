//! The minimum Rust version is 1.85 (`rust-version` in Cargo.toml), and
//! no older toolchain can be installed here to prove it. The one language
//! feature from after it that the code keeps being tempted by is the let
//! chain (`if let … && …`, `if … && let …`, stable from 1.88): this scans
//! every Rust source of the workspace for an `if` or `while` condition
//! that joins a `let` with `&&` at its top level.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, `target` and hidden folders left out.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// `source` with comments, strings and character literals blanked out
/// (newlines kept, so line numbers stay), leaving only code.
fn code_only(source: &str) -> Vec<char> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = chars.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(chars.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        let end = if rest.starts_with(&['/', '/']) {
            rest.iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |n| i + n)
        } else if rest.starts_with(&['/', '*']) {
            (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                .map_or(chars.len(), |j| j + 2)
        } else if rest.starts_with(&['r', '"']) || rest.starts_with(&['r', '#']) {
            let hashes = rest[1..].iter().take_while(|&&c| c == '#').count();
            if rest.get(1 + hashes) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            (i + 2 + hashes..chars.len())
                .find(|&j| chars[j..].starts_with(&close))
                .map_or(chars.len(), |j| j + close.len())
        } else if rest[0] == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            j + 1
        } else if rest[0] == '\'' {
            // A character literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            match rest.get(1) {
                Some('\\') => (i + 2..chars.len())
                    .find(|&j| chars[j] == '\'')
                    .map_or(chars.len(), |j| j + 1),
                Some(_) if rest.get(2) == Some(&'\'') => i + 3,
                _ => {
                    i += 1;
                    continue;
                }
            }
        } else {
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `code[at..]` starts with the word `word`.
fn word_at(code: &[char], at: usize, word: &str) -> bool {
    let word: Vec<char> = word.chars().collect();
    code[at..].starts_with(&word)
        && (at == 0 || !is_word(code[at - 1]))
        && code.get(at + word.len()).is_none_or(|&c| !is_word(c))
}

/// The lines of the `if` and `while` conditions in `source` that chain a
/// `let` with `&&`: both at the condition's top level, before its block.
fn let_chains(source: &str) -> Vec<usize> {
    let code = code_only(source);
    let mut lines = Vec::new();
    for start in 0..code.len() {
        let keyword = if word_at(&code, start, "if") {
            2
        } else if word_at(&code, start, "while") {
            5
        } else {
            continue;
        };
        let (mut depth, mut has_let, mut has_and) = (0i32, false, false);
        let mut i = start + keyword;
        while i < code.len() {
            match code[i] {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '{' if depth == 0 => break,
                '{' => depth += 1,
                '}' => depth -= 1,
                ';' if depth == 0 => break,
                '=' if depth == 0 && code.get(i + 1) == Some(&'>') => break,
                '&' if depth == 0 && code.get(i + 1) == Some(&'&') => {
                    has_and = true;
                    i += 1;
                }
                _ if depth == 0 && word_at(&code, i, "let") => has_let = true,
                _ => {}
            }
            if depth < 0 {
                break;
            }
            i += 1;
        }
        if has_let && has_and {
            lines.push(code[..start].iter().filter(|&&c| c == '\n').count() + 1);
        }
    }
    lines
}

#[test]
fn the_scanner_finds_let_chains_and_nothing_else() {
    let chained = "fn f() {\n    if let Some(x) = y\n        && x > 1\n    {\n    }\n    while a && let Some(b) = c.pop() {}\n}\n";
    assert_eq!(let_chains(chained), [2, 6]);
    let plain = r#"fn f() {
    if let Some(k) = options.top_k().filter(|&k| k > 0 && len > k) {}
    if a && b { let c = d && e; }
    let s = "if let x = y && z {";
    // if let x = y && z {
    let c = '{';
    match x { Some(v) if v && w => {} _ => {} }
    if let Some(x) = y { z && w; }
}
"#;
    assert_eq!(let_chains(plain), Vec::<usize>::new());
}

#[test]
fn no_source_chains_a_let_with_and() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "examples", "benches", "taskweave-postgres"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "the workspace's sources were not found");
    let mut found = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("a readable source");
        for line in let_chains(&source) {
            let path = file.strip_prefix(root).unwrap_or(&file);
            found.push(format!("{}:{line}", path.display()));
        }
    }
    assert!(
        found.is_empty(),
        "let chains need Rust 1.88 and rust-version is 1.85; rewrite these \
         with a match, a filter or a nested if:\n  {}",
        found.join("\n  ")
    );
}
