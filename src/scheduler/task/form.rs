//! The serialized form of a [`TaskSpec`]: its fields in order, the
//! scheduling options beside the others, each field written only when it
//! is not its default (normal priority, no requirements, no limit, no
//! key, no option). A field left out reads as its default, so the forms
//! written before — every field (journal format 1, snapshot version 4),
//! or the options behind one pointer — read back the same.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TaskSpec;
use super::key_name::KeyName;
use super::metadata::Metadata;
use super::options::{FairShare, TaskOptions};
use crate::{Instant, Priority, TaskRequirements, TenantId};

/// A cost left out of the serialized form.
pub(in crate::scheduler) fn one() -> u32 {
    1
}

fn is_one(cost: &u32) -> bool {
    *cost == 1
}

/// A flag left out of the serialized form while off.
pub(in crate::scheduler) fn is_false(flag: &bool) -> bool {
    !*flag
}

fn is_normal(priority: &Priority) -> bool {
    *priority == Priority::Normal
}

/// What [`TaskSpec`]'s `Serialize` writes, borrowed from it.
#[derive(Serialize)]
#[serde(rename = "TaskSpec")]
struct Written<'a, P> {
    payload: &'a P,
    #[serde(skip_serializing_if = "is_normal")]
    priority: Priority,
    #[serde(skip_serializing_if = "TaskRequirements::is_empty")]
    requirements: &'a TaskRequirements,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<Instant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<Instant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fairness: &'a Option<FairShare>,
    #[serde(skip_serializing_if = "<[KeyName]>::is_empty")]
    concurrency_keys: &'a [KeyName],
    #[serde(skip_serializing_if = "is_one")]
    cost: u32,
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    metadata: &'a Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_fingerprint: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<TenantId>,
    #[serde(skip_serializing_if = "is_false")]
    no_redrive: bool,
}

/// What [`TaskSpec`]'s `Deserialize` reads: options left out take their
/// defaults.
#[derive(Deserialize)]
#[serde(rename = "TaskSpec")]
struct Read<P> {
    payload: P,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    requirements: TaskRequirements,
    #[serde(default)]
    ttl: Option<Duration>,
    #[serde(default)]
    deadline: Option<Instant>,
    #[serde(default)]
    attempt_timeout: Option<Duration>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    not_before: Option<Instant>,
    #[serde(default)]
    fairness: Option<FairShare>,
    #[serde(default)]
    concurrency_keys: Vec<KeyName>,
    #[serde(default = "one")]
    cost: u32,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    payload_fingerprint: Option<u64>,
    #[serde(default)]
    tenant: Option<TenantId>,
    #[serde(default)]
    no_redrive: bool,
}

impl<P: Serialize> Serialize for TaskSpec<P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let options = self.options();
        Written {
            payload: &self.payload,
            priority: self.priority,
            requirements: &self.requirements,
            ttl: self.ttl,
            deadline: self.deadline,
            attempt_timeout: self.attempt_timeout,
            idempotency_key: &self.idempotency_key,
            not_before: options.not_before,
            fairness: &options.fairness,
            concurrency_keys: &options.concurrency_keys,
            cost: options.cost,
            metadata: &options.metadata,
            max_attempts: options.max_attempts,
            payload_fingerprint: options.payload_fingerprint,
            tenant: options.tenant,
            no_redrive: options.no_redrive,
        }
        .serialize(serializer)
    }
}

impl<'de, P: Deserialize<'de>> Deserialize<'de> for TaskSpec<P> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let read = Read::deserialize(deserializer)?;
        let spec = TaskSpec {
            priority: read.priority,
            requirements: read.requirements,
            ttl: read.ttl,
            deadline: read.deadline,
            attempt_timeout: read.attempt_timeout,
            idempotency_key: read.idempotency_key,
            ..TaskSpec::new(read.payload)
        };
        Ok(spec.with_options(TaskOptions {
            not_before: read.not_before,
            fairness: read.fairness,
            concurrency_keys: read.concurrency_keys,
            cost: read.cost,
            metadata: read.metadata,
            max_attempts: read.max_attempts,
            payload_fingerprint: read.payload_fingerprint,
            tenant: read.tenant,
            no_redrive: read.no_redrive,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<P: Serialize>(spec: &TaskSpec<P>) -> serde_json::Value {
        serde_json::to_value(spec).expect("serializable")
    }

    #[test]
    fn a_plain_spec_writes_its_payload_alone_and_reads_back_plain() {
        let spec = TaskSpec::new(7u32);
        let value = json(&spec);
        assert_eq!(value, serde_json::json!({ "payload": 7 }));
        let back: TaskSpec<u32> = serde_json::from_value(value).expect("readable");
        assert!(back.is_plain());
        assert_eq!(back, spec);
    }

    /// The form journal format 1 and snapshot version 4 wrote: every
    /// field, and every requirement, present.
    #[test]
    fn the_form_with_every_field_written_reads_back_the_same() {
        let every = serde_json::json!({
            "payload": 7,
            "priority": "Normal",
            "requirements": {
                "required": [], "preferred": [], "affinity_key": null,
                "pinned": null, "preferred_agent": null, "avoided": [],
                "excluded": [], "labels": [], "kind": null
            },
            "ttl": null,
            "deadline": null,
            "attempt_timeout": null,
            "idempotency_key": null
        });
        let back: TaskSpec<u32> = serde_json::from_value(every).expect("readable");
        assert_eq!(back, TaskSpec::new(7u32));
        assert!(back.requirements.is_empty());
    }

    #[test]
    fn set_fields_are_written_and_round_trip() {
        let spec = TaskSpec {
            priority: Priority::High,
            requirements: TaskRequirements::new().require(["gpu"]),
            ttl: Some(Duration::from_secs(5)),
            idempotency_key: Some("order-7".into()),
            ..TaskSpec::new(7u32)
        };
        let value = json(&spec);
        assert_eq!(value["priority"], "High");
        assert_eq!(value["requirements"]["required"][0], "gpu");
        assert_eq!(value["idempotency_key"], "order-7");
        assert!(value.get("deadline").is_none());
        let back: TaskSpec<u32> = serde_json::from_value(value).expect("readable");
        assert_eq!(back, spec);
    }

    #[test]
    fn options_sit_beside_the_other_fields_and_round_trip() {
        let spec = TaskSpec::new("job")
            .not_before(Instant::from_secs(5))
            .fairness("acme", 3)
            .concurrency_key("openai")
            .cost(40)
            .metadata("traceparent", "00-1-2-01")
            .no_redrive();
        let value = json(&spec);
        assert_eq!(value["no_redrive"], true);
        assert!(json(&TaskSpec::new(1)).get("no_redrive").is_none());
        assert_eq!(
            value["not_before"],
            json(&TaskSpec::new(Instant::from_secs(5)))["payload"]
        );
        assert_eq!(value["fairness"]["key"], "acme");
        assert_eq!(value["concurrency_keys"][0], "openai");
        assert_eq!(value["cost"], 40);
        assert_eq!(value["metadata"]["traceparent"], "00-1-2-01");
        let back: TaskSpec<String> = serde_json::from_value(value).expect("readable");
        assert_eq!(back.options(), spec.options());
        assert_eq!(back.payload, "job");
    }

    #[test]
    fn options_written_at_their_defaults_read_back_as_no_options() {
        let mut value = json(&TaskSpec::new(1u8));
        let object = value.as_object_mut().expect("an object");
        object.insert("cost".into(), 1.into());
        object.insert("concurrency_keys".into(), serde_json::json!([]));
        object.insert("fairness".into(), serde_json::Value::Null);
        let back: TaskSpec<u8> = serde_json::from_value(value).expect("readable");
        assert!(back.is_plain(), "defaults take the fast path");
    }
}
