//! The leader's intake: pending inbox messages become journal entries and
//! verdicts. The entries are applied to the replica at once, so the
//! verdicts and the outbox rows go into the same commit as the entries;
//! a commit that fails is sent again, unchanged, until it lands or the
//! leader is deposed (and its replica thrown away).

use std::collections::BTreeSet;

use crate::agent::AgentProfile;
use crate::scheduler::{Applied, AttemptOutcome, Input, TaskReport};
use crate::{AgentId, Instant};

use super::super::authorizer::{Action, Authorizer, Request};
use super::super::contract::{
    Entry, InboxMessage, Message, MessageId, Outputs, RunCommand, ScheduleCommand, Sender, TaskEnd,
    Verdict,
};
use super::super::incarnation::{INCARNATION_LABEL, incarnation_of};
use super::super::redrive::Redrive;
use super::events::NodeEvent;
use super::replica::{Effect, Replica};

/// One commit's worth of work.
pub(crate) struct Batch<P> {
    pub(crate) entries: Vec<Entry<P>>,
    pub(crate) consumed: Vec<(MessageId, Verdict)>,
    pub(crate) outputs: Outputs<P>,
    pub(crate) events: Vec<NodeEvent>,
    /// The agents whose heartbeat this batch journaled: every entry of a
    /// batch has its instant, so another heartbeat would change nothing,
    /// and a flood of them costs a verdict each, not a journal entry.
    heard: BTreeSet<AgentId>,
}

impl<P> Batch<P> {
    fn new() -> Self {
        Batch::publishing(Outputs::default())
    }

    /// A batch that journals nothing and publishes `outputs`.
    pub(crate) fn publishing(outputs: Outputs<P>) -> Self {
        Batch {
            entries: Vec::new(),
            consumed: Vec::new(),
            outputs,
            events: Vec::new(),
            heard: BTreeSet::new(),
        }
    }

    /// Journals and applies `entry`, which answers no message.
    pub(crate) fn journal(&mut self, replica: &mut Replica<P>, entry: Entry<P>)
    where
        P: Clone,
    {
        let _ = apply(replica, self, entry);
    }

    /// Nothing to journal or mark.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.consumed.is_empty()
    }

    /// Every entry journals a heartbeat (no timer fired, nothing else
    /// was admitted).
    pub(crate) fn journals_only_heartbeats(&self) -> bool {
        self.entries
            .iter()
            .all(|e| matches!(e, Entry::Input(Input::Heartbeat { .. })))
    }
}

/// Turns `messages` (and a due timer) into a batch stamped `now`, applied
/// to `replica`. After an outage (`outage`: the leader could not reach
/// the store for a heartbeat interval or more since its last intake), the
/// batch first excuses every agent's silence, so that no agent is lost
/// for heartbeats the outage kept from the leader before it had a
/// heartbeat timeout to send them. A completion whose stored message is
/// over `max_output_bytes` fails its task for good. A message the roles
/// or `authorizer` refuse changes nothing but its verdict.
pub(crate) fn intake<P: Clone>(
    replica: &mut Replica<P>,
    messages: Vec<InboxMessage<P>>,
    authorizer: &dyn Authorizer<P>,
    outage: bool,
    max_output_bytes: usize,
    now: Instant,
) -> Batch<P> {
    let mut batch = Batch::new();
    if outage {
        // Answers nothing: no agent is lost, nothing is published.
        let _ = apply(
            replica,
            &mut batch,
            Entry::Input(Input::ExcuseSilence { now }),
        );
    }
    for message in messages {
        let oversized = (message.bytes > max_output_bytes).then(|| {
            format!(
                "the completion with its output is {} bytes as stored, over the cluster's \
                 output limit of {max_output_bytes} (NodeConfig::max_output_bytes, \
                 `taskweave-pg node --max-output-bytes`): keep a large result elsewhere and \
                 return a reference to it",
                message.bytes
            )
        });
        let verdict = match message.body {
            Err(reason) => {
                Verdict::Refused(format!("the message does not decode: {}", clipped(&reason)))
            }
            Ok(body) => match authorized(authorizer, message.sender, &body) {
                Err(refusal) => refusal,
                Ok(()) => admit(replica, &mut batch, message.sender, body, oversized, now),
            },
        };
        if let Verdict::Refused(reason) = &verdict {
            batch.events.push(NodeEvent::Refused {
                message: message.id,
                sender: message.sender,
                reason: reason.clone(),
            });
        }
        batch.consumed.push((message.id, verdict));
    }
    if replica
        .dispatcher
        .poll_timeout()
        .is_some_and(|at| at <= now)
    {
        // A timeout answers nothing: its effects are its actions.
        let _ = apply(
            replica,
            &mut batch,
            Entry::Input(Input::HandleTimeout { now }),
        );
    }
    if replica.runs_due(now) {
        // Nor do the runs' timers.
        let _ = apply(replica, &mut batch, Entry::RunTimers { now });
    }
    batch
}

/// `Ok` when `sender`'s role may send `message` and `authorizer` allows
/// it; otherwise the refusal that answers it.
fn authorized<P>(
    authorizer: &dyn Authorizer<P>,
    sender: Sender,
    message: &Message<P>,
) -> Result<(), Verdict> {
    let request = Request::new(sender, message);
    if !request.action.allowed_to(sender) {
        return Err(role_refusal(sender, request.action));
    }
    authorizer
        .authorize(&request)
        .map_err(|denied| Verdict::Refused(denied.to_string()))
}

/// The refusal of an `action` that `sender`'s role may not ask.
fn role_refusal(sender: Sender, action: Action) -> Verdict {
    Verdict::Refused(match sender {
        Sender::Client => "only an agent may register, heartbeat or report".to_string(),
        Sender::Tenant(tenant) => format!(
            "{tenant}'s client may submit and cancel its tasks and start, signal and cancel \
             its runs, not {action:?}: that takes a client login without a tenant"
        ),
        Sender::Agent { .. } => format!(
            "an agent may only register, heartbeat and report, not {action:?}: that is a client's"
        ),
    })
}

/// The entries one message its sender may send makes, applied; its
/// verdict. `oversized` says why the message is over the output limit, if
/// it is: a completion then fails its task for good instead, so no run
/// waits for an output that can never be stored.
fn admit<P: Clone>(
    replica: &mut Replica<P>,
    batch: &mut Batch<P>,
    sender: Sender,
    message: Message<P>,
    oversized: Option<String>,
    now: Instant,
) -> Verdict {
    let refused = |why: String| Verdict::Refused(why);
    match (sender, message) {
        (Sender::Agent { agent, incarnation }, Message::Register { profile }) => {
            register(replica, batch, agent, incarnation, profile, now)
        }
        (
            _,
            Message::Run(
                RunCommand::Start { .. } | RunCommand::Schedule(ScheduleCommand::Trigger(_)),
            ),
        ) if replica.draining => refused("the cluster is draining: it starts no runs".into()),
        (_, Message::Run(command)) => {
            // The sender's tenant, as a submission's: the run is its.
            let entry = Entry::Run {
                command,
                tenant: sender.tenant(),
                now,
            };
            match apply(replica, batch, entry) {
                Ok(Effect::Run(run)) => Verdict::Run(run),
                other => verdict_of(other),
            }
        }
        (Sender::Agent { agent, incarnation }, Message::Heartbeat) => {
            match current_incarnation(replica, agent, incarnation) {
                Err(why) => refused(why),
                Ok(()) if batch.heard.contains(&agent) => Verdict::Accepted,
                Ok(()) => {
                    let heartbeat = Entry::Input(Input::Heartbeat { agent, now });
                    let result = apply(replica, batch, heartbeat);
                    if result.is_ok() {
                        batch.heard.insert(agent);
                    }
                    verdict_of(result)
                }
            }
        }
        (Sender::Agent { agent, incarnation }, Message::Report(report)) => {
            if report.agent != agent {
                return refused(format!(
                    "the report names agent {}, but agent {agent} sent it",
                    report.agent
                ));
            }
            report_entry(replica, batch, incarnation, report, None, now)
        }
        (
            Sender::Agent { agent, incarnation },
            Message::Completed {
                task,
                token,
                output,
            },
        ) => {
            let (outcome, output) = match oversized {
                Some(why) => (AttemptOutcome::fatal(why), None),
                None => (AttemptOutcome::Success, Some(output)),
            };
            let report = TaskReport {
                task,
                agent,
                token,
                outcome,
            };
            report_entry(replica, batch, incarnation, report, output, now)
        }
        (_, Message::Submit(_)) if replica.draining => {
            refused("the cluster is draining: it takes no submissions".into())
        }
        (_, Message::Submit(mut specs)) => {
            // The sender's tenant, never the body's: a plain client's
            // tasks have none.
            let tenant = sender.tenant();
            for spec in &mut specs {
                if spec.options().tenant != tenant {
                    spec.options_mut().tenant = tenant;
                }
            }
            match apply(
                replica,
                batch,
                Entry::Input(Input::SubmitBatch { specs, now }),
            ) {
                Ok(Effect::Applied(Applied::Batch(results))) => Verdict::Submitted(
                    results
                        .into_iter()
                        .map(|r| r.map(|s| s.id()).map_err(|e| e.to_string()))
                        .collect(),
                ),
                Ok(_) => Verdict::Accepted,
                Err(e) => refused(e.to_string()),
            }
        }
        (Sender::Tenant(tenant), Message::Cancel(task))
            if replica.dispatcher.tenant(task) != Some(tenant) =>
        {
            refused(format!("{tenant} has no live task {task}"))
        }
        // A client acting for no tenant cancels no tenant's task, in the
        // words of a cancel of a task that never was.
        (Sender::Client, Message::Cancel(task)) if replica.dispatcher.tenant(task).is_some() => {
            refused(crate::scheduler::SchedulerError::UnknownTask(task).to_string())
        }
        (_, Message::Cancel(task)) if replica.is_step(task) => refused(format!(
            "task {task} is a step of a hosted run: cancel the run (RunCommand::Cancel) instead"
        )),
        (_, Message::Cancel(task)) => {
            let result = apply(replica, batch, Entry::Input(Input::Cancel { task, now }));
            if result.is_ok() {
                replica.publish_end(task, TaskEnd::Cancelled, &mut batch.outputs);
            }
            verdict_of(result)
        }
        (_, Message::Redrive(_)) if replica.draining => {
            refused("the cluster is draining: it requeues no dead letter".into())
        }
        (_, Message::Redrive(which)) => redrive(replica, batch, which, now),
        (_, Message::Drain) if replica.draining => Verdict::Accepted,
        (_, Message::Drain) => {
            batch.events.push(NodeEvent::Draining);
            verdict_of(apply(replica, batch, Entry::Drain { now }))
        }
        // `authorized` refused every other pair.
        (sender @ (Sender::Client | Sender::Tenant(_)), message) => {
            role_refusal(sender, Action::of(&message))
        }
    }
}

/// An operator's redrive, journaled as the dispatcher's input: the
/// requeued letters, each with its new task, and the refused ones. Each
/// letter's outcome is republished as [`TaskEnd::Redriven`], naming its
/// new task, for the tenant that submitted it.
fn redrive<P: Clone>(
    replica: &mut Replica<P>,
    batch: &mut Batch<P>,
    which: Redrive,
    now: Instant,
) -> Verdict {
    let (input, task) = match which {
        Redrive::Task(task) => (Input::RequeueDeadLetter { task, now }, Some(task)),
        Redrive::Matching(filter) => (Input::RedriveDeadLetters { filter, now }, None),
    };
    let verdict = match (apply(replica, batch, Entry::Input(input)), task) {
        (Ok(Effect::Applied(Applied::Submitted(new))), Some(task)) => Verdict::Redriven {
            requeued: vec![(task, new.id())],
            refused: Vec::new(),
        },
        (Ok(Effect::Applied(Applied::Redriven(redriven))), _) => Verdict::Redriven {
            requeued: redriven.requeued,
            refused: (redriven.refused.into_iter())
                .map(|(task, kind)| (task, kind.to_string()))
                .collect(),
        },
        (result, _) => return verdict_of(result),
    };
    if let Verdict::Redriven { requeued, .. } = &verdict {
        replica.publish_redriven(requeued, &mut batch.outputs);
    }
    verdict
}

/// A report from `report.agent`'s `incarnation`, with the output of a
/// success that has one: journaled and applied if that incarnation is the
/// registered one; its attempt's row closed, and a success published as
/// the task's end, with its output.
fn report_entry<P: Clone>(
    replica: &mut Replica<P>,
    batch: &mut Batch<P>,
    incarnation: u64,
    report: TaskReport,
    output: Option<P>,
    now: Instant,
) -> Verdict {
    if let Err(why) = current_incarnation(replica, report.agent, incarnation) {
        return Verdict::Refused(why);
    }
    let attempt = (report.task, report.token);
    let succeeded = report.outcome == AttemptOutcome::Success;
    let entry = match output.clone() {
        None => Entry::Input(Input::Report { report, now }),
        Some(output) => Entry::Completed {
            report,
            output,
            now,
        },
    };
    let result = apply(replica, batch, entry);
    if result.is_ok() {
        batch.outputs.closed.push(attempt);
        if succeeded {
            replica.publish_end(attempt.0, TaskEnd::Completed, &mut batch.outputs);
            if let Some(output) = output {
                batch.outputs.results.push((attempt.0, output));
            }
        }
    }
    verdict_of(result)
}

/// A registration: new, a duplicate of the registered incarnation, a
/// stale one, or a new incarnation that replaces the registered one.
fn register<P: Clone>(
    replica: &mut Replica<P>,
    batch: &mut Batch<P>,
    agent: AgentId,
    incarnation: u64,
    profile: AgentProfile,
    now: Instant,
) -> Verdict {
    let registered = replica
        .dispatcher
        .registry()
        .get(agent)
        .map(|record| incarnation_of(record.profile()).unwrap_or(0));
    match registered {
        Some(current) if current == incarnation => return Verdict::Accepted,
        Some(current) if current > incarnation => {
            return Verdict::Refused(format!(
                "incarnation {incarnation} of agent {agent} is older than the registered {current}"
            ));
        }
        _ => {}
    }
    let profile = match labelled(&profile, incarnation) {
        Ok(profile) => profile,
        Err(why) => return Verdict::Refused(why),
    };
    if let Some(old) = registered {
        let unregister = Entry::Input(Input::UnregisterAgent { agent, now });
        let requeued = match apply(replica, batch, unregister) {
            Ok(Effect::Applied(Applied::Requeued(tasks))) => tasks.len(),
            _ => 0,
        };
        batch.events.push(NodeEvent::AgentReplaced {
            agent,
            old,
            new: incarnation,
            requeued,
        });
    }
    let entry = Entry::Input(Input::RegisterAgent {
        agent,
        profile,
        now,
    });
    verdict_of(apply(replica, batch, entry))
}

/// `profile` with the incarnation label set.
fn labelled(profile: &AgentProfile, incarnation: u64) -> Result<AgentProfile, String> {
    let mut builder = AgentProfile::builder()
        .capabilities(profile.capabilities().iter().cloned())
        .capacity(profile.capacity())
        .weight(profile.weight())
        .priority(profile.priority())
        .cost_per_task(profile.cost_per_task());
    for (key, value) in profile.labels() {
        if key != INCARNATION_LABEL {
            builder = builder.label(key.clone(), value.clone());
        }
    }
    builder
        .label(INCARNATION_LABEL, incarnation.to_string())
        .build()
        .map_err(|e| format!("the profile is refused: {e}"))
}

/// `Ok` when `incarnation` is the one registered for `agent`.
fn current_incarnation<P: Clone>(
    replica: &Replica<P>,
    agent: AgentId,
    incarnation: u64,
) -> Result<(), String> {
    let record = replica
        .dispatcher
        .registry()
        .get(agent)
        .ok_or_else(|| format!("agent {agent} is not registered"))?;
    match incarnation_of(record.profile()) {
        Some(current) if current == incarnation => Ok(()),
        current => Err(format!(
            "incarnation {incarnation} of agent {agent} is not the registered one ({})",
            current.unwrap_or(0)
        )),
    }
}

/// Journals and applies `entry`, publishing what it decided.
fn apply<P: Clone>(
    replica: &mut Replica<P>,
    batch: &mut Batch<P>,
    entry: Entry<P>,
) -> Result<Effect<P>, String> {
    batch.entries.push(entry.clone());
    let step = replica.apply(entry);
    for action in &step.actions {
        replica.publish(action, &mut batch.outputs);
        if let crate::scheduler::Action::AgentLost { agent } = *action {
            batch.events.push(NodeEvent::AgentLost { agent });
        }
    }
    batch.outputs.runs.extend(step.ended);
    step.result
}

fn verdict_of<P>(result: Result<Effect<P>, String>) -> Verdict {
    match result {
        Ok(_) => Verdict::Accepted,
        Err(why) => Verdict::Refused(why),
    }
}

/// The most bytes of a decoder's words a refusal quotes.
const REASON_BYTES: usize = 240;

/// `reason`, cut to [`REASON_BYTES`] at a character boundary: a decoder
/// quotes what it read (an unknown variant is quoted whole), so a peer's
/// 16 MB body would otherwise come back as a 16 MB verdict and log line.
fn clipped(reason: &str) -> std::borrow::Cow<'_, str> {
    if reason.len() <= REASON_BYTES {
        return reason.into();
    }
    let mut end = REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &reason[..end], reason.len()).into()
}
