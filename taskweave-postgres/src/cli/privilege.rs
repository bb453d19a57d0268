//! A refusal for want of a privilege (SQLSTATE 42501), said as the login
//! the command needs.

use std::fmt::Display;

use taskweave_postgres::LogLine;
use taskweave_postgres::store::refused_for_want_of_privilege;

/// The login each subcommand needs, as an operator creates it.
pub(crate) const SUBMITTER: &str =
    "a submitter login (taskweave-pg init --submitter LOGIN) or a node login";
pub(crate) const READER: &str = "a submitter or a node login";
pub(crate) const NODE: &str = "a node login (taskweave-pg init --node LOGIN)";
pub(crate) const OPERATOR: &str =
    "a node login (taskweave-pg init --node LOGIN) or the database owner";
pub(crate) const AGENT: &str =
    "the agent login made for its --id (taskweave-pg init --agent ID:LOGIN)";
pub(crate) const OWNER: &str = "the database owner or a superuser";

/// `error` as the command says it: when the server refused it for want
/// of a privilege, followed by the login `command` needs.
pub(crate) fn said(command: &str, needs: &str, error: impl Display) -> String {
    let text = error.to_string();
    if refused_for_want_of_privilege(&text) {
        format!("{text}; this login may not do that: `taskweave-pg {command}` needs {needs}")
    } else {
        text
    }
}

/// `log`, each line said as [`said`] says it, at its level.
pub(crate) fn naming_login(
    command: &'static str,
    needs: &'static str,
    mut log: impl FnMut(LogLine<'_>),
) -> impl FnMut(LogLine<'_>) {
    move |line| {
        let text = said(command, needs, line.text);
        log(LogLine {
            level: line.level,
            text: &text,
        });
    }
}

/// [`said`], as a `map_err` argument.
pub(crate) fn hint<E: Display>(command: &'static str, needs: &'static str) -> impl Fn(E) -> String {
    move |error| said(command, needs, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_login_only_for_a_privilege_refusal() {
        let refused = "the store refused the operation: 42501 permission denied for table journal";
        let said = said("audit", OPERATOR, refused);
        assert!(said.starts_with(refused), "{said}");
        assert!(
            said.contains("`taskweave-pg audit` needs a node login"),
            "{said}"
        );
        assert_eq!(
            super::said("audit", OPERATOR, "connection refused"),
            "connection refused"
        );
        let not_refused = "task-42501 is not a live task";
        assert_eq!(super::said("cancel", SUBMITTER, not_refused), not_refused);
    }
}
