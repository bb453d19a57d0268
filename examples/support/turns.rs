//! Timing operations in turns: each round times every operation once, so
//! a slow spell of a shared machine — another tenant, a frequency change —
//! hits all of them alike, and a ratio taken within each round keeps its
//! value where the absolute times move. The median over the rounds is
//! reported.

use std::time::{Duration, Instant};

/// Per-operation times, in nanoseconds, of each of `ops` in each of
/// `rounds` rounds. Each operation first warms up for `warm_up` (which
/// also estimates its cost); in every round it then runs for about `run`.
pub(crate) fn in_turns<const N: usize>(
    ops: &mut [&mut dyn FnMut(); N],
    rounds: usize,
    run: Duration,
    warm_up: Duration,
) -> Vec<[f64; N]> {
    let iterations: [u64; N] = std::array::from_fn(|i| {
        let op = &mut ops[i];
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed() < warm_up || done < 1_000 {
            for _ in 0..1_000 {
                op();
            }
            done += 1_000;
        }
        let per_op = start.elapsed().as_secs_f64() / done as f64;
        ((run.as_secs_f64() / per_op).ceil() as u64).max(1)
    });
    (0..rounds)
        .map(|_| {
            std::array::from_fn(|i| {
                let op = &mut ops[i];
                let start = Instant::now();
                for _ in 0..iterations[i] {
                    op();
                }
                start.elapsed().as_nanos() as f64 / iterations[i] as f64
            })
        })
        .collect()
}

/// The median of `values` (the upper one of an even count); 0 for none.
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
