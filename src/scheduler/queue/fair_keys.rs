//! Fair-share keys interned as lane ids, counted by the live tasks that
//! carry them: a key's id is freed (and reused) when its last task ends, so
//! the table holds at most one entry per key in use.

use std::collections::HashMap;

use crate::scheduler::KeyName;

/// Interned fair-share keys. Lane ids start at 1 (0: no key).
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct FairKeys {
    /// Slot `id - 1`: the key and its number of live tasks.
    slots: Vec<Option<(KeyName, u32)>>,
    /// Free slots, reused first.
    free: Vec<u32>,
    /// Derived from `slots`.
    #[cfg_attr(feature = "serde", serde(skip))]
    ids: HashMap<KeyName, u32>,
}

impl FairKeys {
    /// The lane id of `key`, counting one more task that carries it.
    pub(crate) fn acquire(&mut self, key: &KeyName) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            if let Some(Some((_, users))) = self.slots.get_mut(id as usize - 1) {
                *users = users.saturating_add(1);
            }
            return id;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX - 1)
            }
        };
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Some((key.clone(), 1));
        }
        let id = slot + 1;
        self.ids.insert(key.clone(), id);
        id
    }

    /// One task carrying lane `id` ended.
    pub(crate) fn release(&mut self, id: u32) {
        let Some(entry) = id
            .checked_sub(1)
            .and_then(|s| self.slots.get_mut(s as usize))
        else {
            return;
        };
        let Some((key, users)) = entry else {
            return;
        };
        *users -= 1;
        if *users == 0 {
            self.ids.remove(key);
            *entry = None;
            self.free.push(id - 1);
        }
    }

    /// The key of lane `id`.
    pub(crate) fn key(&self, id: u32) -> Option<&str> {
        let slot = self.slots.get(id.checked_sub(1)? as usize)?;
        slot.as_ref().map(|(key, _)| key.as_str())
    }

    /// Checks a table read from a snapshot against the lanes its live tasks
    /// name (`used`: lane id → tasks), and rebuilds the key index.
    pub(crate) fn validated(mut self, used: &HashMap<u32, u32>) -> Result<Self, String> {
        let mut free: Vec<u32> = self.free.clone();
        free.sort_unstable();
        free.dedup();
        if free.len() != self.free.len()
            || free.last().is_some_and(|&s| s as usize >= self.slots.len())
        {
            return Err("a free slot is listed twice or does not exist".into());
        }
        self.ids = HashMap::with_capacity(self.slots.len());
        for (slot, entry) in self.slots.iter().enumerate() {
            let id = u32::try_from(slot + 1).map_err(|_| "too many slots".to_string())?;
            let listed_free = free.binary_search(&(id - 1)).is_ok();
            match entry {
                None if !listed_free => {
                    return Err(format!("slot {slot} is neither used nor free"));
                }
                None => {}
                Some(_) if listed_free => return Err(format!("slot {slot} is used and free")),
                Some((key, users)) => {
                    if used.get(&id) != Some(users) {
                        return Err(format!(
                            "key {key:?} counts {users} tasks, not the tasks using it"
                        ));
                    }
                    if self.ids.insert(key.clone(), id).is_some() {
                        return Err(format!("key {key:?} is interned twice"));
                    }
                }
            }
        }
        if let Some(id) = used.keys().find(|&&id| self.key(id).is_none()) {
            return Err(format!("lane {id} names no key"));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shared_counted_and_reused() {
        let mut keys = FairKeys::default();
        let a = keys.acquire(&"acme".into());
        assert_eq!(keys.acquire(&"acme".into()), a);
        let b = keys.acquire(&"globex".into());
        assert_ne!(a, b);
        keys.release(a);
        assert_eq!(keys.key(a), Some("acme"));
        keys.release(a);
        assert_eq!(keys.key(a), None);
        assert_eq!(keys.acquire(&"initech".into()), a);
        let used = HashMap::from([(a, 1), (b, 1)]);
        assert!(keys.clone().validated(&used).is_ok());
        assert!(
            keys.clone()
                .validated(&HashMap::from([(a, 2), (b, 1)]))
                .is_err()
        );
        assert!(
            keys.validated(&HashMap::from([(a, 1), (b, 1), (9, 1)]))
                .is_err()
        );
    }
}
