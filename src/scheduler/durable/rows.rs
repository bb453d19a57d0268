//! The row form of what a snapshot holds once per task: a live task and its
//! queue entry are written as arrays of their fields, in declaration order,
//! without field names, and a priority as its index (snapshot version 7);
//! a queued task's state as `0` (version 8; its other states as before).
//! The fields a type declares last have defaults, and a row ends at the
//! last of them that is not at its default (a queued task that never ran
//! is six fields).
//!
//! Reading stays with serde's derived `Deserialize`, which takes a struct
//! from an array (fields in declaration order, skipped ones left out, a
//! missing trailing field with a default taking it) as well as from an
//! object; so the object form of versions 4 to 6 reads as before,
//! [`priority`] reads a level by name or by index, and [`state`] a
//! queued task's state as `"Queued"` or `0`. The derived reader is
//! also why each writer below destructures its type in full: a field added
//! to the type and not to its row fails to compile rather than shifting
//! every field after it.

use serde::Serialize;
use serde::ser::{SerializeTuple, Serializer};

use crate::scheduler::TaskState;
use crate::scheduler::queue::entry::Entry;
use crate::scheduler::state::Task;

impl<P: Serialize> Serialize for Task<P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Task {
            payload,
            state,
            seq,
            assigned_at,
            requirements,
            agent_slot: _,
            priority,
            attempts,
            failures,
            extras,
            probe,
        } = self;
        let len = row_len(
            6,
            &[*attempts != 0, *failures != 0, extras.is_some(), *probe],
        );
        let mut row = serializer.serialize_tuple(len)?;
        row.serialize_element(payload)?;
        match state {
            TaskState::Queued => row.serialize_element(&0u8)?,
            other => row.serialize_element(other)?,
        }
        row.serialize_element(seq)?;
        row.serialize_element(assigned_at)?;
        row.serialize_element(requirements)?;
        row.serialize_element(&priority.index())?;
        if len > 6 {
            row.serialize_element(attempts)?;
        }
        if len > 7 {
            row.serialize_element(failures)?;
        }
        if len > 8 {
            row.serialize_element(extras)?;
        }
        if len > 9 {
            row.serialize_element(probe)?;
        }
        row.end()
    }
}

/// The fields after `since` are written only up to the last one that is
/// not at its default, as the object form left them out.
impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Entry {
            seq,
            task,
            priority,
            since,
            lane,
            weight,
            woken,
        } = self;
        let len = row_len(4, &[*lane != 0, *weight != 0, *woken]);
        let mut row = serializer.serialize_tuple(len)?;
        row.serialize_element(seq)?;
        row.serialize_element(task)?;
        row.serialize_element(&priority.index())?;
        row.serialize_element(since)?;
        if len > 4 {
            row.serialize_element(lane)?;
        }
        if len > 5 {
            row.serialize_element(weight)?;
        }
        if len > 6 {
            row.serialize_element(woken)?;
        }
        row.end()
    }
}

/// The length of a row of `fixed` fields and then trailing ones with
/// defaults, where `set[i]` says whether trailing field `i` is not at its
/// default: the row ends at the last one set. Inlined, so that each
/// writer's call folds to a few branches (called out of line, it was 3.5 %
/// of a 100,000-task snapshot's time).
#[inline(always)]
fn row_len(fixed: usize, set: &[bool]) -> usize {
    fixed + set.iter().rposition(|&set| set).map_or(0, |last| last + 1)
}

/// Reads a [`Priority`](crate::Priority) written by name (`"Normal"`, the
/// object form) or by index (`2`, the row form); anything else, an index
/// past `P3` included, is an error naming what was found.
pub(crate) mod priority {
    use serde::de::{Deserializer, Error, Unexpected, Visitor};

    use crate::Priority;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Priority, D::Error> {
        deserializer.deserialize_any(Either)
    }

    struct Either;

    impl<'de> Visitor<'de> for Either {
        type Value = Priority;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a priority: an index 0 to 3, or a level's name")
        }

        fn visit_u64<E: Error>(self, index: u64) -> Result<Priority, E> {
            usize::try_from(index)
                .ok()
                .and_then(Priority::from_index)
                .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(index), &self))
        }

        fn visit_i64<E: Error>(self, index: i64) -> Result<Priority, E> {
            u64::try_from(index)
                .map_err(|_| E::invalid_value(Unexpected::Signed(index), &self))
                .and_then(|index| self.visit_u64(index))
        }

        fn visit_str<E: Error>(self, name: &str) -> Result<Priority, E> {
            match name {
                "Critical" => Ok(Priority::Critical),
                "High" => Ok(Priority::High),
                "Normal" => Ok(Priority::Normal),
                "Low" => Ok(Priority::Low),
                _ => Err(E::invalid_value(Unexpected::Str(name), &self)),
            }
        }
    }
}

/// Reads a live task's [`TaskState`](crate::scheduler::TaskState): `0`
/// for `Queued` (the row form), or any state as its derived form (`"Queued"`,
/// `{"InFlight": {..}}`, ...). Any other number is an error naming it;
/// whether the state may be a live task's is checked on restore.
pub(crate) mod state {
    use serde::Deserialize;
    use serde::de::value::{MapAccessDeserializer, StrDeserializer};
    use serde::de::{Deserializer, Error, MapAccess, Unexpected, Visitor};

    use crate::scheduler::TaskState;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<TaskState, D::Error> {
        deserializer.deserialize_any(Either)
    }

    struct Either;

    impl<'de> Visitor<'de> for Either {
        type Value = TaskState;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a task's state: 0 for queued, or a state by name")
        }

        fn visit_u64<E: Error>(self, value: u64) -> Result<TaskState, E> {
            match value {
                0 => Ok(TaskState::Queued),
                _ => Err(E::invalid_value(Unexpected::Unsigned(value), &self)),
            }
        }

        fn visit_i64<E: Error>(self, value: i64) -> Result<TaskState, E> {
            u64::try_from(value)
                .map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
                .and_then(|value| self.visit_u64(value))
        }

        fn visit_str<E: Error>(self, name: &str) -> Result<TaskState, E> {
            TaskState::deserialize(StrDeserializer::<E>::new(name))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TaskState, A::Error> {
            TaskState::deserialize(MapAccessDeserializer::new(map))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scheduler::TaskState;
    use crate::{AgentId, AttemptToken, Instant, Priority};

    fn read(text: &str) -> Result<Priority, String> {
        let mut json = serde_json::Deserializer::from_str(text);
        super::priority::deserialize(&mut json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_row_ends_at_its_last_field_not_at_its_default() {
        assert_eq!(super::row_len(6, &[false, false, false, false]), 6);
        assert_eq!(super::row_len(6, &[true, false, false, false]), 7);
        assert_eq!(super::row_len(6, &[false, true, false, false]), 8);
        assert_eq!(super::row_len(6, &[true, false, true, false]), 9);
        assert_eq!(super::row_len(4, &[false, false, true]), 7);
        assert_eq!(super::row_len(4, &[]), 4);
    }

    #[test]
    fn a_priority_reads_by_index_or_by_name_and_nothing_else() {
        for level in Priority::ALL {
            assert_eq!(read(&level.index().to_string()), Ok(level));
            assert_eq!(read(&serde_json::to_string(&level).unwrap()), Ok(level));
        }
        for bad in [
            "4",
            "-1",
            "18446744073709551615",
            r#""P2""#,
            r#""normal""#,
            "2.0",
            "null",
        ] {
            let error = read(bad).unwrap_err();
            assert!(error.contains("priority"), "{bad}: {error}");
        }
    }

    fn read_state(text: &str) -> Result<TaskState, String> {
        let mut json = serde_json::Deserializer::from_str(text);
        super::state::deserialize(&mut json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_state_reads_as_0_for_queued_or_by_its_derived_form() {
        let in_flight = TaskState::InFlight {
            agent: AgentId::new(3),
            token: AttemptToken::new(9),
            attempt: 2,
        };
        let delayed = TaskState::Delayed {
            until: Instant::from_nanos(5),
        };
        assert_eq!(read_state("0"), Ok(TaskState::Queued));
        for state in [TaskState::Queued, in_flight, delayed, TaskState::Completed] {
            let text = serde_json::to_string(&state).unwrap();
            assert_eq!(read_state(&text), Ok(state), "{text}");
        }
        for bad in [
            "1",
            "-1",
            "18446744073709551615",
            "0.0",
            r#""queued""#,
            r#"{"InFlight":{"agent":3}}"#,
            r#"{"Queued":0,"Completed":0}"#,
            "[]",
            "null",
        ] {
            assert!(read_state(bad).is_err(), "{bad} read as a state");
        }
    }
}
