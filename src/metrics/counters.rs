//! Event counters of a dispatcher.

/// Monotonic counts of what happened to tasks, attempts and reports.
///
/// Plain public fields: a dispatcher increments them, a host reads them (and
/// may keep its own copies, take differences between two snapshots, or sum
/// shards with [`merge`](Counters::merge)). Every count saturates at
/// `u64::MAX` instead of wrapping. New counters may be added, so the struct
/// is `#[non_exhaustive]`: build one with [`Counters::default`].
///
/// Counts are per *task* for the terminal outcomes (`completed`,
/// `dead_lettered`, `expired`, `cancelled`) and per *attempt* for the rest,
/// so a task that fails twice and then succeeds adds 3 to `assigned`, 2 to
/// `failed` and `retried`, and 1 to `completed`.
///
/// ```
/// use taskweave::metrics::Counters;
///
/// let mut shard_a = Counters::default();
/// shard_a.submitted = 10;
/// shard_a.completed = 8;
/// let mut shard_b = Counters::default();
/// shard_b.submitted = 5;
/// shard_b.failed = 1;
///
/// shard_a.merge(&shard_b);
/// assert_eq!((shard_a.submitted, shard_a.completed, shard_a.failed), (15, 8, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct Counters {
    /// Tasks accepted by `submit` (after validation, deduplication and
    /// admission; refused submissions are not counted).
    pub submitted: u64,
    /// Attempts handed to an agent: one per assignment, so a retried task
    /// counts once per attempt.
    pub assigned: u64,
    /// Tasks that finished successfully (terminal).
    pub completed: u64,
    /// Attempts that ended in failure: reported failures and attempt
    /// timeouts.
    pub failed: u64,
    /// Failed attempts that the retry policy scheduled for another attempt.
    pub retried: u64,
    /// Tasks that failed for good and went to the dead-letter queue
    /// (terminal).
    pub dead_lettered: u64,
    /// Tasks whose time to live ran out before they completed (terminal).
    pub expired: u64,
    /// Tasks cancelled by the host (terminal).
    pub cancelled: u64,
    /// Attempts taken back from their agent without a result (the agent went
    /// away or became unhealthy, or a more urgent task needed the slot) and
    /// put back in the queue.
    pub preempted: u64,
    /// Task reports refused: late, forged or duplicate results whose
    /// attempt token, agent or task did not match the current attempt.
    pub rejected_reports: u64,
    /// Times a circuit breaker opened.
    pub breaker_trips: u64,
}

impl Counters {
    /// Adds every count of `other` to `self`, saturating.
    pub fn merge(&mut self, other: &Counters) {
        let Counters {
            submitted,
            assigned,
            completed,
            failed,
            retried,
            dead_lettered,
            expired,
            cancelled,
            preempted,
            rejected_reports,
            breaker_trips,
        } = *other;
        self.submitted = self.submitted.saturating_add(submitted);
        self.assigned = self.assigned.saturating_add(assigned);
        self.completed = self.completed.saturating_add(completed);
        self.failed = self.failed.saturating_add(failed);
        self.retried = self.retried.saturating_add(retried);
        self.dead_lettered = self.dead_lettered.saturating_add(dead_lettered);
        self.expired = self.expired.saturating_add(expired);
        self.cancelled = self.cancelled.saturating_add(cancelled);
        self.preempted = self.preempted.saturating_add(preempted);
        self.rejected_reports = self.rejected_reports.saturating_add(rejected_reports);
        self.breaker_trips = self.breaker_trips.saturating_add(breaker_trips);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(start: u64) -> Counters {
        Counters {
            submitted: start,
            assigned: start + 1,
            completed: start + 2,
            failed: start + 3,
            retried: start + 4,
            dead_lettered: start + 5,
            expired: start + 6,
            cancelled: start + 7,
            preempted: start + 8,
            rejected_reports: start + 9,
            breaker_trips: start + 10,
        }
    }

    #[test]
    fn default_is_all_zero() {
        assert_eq!(Counters::default(), numbered(0).map_fields(|c| *c = 0));
    }

    #[test]
    fn merge_adds_every_field_and_saturates() {
        let mut a = numbered(1);
        a.merge(&numbered(100));
        assert_eq!(a, numbered(0).map_fields(|c| *c = 2 * *c + 101));

        let mut full = numbered(0).map_fields(|c| *c = u64::MAX);
        full.merge(&numbered(1));
        assert_eq!(full, numbered(0).map_fields(|c| *c = u64::MAX));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trips_and_fills_missing_fields() {
        let c = numbered(3);
        let back: Counters = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let partial: Counters = serde_json::from_str(r#"{"completed":4}"#).unwrap();
        let expected = Counters {
            completed: 4,
            ..Counters::default()
        };
        assert_eq!(partial, expected);
    }

    impl Counters {
        /// A copy with `f` applied to every field.
        fn map_fields(mut self, f: impl Fn(&mut u64)) -> Counters {
            for field in [
                &mut self.submitted,
                &mut self.assigned,
                &mut self.completed,
                &mut self.failed,
                &mut self.retried,
                &mut self.dead_lettered,
                &mut self.expired,
                &mut self.cancelled,
                &mut self.preempted,
                &mut self.rejected_reports,
                &mut self.breaker_trips,
            ] {
                f(field);
            }
            self
        }
    }
}
