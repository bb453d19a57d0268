//! Tenants on one dispatcher: quotas refuse with the task handed back and
//! make room as tasks end, a snapshot's limiters must match the
//! configuration, and a host confines a tenant's cancels with
//! `Dispatcher::tenant`. Keys scoped to a tenant: `TaskSpec::tenant`'s
//! doctest; every tenant state restoring: `restore_every_state.rs`.

use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::resilience::Quota;
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, SchedulerError, SubmitErrorKind,
    TaskReport, TaskSpec, TenantLimit, TenantQuota,
};
use taskweave::{AgentId, Instant, TaskId, TenantId};

const ACME: TenantId = TenantId::new(1);
const GLOBEX: TenantId = TenantId::new(2);

fn config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .tenant_quota(ACME, TenantQuota::new().live_tasks(2))
        .default_tenant_quota(
            TenantQuota::new().cost_rate(Quota::new(10, Duration::from_secs(10)).unwrap()),
        )
        .build()
        .unwrap()
}

/// Completes every assigned task; the tasks completed.
fn complete_all(d: &mut Dispatcher<&'static str>, now: Instant) -> Vec<TaskId> {
    let mut done = Vec::new();
    while let Some(action) = d.poll_action() {
        if let Action::Assign {
            task, agent, token, ..
        } = action
        {
            let report = TaskReport {
                task,
                agent,
                token,
                outcome: AttemptOutcome::Success,
            };
            d.report(report, now).unwrap();
            done.push(task);
        }
    }
    done
}

#[test]
fn a_live_task_quota_hands_the_task_back_and_makes_room_as_tasks_end() {
    let mut d: Dispatcher<&'static str> = Dispatcher::new(config());
    let now = Instant::ZERO;
    for job in ["a", "b"] {
        d.submit(TaskSpec::new(job).tenant(ACME), now).unwrap().id();
    }
    let refused = d.submit(TaskSpec::new("c").tenant(ACME), now).unwrap_err();
    assert_eq!(
        refused.kind,
        SubmitErrorKind::OverQuota {
            tenant: ACME,
            limit: TenantLimit::LiveTasks { limit: 2 }
        }
    );
    assert_eq!(refused.spec.payload, "c", "the refused task comes back");
    assert_eq!(
        refused.kind.to_string(),
        "tenant-1 is at its quota of 2 live tasks; a task of the tenant must end first"
    );
    assert_eq!(d.tenant_live_tasks(ACME), 2);
    // Tasks without a tenant, and another tenant's, are not held back.
    d.submit(TaskSpec::new("untenanted"), now).unwrap().id();
    d.submit(TaskSpec::new("g").tenant(GLOBEX), now)
        .unwrap()
        .id();

    let profile = AgentProfile::builder().capacity(8).build().unwrap();
    d.register_agent(AgentId::new(1), profile, now).unwrap();
    assert_eq!(complete_all(&mut d, now).len(), 4);
    assert_eq!(d.tenant_live_tasks(ACME), 0);
    assert!(d.submit(TaskSpec::new("c").tenant(ACME), now).is_ok());
}

#[test]
fn a_cost_rate_names_when_the_cost_fits_again() {
    let mut d: Dispatcher<&'static str> = Dispatcher::new(config());
    let now = Instant::ZERO;
    d.submit(TaskSpec::new("big").tenant(GLOBEX).cost(10), now)
        .unwrap()
        .id();
    let refused = d
        .submit(TaskSpec::new("more").tenant(GLOBEX).cost(5), now)
        .unwrap_err();
    let SubmitErrorKind::OverQuota {
        tenant,
        limit: TenantLimit::CostRate { retry_at, .. },
    } = refused.kind
    else {
        panic!("{:?}", refused.kind);
    };
    assert_eq!(tenant, GLOBEX);
    assert_eq!(retry_at, Instant::from_secs(5));
    assert!(
        d.submit(TaskSpec::new("more").tenant(GLOBEX).cost(5), retry_at)
            .is_ok()
    );
    // ACME has its own quota, without a cost rate: the default is not
    // added to it.
    assert!(
        d.submit(TaskSpec::new("x").tenant(ACME).cost(50), now)
            .is_ok()
    );
}

#[cfg(feature = "serde")]
#[test]
fn a_snapshot_whose_limiter_disagrees_with_the_configuration_is_refused() {
    let mut d: Dispatcher<&'static str> = Dispatcher::new(config());
    d.submit(TaskSpec::new("big").tenant(GLOBEX).cost(10), Instant::ZERO)
        .unwrap()
        .id();
    let mut value = serde_json::to_value(d.snapshot()).unwrap();
    assert!(value["state"]["tenant_rates"]["2"].is_object(), "{value}");
    // A limiter with another quota than the tenant's.
    value["state"]["tenant_rates"]["2"]["quota"]["cells"] = 1_000.into();
    value["state"]["tenant_rates"]["2"]["quota"]["burst"] = 1_000.into();
    let snapshot = serde_json::from_value(value.clone()).unwrap();
    let refused = Dispatcher::<String, _>::restore(
        config(),
        taskweave::routing::LeastLoaded::new(),
        snapshot,
    )
    .unwrap_err();
    assert!(
        matches!(&refused, SchedulerError::CorruptSnapshot { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("tenant-2"), "{refused}");
    // A limiter for a tenant the configuration gives no cost rate.
    let mut value = serde_json::to_value(d.snapshot()).unwrap();
    let limiter = value["state"]["tenant_rates"]["2"].clone();
    value["state"]["tenant_rates"]["1"] = limiter;
    let snapshot = serde_json::from_value(value).unwrap();
    let refused = Dispatcher::<String, _>::restore(
        config(),
        taskweave::routing::LeastLoaded::new(),
        snapshot,
    )
    .unwrap_err();
    assert!(refused.to_string().contains("tenant-1"), "{refused}");
}

#[test]
fn a_host_confines_a_tenants_cancels_to_its_own_tasks() {
    let mut d: Dispatcher<&'static str> = Dispatcher::new(config());
    let now = Instant::ZERO;
    let acme_task = d.submit(TaskSpec::new("a").tenant(ACME), now).unwrap().id();
    let globex_task = d
        .submit(TaskSpec::new("g").tenant(GLOBEX), now)
        .unwrap()
        .id();
    // The host's rule: a tenant cancels a task only if it owns it.
    let mut cancel_as = |tenant: TenantId, task: TaskId| match d.tenant(task) {
        Some(owner) if owner == tenant => d.cancel(task, now).map(|_| ()),
        _ => Err(SchedulerError::UnknownTask(task)),
    };
    assert_eq!(
        cancel_as(GLOBEX, acme_task),
        Err(SchedulerError::UnknownTask(acme_task))
    );
    assert_eq!(cancel_as(ACME, acme_task), Ok(()));
    assert_eq!(cancel_as(GLOBEX, globex_task), Ok(()));
    assert_eq!(d.tenant_live_tasks(ACME), 0);
}

#[test]
fn a_quota_of_no_live_task_or_run_is_refused_naming_its_tenant() {
    let refused = |builder: taskweave::scheduler::DispatcherConfigBuilder| {
        builder.build().err().map(|e| e.to_string())
    };
    let none = TenantQuota::new().live_tasks(0);
    let one = TenantQuota::new().live_tasks(1);
    let own = DispatcherConfig::builder()
        .tenant_quota(TenantId::new(2), one)
        .tenant_quota(TenantId::new(5), none);
    let own = refused(own).expect("refused");
    assert!(own.contains("tenant-5: 0 live tasks"), "{own}");
    let default = DispatcherConfig::builder()
        .tenant_quota(TenantId::new(2), one)
        .default_tenant_quota(none);
    let default = refused(default).expect("refused");
    assert!(default.contains("every tenant: 0 live tasks"), "{default}");
    let fine = DispatcherConfig::builder()
        .tenant_quota(TenantId::new(2), one)
        .default_tenant_quota(one);
    assert_eq!(refused(fine), None);
    // Nor a quota of no live run; the first tenant at fault is named.
    let no_run = TenantQuota::new().live_runs(0);
    let runs = DispatcherConfig::builder()
        .tenant_quota(TenantId::new(9), no_run)
        .tenant_quota(TenantId::new(3), no_run.live_tasks(0))
        .tenant_quota(TenantId::new(4), no_run);
    let runs = refused(runs).expect("refused");
    assert!(runs.contains("tenant-3: 0 live tasks"), "{runs}");
    let runs = DispatcherConfig::builder().default_tenant_quota(no_run);
    let runs = refused(runs).expect("refused");
    assert!(runs.contains("every tenant: 0 live runs"), "{runs}");
    let one_run = TenantQuota::new().live_runs(1);
    assert_eq!(one_run.max_live_runs(), Some(1));
    let fine = DispatcherConfig::builder().tenant_quota(TenantId::new(3), one_run);
    assert_eq!(refused(fine), None);
}

/// With one slot, which tenant the first 20 tasks run for: ACME submits 40
/// tasks under 40 fair-share keys, GLOBEX 40 under one.
fn first_twenty(acme: TenantQuota, globex: TenantQuota) -> Vec<TenantId> {
    let config = DispatcherConfig::builder()
        .tenant_quota(ACME, acme)
        .tenant_quota(GLOBEX, globex)
        .build()
        .unwrap();
    let mut d: Dispatcher<&'static str> = Dispatcher::new(config);
    let now = Instant::ZERO;
    let mut tenant_of = std::collections::BTreeMap::new();
    for i in 0..40 {
        let acme = TaskSpec::new("acme")
            .tenant(ACME)
            .fairness(format!("key-{i}"), 1);
        tenant_of.insert(d.submit(acme, now).unwrap().id(), ACME);
        let globex = TaskSpec::new("globex").tenant(GLOBEX).fairness("globex", 1);
        tenant_of.insert(d.submit(globex, now).unwrap().id(), GLOBEX);
    }
    let profile = AgentProfile::builder().capacity(1).build().unwrap();
    d.register_agent(AgentId::new(1), profile, now).unwrap();
    // One slot: the tasks complete one at a time, in the order they ran.
    let ran = complete_all(&mut d, now);
    assert_eq!(ran.len(), 80, "every task ran");
    ran[..20].iter().map(|task| tenant_of[task]).collect()
}

#[test]
fn a_fair_share_keyed_by_tenant_files_all_its_tasks_in_one_lane() {
    let globex = |ran: &[TenantId]| ran.iter().filter(|&&t| t == GLOBEX).count();
    // By the tasks' own keys, ACME's 40 lanes take almost every turn.
    let by_key = first_twenty(TenantQuota::new(), TenantQuota::new());
    assert!(globex(&by_key) <= 2, "{by_key:?}");
    // By tenant, two lanes of weight 1: the turns alternate.
    let even = TenantQuota::new().fair_share(1);
    let by_tenant = first_twenty(even, even);
    assert_eq!(globex(&by_tenant), 10, "{by_tenant:?}");
    // A weight of 3 gives ACME three turns in four.
    let weighted = first_twenty(TenantQuota::new().fair_share(3), even);
    assert_eq!(globex(&weighted), 5, "{weighted:?}");
    assert_eq!(
        TenantQuota::new().fair_share(3).fair_share_weight(),
        Some(3)
    );
    let zero = DispatcherConfig::builder()
        .tenant_quota(GLOBEX, TenantQuota::new().fair_share(0))
        .build()
        .err()
        .map(|e| e.to_string());
    assert!(zero.is_some_and(|e| e.contains("tenant-2: a fair share of weight 0")));
}
