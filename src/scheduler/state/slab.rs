//! Dense storage of tasks, live and recently finished, addressed by
//! [`TaskId`]s that carry a generation, so an id of a task whose slot was
//! reused never reaches the slot's next occupant.
//!
//! A finished task leaves a small record (its terminal state) in its slot.
//! Slots are reused oldest-finished first, and only the records of the last
//! `keep` finished tasks stay readable, so the finished records are a ring
//! inside the slab: finishing a task and forgetting the oldest record cost no
//! hashing, and the slab holds at most `peak live + keep + 1` slots.

use std::collections::VecDeque;

use crate::TaskId;

/// Stored by its shape (snapshot version 7): a live value as itself (a
/// task is a row, an array), the others tagged as before
/// (`{"Finished": record}`, `"Vacant"`). The tagged `{"Live": value}` of
/// the versions before still reads.
#[derive(Clone, Debug)]
enum Occupant<T, R> {
    Live(T),
    /// The record of the finished task with this slot's generation.
    Finished(R),
    /// Finished, its record forgotten: waiting to be reused.
    Vacant,
}

/// Stored as a row, `[generation, occupant]` (an object before snapshot
/// version 7, which the derived reader still takes).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
struct Slot<T, R> {
    generation: u32,
    occupant: Occupant<T, R>,
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize, R: serde::Serialize> serde::Serialize for Slot<T, R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Slot {
            generation,
            occupant,
        } = self;
        (generation, occupant).serialize(serializer)
    }
}

/// A slab whose keys are [`TaskId`]s: `generation << 32 | index`. Holds
/// live values `T` and records `R` of finished ones.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct TaskSlab<T, R> {
    slots: Vec<Slot<T, R>>,
    /// Slots of finished tasks, in the order they finished: those whose
    /// record is forgotten first, then those whose record is kept.
    retired: VecDeque<u32>,
    /// The least generation an insert hands out: raised past every id a
    /// later history of this slab handed out (one thrown away when its
    /// store went back in time), it hands none of them out again
    /// ([`skip_issued`](Self::skip_issued)). Absent (0) in snapshots of a
    /// slab never raised.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    floor: u32,
    /// Derived from `slots`; recounted by [`validated`](Self::validated).
    #[cfg_attr(feature = "serde", serde(skip))]
    live: usize,
}

impl<T, R> Default for TaskSlab<T, R> {
    fn default() -> Self {
        TaskSlab {
            slots: Vec::new(),
            retired: VecDeque::new(),
            floor: 0,
            live: 0,
        }
    }
}

#[cfg(feature = "serde")]
fn is_zero(floor: &u32) -> bool {
    *floor == 0
}

fn split(id: TaskId) -> (usize, u32) {
    (
        (id.get() & u64::from(u32::MAX)) as usize,
        (id.get() >> 32) as u32,
    )
}

fn join(index: usize, generation: u32) -> TaskId {
    TaskId::new(u64::from(generation) << 32 | index as u64)
}

impl<T, R> TaskSlab<T, R> {
    /// Stores `value` and returns its new id. Reuses the slot of the oldest
    /// finished task whose record is forgotten, if there is one.
    #[inline(always)]
    pub(crate) fn insert(&mut self, value: T) -> TaskId {
        self.live += 1;
        let vacant = self
            .retired
            .front()
            .copied()
            .filter(|&index| matches!(self.slots[index as usize].occupant, Occupant::Vacant));
        if let Some(index) = vacant {
            self.retired.pop_front();
            let slot = &mut self.slots[index as usize];
            slot.generation = if slot.generation < self.floor {
                self.floor
            } else {
                slot.generation.wrapping_add(1)
            };
            slot.occupant = Occupant::Live(value);
            return join(index as usize, slot.generation);
        }
        self.slots.push(Slot {
            generation: self.floor,
            occupant: Occupant::Live(value),
        });
        join(self.slots.len() - 1, self.floor)
    }

    /// The least generation past every id this slab handed out: a slab
    /// raised to it by [`skip_issued`](Self::skip_issued) hands none of
    /// them out again. `O(slots)`.
    #[cfg(feature = "cluster")]
    pub(crate) fn past_issued(&self) -> u32 {
        let highest = self.slots.iter().map(|slot| slot.generation).max();
        highest.map_or(self.floor, |g| g.saturating_add(1).max(self.floor))
    }

    /// Hands out no generation below `floor` from now on: a slab restored
    /// to an earlier state of its own history (a database restored from a
    /// backup) and raised to the later state's
    /// [`past_issued`](Self::past_issued) never gives a new task an id the
    /// later state gave another. The ids it holds keep their generations.
    /// Never lowers the floor.
    #[cfg(feature = "cluster")]
    pub(crate) fn skip_issued(&mut self, floor: u32) {
        self.floor = self.floor.max(floor);
    }

    fn slot(&self, id: TaskId) -> Option<&Slot<T, R>> {
        let (index, generation) = split(id);
        self.slots
            .get(index)
            .filter(|slot| slot.generation == generation)
    }

    fn slot_mut(&mut self, id: TaskId) -> Option<&mut Slot<T, R>> {
        let (index, generation) = split(id);
        self.slots
            .get_mut(index)
            .filter(|slot| slot.generation == generation)
    }

    /// The live value of `id`.
    pub(crate) fn get(&self, id: TaskId) -> Option<&T> {
        match &self.slot(id)?.occupant {
            Occupant::Live(value) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut T> {
        match &mut self.slot_mut(id)?.occupant {
            Occupant::Live(value) => Some(value),
            _ => None,
        }
    }

    /// The record `id` finished with, if it is among the last `keep`.
    pub(crate) fn record(&self, id: TaskId) -> Option<&R> {
        match &self.slot(id)?.occupant {
            Occupant::Finished(record) => Some(record),
            _ => None,
        }
    }

    /// Takes the live value out, leaves `record` in its place, and forgets
    /// the records beyond the last `keep`.
    pub(crate) fn finish(&mut self, id: TaskId, record: R, keep: usize) -> Option<T> {
        let (index, _) = split(id);
        let slot = self.slot_mut(id)?;
        let value = match std::mem::replace(&mut slot.occupant, Occupant::Finished(record)) {
            Occupant::Live(value) => value,
            other => {
                slot.occupant = other;
                return None;
            }
        };
        self.retire(index, keep);
        Some(value)
    }

    /// [`finish`](Self::finish) for a caller that needs only part of the
    /// value: `take` gets it before it is dropped where it lies, which
    /// spares moving the whole value out.
    #[inline]
    pub(crate) fn finish_with<A>(
        &mut self,
        id: TaskId,
        record: R,
        keep: usize,
        take: impl FnOnce(&mut T) -> A,
    ) -> Option<A> {
        let (index, _) = split(id);
        let slot = self.slot_mut(id)?;
        let Occupant::Live(value) = &mut slot.occupant else {
            return None;
        };
        let taken = take(value);
        slot.occupant = Occupant::Finished(record);
        self.retire(index, keep);
        Some(taken)
    }

    /// The slot at `index` just finished: it joins the retired ring, and
    /// the records beyond the last `keep` are forgotten.
    #[inline(always)]
    fn retire(&mut self, index: usize, keep: usize) {
        self.live -= 1;
        self.retired.push_back(index as u32);
        // Forget the records older than the last `keep`. Normally that is the
        // one just pushed out of them; after `keep` shrank, all those older.
        let mut older = self.retired.len().checked_sub(keep.saturating_add(1));
        while let Some(at) = older {
            let slot = &mut self.slots[self.retired[at] as usize];
            if matches!(slot.occupant, Occupant::Vacant) {
                break;
            }
            slot.occupant = Occupant::Vacant;
            older = at.checked_sub(1);
        }
    }

    /// Checks a slab read from a snapshot and recounts its live values:
    /// the slots fit the 32-bit index space, and `retired` names exactly
    /// the slots that are not live, each once, forgotten ones first (so
    /// reuse never stalls behind a kept record and the slab stays bounded).
    ///
    /// # Errors
    ///
    /// The first inconsistency, as text.
    pub(crate) fn validated(mut self) -> Result<Self, String> {
        if self.slots.len() > u32::MAX as usize + 1 {
            return Err(format!(
                "{} slots exceed the 32-bit index space",
                self.slots.len()
            ));
        }
        let mut listed = vec![false; self.slots.len()];
        let mut kept_seen = false;
        for &index in &self.retired {
            let Some(slot) = self.slots.get(index as usize) else {
                return Err(format!("retired slot {index} is out of range"));
            };
            let vacant = match slot.occupant {
                Occupant::Live(_) => return Err(format!("retired slot {index} is live")),
                Occupant::Finished(_) => false,
                Occupant::Vacant => true,
            };
            if std::mem::replace(&mut listed[index as usize], true) {
                return Err(format!("retired slot {index} is listed twice"));
            }
            if vacant && kept_seen {
                return Err(format!(
                    "retired slot {index} is forgotten after a kept record"
                ));
            }
            kept_seen |= !vacant;
        }
        self.live = self
            .slots
            .iter()
            .filter(|s| matches!(s.occupant, Occupant::Live(_)))
            .count();
        if self.live + self.retired.len() != self.slots.len() {
            return Err("a finished slot is missing from retired".into());
        }
        Ok(self)
    }

    /// Whether `id` was ever handed out: its slot exists and has reached
    /// its generation (a task live, finished or forgotten), so no later
    /// insert can return it.
    pub(crate) fn issued(&self, id: TaskId) -> bool {
        let (index, generation) = split(id);
        self.slots
            .get(index)
            .is_some_and(|slot| generation <= slot.generation)
    }

    /// Number of live values.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Every live value with its id, in slot order. Costs `O(slots)`: the
    /// peak number of live values plus the records kept.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TaskId, &T)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match &slot.occupant {
                Occupant::Live(value) => Some((join(index, slot.generation), value)),
                _ => None,
            })
    }
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize, R: serde::Serialize> serde::Serialize for Occupant<T, R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Occupant::Live(value) => value.serialize(serializer),
            Occupant::Finished(record) => {
                serializer.serialize_newtype_variant("Occupant", 1, "Finished", record)
            }
            Occupant::Vacant => serializer.serialize_unit_variant("Occupant", 2, "Vacant"),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de, T, R> serde::Deserialize<'de> for Occupant<T, R>
where
    T: serde::Deserialize<'de>,
    R: serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OccupantVisitor(std::marker::PhantomData))
    }
}

#[cfg(feature = "serde")]
struct OccupantVisitor<T, R>(std::marker::PhantomData<(T, R)>);

#[cfg(feature = "serde")]
impl<'de, T, R> serde::de::Visitor<'de> for OccupantVisitor<T, R>
where
    T: serde::Deserialize<'de>,
    R: serde::Deserialize<'de>,
{
    type Value = Occupant<T, R>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a slot's occupant: a live value's row, {\"Finished\": record} or \"Vacant\"")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Occupant::Live)
    }

    fn visit_str<E: serde::de::Error>(self, tag: &str) -> Result<Self::Value, E> {
        match tag {
            "Vacant" => Ok(Occupant::Vacant),
            _ => Err(E::unknown_variant(tag, &["Vacant"])),
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let tag: String = map
            .next_key()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let occupant = match tag.as_str() {
            "Live" => Occupant::Live(map.next_value()?),
            "Finished" => Occupant::Finished(map.next_value()?),
            "Vacant" => {
                map.next_value::<serde::de::IgnoredAny>()?;
                Occupant::Vacant
            }
            _ => {
                return Err(A::Error::unknown_variant(
                    &tag,
                    &["Live", "Finished", "Vacant"],
                ));
            }
        };
        match map.next_key::<serde::de::IgnoredAny>()? {
            None => Ok(occupant),
            Some(_) => Err(A::Error::invalid_length(2, &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "serde")]
    #[test]
    fn an_occupant_is_written_by_its_shape_and_read_in_both_forms() {
        type Occ = Occupant<Vec<u8>, String>;
        let write = |o: &Occ| serde_json::to_string(o).unwrap();
        let read = |text: &str| serde_json::from_str::<Occ>(text).map_err(|e| e.to_string());
        assert_eq!(write(&Occupant::Live(vec![1, 2])), "[1,2]");
        assert_eq!(
            write(&Occupant::Finished("done".into())),
            r#"{"Finished":"done"}"#
        );
        assert_eq!(write(&Occupant::Vacant), r#""Vacant""#);
        assert!(matches!(read("[1,2]"), Ok(Occupant::Live(v)) if v == [1, 2]));
        assert!(matches!(read(r#"{"Live":[3]}"#), Ok(Occupant::Live(v)) if v == [3]));
        assert!(matches!(read(r#"{"Finished":"x"}"#), Ok(Occupant::Finished(r)) if r == "x"));
        assert!(matches!(read(r#""Vacant""#), Ok(Occupant::Vacant)));
        assert!(matches!(read(r#"{"Vacant":null}"#), Ok(Occupant::Vacant)));
        for bad in [
            "{}",
            r#"{"Live":[1],"Vacant":null}"#,
            r#"{"Gone":1}"#,
            r#""Live""#,
            "7",
            "null",
        ] {
            assert!(read(bad).is_err(), "{bad} was read");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_slot_is_a_row_and_its_object_form_still_reads() {
        let mut slab: TaskSlab<Vec<u8>, String> = TaskSlab::default();
        let _ = slab.insert(vec![9]);
        let text = serde_json::to_string(&slab).unwrap();
        assert_eq!(text, r#"{"slots":[[0,[9]]],"retired":[]}"#);
        let old = r#"{"slots":[{"generation":0,"occupant":{"Live":[9]}}],"retired":[]}"#;
        let read: TaskSlab<Vec<u8>, String> = serde_json::from_str(old).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), text);
    }

    /// Inserts `n` values into `slab`, finishing every other one with
    /// `keep` 0 so its slot is reused: the ids handed out.
    #[cfg(feature = "cluster")]
    fn churn(slab: &mut TaskSlab<Vec<u32>, ()>, n: u32) -> Vec<TaskId> {
        (0..n)
            .map(|i| {
                let id = slab.insert(vec![i]);
                if i % 2 == 0 {
                    assert_eq!(slab.finish(id, (), 0), Some(vec![i]));
                }
                id
            })
            .collect()
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn a_slab_raised_past_a_later_history_never_hands_out_its_ids() {
        let mut earlier = TaskSlab::default();
        let kept = churn(&mut earlier, 5);
        let mut later = earlier.clone();
        let handed = churn(&mut later, 40);
        // Restored to the earlier state, the slab would give the later
        // state's ids to other values.
        let mut unraised = earlier.clone();
        assert!(
            churn(&mut unraised, 40)
                .iter()
                .any(|id| handed.contains(id))
        );
        earlier.skip_issued(later.past_issued());
        let fresh = churn(&mut earlier, 200);
        assert!(
            fresh
                .iter()
                .all(|id| !handed.contains(id) && !kept.contains(id))
        );
        // The values it held keep their ids; lowering the floor is a no-op.
        assert_eq!(earlier.get(kept[1]), Some(&vec![1]));
        earlier.skip_issued(0);
        assert!(
            churn(&mut earlier, 40)
                .iter()
                .all(|id| !handed.contains(id))
        );
        #[cfg(feature = "serde")]
        {
            let text = serde_json::to_string(&earlier).unwrap();
            assert!(
                text.contains(&format!("\"floor\":{}", later.past_issued())),
                "{text}"
            );
            let read: TaskSlab<Vec<u32>, ()> = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_string(&read).unwrap(), text);
        }
    }

    #[test]
    fn stale_ids_miss_reused_slots() {
        let mut slab = TaskSlab::default();
        let a = slab.insert("a");
        assert_eq!(slab.finish(a, "done", 0), Some("a"));
        let b = slab.insert("b");
        assert_ne!(a, b);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.record(a), None);
        assert_eq!(slab.finish(a, "again", 0), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
        // Both ids were handed out; the slot's next one and a slot never
        // used were not.
        assert!(slab.issued(a) && slab.issued(b));
        assert!(!slab.issued(join(0, 2)) && !slab.issued(join(1, 0)));
        let c = slab.insert("c");
        assert_eq!(slab.iter().collect::<Vec<_>>(), [(b, &"b"), (c, &"c")]);
    }

    #[test]
    fn the_last_keep_records_stay_readable_and_older_slots_are_reused() {
        let mut slab = TaskSlab::default();
        let ids: Vec<TaskId> = (0..5).map(|i| slab.insert(i)).collect();
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(slab.finish(id, i * 10, 2), Some(i));
            assert_eq!(slab.get(id), None);
        }
        let records: Vec<Option<usize>> = ids.iter().map(|&id| slab.record(id).copied()).collect();
        assert_eq!(records, [None, None, None, Some(30), Some(40)]);
        // The three forgotten slots are reused, oldest first; the kept ones are not.
        let reused: Vec<TaskId> = (0..4).map(|i| slab.insert(10 + i)).collect();
        let index = |id: TaskId| id.get() & u64::from(u32::MAX);
        assert_eq!(
            reused.iter().map(|&id| index(id)).collect::<Vec<_>>(),
            [0, 1, 2, 5]
        );
        assert_eq!(slab.record(ids[3]), Some(&30));
        assert_eq!(slab.get(ids[0]), None);
        assert_eq!(slab.len(), 4);
    }

    #[test]
    fn a_smaller_keep_forgets_every_older_record() {
        let mut slab = TaskSlab::default();
        let ids: Vec<TaskId> = (0..6).map(|i| slab.insert(i)).collect();
        for &id in &ids[..5] {
            slab.finish(id, "done", 10);
        }
        assert!(ids[..5].iter().all(|&id| slab.record(id).is_some()));
        slab.finish(ids[5], "done", 1);
        let kept: Vec<bool> = ids.iter().map(|&id| slab.record(id).is_some()).collect();
        assert_eq!(kept, [false, false, false, false, false, true]);
        // Every forgotten slot is reusable: no new slot is needed.
        for i in 0..5 {
            slab.insert(10 + i);
        }
        assert_eq!(slab.slots.len(), 6);
    }
}
