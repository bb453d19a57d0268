//! The registry's stored form: what it knows, without what it derives.
//!
//! A [`Registry`] serializes as a [`RegistryForm`]: the capability and label
//! names, the agents by slot with the free slots in reuse order, and each
//! class's available agents in the order they wait. Reading one back checks
//! every part against the others and rebuilds the derived maps, orders,
//! counts and totals by construction, so nothing inconsistent — a repeated
//! id, a load above capacity, a record whose capability bits disagree with
//! its profile, an index that lists an agent twice — gets into a registry.
//! Maps travel as lists in a fixed order, so equal registries give equal
//! bytes.

use std::collections::BTreeMap;

use super::index::{AvailabilityIndex, IndexForm, Member, Slot};
use super::registry::{AgentRecord, AgentStatus, Registry, label_token};
use crate::capability::CapabilityInterner;
use crate::free_list::check_free_list;
use crate::hash::IdMap;

/// The largest counter a stored form may hold: one that could not count
/// on for another 2^63 events was corrupted.
pub(crate) const COUNTER_LIMIT: u64 = u64::MAX / 2;

/// A [`Registry`] as stored.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct RegistryForm {
    capabilities: CapabilityInterner,
    labels: CapabilityInterner,
    /// The latency smoothing factor, a setting: in `(0, 1]`.
    smoothing: f64,
    next_order: u64,
    /// Agents by slot; `None` for a free slot.
    agents: Vec<Option<AgentRecord>>,
    /// Free slots, in the order they will be reused.
    free_slots: Vec<Slot>,
    index: IndexForm,
}

impl From<Registry> for RegistryForm {
    fn from(registry: Registry) -> Self {
        RegistryForm {
            index: registry.index.to_form(),
            capabilities: registry.capabilities,
            labels: registry.labels,
            smoothing: registry.smoothing,
            next_order: registry.next_order,
            agents: registry.slots,
            free_slots: registry.free_slots,
        }
    }
}

impl TryFrom<RegistryForm> for Registry {
    type Error = String;

    /// Checks a stored registry and rebuilds its indexes. Costs
    /// `O(agents × log agents)` plus the capability names of every profile.
    ///
    /// # Errors
    ///
    /// The first inconsistency found, as text naming the field.
    fn try_from(form: RegistryForm) -> Result<Self, String> {
        let RegistryForm {
            capabilities,
            labels,
            smoothing,
            next_order,
            agents,
            free_slots,
            index,
        } = form;
        if next_order > COUNTER_LIMIT {
            return Err(format!(
                "next_order {next_order} leaves no room to count on"
            ));
        }
        if !(smoothing > 0.0 && smoothing <= 1.0) {
            return Err(format!("smoothing {smoothing} is not in (0, 1]"));
        }
        // `Slot::MAX` marks the end of a bucket list.
        if agents.len() >= Slot::MAX as usize {
            return Err(format!(
                "{} agent slots exceed the slot space",
                agents.len()
            ));
        }
        check_free_list("free_slots", &agents, &free_slots)?;
        let mut slot_of = IdMap::default();
        let mut by_order = BTreeMap::new();
        let (mut online_load, mut online_capacity) = (0u64, 0u64);
        for (slot, record) in agents.iter().enumerate() {
            let Some(record) = record else { continue };
            let slot = slot as Slot;
            check_record(record, &capabilities, &labels, next_order)?;
            if slot_of.insert(record.id, slot).is_some() {
                return Err(format!("agents: id {} appears twice", record.id));
            }
            if by_order.insert(record.order, slot).is_some() {
                return Err(format!("agents: order {} appears twice", record.order));
            }
            if record.status == AgentStatus::Online {
                online_load += u64::from(record.load);
                online_capacity += u64::from(record.capacity());
            }
        }
        let members: Vec<Option<Member<'_>>> = agents
            .iter()
            .enumerate()
            .map(|(slot, record)| {
                record.as_ref().map(|r| Member {
                    class: r.class,
                    capabilities: &r.capabilities,
                    labels: &r.labels,
                    priority: r.profile.priority(),
                    online: r.status == AgentStatus::Online,
                    availability: r.tracked().availability(slot as Slot),
                })
            })
            .collect();
        let index = AvailabilityIndex::from_form(index, &members)
            .map_err(|problem| format!("index: {problem}"))?;
        drop(members);
        Ok(Registry {
            capabilities,
            labels,
            slots: agents,
            free_slots,
            slot_of,
            by_order,
            index,
            next_order,
            online_load,
            online_capacity,
            smoothing,
        })
    }
}

/// One record agrees with itself and with the registry's names.
fn check_record(
    record: &AgentRecord,
    capabilities: &CapabilityInterner,
    labels: &CapabilityInterner,
    next_order: u64,
) -> Result<(), String> {
    let id = record.id;
    if record.order >= next_order {
        return Err(format!(
            "agents: agent {id}'s order is not below next_order"
        ));
    }
    if record.load > record.capacity() {
        return Err(format!(
            "agents: agent {id}'s load {} exceeds its capacity {}",
            record.load,
            record.capacity()
        ));
    }
    let expected = capabilities.lookup_all(record.profile.capabilities());
    if expected.as_ref() != Ok(&record.capabilities) {
        return Err(format!(
            "agents: agent {id}'s capabilities disagree with its profile"
        ));
    }
    let tokens = record
        .profile
        .labels()
        .iter()
        .map(|(k, v)| label_token(k, v));
    if labels.lookup_all(tokens).as_ref() != Ok(&record.labels) {
        return Err(format!(
            "agents: agent {id}'s labels disagree with its profile"
        ));
    }
    Ok(())
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use crate::agent::{AgentProfile, AgentStatus, Registry};
    use crate::{AgentId, Instant};

    fn busy_registry() -> Registry {
        let mut registry = Registry::new();
        for id in 0..6u64 {
            let profile = AgentProfile::builder()
                .capabilities(if id % 2 == 0 {
                    vec!["a"]
                } else {
                    vec!["a", "b"]
                })
                .label("zone", if id < 3 { "eu" } else { "us" })
                .capacity(3)
                .build()
                .unwrap();
            registry
                .register(AgentId::new(id), profile, Instant::ZERO)
                .unwrap();
        }
        registry.acquire(AgentId::new(1)).unwrap();
        registry.acquire(AgentId::new(4)).unwrap();
        registry.acquire(AgentId::new(4)).unwrap();
        registry
            .set_status(AgentId::new(2), AgentStatus::Draining)
            .unwrap();
        registry.unregister(AgentId::new(3)).unwrap();
        registry
    }

    #[test]
    fn a_round_trip_is_exact_and_canonical() {
        let registry = busy_registry();
        let json = serde_json::to_string(&registry).unwrap();
        let back: Registry = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back.available_agents(), registry.available_agents());
        assert_eq!(back.online_load(), registry.online_load());
        assert_eq!(back.online_capacity(), registry.online_capacity());
        let ids = |r: &Registry| r.iter().map(|a| a.id()).collect::<Vec<_>>();
        assert_eq!(ids(&back), ids(&registry));
    }

    #[test]
    fn inconsistent_registries_are_refused_with_the_field() {
        let json = serde_json::to_value(busy_registry()).unwrap();
        let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut value = json.clone();
            edit(&mut value);
            serde_json::from_value::<Registry>(value)
                .unwrap_err()
                .to_string()
        };
        let message = refused(&|v| v["agents"][4]["load"] = 9.into());
        assert!(message.contains("exceeds its capacity"), "{message}");
        let message = refused(&|v| v["agents"][0]["id"] = 1.into());
        assert!(message.contains("appears twice"), "{message}");
        let message = refused(&|v| v["agents"][0]["class"] = 1.into());
        assert!(message.contains("class"), "{message}");
        let message = refused(&|v| v["free_slots"] = serde_json::json!([0]));
        assert!(message.contains("free_slots"), "{message}");
        let message = refused(&|v| v["smoothing"] = 2.0.into());
        assert!(message.contains("smoothing"), "{message}");
        let message = refused(&|v| {
            let list = v["index"]["classes"][0]["by_load"]
                .as_array()
                .unwrap()
                .clone();
            v["index"]["classes"][0]["by_load"] = serde_json::json!([list[0], list[0]]);
        });
        assert!(message.contains("index"), "{message}");
    }
}
