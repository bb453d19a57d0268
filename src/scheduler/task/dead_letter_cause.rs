//! [`DeadLetterCause`]: a dead letter's reason without its details, for
//! filters, with the names an operator types.

use std::fmt;
use std::str::FromStr;

#[cfg(doc)]
use super::DeadLetterReason;

/// A [`DeadLetterReason`]'s variant, for filters. It reads and prints as
/// `retries-exhausted`, `non-retryable`, `unroutable` or `expired`.
///
/// ```
/// use taskweave::scheduler::DeadLetterCause;
///
/// let cause: DeadLetterCause = "non-retryable".parse()?;
/// assert_eq!(cause, DeadLetterCause::NonRetryable);
/// assert_eq!(cause.to_string(), "non-retryable");
/// assert!("gone".parse::<DeadLetterCause>().is_err());
/// # Ok::<(), taskweave::scheduler::UnknownCause>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DeadLetterCause {
    /// [`DeadLetterReason::RetriesExhausted`].
    RetriesExhausted,
    /// [`DeadLetterReason::NonRetryable`].
    NonRetryable,
    /// [`DeadLetterReason::Unroutable`].
    Unroutable,
    /// [`DeadLetterReason::Expired`].
    Expired,
}

impl DeadLetterCause {
    /// Every cause, in declaration order.
    pub const ALL: [DeadLetterCause; 4] = [
        DeadLetterCause::RetriesExhausted,
        DeadLetterCause::NonRetryable,
        DeadLetterCause::Unroutable,
        DeadLetterCause::Expired,
    ];

    /// Its name, as it reads and prints.
    pub fn name(self) -> &'static str {
        match self {
            DeadLetterCause::RetriesExhausted => "retries-exhausted",
            DeadLetterCause::NonRetryable => "non-retryable",
            DeadLetterCause::Unroutable => "unroutable",
            DeadLetterCause::Expired => "expired",
        }
    }
}

impl fmt::Display for DeadLetterCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A word that names no [`DeadLetterCause`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a dead letter's cause: say retries-exhausted, non-retryable, unroutable or expired"
)]
pub struct UnknownCause(pub String);

impl FromStr for DeadLetterCause {
    type Err = UnknownCause;

    fn from_str(word: &str) -> Result<Self, UnknownCause> {
        DeadLetterCause::ALL
            .into_iter()
            .find(|cause| cause.name() == word)
            .ok_or_else(|| UnknownCause(word.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_reads_back_from_its_name_and_nothing_else_reads() {
        for cause in DeadLetterCause::ALL {
            assert_eq!(cause.to_string().parse(), Ok(cause));
        }
        for word in ["", "Expired", "retries_exhausted", "expired "] {
            let error = word.parse::<DeadLetterCause>().unwrap_err();
            assert!(error.to_string().contains("non-retryable"), "{error}");
        }
    }
}
