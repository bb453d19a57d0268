//! How values are stored: JSON text (serde_json), integers as `BIGINT`,
//! durations as milliseconds. Everything read back is untrusted.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::cluster::{Finished, Lease, Message, Sender, StoreFailure, Verdict};
use taskweave::scheduler::{AttemptOutcome, TaskReport};
use taskweave::{AgentId, TenantId};

/// A `u64` as a `BIGINT`: the bits unchanged, so [`int_to_u64`] gives it
/// back exactly (values above `i64::MAX` are stored negative).
pub(crate) fn u64_to_int(value: u64) -> i64 {
    value as i64
}

/// The inverse of [`u64_to_int`].
pub(crate) fn int_to_u64(value: i64) -> u64 {
    value as u64
}

/// A count or limit as a `BIGINT`, saturating.
pub(crate) fn limit(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A lease duration as float milliseconds for
/// `$n::float8 * interval '1 millisecond'`.
pub(crate) fn millis(ttl: Duration) -> f64 {
    ttl.as_secs_f64() * 1000.0
}

/// The lease row's columns as [`lease`] reads them: epoch, holder,
/// whether it is held by the server's clock, stopped, and its time left
/// in whole milliseconds (0 when not held; the initial `-infinity` has
/// no interval to subtract).
macro_rules! lease_columns {
    () => {
        "epoch, holder, expires_at > clock_timestamp() AS held, stopped,
        CASE WHEN isfinite(expires_at) AND expires_at > clock_timestamp()
        THEN ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000) ELSE 0 END::bigint
        AS left_ms"
    };
}
pub(crate) use lease_columns;

/// The lease of a row that starts with [`lease_columns!`]. Its time left
/// is rounded up, so a follower that waits it out reads after the expiry,
/// not before.
pub(crate) fn lease(row: &postgres::Row) -> Lease {
    Lease {
        epoch: int_to_u64(row.get(0)),
        holder: row.get(1),
        held: row.get(2),
        stopped: row.get(3),
        left: Duration::from_millis(u64::try_from(row.get::<_, i64>(4)).unwrap_or(0)),
    }
}

/// The JSON text of `value`.
pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> Result<String, StoreFailure> {
    serde_json::to_string(value).map_err(|e| StoreFailure::Failed {
        cause: format!("cannot encode {what}: {e}"),
    })
}

/// Decodes stored JSON text.
pub(crate) fn decode<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// The inbox `kind` of a message: what row-level security checks.
pub(crate) fn kind<P>(message: &Message<P>) -> &'static str {
    match message {
        Message::Register { .. } => "register",
        Message::Heartbeat => "heartbeat",
        Message::Report(_) | Message::Completed { .. } => "report",
        Message::Submit(_) => "submit",
        Message::Cancel(_) => "cancel",
        Message::Drain => "drain",
        Message::Redrive(_) => "redrive",
        Message::Run(_) => "run",
    }
}

/// The most bytes a report's stored body may have: the inbox's limit for
/// its kind (schema version 3), the largest output limit a node takes.
pub(crate) const MAX_REPORT_BYTES: usize = 16 << 20;

/// The stored body of an agent's report. One over [`MAX_REPORT_BYTES`]
/// (a huge output, or a huge failure reason) would be refused by the
/// database every time the agent sent it again, so it is stored as a
/// failure of the attempt that names the limit instead: the task ends
/// for good, and the agent goes on.
pub(crate) fn report_body<P: Serialize>(finished: Finished<P>) -> Result<String, StoreFailure> {
    let report = finished.task_report().clone();
    let body = encode("a report", &finished.into_message())?;
    if body.len() <= MAX_REPORT_BYTES {
        return Ok(body);
    }
    let why = format!(
        "the report is {} bytes as stored, over the {MAX_REPORT_BYTES} bytes a report may have \
         (with its output): keep a large result elsewhere and return a reference to it",
        body.len()
    );
    let failed = TaskReport {
        outcome: AttemptOutcome::fatal(why),
        ..report
    };
    encode("a report", &Message::<P>::Report(failed))
}

/// The `kind` and `body` columns of messages to post, in order.
pub(crate) fn inbox_columns<P: Serialize>(
    messages: &[Message<P>],
) -> Result<(Vec<&'static str>, Vec<String>), StoreFailure> {
    let kinds = messages.iter().map(kind).collect();
    let bodies = messages
        .iter()
        .map(|m| encode("a message", m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((kinds, bodies))
}

/// The sender of an inbox row from its `agent`, `incarnation` and
/// `tenant` columns (a client's tenant, set by the database from its
/// login).
pub(crate) fn sender(agent: Option<i64>, incarnation: Option<i64>, tenant: Option<i64>) -> Sender {
    match agent {
        None => tenant.map_or(Sender::Client, |t| {
            Sender::Tenant(TenantId::new(int_to_u64(t)))
        }),
        Some(agent) => Sender::Agent {
            agent: AgentId::new(int_to_u64(agent)),
            incarnation: incarnation.map_or(0, int_to_u64),
        },
    }
}

/// Decodes an inbox body and checks it against the columns the database
/// vouches for: its kind must be the row's `kind` (which row-level
/// security checked), and a report must name the agent that posted it.
/// Each submitted task with an idempotency key gets the fingerprint of
/// its payload as stored ([`fingerprint`]), whatever the body said: the
/// same key with another payload is then refused as a conflict.
pub(crate) fn message<P: Serialize + DeserializeOwned>(
    row_kind: &str,
    sender: Sender,
    body: &str,
) -> Result<Message<P>, String> {
    let mut message: Message<P> = decode(body)?;
    if let Message::Submit(specs) = &mut message {
        for spec in specs.iter_mut() {
            // Only a keyed task's options are touched: a plain task stays
            // on the dispatcher's fast path.
            if spec.idempotency_key.is_some() {
                let fingerprint = fingerprint(&spec.payload)?;
                spec.options_mut().payload_fingerprint = Some(fingerprint);
            } else if spec.options().payload_fingerprint.is_some() {
                spec.options_mut().payload_fingerprint = None;
            }
        }
    }
    let body_kind = kind(&message);
    if body_kind != row_kind {
        return Err(format!(
            "the message is a {body_kind} but was posted as a {row_kind}"
        ));
    }
    if let (Message::Report(report), Sender::Agent { agent, .. }) = (&message, sender) {
        if report.agent != agent {
            return Err(format!(
                "the report names {} but was posted by {agent}",
                report.agent
            ));
        }
    }
    Ok(message)
}

/// A payload's fingerprint: FNV-1a (64 bits) of its JSON as this store
/// writes it (object keys in order), so equal payloads agree however
/// their submitters wrote them.
pub(crate) fn fingerprint<P: Serialize>(payload: &P) -> Result<u64, String> {
    let bytes = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    Ok(bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    }))
}

/// The reason an agent is given for a refused message's stored verdict.
pub(crate) fn refusal(verdict: &str) -> String {
    match decode::<Verdict>(verdict) {
        Ok(Verdict::Refused(reason)) => reason,
        Ok(Verdict::Submitted(tasks)) => tasks
            .into_iter()
            .filter_map(Result::err)
            .collect::<Vec<_>>()
            .join("; "),
        Ok(Verdict::Redriven { refused, .. }) => (refused.into_iter())
            .map(|(task, why)| format!("{task}: {why}"))
            .collect::<Vec<_>>()
            .join("; "),
        Ok(Verdict::Accepted | Verdict::Run(_)) => "accepted".to_string(),
        Err(_) => verdict.to_string(),
    }
}
