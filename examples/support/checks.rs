//! The checks an example ends with, printed one per line.

/// Prints each check as `ok` or `FAIL` with its description, then a
/// verdict; whether all passed.
pub(crate) fn report(checks: &[(String, bool)]) -> bool {
    println!("checks");
    for (name, ok) in checks {
        println!("  {} {name}", if *ok { "ok  " } else { "FAIL" });
    }
    let passed = checks.iter().all(|(_, ok)| *ok);
    println!(
        "{}",
        if passed {
            "all checks passed"
        } else {
            "SOME CHECKS FAILED"
        }
    );
    passed
}
