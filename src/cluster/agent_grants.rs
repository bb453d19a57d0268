//! [`AgentGrants`]: an authorizer that holds each agent's registration to
//! what it was granted.

use std::collections::{BTreeMap, BTreeSet};

use super::authorizer::{Action, Authorizer, Denied, Request};
use super::contract::{Message, Sender};
use crate::AgentId;

/// What one agent may register as: the capabilities it may claim and the
/// most slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    capabilities: BTreeSet<String>,
    max_capacity: u32,
}

impl Grant {
    /// Up to `max_capacity` slots, and no capability yet.
    pub fn new(max_capacity: u32) -> Self {
        Grant {
            capabilities: BTreeSet::new(),
            max_capacity,
        }
    }

    /// With these capabilities too.
    #[must_use]
    pub fn capabilities<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities.extend(names.into_iter().map(Into::into));
        self
    }
}

/// Refuses a registration beyond the agent's [`Grant`] (a capability it
/// was not granted, or more slots), and every registration of an agent
/// with no grant; every other message passes. A refused agent's verdict
/// names what it asked beyond its grant, and it claims nothing.
///
/// Lookups are `O(log a)` in the agents granted, plus the profile's
/// capabilities.
///
/// ```
/// use taskweave::agent::AgentProfile;
/// use taskweave::cluster::{AgentGrants, Authorizer, Grant, Message, Request, Sender};
/// use taskweave::AgentId;
///
/// let grants = AgentGrants::new().grant(AgentId::new(1), Grant::new(8).capabilities(["gpu"]));
/// let sender = Sender::Agent { agent: AgentId::new(1), incarnation: 1 };
/// let register = |profile| Message::<String>::Register { profile };
///
/// let fits = register(AgentProfile::builder().capacity(8).capability("gpu").build()?);
/// assert!(grants.authorize(&Request::new(sender, &fits)).is_ok());
///
/// let greedy = register(AgentProfile::builder().capacity(1_000_000).build()?);
/// let denied = grants.authorize(&Request::new(sender, &greedy)).unwrap_err();
/// assert!(denied.to_string().contains("1000000 slots"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct AgentGrants {
    grants: BTreeMap<AgentId, Grant>,
}

impl AgentGrants {
    /// No agent granted anything: every registration is refused.
    pub fn new() -> Self {
        AgentGrants::default()
    }

    /// `agent` may register within `grant` (replacing an earlier grant).
    #[must_use]
    pub fn grant(mut self, agent: AgentId, grant: Grant) -> Self {
        self.grants.insert(agent, grant);
        self
    }
}

impl<P> Authorizer<P> for AgentGrants {
    fn authorize(&self, request: &Request<'_, P>) -> Result<(), Denied> {
        let (Sender::Agent { agent, .. }, Message::Register { profile }) =
            (request.sender, request.message)
        else {
            return Ok(());
        };
        debug_assert_eq!(request.action, Action::Register);
        let grant = self.grants.get(&agent).ok_or_else(|| {
            Denied(format!(
                "{agent} has no grant: grant it capabilities and slots first"
            ))
        })?;
        if profile.capacity() > grant.max_capacity {
            return Err(Denied(format!(
                "{agent} asked for {} slots; its grant allows {}",
                profile.capacity(),
                grant.max_capacity
            )));
        }
        let beyond: Vec<&str> = profile
            .capabilities()
            .difference(&grant.capabilities)
            .map(String::as_str)
            .collect();
        if !beyond.is_empty() {
            return Err(Denied(format!(
                "{agent} asked for capabilities {beyond:?} its grant does not hold \
                 (granted: {:?})",
                grant.capabilities
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentProfile;

    fn register(capacity: u32, capabilities: &[&str]) -> Message<()> {
        let profile = AgentProfile::builder()
            .capacity(capacity)
            .capabilities(capabilities.iter().copied())
            .build()
            .expect("a valid profile");
        Message::Register { profile }
    }

    fn agent(id: u64) -> Sender {
        Sender::Agent {
            agent: AgentId::new(id),
            incarnation: 1,
        }
    }

    #[test]
    fn a_registration_within_its_grant_passes_and_one_beyond_names_what_it_asked() {
        let grants =
            AgentGrants::new().grant(AgentId::new(1), Grant::new(4).capabilities(["a", "b"]));
        let ask = |sender, message: &Message<()>| grants.authorize(&Request::new(sender, message));

        assert_eq!(ask(agent(1), &register(4, &["a", "b"])), Ok(()));
        assert_eq!(ask(agent(1), &register(1, &[])), Ok(()));
        let slots = ask(agent(1), &register(5, &["a"])).expect_err("5 slots of 4");
        assert!(
            slots.0.contains("5 slots") && slots.0.contains("allows 4"),
            "{slots}"
        );
        let capability = ask(agent(1), &register(2, &["a", "c"])).expect_err("c not granted");
        assert!(capability.0.contains("[\"c\"]"), "{capability}");
        let stranger = ask(agent(2), &register(1, &[])).expect_err("no grant");
        assert!(stranger.0.contains("no grant"), "{stranger}");
        // Only registrations are its business.
        assert_eq!(ask(agent(2), &Message::Heartbeat), Ok(()));
        assert_eq!(ask(Sender::Client, &Message::Drain), Ok(()));
    }
}
