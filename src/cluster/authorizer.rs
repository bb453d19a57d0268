//! Who may do what: the leader asks an [`Authorizer`] about every inbox
//! message, after the roles ([`Action::allowed_to`]) and before the
//! message changes anything.

use super::contract::{Message, RunCommand, Sender};

/// What an inbox message asks the leader to do.
///
/// Reads are not here: a client's queries ([`ClientOp`](super::ClientOp))
/// are answered by the store, not the leader, and the store confines them
/// (PostgreSQL's row-level security).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// An agent registers ([`Message::Register`]).
    Register,
    /// An agent says it is alive ([`Message::Heartbeat`]).
    Heartbeat,
    /// An agent reports an attempt ([`Message::Report`],
    /// [`Message::Completed`]).
    Report,
    /// A client submits tasks ([`Message::Submit`]).
    Submit,
    /// A client cancels a task ([`Message::Cancel`]).
    Cancel,
    /// A client drains the cluster ([`Message::Drain`]).
    Drain,
    /// A client sends dead letters back to the queue ([`Message::Redrive`]).
    Redrive,
    /// A client registers a workflow definition ([`RunCommand::Register`]).
    Define,
    /// A client starts a hosted run ([`RunCommand::Start`]).
    Start,
    /// A client signals a hosted run ([`RunCommand::Signal`]).
    Signal,
    /// A client cancels a hosted run ([`RunCommand::Cancel`]).
    CancelRun,
    /// A client adds, pauses, resumes, triggers or removes a schedule
    /// ([`RunCommand::Schedule`]).
    Schedule,
}

impl Action {
    /// What `message` asks.
    pub fn of<P>(message: &Message<P>) -> Action {
        match message {
            Message::Register { .. } => Action::Register,
            Message::Heartbeat => Action::Heartbeat,
            Message::Report(_) | Message::Completed { .. } => Action::Report,
            Message::Submit(_) => Action::Submit,
            Message::Cancel(_) => Action::Cancel,
            Message::Drain => Action::Drain,
            Message::Redrive(_) => Action::Redrive,
            Message::Run(RunCommand::Register(_)) => Action::Define,
            Message::Run(RunCommand::Start { .. }) => Action::Start,
            Message::Run(RunCommand::Signal { .. }) => Action::Signal,
            Message::Run(RunCommand::Cancel(_)) => Action::CancelRun,
            Message::Run(RunCommand::Schedule(_)) => Action::Schedule,
        }
    }

    /// Whether `sender`'s role may ask this at all: an agent registers,
    /// heartbeats and reports (for itself: the store sets the sender from
    /// the connection's identity); a client does everything else; a
    /// tenant's client submits and cancels tasks and starts, signals and
    /// cancels runs (its own: the leader scopes them), but defines no
    /// workflow, schedules nothing, redrives no dead letter and drains
    /// nothing. The
    /// leader refuses any other pair before it asks the authorizer, so no
    /// authorizer can widen a role.
    pub fn allowed_to(self, sender: Sender) -> bool {
        let agents_only = matches!(self, Action::Register | Action::Heartbeat | Action::Report);
        match sender {
            Sender::Agent { .. } => agents_only,
            Sender::Client => !agents_only,
            Sender::Tenant(_) => matches!(
                self,
                Action::Submit
                    | Action::Cancel
                    | Action::Start
                    | Action::Signal
                    | Action::CancelRun
            ),
        }
    }
}

/// One inbox message as the leader asks about it: who sent it, what it
/// asks, and the message itself (the target: the tasks, the task, the
/// run or the profile it names).
#[derive(Debug)]
#[non_exhaustive]
pub struct Request<'a, P> {
    /// Who posted it, as the store identified the connection.
    pub sender: Sender,
    /// What it asks.
    pub action: Action,
    /// The message.
    pub message: &'a Message<P>,
}

impl<'a, P> Request<'a, P> {
    /// The request `sender` makes with `message`.
    pub fn new(sender: Sender, message: &'a Message<P>) -> Self {
        Request {
            sender,
            action: Action::of(message),
            message,
        }
    }
}

/// Why an authorizer refused a message; the leader answers the message
/// with a refusal that carries it, and changes nothing else.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not authorized: {0}")]
pub struct Denied(pub String);

/// Decides whether a message may be applied. Sans-IO and synchronous:
/// the leader asks it inside its intake, for every message, in inbox
/// order, so it must answer from what it holds (a table of grants, say),
/// not by asking a server.
///
/// Every node of a cluster should be built with the same authorizer: the
/// verdicts are the leader's, so with different ones a failover changes
/// what is allowed. The journal does not depend on it (a refused message
/// journals nothing), so followers replay the same state whatever theirs.
///
/// Closures `Fn(&Request<P>) -> Result<(), Denied>` are authorizers.
///
/// ```
/// use taskweave::cluster::{Action, Denied, Message, Request, Sender};
///
/// // Agent 7 may run tasks, but never register with more than 4 slots.
/// let authorizer = |request: &Request<'_, String>| match (request.sender, request.message) {
///     (Sender::Agent { agent, .. }, Message::Register { profile })
///         if agent.get() == 7 && profile.capacity() > 4 =>
///     {
///         Err(Denied(format!("agent 7 may claim 4 slots, not {}", profile.capacity())))
///     }
///     _ => Ok(()),
/// };
/// # use taskweave::cluster::Authorizer;
/// # let heartbeat = Message::<String>::Heartbeat;
/// # let sender = Sender::Agent { agent: taskweave::AgentId::new(7), incarnation: 1 };
/// # assert_eq!(Request::new(sender, &heartbeat).action, Action::Heartbeat);
/// # assert!(authorizer.authorize(&Request::new(sender, &heartbeat)).is_ok());
/// ```
pub trait Authorizer<P> {
    /// `Ok` to apply the message; a [`Denied`] refuses it.
    ///
    /// # Errors
    ///
    /// [`Denied`], with the reason the sender reads in its verdict.
    fn authorize(&self, request: &Request<'_, P>) -> Result<(), Denied>;
}

impl<P, F> Authorizer<P> for F
where
    F: Fn(&Request<'_, P>) -> Result<(), Denied>,
{
    fn authorize(&self, request: &Request<'_, P>) -> Result<(), Denied> {
        self(request)
    }
}

/// The default authorizer: whatever the roles allow.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowRoles;

impl<P> Authorizer<P> for AllowRoles {
    fn authorize(&self, _: &Request<'_, P>) -> Result<(), Denied> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentId;

    #[test]
    fn agents_register_heartbeat_and_report_and_clients_do_the_rest() {
        let agent = Sender::Agent {
            agent: AgentId::new(1),
            incarnation: 1,
        };
        let all = [
            Action::Register,
            Action::Heartbeat,
            Action::Report,
            Action::Submit,
            Action::Cancel,
            Action::Drain,
            Action::Redrive,
            Action::Define,
            Action::Start,
            Action::Signal,
            Action::CancelRun,
            Action::Schedule,
        ];
        for action in all {
            let agents = matches!(
                action,
                Action::Register | Action::Heartbeat | Action::Report
            );
            assert_eq!(action.allowed_to(agent), agents, "{action:?}");
            assert_eq!(action.allowed_to(Sender::Client), !agents, "{action:?}");
            let tenant = Sender::Tenant(crate::TenantId::new(1));
            let own = matches!(
                action,
                Action::Submit
                    | Action::Cancel
                    | Action::Start
                    | Action::Signal
                    | Action::CancelRun
            );
            assert_eq!(action.allowed_to(tenant), own, "{action:?}");
        }
    }
}
