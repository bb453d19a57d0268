//! Shared by the tests of untrusted input: case counts that follow
//! `PROPTEST_CASES`, a watchdog that turns a hang into a failure, and a walk
//! over a JSON value to find what to corrupt.

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

use proptest::test_runner::Config as ProptestConfig;
use serde_json::Value;

/// The default proptest configuration (which reads `PROPTEST_CASES`), with
/// `default` cases unless that variable is set.
pub(crate) fn config(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config.max_shrink_iters = 512;
    config
}

/// Runs `case` on its own thread. A case that has not returned after
/// `secs` seconds is a hang and fails; a panic is passed on as it was.
pub(crate) fn watchdog<T: Send + 'static>(
    secs: u64,
    case: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)));
    });
    match result.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("hang: the case did not finish within {secs} s"),
    }
}

/// One step of a path into a JSON value.
#[derive(Clone, Debug)]
pub(crate) enum PathStep {
    Key(String),
    Index(usize),
}

/// The paths to every node of `value` that `keep` accepts, in a fixed
/// pre-order walk (a container before what it holds).
pub(crate) fn paths_where(value: &Value, keep: impl Fn(&Value) -> bool) -> Vec<Vec<PathStep>> {
    fn walk(
        value: &Value,
        keep: &dyn Fn(&Value) -> bool,
        path: &mut Vec<PathStep>,
        out: &mut Vec<Vec<PathStep>>,
    ) {
        if keep(value) {
            out.push(path.clone());
        }
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    walk(item, keep, path, out);
                    path.pop();
                }
            }
            Value::Object(fields) => {
                for (key, item) in fields {
                    path.push(PathStep::Key(key.clone()));
                    walk(item, keep, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &keep, &mut Vec::new(), &mut out);
    out
}

/// The node at `path`, which [`paths_where`] found in this value.
pub(crate) fn at_path<'a>(value: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(value, |v, step| match step {
        PathStep::Key(key) => &mut v[key.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

/// Whether a node is a non-empty array.
pub(crate) fn non_empty_array(value: &Value) -> bool {
    value.as_array().is_some_and(|items| !items.is_empty())
}

/// A reshaped copy of a JSON array (a stored row, a list): an element
/// dropped, one repeated, two swapped, the array emptied, or turned into
/// an object, as `how` chooses; `noise` picks the elements. Other values
/// come back unchanged.
pub(crate) fn reshape_array(old: &Value, how: u8, noise: u64) -> Value {
    let Some(items) = old.as_array().filter(|items| !items.is_empty()) else {
        return old.clone();
    };
    let mut items = items.clone();
    let at = (noise % items.len() as u64) as usize;
    let other = ((noise >> 32) % items.len() as u64) as usize;
    match how % 5 {
        0 => {
            items.remove(at);
        }
        1 => items.insert(at, items[other].clone()),
        2 => items.swap(at, other),
        3 => items.clear(),
        _ => {
            return Value::Object(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (i.to_string(), item))
                    .collect(),
            );
        }
    }
    Value::Array(items)
}

/// A corrupted copy of a JSON leaf: a boolean flipped, or a number moved
/// by one, zeroed, pushed to a 32- or 64-bit edge, a bit flipped or
/// replaced by `noise`, as `how` chooses. Other values come back unchanged.
pub(crate) fn corrupt_leaf(old: &Value, how: u8, noise: u64) -> Value {
    match old {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => {
            let n = n.as_u64().unwrap_or(0);
            Value::from(match how % 8 {
                0 => n.wrapping_add(1),
                1 => n.wrapping_sub(1),
                2 => 0,
                3 => u64::from(u32::MAX),
                4 => u64::MAX,
                5 => 1 << 32,
                6 => n ^ (1 << (noise % 64)),
                _ => noise,
            })
        }
        other => other.clone(),
    }
}
