//! Hierarchical delegation: work split down a hierarchy, results aggregated
//! back up.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use super::DelegationError;
use crate::AgentId;

/// Who leads whom: a forest in which every agent has at most one leader and
/// no agent leads itself, directly or indirectly.
///
/// The invariant is kept by construction: [`add`](Self::add) refuses a
/// subordinate that would close a cycle or give an agent a second leader,
/// so walking down from any agent always ends.
///
/// ```
/// use taskweave::AgentId;
/// use taskweave::coordination::{DelegationError, Hierarchy};
///
/// let [ceo, cto, dev] = [1, 2, 3].map(AgentId::new);
/// let mut org = Hierarchy::new();
/// org.add(ceo, [cto])?;
/// org.add(cto, [dev])?;
/// assert_eq!(org.subordinates(cto), [dev]);
/// assert_eq!(org.leader(dev), Some(cto));
/// assert_eq!(
///     org.add(dev, [ceo]),
///     Err(DelegationError::Cycle { path: vec![ceo, cto, dev, ceo] })
/// );
/// # Ok::<(), DelegationError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hierarchy {
    subordinates: BTreeMap<AgentId, Vec<AgentId>>,
    leader_of: BTreeMap<AgentId, AgentId>,
}

impl Hierarchy {
    /// An empty hierarchy: every agent is a leaf.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `subordinates` report to `leader`, after the ones it already
    /// has. Naming a subordinate the leader already has is a no-op. Either
    /// every subordinate is added or, on error, none is.
    ///
    /// # Errors
    ///
    /// * [`DelegationError::Cycle`] if a subordinate is `leader` itself or
    ///   one of its (indirect) leaders;
    /// * [`DelegationError::AlreadyLed`] if a subordinate reports to
    ///   another leader.
    pub fn add(
        &mut self,
        leader: AgentId,
        subordinates: impl IntoIterator<Item = AgentId>,
    ) -> Result<(), DelegationError> {
        let mut fresh = Vec::new();
        for agent in subordinates {
            match self.leader_of.get(&agent) {
                Some(&current) if current == leader => continue,
                Some(&current) => {
                    return Err(DelegationError::AlreadyLed {
                        agent,
                        leader: current,
                    });
                }
                None => {}
            }
            if let Some(path) = self.cycle_through(leader, agent) {
                return Err(DelegationError::Cycle { path });
            }
            if !fresh.contains(&agent) {
                fresh.push(agent);
            }
        }
        for &agent in &fresh {
            self.leader_of.insert(agent, leader);
        }
        self.subordinates.entry(leader).or_default().extend(fresh);
        Ok(())
    }

    /// The cycle `agent -> … -> leader -> agent` that making `agent` a
    /// subordinate of `leader` would close, if `agent` is `leader` or one of
    /// its leaders.
    fn cycle_through(&self, leader: AgentId, agent: AgentId) -> Option<Vec<AgentId>> {
        let mut chain = vec![leader];
        let mut current = leader;
        while current != agent {
            // The forest is acyclic, so this walk ends at a root.
            current = *self.leader_of.get(&current)?;
            chain.push(current);
        }
        chain.reverse();
        chain.push(agent);
        Some(chain)
    }

    /// The agents reporting directly to `leader`, in the order they were
    /// added (empty for a leaf).
    pub fn subordinates(&self, leader: AgentId) -> &[AgentId] {
        self.subordinates.get(&leader).map_or(&[], Vec::as_slice)
    }

    /// The agent `agent` reports to, if any.
    pub fn leader(&self, agent: AgentId) -> Option<AgentId> {
        self.leader_of.get(&agent).copied()
    }
}

/// What a [`Splitter`] is asked to split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SplitContext<'a> {
    /// The leader whose work is split.
    pub leader: AgentId,
    /// The leader's depth: `0` for the root.
    pub depth: usize,
    /// The delegation's depth limit. A leader may delegate only while
    /// `depth < max_depth`.
    pub max_depth: usize,
    /// The leader's direct subordinates.
    pub subordinates: &'a [AgentId],
}

impl SplitContext<'_> {
    /// Whether delegating from this leader stays within the depth limit.
    pub fn can_delegate(&self) -> bool {
        self.depth < self.max_depth
    }
}

/// A [`Splitter`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split<W> {
    /// The leader does the work itself, as a leaf.
    Keep(W),
    /// The work is handed out in parts, one per entry, each to one of the
    /// leader's direct subordinates (a subordinate may get several parts).
    Delegate(Vec<(AgentId, W)>),
}

/// Splits a leader's work among its subordinates.
///
/// Called once for every node whose agent has subordinates in the
/// [`Hierarchy`]; agents without subordinates keep their work. Any
/// `FnMut(&SplitContext<'_>, W) -> Split<W>` closure is a splitter (annotate
/// the context parameter's type).
pub trait Splitter<W> {
    /// Splits `work`, or keeps it.
    fn split(&mut self, context: &SplitContext<'_>, work: W) -> Split<W>;
}

impl<W, F> Splitter<W> for F
where
    F: FnMut(&SplitContext<'_>, W) -> Split<W>,
{
    fn split(&mut self, context: &SplitContext<'_>, work: W) -> Split<W> {
        self(context, work)
    }
}

/// Combines the results of a leader's parts into the leader's result.
///
/// Any `FnMut(AgentId, Vec<(AgentId, R)>) -> R` closure is an aggregator.
pub trait Aggregator<R> {
    /// Aggregates `results` — one per part, in the order the splitter
    /// returned the parts, each with the subordinate that produced it — into
    /// `leader`'s result.
    fn aggregate(&mut self, leader: AgentId, results: Vec<(AgentId, R)>) -> R;
}

impl<R, F> Aggregator<R> for F
where
    F: FnMut(AgentId, Vec<(AgentId, R)>) -> R,
{
    fn aggregate(&mut self, leader: AgentId, results: Vec<(AgentId, R)>) -> R {
        self(leader, results)
    }
}

/// Names one node of a [`Delegation`]: one piece of work held by one agent.
/// The host hands it out with the work and reports the result under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(usize);

impl NodeId {
    /// The node's index: `0` is the root, the rest follow in the order the
    /// delegation tree was expanded (depth first, parts in split order).
    pub const fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// A leaf's work, handed to the host to run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Assignment<W> {
    /// The node to report the result under.
    pub node: NodeId,
    /// The agent that does the work.
    pub agent: AgentId,
    /// The node's depth: `0` for the root.
    pub depth: usize,
    /// The work.
    pub work: W,
}

#[derive(Clone, Debug)]
struct Node<R> {
    agent: AgentId,
    parent: Option<NodeId>,
    children: Vec<NodeId>,
    /// Children without a result yet; `None` for a leaf.
    waiting_on: Option<usize>,
    /// Set once the node has its result (reported or aggregated).
    done: bool,
    /// The result until the parent aggregates it.
    result: Option<R>,
}

/// One hierarchical delegation: a sans-IO state machine.
///
/// [`start`](Self::start) expands the whole delegation tree at once: the
/// root's work goes to the [`Splitter`] for every node whose agent has
/// subordinates in the [`Hierarchy`]; parts go to direct subordinates only,
/// one level deeper, and never deeper than `max_depth` (the root is at depth
/// `0`, so `max_depth = 0` lets the root do all the work). Nodes that keep
/// their work are leaves; the host pulls their [`Assignment`]s with
/// [`poll_assignment`](Self::poll_assignment) — depth first, parts in split
/// order — and reports each leaf's result once with
/// [`report`](Self::report). As soon as every part of a leader has a result
/// the [`Aggregator`] combines them, level by level; the report that
/// completes the root returns the root's result.
///
/// A root that keeps its work is the only leaf, and its reported result is
/// returned unaggregated.
///
/// ```
/// use taskweave::AgentId;
/// use taskweave::coordination::{Delegation, Hierarchy, Split, SplitContext};
///
/// let [lead, left, right] = [1, 2, 3].map(AgentId::new);
/// let mut org = Hierarchy::new();
/// org.add(lead, [left, right])?;
///
/// // Split a list of numbers in halves; each leaf sums its half.
/// let halves = |ctx: &SplitContext<'_>, mut work: Vec<u64>| {
///     let back = work.split_off(work.len() / 2);
///     Split::Delegate(vec![(ctx.subordinates[0], work), (ctx.subordinates[1], back)])
/// };
/// let add_up = |_leader: AgentId, parts: Vec<(AgentId, u64)>| -> u64 { parts.iter().map(|(_, r)| r).sum() };
/// let mut run = Delegation::start(&org, lead, vec![1, 2, 3, 4], 1, halves, add_up)?;
///
/// let mut root_result = None;
/// while let Some(job) = run.poll_assignment() {
///     let sum: u64 = job.work.iter().sum();
///     root_result = run.report(job.node, sum)?;
/// }
/// assert_eq!(root_result, Some(10));
/// assert!(run.is_complete());
/// # Ok::<(), taskweave::Error>(())
/// ```
pub struct Delegation<W, R, A> {
    nodes: Vec<Node<R>>,
    assignments: VecDeque<Assignment<W>>,
    aggregator: A,
    leaves: usize,
    pending: usize,
}

impl<W, R, A> fmt::Debug for Delegation<W, R, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delegation")
            .field("nodes", &self.nodes.len())
            .field("leaves", &self.leaves)
            .field("pending", &self.pending)
            .field("unpolled", &self.assignments.len())
            .finish_non_exhaustive()
    }
}

impl<W, R, A: Aggregator<R>> Delegation<W, R, A> {
    /// Delegates `work` from `root` down `hierarchy`; see [`Delegation`].
    ///
    /// # Errors
    ///
    /// The work is dropped and the delegation not started when the splitter
    /// breaks a rule:
    /// * [`DelegationError::UnknownSubordinate`]: a part for an agent that
    ///   is not a direct subordinate of the leader;
    /// * [`DelegationError::DepthLimitExceeded`]: a leader at `max_depth`
    ///   delegated;
    /// * [`DelegationError::EmptySplit`]: a leader delegated no part at all.
    pub fn start<S: Splitter<W>>(
        hierarchy: &Hierarchy,
        root: AgentId,
        work: W,
        max_depth: usize,
        mut splitter: S,
        aggregator: A,
    ) -> Result<Self, DelegationError> {
        let mut nodes = vec![Node {
            agent: root,
            parent: None,
            children: Vec::new(),
            waiting_on: None,
            done: false,
            result: None,
        }];
        let mut assignments = VecDeque::new();
        // (node, depth, work), popped depth first.
        let mut stack = vec![(NodeId(0), 0usize, work)];
        while let Some((id, depth, work)) = stack.pop() {
            let agent = nodes
                .get(id.0)
                .map(|n| n.agent)
                .ok_or(DelegationError::UnknownNode(id))?;
            let subordinates = hierarchy.subordinates(agent);
            let split = if subordinates.is_empty() {
                Split::Keep(work)
            } else {
                let context = SplitContext {
                    leader: agent,
                    depth,
                    max_depth,
                    subordinates,
                };
                splitter.split(&context, work)
            };
            let parts = match split {
                Split::Keep(work) => {
                    assignments.push_back(Assignment {
                        node: id,
                        agent,
                        depth,
                        work,
                    });
                    continue;
                }
                Split::Delegate(parts) => parts,
            };
            if parts.is_empty() {
                return Err(DelegationError::EmptySplit { leader: agent });
            }
            if depth >= max_depth {
                return Err(DelegationError::DepthLimitExceeded {
                    leader: agent,
                    limit: max_depth,
                });
            }
            if let Some(&(stranger, _)) = parts.iter().find(|(s, _)| !subordinates.contains(s)) {
                return Err(DelegationError::UnknownSubordinate {
                    leader: agent,
                    agent: stranger,
                });
            }
            let first_child = nodes.len();
            let children: Vec<NodeId> = (first_child..first_child + parts.len())
                .map(NodeId)
                .collect();
            for &(subordinate, _) in &parts {
                nodes.push(Node {
                    agent: subordinate,
                    parent: Some(id),
                    children: Vec::new(),
                    waiting_on: None,
                    done: false,
                    result: None,
                });
            }
            // Reversed, so the first part is expanded first.
            for (&child, (_, part)) in children.iter().zip(parts).rev() {
                stack.push((child, depth + 1, part));
            }
            if let Some(node) = nodes.get_mut(id.0) {
                node.waiting_on = Some(children.len());
                node.children = children;
            }
        }
        let leaves = assignments.len();
        Ok(Delegation {
            nodes,
            assignments,
            aggregator,
            leaves,
            pending: leaves,
        })
    }

    /// The next leaf assignment to hand out, or `None` when all were taken.
    pub fn poll_assignment(&mut self) -> Option<Assignment<W>> {
        self.assignments.pop_front()
    }

    /// Reports a leaf's result and aggregates upwards as far as it can.
    /// Returns the root's result when this report completes the delegation,
    /// `None` otherwise.
    ///
    /// # Errors
    ///
    /// * [`DelegationError::UnknownNode`] for a node this delegation does
    ///   not have;
    /// * [`DelegationError::NotALeaf`] for a node that delegated its work;
    /// * [`DelegationError::AlreadyReported`] for a second report (the first
    ///   one stands).
    pub fn report(&mut self, node: NodeId, result: R) -> Result<Option<R>, DelegationError> {
        let leaf = self
            .nodes
            .get_mut(node.0)
            .ok_or(DelegationError::UnknownNode(node))?;
        if leaf.waiting_on.is_some() {
            return Err(DelegationError::NotALeaf(node));
        }
        if leaf.done {
            return Err(DelegationError::AlreadyReported(node));
        }
        leaf.done = true;
        leaf.result = Some(result);
        self.pending = self.pending.saturating_sub(1);

        let mut current = node;
        loop {
            let Some(parent) = self.nodes.get(current.0).and_then(|n| n.parent) else {
                // `current` is the root and has its result.
                return Ok(self.nodes.get_mut(current.0).and_then(|n| n.result.take()));
            };
            let Some(leader) = self.nodes.get_mut(parent.0) else {
                return Err(DelegationError::UnknownNode(parent));
            };
            let waiting = leader.waiting_on.get_or_insert(0);
            *waiting = waiting.saturating_sub(1);
            if *waiting > 0 {
                return Ok(None);
            }
            // Each leader aggregates once, so its child list is no longer needed.
            let (leader_agent, children) = (leader.agent, std::mem::take(&mut leader.children));
            let results: Vec<(AgentId, R)> = children
                .iter()
                .filter_map(|child| {
                    let child = self.nodes.get_mut(child.0)?;
                    Some((child.agent, child.result.take()?))
                })
                .collect();
            let combined = self.aggregator.aggregate(leader_agent, results);
            if let Some(leader) = self.nodes.get_mut(parent.0) {
                leader.done = true;
                leader.result = Some(combined);
            }
            current = parent;
        }
    }

    /// Leaves that have not reported yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Number of leaves (assignments) in the delegation tree.
    pub fn leaves(&self) -> usize {
        self.leaves
    }

    /// Number of nodes in the delegation tree, leaders included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The agent holding `node`, if the node exists.
    pub fn agent(&self, node: NodeId) -> Option<AgentId> {
        self.nodes.get(node.0).map(|n| n.agent)
    }

    /// The node's leader node (`None` for the root or an unknown node).
    pub fn parent(&self, node: NodeId) -> Option<NodeId> {
        self.nodes.get(node.0).and_then(|n| n.parent)
    }

    /// Whether every leaf has reported (the root's result was returned).
    pub fn is_complete(&self) -> bool {
        self.pending == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: u64) -> AgentId {
        AgentId::new(raw)
    }

    /// 1 leads 2 and 3; 2 leads 4 and 5; 3 leads 6.
    fn org() -> Hierarchy {
        let mut org = Hierarchy::new();
        org.add(id(1), [id(2), id(3)]).unwrap();
        org.add(id(2), [id(4), id(5)]).unwrap();
        org.add(id(3), [id(6)]).unwrap();
        org
    }

    /// Hands every subordinate one copy of a string tagged with its id.
    fn fan_out(ctx: &SplitContext<'_>, work: String) -> Split<String> {
        if !ctx.can_delegate() {
            return Split::Keep(work);
        }
        Split::Delegate(
            ctx.subordinates
                .iter()
                .map(|&s| (s, format!("{work}/{}", s.get())))
                .collect(),
        )
    }

    fn join(leader: AgentId, results: Vec<(AgentId, String)>) -> String {
        let parts: Vec<String> = results.into_iter().map(|(_, r)| r).collect();
        format!("{}[{}]", leader.get(), parts.join(","))
    }

    type Run = Delegation<String, String, fn(AgentId, Vec<(AgentId, String)>) -> String>;

    fn start(max_depth: usize) -> Run {
        Delegation::start(
            &org(),
            id(1),
            "w".to_owned(),
            max_depth,
            fan_out,
            join as fn(_, _) -> _,
        )
        .unwrap()
    }

    fn drain(run: &mut Run) -> Vec<Assignment<String>> {
        std::iter::from_fn(|| run.poll_assignment()).collect()
    }

    #[test]
    fn work_flows_down_to_the_leaves_and_results_aggregate_up() {
        let mut run = start(5);
        let jobs = drain(&mut run);
        let agents: Vec<u64> = jobs.iter().map(|j| j.agent.get()).collect();
        assert_eq!(agents, [4, 5, 6]);
        assert_eq!(jobs[0].work, "w/2/4");
        assert_eq!(jobs[0].depth, 2);
        assert_eq!((run.leaves(), run.pending(), run.node_count()), (3, 3, 6));
        // Report out of order: aggregation waits for every part.
        let mut last = None;
        for job in jobs.iter().rev() {
            assert!(last.is_none());
            last = run.report(job.node, job.agent.get().to_string()).unwrap();
        }
        assert_eq!(last.as_deref(), Some("1[2[4,5],3[6]]"));
        assert!(run.is_complete());
        assert_eq!(run.agent(jobs[2].node), Some(id(6)));
        assert_eq!(run.parent(NodeId(0)), None);
    }

    #[test]
    fn leaders_at_the_depth_limit_keep_their_work() {
        let mut run = start(1);
        let jobs = drain(&mut run);
        let agents: Vec<u64> = jobs.iter().map(|j| j.agent.get()).collect();
        assert_eq!(agents, [2, 3]);
        run.report(jobs[0].node, "a".into()).unwrap();
        let root = run.report(jobs[1].node, "b".into()).unwrap();
        assert_eq!(root.as_deref(), Some("1[a,b]"));
    }

    #[test]
    fn a_root_that_keeps_its_work_is_the_only_leaf() {
        let mut run = start(0);
        let job = run.poll_assignment().unwrap();
        assert_eq!((job.node, job.agent, job.depth), (NodeId(0), id(1), 0));
        assert!(run.poll_assignment().is_none());
        assert_eq!(run.report(job.node, "done".into()), Ok(Some("done".into())));
        // An agent with no subordinates is a leaf without asking the splitter.
        let lone = Delegation::start(
            &Hierarchy::new(),
            id(7),
            1u8,
            3,
            |_: &SplitContext<'_>, _: u8| -> Split<u8> { unreachable!() },
            |_: AgentId, _: Vec<(AgentId, u8)>| 0u8,
        )
        .unwrap();
        assert_eq!(lone.leaves(), 1);
    }

    #[test]
    fn report_errors_are_typed() {
        let mut run = start(5);
        let jobs = drain(&mut run);
        assert_eq!(
            run.report(NodeId(99), String::new()),
            Err(DelegationError::UnknownNode(NodeId(99)))
        );
        assert_eq!(
            run.report(NodeId(0), String::new()),
            Err(DelegationError::NotALeaf(NodeId(0)))
        );
        run.report(jobs[0].node, "x".into()).unwrap();
        assert_eq!(
            run.report(jobs[0].node, "y".into()),
            Err(DelegationError::AlreadyReported(jobs[0].node))
        );
        assert_eq!(run.pending(), 2);
        assert_eq!(NodeId(3).to_string(), "node-3");
    }

    fn start_with<S: Splitter<u32>>(splitter: S, max_depth: usize) -> Result<(), DelegationError> {
        Delegation::start(
            &org(),
            id(1),
            0u32,
            max_depth,
            splitter,
            |_: AgentId, _: Vec<(AgentId, u32)>| 0u32,
        )
        .map(|_| ())
    }

    #[test]
    fn splitter_errors_are_typed() {
        let to_stranger = |_: &SplitContext<'_>, w: u32| Split::Delegate(vec![(id(4), w)]);
        assert_eq!(
            start_with(to_stranger, 5),
            Err(DelegationError::UnknownSubordinate {
                leader: id(1),
                agent: id(4)
            })
        );
        let always = |ctx: &SplitContext<'_>, w: u32| {
            Split::Delegate(ctx.subordinates.iter().map(|&s| (s, w)).collect())
        };
        assert_eq!(
            start_with(always, 1),
            Err(DelegationError::DepthLimitExceeded {
                leader: id(2),
                limit: 1
            })
        );
        let nobody = |_: &SplitContext<'_>, _: u32| Split::Delegate(Vec::new());
        assert_eq!(
            start_with(nobody, 5),
            Err(DelegationError::EmptySplit { leader: id(1) })
        );
    }

    #[test]
    fn a_subordinate_may_get_several_parts() {
        let twice = |ctx: &SplitContext<'_>, w: u32| {
            if ctx.leader == id(1) {
                Split::Delegate(vec![(id(3), w), (id(3), w + 1)])
            } else {
                Split::Keep(w)
            }
        };
        let mut run = Delegation::start(
            &org(),
            id(1),
            10u32,
            4,
            twice,
            |_: AgentId, parts: Vec<(AgentId, u32)>| parts.iter().map(|(_, r)| r).sum::<u32>(),
        )
        .unwrap();
        let a = run.poll_assignment().unwrap();
        let b = run.poll_assignment().unwrap();
        assert_eq!((a.work, b.work), (10, 11));
        assert_eq!(run.report(a.node, 1), Ok(None));
        assert_eq!(run.report(b.node, 2), Ok(Some(3)));
    }

    #[test]
    fn hierarchies_refuse_cycles_and_second_leaders_atomically() {
        let mut org = org();
        assert_eq!(
            org.add(id(7), [id(7)]),
            Err(DelegationError::Cycle {
                path: vec![id(7), id(7)]
            })
        );
        assert_eq!(
            org.add(id(4), [id(8), id(1)]),
            Err(DelegationError::Cycle {
                path: vec![id(1), id(2), id(4), id(1)]
            })
        );
        assert_eq!(org.leader(id(8)), None, "nothing added on error");
        assert_eq!(
            org.add(id(3), [id(4)]),
            Err(DelegationError::AlreadyLed {
                agent: id(4),
                leader: id(2)
            })
        );
        // Repeating an existing edge is a no-op.
        org.add(id(2), [id(5), id(9), id(9)]).unwrap();
        assert_eq!(org.subordinates(id(2)), [id(4), id(5), id(9)]);
        assert!(org.subordinates(id(9)).is_empty());
    }

    #[test]
    fn debug_output_summarises_the_state() {
        let run = start(5);
        assert!(format!("{run:?}").contains("leaves: 3"));
    }
}
