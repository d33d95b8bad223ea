//! Scenarios: every transition of the flow.

use std::time::Duration;

use proto::crd::{
    CONDITION_FAILED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_SPEC_CHANGED, CONDITION_TARGET_READY,
};
use proto::{Phase, RestoreFailure};
use serde_json::json;

use super::*;
use crate::decide::{Requeue, backoff};

/// A restore whose first attempt's Pod runs.
fn running() -> Observed {
    let (_, mut o) = step(&observed(restore(default_spec())));
    o.target.primary_ready = true;
    let (_, mut o) = step(&o);
    o.pods[0].phase = PodPhase::Running;
    let (_, o) = step(&o);
    assert_eq!(phase(&o), Phase::Restoring);
    o
}

/// `running()` with the Pod failed with this exit code and message at t0+60s.
fn failed_attempt(o: &mut Observed, code: i32, message: &str) {
    let pod = o.pods.last_mut().unwrap();
    pod.phase = PodPhase::Failed;
    pod.exit_code = Some(code);
    pod.reason = Some("Error".into());
    pod.message = Some(message.into());
    pod.finished_at = Some(at(60));
}

fn condition<'a>(decision: &'a Decision, type_: &str) -> (&'a str, &'a str) {
    let condition = decision.status.condition(type_).unwrap_or_else(|| panic!("no {type_} condition"));
    (condition.status.as_str(), condition.reason.as_str())
}

#[test]
fn pending_creates_a_one_replica_labelled_cluster_and_waits_for_it() {
    let mut spec = default_spec();
    spec["resources"] = json!({"requests": {"memory": "4Gi"}});
    spec["customConfig"] = json!("restore-config");
    let o = observed(restore(spec));
    let d = decide(&o);
    assert_eq!(kinds(&d), ["CreateKubegres"]);
    assert_eq!(events(&d), ["Started", "CreatingTarget", "WaitingForTarget"]);
    let Action::CreateKubegres { name, object } = changes(&d)[0] else { unreachable!() };
    assert_eq!(name, "restored");
    assert_eq!(object["kind"], "Kubegres");
    assert_eq!(object["metadata"]["namespace"], "db");
    assert_eq!(object["metadata"]["labels"]["kubegres.reactive-tech.io/managed-by-restore"], "orders");
    assert_eq!(object["spec"]["replicas"], 1);
    assert_eq!(object["spec"]["resources"]["requests"]["memory"], "4Gi");
    assert_eq!(object["spec"]["customConfig"], "restore-config");
    assert_eq!(object["spec"]["image"], "postgres:17");
    assert_eq!(d.status.phase(), Phase::WaitingForTarget);
    assert_eq!(d.status.start_time.as_ref().unwrap().0, t0());
    assert_eq!(d.status.observed_generation, Some(1));
    assert_eq!(d.status.source.as_deref(), Some("pvc/backups:latest"));
    assert_eq!(d.status.target.as_deref(), Some("cluster/restored"));
    assert_eq!(d.status.stage.as_deref(), Some("Waiting for the target to be ready"));
    assert_eq!(d.status.is_completed, Some(false));
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "WaitingForPrimary"));
    assert!(d.status_changed);
}

#[test]
fn the_finalizer_is_added_first() {
    let mut r = restore(default_spec());
    r.metadata.finalizers = None;
    let d = decide(&observed(r));
    assert_eq!(kinds(&d), ["AddFinalizer", "CreateKubegres"]);
}

#[test]
fn a_cluster_the_restore_did_not_create_fails_the_restore() {
    let mut o = observed(restore(default_spec()));
    o.target = TargetCluster { exists: true, primary_ready: true, ..Default::default() };
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(condition(&d, CONDITION_FAILED), ("True", "TargetExists"));
    assert!(!kinds(&d).contains(&"CreateKubegres"));
    assert_eq!(events(&d), ["Started", "TargetExists"]);
}

#[test]
fn waiting_for_the_primary_polls_without_acting() {
    let (_, o) = step(&observed(restore(default_spec())));
    let d = decide(&o);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(!d.status_changed);
    assert_eq!(d.requeue, Requeue::After(Duration::from_secs(10)));
}

#[test]
fn a_ready_primary_starts_attempt_one_with_its_own_account() {
    let (_, mut o) = step(&observed(restore(default_spec())));
    o.target.primary_ready = true;
    let d = decide(&o);
    assert_eq!(kinds(&d), ["CreateServiceAccount", "CreateRole", "CreateRoleBinding", "CreateRestorePod"]);
    assert_eq!(events(&d), ["Restoring"]);
    assert_eq!(d.status.phase(), Phase::Restoring);
    assert_eq!(d.status.attempts, Some(1));
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("True", "PrimaryReady"));
    assert_eq!(condition(&d, CONDITION_PROGRESSING), ("True", "Restoring"));
    let Action::CreateRestorePod { name, attempt, .. } = changes(&d)[3] else { unreachable!() };
    assert_eq!((name.as_str(), *attempt), ("orders-restore-1", 1));
    let Action::CreateRole(role) = changes(&d)[1] else { unreachable!() };
    let rule = &role.rules.as_ref().unwrap()[0];
    assert_eq!(rule.resource_names.as_deref(), Some(&["orders".to_string()][..]));
    assert_eq!(rule.resources.as_deref(), Some(&["kubegresrestores/status".to_string()][..]));
    assert_eq!(rule.verbs, ["get", "patch"]);
}

#[test]
fn a_running_restore_is_steady_and_writes_no_status() {
    let mut o = running();
    o.now = at(30);
    let d = decide(&o);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(!d.status_changed);
    assert_eq!(d.requeue, Requeue::None);
    // lastTransitionTime stays that of the transition.
    assert_eq!(d.status.condition(CONDITION_PROGRESSING).unwrap().last_transition_time.0, t0());
}

#[test]
fn a_pod_that_cannot_start_says_why_in_progressing_and_recovers() {
    let mut o = running();
    o.pods[0].phase = PodPhase::Pending;
    o.pods[0].blocked = Some(("CreateContainerConfigError".into(), "secret \"s3-creds\" not found".into()));
    let (d, mut o) = step(&o);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(d.status_changed);
    let progressing = d.status.condition(CONDITION_PROGRESSING).unwrap();
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "CreateContainerConfigError"));
    assert_eq!(progressing.message, "restore attempt 1 cannot start: secret \"s3-creds\" not found");
    assert_eq!(phase(&o), Phase::Restoring);
    // The Secret appears, the Pod runs: Progressing again.
    o.pods[0].blocked = None;
    o.pods[0].phase = PodPhase::Running;
    let d = decide(&o);
    assert_eq!(condition(&d, CONDITION_PROGRESSING), ("True", "Restoring"));
}

#[test]
fn a_deleted_restore_pod_is_recreated_for_the_same_attempt() {
    let mut o = running();
    o.pods[0].deleting = true;
    let d = decide(&o);
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue, Requeue::After(Duration::from_secs(5)));
    o.pods.clear();
    let d = decide(&o);
    assert_eq!(kinds(&d), ["CreateRestorePod"]);
    let Action::CreateRestorePod { name, attempt, .. } = changes(&d)[0] else { unreachable!() };
    assert_eq!((name.as_str(), *attempt), ("orders-restore-1", 1));
    assert_eq!(d.status.attempts, Some(1));
    assert!(!d.status_changed);
}

#[test]
fn a_retryable_failure_waits_the_backoff_then_retries_into_a_fresh_cluster() {
    let mut o = running();
    failed_attempt(&mut o, 4, "connection reset");
    o.now = at(61);
    let wait = backoff(1, o.jitter_seed);
    let d = decide(&o);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.requeue, Requeue::After(wait - Duration::from_secs(1)));
    assert_eq!(condition(&d, CONDITION_PROGRESSING), ("True", "BackoffWaiting"));
    assert_eq!(d.status.phase(), Phase::Restoring);

    let o = apply(&o, &d);
    let mut o = Observed { now: at(60 + i64::try_from(wait.as_secs()).unwrap() + 1), ..o };
    let d = decide(&o);
    assert_eq!(kinds(&d), ["DeletePod", "DeleteKubegres", "DeleteClusterVolumes"]);
    assert_eq!(events(&d), ["AttemptFailed", "CreatingTarget"]);
    assert_eq!(d.status.attempts, Some(2));
    assert_eq!(d.status.phase(), Phase::CreatingTarget);
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "RecreatingTarget"));

    // The old cluster goes, a fresh one comes, and attempt 2 gets its Pod.
    o = apply(&o, &d);
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateKubegres"]);
    o.target.primary_ready = true;
    let (d, _) = step(&o);
    let Action::CreateRestorePod { name, attempt, .. } = changes(&d)[0] else { panic!("{:?}", d.actions) };
    assert_eq!((name.as_str(), *attempt), ("orders-restore-2", 2));
}

#[test]
fn a_cluster_still_being_deleted_is_waited_for() {
    let mut o = running();
    o.status_mut().set_phase(Phase::CreatingTarget);
    o.pods.clear();
    o.target.deleted = true;
    let d = decide(&o);
    assert!(kinds(&d).is_empty());
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "TargetBeingDeleted"));
    assert_eq!(d.requeue, Requeue::After(Duration::from_secs(5)));
}

#[test]
fn an_sql_error_from_the_data_is_not_retried_but_a_dropped_connection_is() {
    // Exit 4 (target) is retryable, but a data error fails the same way again.
    let mut o = running();
    let report = |sqlstate: &str| RestoreFailure {
        reason: "SqlError".into(),
        message: "ERROR".into(),
        sqlstate: Some(sqlstate.into()),
        ..Default::default()
    };
    failed_attempt(&mut o, 4, &serde_json::to_string(&report("22P02")).unwrap());
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(d.status.attempts, Some(1));

    let mut o = running();
    failed_attempt(&mut o, 4, &serde_json::to_string(&report("57P01")).unwrap());
    o.now = at(600);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::CreatingTarget, "{:?}", d.status);
    assert_eq!(d.status.attempts, Some(2));
}

#[test]
fn a_non_retryable_failure_fails_with_the_agents_report() {
    let mut o = running();
    let report = RestoreFailure {
        reason: "SqlError".into(),
        message: "relation \"orders\" already exists".into(),
        sqlstate: Some("42P07".into()),
        line: Some(12),
        ..Default::default()
    };
    failed_attempt(&mut o, 3, &serde_json::to_string(&report).unwrap());
    let d = decide(&o);
    assert_eq!(kinds(&d), ["DeleteChildren"]);
    assert_eq!(events(&d), ["SqlError"]);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(d.status.completion_time.as_ref().unwrap().0, t0());
    assert_eq!(condition(&d, CONDITION_FAILED), ("True", "SqlError"));
    assert_eq!(condition(&d, CONDITION_PROGRESSING), ("False", "SqlError"));
    assert_eq!(condition(&d, CONDITION_READY), ("False", "SqlError"));
    assert_eq!(d.status.failure, Some(RestoreFailure { exit_code: Some(3), ..report }));
    assert_eq!(d.status.is_completed, Some(false));
}

#[test]
fn a_raw_termination_message_is_kept_with_the_exit_codes_reason() {
    let mut o = running();
    failed_attempt(&mut o, 5, "  the target database is not empty\n");
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    let failure = d.status.failure.unwrap();
    assert_eq!(failure.reason, "TargetNotEmpty");
    assert_eq!(failure.message, "the target database is not empty");
    assert_eq!(failure.exit_code, Some(5));
}

#[test]
fn retries_stop_at_the_backoff_limit() {
    let mut spec = default_spec();
    spec["backoffLimit"] = json!(1);
    let mut o = observed(restore(spec));
    o.target = TargetCluster { exists: true, managed_by_us: true, primary_ready: true, ..Default::default() };
    let (_, mut o) = step(&o);
    let (_, mut o) = {
        o.status_mut().set_phase(Phase::Restoring);
        step(&o)
    };
    o.status_mut().attempts = Some(2);
    o.pods = vec![pod("orders-restore-2", 2, PodPhase::Failed)];
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    let failure = d.status.failure.unwrap();
    assert_eq!(failure.reason, "TargetError");
    assert!(failure.message.starts_with("the restore agent exited with code 4"), "{}", failure.message);
}

#[test]
fn success_finalizes_the_cluster_then_succeeds() {
    let mut o = running();
    o.pods[0].phase = PodPhase::Succeeded;
    o.now = at(300);
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["ScaleKubegresToDesired", "RemoveManagedLabel", "DeleteChildren"]);
    assert_eq!(events(&d), ["Finalizing"]);
    let Action::ScaleKubegresToDesired { name, replicas, resources } = changes(&d)[0] else { unreachable!() };
    assert_eq!((name.as_str(), *replicas), ("restored", 3));
    assert_eq!(resources.as_ref().unwrap()["requests"]["memory"], "1Gi");
    assert_eq!(d.status.phase(), Phase::Finalizing);

    let (d, o) = step(&o);
    assert!(kinds(&d).is_empty());
    assert_eq!(events(&d), ["Succeeded"]);
    assert_eq!(d.status.phase(), Phase::Succeeded);
    assert_eq!(d.status.is_completed, Some(true));
    assert_eq!(d.status.completion_time.as_ref().unwrap().0, at(300));
    assert_eq!(condition(&d, CONDITION_READY), ("True", "Succeeded"));
    assert_eq!(condition(&d, CONDITION_PROGRESSING), ("False", "Succeeded"));

    let d = decide(&o);
    assert!(d.actions.is_empty());
    assert!(!d.status_changed);
}

#[test]
fn the_whole_flow_reaches_a_fixpoint_without_duplicate_creates() {
    let mut o = observed(restore(default_spec()));
    let mut created = Vec::new();
    for round in 0..20 {
        match phase(&o) {
            Phase::WaitingForTarget => o.target.primary_ready = true,
            Phase::Restoring if round > 6 => o.pods[0].phase = PodPhase::Succeeded,
            _ => {}
        }
        let (d, next) = step(&o);
        created.extend(kinds(&d).into_iter().filter(|kind| kind.starts_with("Create")));
        // Deciding again on the same observation asks for the same thing,
        // and on the state it produced never for the same creation.
        assert_eq!(decide(&o), d);
        let again = decide(&next);
        for kind in kinds(&d).iter().filter(|kind| kind.starts_with("Create")) {
            assert!(!kinds(&again).contains(kind), "{kind} twice in round {round}");
        }
        o = next;
    }
    assert_eq!(phase(&o), Phase::Succeeded);
    assert_eq!(
        created,
        ["CreateKubegres", "CreateServiceAccount", "CreateRole", "CreateRoleBinding", "CreateRestorePod"]
    );
}

#[test]
fn a_spec_change_after_the_start_is_reported_not_acted_on() {
    let mut o = running();
    o.restore.metadata.generation = Some(2);
    o.restore.spec.jobs = 8;
    let d = decide(&o);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(d.status_changed);
    assert_eq!(condition(&d, CONDITION_SPEC_CHANGED), ("True", "SpecChangedAfterStart"));
    assert_eq!(d.status.observed_generation, Some(1));
    let o = apply(&o, &d);
    assert!(!decide(&o).status_changed);
}

#[test]
fn a_retry_after_a_spec_change_ends_the_restore_instead_of_running_the_new_spec() {
    let mut o = running();
    o.restore.metadata.generation = Some(2);
    o.restore.spec.jobs = 8;
    let (_, mut o) = step(&o);
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    // The failed Pod and the cluster go; the next attempt would need a new
    // cluster built from the changed spec.
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeletePod", "DeleteKubegres", "DeleteClusterVolumes"]);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    let failure = d.status.failure.as_ref().unwrap();
    assert_eq!(failure.reason, "SpecChangedAfterStart");
    assert!(failure.message.contains("the Kubegres cluster would have to be created again"), "{}", failure.message);
    assert!(!d.actions.iter().any(|a| matches!(a, Action::CreateKubegres { .. } | Action::CreateRestorePod { .. })));
}

#[test]
fn a_deleted_pod_is_not_recreated_from_a_changed_spec() {
    let mut o = running();
    o.restore.metadata.generation = Some(2);
    o.pods.clear();
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert!(d.status.failure.as_ref().unwrap().message.contains("the restore Pod"));
}

#[test]
fn a_target_deleted_mid_restore_is_reported_and_recreated_after_a_backoff() {
    let mut o = running();
    o.target = TargetCluster::default();
    let d = decide(&o);
    assert_eq!(kinds(&d), ["DeletePod", "DeleteClusterVolumes"]);
    assert_eq!(events(&d), ["TargetDeleted", "CreatingTarget"]);
    assert_eq!(d.status.phase(), Phase::CreatingTarget);
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "TargetDeleted"));
    assert_eq!(d.requeue, Requeue::After(backoff(1, o.jitter_seed)));
    let message = &d.status.condition(CONDITION_TARGET_READY).unwrap().message;
    assert!(message.contains("restored was deleted mid-restore"), "{message}");

    // The Pod's deletion brings a reconcile at once: it waits out the backoff.
    let mut o = apply(&o, &d);
    o.now = at(2);
    let d = decide(&o);
    assert_eq!(kinds(&d), Vec::<&str>::new());
    assert_eq!(d.requeue, Requeue::After(backoff(1, o.jitter_seed) - Duration::from_secs(2)));
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "TargetDeleted"));
    // Then the fresh cluster.
    o.now = at(1_000);
    assert_eq!(kinds(&decide(&o)), ["CreateKubegres"]);
}

#[test]
fn a_target_deleted_while_finalizing_fails_the_restore() {
    let mut o = running();
    o.status_mut().set_phase(Phase::Finalizing);
    o.target = TargetCluster::default();
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(condition(&d, CONDITION_FAILED), ("True", "TargetDeleted"));
}

#[test]
fn a_deleted_restore_removes_its_children_then_its_finalizer() {
    let mut o = running();
    o.restore.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(5)));
    // The half-restored cluster it created goes too.
    assert!(o.target.managed_by_us);
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeleteKubegres", "DeleteClusterVolumes", "DeleteChildren"]);
    assert!(!d.status_changed);
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["RemoveFinalizer"]);
    assert!(decide(&o).actions.is_empty());
}

#[test]
fn a_deleted_restore_keeps_the_cluster_it_handed_over() {
    let mut o = running();
    o.target.managed_by_us = false; // the success step removed the label
    o.status_mut().set_phase(Phase::Succeeded);
    o.restore.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(5)));
    let (d, _) = step(&o);
    assert_eq!(kinds(&d), ["DeleteChildren"]);
}

#[test]
fn terminal_restores_only_clean_up_leftovers() {
    let mut o = running();
    o.status_mut().set_phase(Phase::Succeeded);
    let d = decide(&o);
    assert_eq!(kinds(&d), ["DeleteChildren"]);
    assert!(!d.status_changed);
    let o = apply(&o, &d);
    let d = decide(&o);
    assert!(d.actions.is_empty());
}

#[test]
fn an_invalid_spec_fails_at_once() {
    let o = observed(restore(
        json!({"clusterName": "restored", "dataSource": {"cluster": {"clusterSpec": cluster_spec()}}}),
    ));
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(condition(&d, CONDITION_FAILED), ("True", "InvalidSource"));
}

#[test]
fn a_literal_superuser_password_is_refused_and_never_copied() {
    let mut spec = default_spec();
    spec["dataSource"]["cluster"]["clusterSpec"]["env"] = json!([{"name": "POSTGRES_PASSWORD", "value": "hunter2"}]);
    let d = decide(&observed(restore(spec)));
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(condition(&d, CONDITION_FAILED), ("True", "NoSuperUserPassword"));
    assert!(!format!("{:?}", d.actions).contains("hunter2"));
    assert!(!serde_json::to_string(&d.status).unwrap().contains("hunter2"));
}

#[test]
fn copying_a_missing_cluster_waits_for_it() {
    let spec = json!({"clusterName": "restored", "dataSource": {"s3": {"bucket": "b", "key": "k"}, "cluster": {"clusterName": "main"}}});
    let mut o = observed(restore(spec));
    let d = decide(&o);
    assert!(kinds(&d).is_empty());
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "CopyFromClusterNotFound"));
    assert_eq!(d.requeue, Requeue::After(backoff(1, o.jitter_seed)));
    o.copy_from_spec = cluster_spec().as_object().cloned();
    assert_eq!(kinds(&decide(&o)), ["CreateKubegres"]);
}

#[test]
fn the_deadline_fails_the_restore() {
    let mut spec = default_spec();
    spec["activeDeadlineSeconds"] = json!(600);
    let (d, mut o) = step(&observed(restore(spec)));
    assert_eq!(d.requeue, Requeue::After(Duration::from_secs(600)));
    o.now = at(600);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(condition(&d, CONDITION_FAILED), ("True", "DeadlineExceeded"));
}

#[test]
fn an_existing_server_is_restored_into_directly() {
    let spec = json!({
        "dataSource": {"http": {"url": "https://dumps.example/db.sql.gz"}},
        "target": {"postgres": {"host": "pg.example", "database": "app", "credentialsSecret": {"name": "pg"}}}
    });
    let o = observed(restore(spec));
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateServiceAccount", "CreateRole", "CreateRoleBinding", "CreateRestorePod"]);
    assert_eq!(d.status.phase(), Phase::Restoring);
    assert_eq!(d.status.target.as_deref(), Some("postgres://pg.example:5432/app"));
    // A retry reruns the agent without touching the server.
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeletePod"]);
    assert_eq!(d.status.phase(), Phase::Restoring);
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateRestorePod"]);
    o.pods[0].phase = PodPhase::Succeeded;
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeleteChildren"]);
    assert_eq!(decide(&o).status.phase(), Phase::Succeeded);
}

#[test]
fn backoff_grows_and_is_capped() {
    let waits: Vec<Duration> = (1..=12).map(|attempt| backoff(attempt, 7)).collect();
    assert!(waits[0] >= Duration::from_secs(10) && waits[0] <= Duration::from_secs(11), "{waits:?}");
    for pair in waits.windows(2) {
        assert!(pair[1] >= pair[0], "{waits:?}");
    }
    assert!(waits[3] > waits[2]);
    assert!(waits.iter().all(|wait| *wait <= crate::decide::MAX_BACKOFF));
    assert_eq!(waits[11], crate::decide::MAX_BACKOFF);
    // Stable for a seed, spread across seeds.
    assert_eq!(backoff(3, 7), backoff(3, 7));
    assert_ne!(backoff(3, 7), backoff(3, 8));
}

impl Observed {
    fn status_mut(&mut self) -> &mut proto::KubegresRestoreStatus {
        self.restore.status.get_or_insert_default()
    }
}

fn database_restore() -> Observed {
    observed(restore(json!({
        "dataSource": {"s3": {"bucket": "backups", "key": "main/orders.dump"}},
        "target": {"database": {"clusterName": "main", "database": "orders_copy"}}
    })))
}

fn existing_cluster(primary_ready: bool) -> TargetCluster {
    TargetCluster { exists: true, primary_ready, spec: cluster_spec().as_object().cloned(), ..Default::default() }
}

#[test]
fn a_database_target_waits_for_its_cluster_and_the_agent_creates_the_database() {
    // The cluster does not exist yet: wait for it, create nothing.
    let (d, mut o) = step(&database_restore());
    assert_eq!(kinds(&d), Vec::<&str>::new());
    assert_eq!(d.status.phase(), Phase::CreatingTarget);
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "ClusterNotFound"));
    assert_eq!(d.requeue, Requeue::After(Duration::from_secs(10)));

    // It exists, its primary is not ready yet.
    o.target = existing_cluster(false);
    let (d, mut o) = step(&o);
    assert_eq!(d.status.phase(), Phase::WaitingForTarget);
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "WaitingForPrimary"));

    o.target.primary_ready = true;
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateServiceAccount", "CreateRole", "CreateRoleBinding", "CreateRestorePod"]);
    assert_eq!(d.status.target.as_deref(), Some("cluster/main:orders_copy"));
    let pod = d.actions.iter().find_map(|a| match a {
        Action::CreateRestorePod { pod, .. } => Some(serde_json::to_value(pod).unwrap()),
        _ => None,
    });
    let pod = pod.unwrap();
    let args: Vec<&str> =
        pod["spec"]["containers"][0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let target = args.iter().position(|a| *a == "--target").unwrap();
    assert_eq!(args[target + 1], "postgres://postgres@main.db.svc:5432/orders_copy");
    let create = args.iter().position(|a| *a == "--create-database").unwrap();
    assert_eq!(args[create + 1..create + 3], ["--create-database-marker", "uid-1"]);
    // The password of the existing cluster's superuser, by reference.
    let env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
    let password = env.iter().find(|e| e["name"] == "PGPASSWORD").unwrap();
    assert_eq!(password["valueFrom"]["secretKeyRef"], json!({"name": "pg-secret", "key": "superUserPassword"}));

    // A failed attempt is retried in place: the agent recreates its own
    // database; the cluster is never deleted.
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeletePod"]);
    assert_eq!(d.status.phase(), Phase::Restoring);
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateRestorePod"]);
    o.pods[0].phase = PodPhase::Succeeded;
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeleteChildren"]);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Succeeded);
    assert!(!d.actions.iter().any(|a| matches!(a, Action::DeleteKubegres { .. })));
}

#[test]
fn a_database_target_whose_cluster_goes_away_mid_restore_fails() {
    let mut o = database_restore();
    o.target = existing_cluster(true);
    let (_, mut o) = step(&o);
    assert_eq!(phase(&o), Phase::Restoring);
    o.target = TargetCluster::default();
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "TargetDeleted");
    assert_eq!(kinds(&d), ["DeleteChildren"]);
}

#[test]
fn a_database_target_without_a_superuser_password_secret_fails() {
    let mut o = database_restore();
    let mut cluster = existing_cluster(true);
    cluster.spec.as_mut().unwrap().remove("env");
    o.target = cluster;
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "NoSuperUserPassword");
}
