//! Failed attempts: what is retried and when, into a fresh cluster; the backoff; a lost target.

use std::time::Duration;

use proto::crd::{CONDITION_FAILED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_TARGET_READY};
use proto::{Phase, RestoreFailure};
use serde_json::json;

use super::*;
use crate::decide::{Requeue, backoff};

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
