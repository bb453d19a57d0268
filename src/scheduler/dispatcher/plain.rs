//! The plain instance of a task's cycle.
//!
//! Submitting, placing and closing an attempt each ask about machinery a
//! dispatcher may not have: kind bulkheads and rates, circuit breakers,
//! agent rates, concurrency keys, preemption, reserved capacity, the
//! unroutable timeout, a learning strategy, an observer. Most dispatchers
//! have none of it, and the answers never change while they run; asked on
//! every cycle, the questions and the code behind them cost the cycle about
//! a tenth of its instructions (callgrind, `perf_report`'s pipeline).
//!
//! So the hot functions of the cycle take a `const PLAIN: bool`. Their
//! `PLAIN = true` instance is compiled knowing that none of that machinery
//! is there, and leaves it out; `PLAIN = false` is the full path, correct
//! for every dispatcher. [`submit`](Dispatcher::submit) and
//! [`report`](Dispatcher::report) pick the instance by
//! [`Dispatcher::plain`], which [`plain_now`](Dispatcher::plain_now)
//! keeps: computed when the dispatcher is built or restored and when an
//! observer is set, the only times any of its inputs can change.
//!
//! Pools watched for scale hints are counted on both instances, behind one
//! test of an empty vector: through the full path, watching a pool made
//! the cycle at 1,000 agents about twice as slow; on the plain one, about
//! 1.2 times (`benches/dispatch.rs`, group `scale`).

use super::super::DispatcherConfig;
use super::super::state::State;
use super::Dispatcher;
use crate::routing::RoutingStrategy;

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// A dispatcher of these parts, with no observer: what building one
    /// and restoring one share. Asks the strategy whether it learns and
    /// settles which instance of the cycle runs.
    pub(in crate::scheduler) fn assemble(
        config: DispatcherConfig,
        strategy: S,
        state: State<P>,
    ) -> Self {
        let mut dispatcher = Dispatcher {
            config,
            learns: strategy.learns(),
            strategy,
            observer: None,
            #[cfg(feature = "sync")]
            handoff: None,
            plain: false,
            watches: Vec::new(),
            state,
        };
        dispatcher.plain = dispatcher.plain_now();
        dispatcher
    }

    /// Whether this dispatcher has none of the machinery the plain
    /// instance leaves out.
    ///
    /// Every input is fixed from construction (or restore) on, but the
    /// observer: the gates and keys come from the configuration (a breaker
    /// or an agent rate joins with each agent only when configured, so
    /// empty maps stay empty), `learns` from the strategy taken.
    pub(super) fn plain_now(&self) -> bool {
        let settings = &self.config.settings;
        let gates = &self.state.gates;
        settings.circuit_breaker.is_none()
            && settings.agent_rate_limit.is_none()
            && !gates.limits_agents()
            && !gates.by_kind()
            && !self.state.key_gates.is_on()
            && !settings.preemption
            && settings.reserved_share <= 0.0
            && settings.unroutable_timeout.is_none()
            && !self.learns
            && self.observer.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::resilience::{BreakerConfig, Bulkhead, KeyedRateLimiter, Quota};
    use crate::routing::{Adaptive, RoutingStrategy};
    use crate::scheduler::{
        ConcurrencyLimit, Dispatcher, DispatcherConfig, DispatcherConfigBuilder,
    };

    fn plain(config: DispatcherConfigBuilder) -> bool {
        Dispatcher::<u32>::new(config.build().unwrap()).plain
    }

    #[test]
    fn every_optional_part_takes_the_full_path() {
        let base = DispatcherConfig::builder;
        let quota = Quota::new(5, Duration::from_secs(1)).unwrap();
        assert!(plain(base()));
        // What the plain instance does not leave out: timeouts, aging,
        // heartbeats, retries.
        assert!(plain(
            base()
                .attempt_timeout(Duration::from_secs(1))
                .aging_interval(Some(Duration::from_secs(1)))
                .heartbeats(Duration::from_secs(1), 2)
        ));
        let breaker = BreakerConfig::builder().build().unwrap();
        let full = [
            base().circuit_breaker(breaker),
            base().agent_rate_limit(quota),
            base().kind_bulkhead(Bulkhead::new(2).unwrap()),
            base().kind_rate_limit(KeyedRateLimiter::new(quota)),
            base().concurrency_limit("api", ConcurrencyLimit::new(3)),
            base().preemption(true),
            base().reserved_share(0.25),
            base().unroutable_timeout(Duration::from_secs(1)),
        ];
        for config in full {
            assert!(!plain(config));
        }
        let strategy: Box<dyn RoutingStrategy + Send> = Box::new(Adaptive::new());
        let learning = Dispatcher::<u32>::with_strategy(DispatcherConfig::default(), strategy);
        assert!(!learning.plain);
    }

    #[test]
    fn an_observer_takes_the_full_path() {
        let mut dispatcher = Dispatcher::<u32>::new(DispatcherConfig::default());
        assert!(dispatcher.plain);
        dispatcher.set_observer(|_: &crate::scheduler::Event| {});
        assert!(!dispatcher.plain);
    }

    #[test]
    fn a_watched_pool_keeps_the_plain_path_and_is_counted_on_it() {
        use crate::scheduler::{Action, AttemptOutcome, ScalePolicy, TaskReport, TaskSpec};
        use crate::{AgentId, Instant};
        let mut dispatcher = Dispatcher::<u32>::new(DispatcherConfig::default());
        let policy = ScalePolicy::builder().build().unwrap();
        dispatcher.watch_pool("all", ["x"], policy).unwrap();
        assert!(dispatcher.plain);
        let profile = crate::agent::AgentProfile::builder().build().unwrap();
        let now = Instant::from_secs(1);
        dispatcher
            .register_agent(AgentId::new(1), profile, now)
            .unwrap();
        let _ = dispatcher.submit(TaskSpec::new(7), now).unwrap();
        let Some(Action::Assign {
            task, agent, token, ..
        }) = dispatcher.poll_action()
        else {
            panic!("no assignment");
        };
        let report = TaskReport {
            task,
            agent,
            token,
            outcome: AttemptOutcome::Success,
        };
        dispatcher.report(report, Instant::from_secs(4)).unwrap();
        let hint = dispatcher.scale_hint("all", Instant::from_secs(4)).unwrap();
        assert_eq!(hint.arrivals_per_second * 60.0, 1.0);
        assert_eq!(hint.completions_per_second * 60.0, 1.0);
        assert_eq!(hint.mean_run_time, Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_restored_dispatcher_takes_the_path_its_configuration_does() {
        for config in [
            DispatcherConfig::default(),
            DispatcherConfig::builder()
                .preemption(true)
                .build()
                .unwrap(),
        ] {
            let original = Dispatcher::<u32>::new(config.clone());
            let strategy: Box<dyn RoutingStrategy + Send> =
                Box::new(crate::routing::LeastLoaded::new());
            let restored = Dispatcher::restore(config, strategy, original.snapshot()).unwrap();
            assert_eq!(restored.plain, original.plain);
        }
    }
}
