//! [`Gate`]: the versions a step or an edge exists in, so one definition
//! serves the runs that started under several of its versions.

use std::fmt;

use crate::workflow::DefinitionError;

/// The versions of a definition a step or an edge exists in: from `since`
/// (inclusive) up to `until` (exclusive). A run sees the parts whose gate
/// admits its *origin*, the version it started under (kept when it
/// [migrates](super::WorkflowDef::diff)); parts whose gate does not admit
/// it are absent for that run, as if they had never been declared.
///
/// ```
/// use taskweave::workflow::Gate;
///
/// assert!(Gate::ALWAYS.admits(0) && Gate::ALWAYS.admits(u32::MAX));
/// let new_in_2 = Gate::since(2);
/// assert!(!new_in_2.admits(1) && new_in_2.admits(2) && new_in_2.admits(9));
/// let gone_in_3 = Gate::until(3);
/// assert!(gone_in_3.admits(2) && !gone_in_3.admits(3));
/// assert!(Gate::between(2, 4).admits(3) && !Gate::between(2, 4).admits(4));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Gate {
    /// The first version it exists in; `None`: every version up to `until`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub since: Option<u32>,
    /// The first version it no longer exists in; `None`: it still exists.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub until: Option<u32>,
}

impl fmt::Display for Gate {
    /// `since v2`, `before v3`, `since v2, before v4`, or `every version`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.since, self.until) {
            (None, None) => f.write_str("every version"),
            (Some(since), None) => write!(f, "since v{since}"),
            (None, Some(until)) => write!(f, "before v{until}"),
            (Some(since), Some(until)) => write!(f, "since v{since}, before v{until}"),
        }
    }
}

/// The most versions a definition's gates may tell apart: each is checked
/// when the definition is built, so their number bounds the work.
pub const MAX_GATED_VERSIONS: usize = 64;

impl Gate {
    /// Every version.
    pub const ALWAYS: Gate = Gate {
        since: None,
        until: None,
    };

    /// From `version` on.
    pub const fn since(version: u32) -> Gate {
        Gate {
            since: Some(version),
            until: None,
        }
    }

    /// Every version before `version`.
    pub const fn until(version: u32) -> Gate {
        Gate {
            since: None,
            until: Some(version),
        }
    }

    /// From `since` up to, not including, `until`.
    pub const fn between(since: u32, until: u32) -> Gate {
        Gate {
            since: Some(since),
            until: Some(until),
        }
    }

    /// Whether a run that started under `version` sees the gated part.
    pub fn admits(self, version: u32) -> bool {
        self.since.is_none_or(|since| since <= version)
            && self.until.is_none_or(|until| version < until)
    }

    /// Whether the gate admits every version.
    pub fn is_always(self) -> bool {
        self == Gate::ALWAYS
    }

    /// Refuses a gate that admits no version a run of a definition of
    /// `version` can have started under.
    pub(super) fn check(
        self,
        context: impl Fn() -> String,
        version: u32,
    ) -> Result<(), DefinitionError> {
        let reason = match (self.since, self.until) {
            (_, Some(0)) => "`until` 0 admits no version",
            (Some(since), Some(until)) if since >= until => "`since` is not before `until`",
            (Some(since), _) if since > version => {
                "`since` is later than the definition's version, so no run could see it"
            }
            _ => return Ok(()),
        };
        Err(DefinitionError::BadGate {
            context: context(),
            reason,
        })
    }
}

/// The versions at which what a definition of `version` gated by `gates`
/// looks like may change, from 0: one from each stretch of versions that
/// see the same parts. `None` when nothing is gated.
///
/// # Errors
///
/// [`DefinitionError::TooLarge`] beyond [`MAX_GATED_VERSIONS`].
pub(super) fn gated_versions(
    gates: impl Iterator<Item = Gate>,
    version: u32,
) -> Result<Vec<u32>, DefinitionError> {
    let mut versions = vec![];
    for gate in gates.filter(|gate| !gate.is_always()) {
        versions.extend(gate.since.into_iter().chain(gate.until));
    }
    if versions.is_empty() {
        return Ok(versions);
    }
    versions.push(0);
    versions.retain(|&v| v <= version);
    versions.sort_unstable();
    versions.dedup();
    if versions.len() > MAX_GATED_VERSIONS {
        return Err(DefinitionError::TooLarge {
            context: "the workflow".to_string(),
            field: "versions its gates tell apart",
            value: versions.len() as u64,
            limit: MAX_GATED_VERSIONS as u64,
        });
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_admits_from_since_up_to_until() {
        let gate = Gate::between(2, 4);
        let admitted: Vec<u32> = (0..6).filter(|&v| gate.admits(v)).collect();
        assert_eq!(admitted, [2, 3]);
        assert!(Gate::default().is_always());
        assert_eq!(gate.to_string(), "since v2, before v4");
        assert_eq!(Gate::until(3).to_string(), "before v3");
    }

    #[test]
    fn a_gate_that_admits_no_run_is_refused() {
        let context = || "step `x`".to_string();
        for gate in [
            Gate::until(0),
            Gate::between(3, 3),
            Gate::between(4, 2),
            Gate::since(6),
        ] {
            let err = gate.check(context, 5).unwrap_err();
            assert!(
                matches!(err, DefinitionError::BadGate { .. }),
                "{gate:?}: {err}"
            );
        }
        assert!(Gate::between(5, 9).check(context, 5).is_ok());
    }

    #[test]
    fn gated_versions_are_the_stretch_starts_up_to_the_version() {
        let gates = [
            Gate::ALWAYS,
            Gate::since(3),
            Gate::between(2, 7),
            Gate::until(3),
        ];
        assert_eq!(gated_versions(gates.into_iter(), 5).unwrap(), [0, 2, 3]);
        assert!(
            gated_versions([Gate::ALWAYS].into_iter(), 5)
                .unwrap()
                .is_empty()
        );
        let many = (1..=100).map(Gate::since);
        assert!(matches!(
            gated_versions(many, 100),
            Err(DefinitionError::TooLarge { value: 101, .. })
        ));
    }
}
