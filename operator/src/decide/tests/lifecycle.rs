//! The restore's life around the flow: spec changes, deletion, terminal phases, bad specs, the deadline.

use std::time::Duration;

use proto::Phase;
use proto::crd::{CONDITION_FAILED, CONDITION_SPEC_CHANGED, CONDITION_TARGET_READY};
use serde_json::json;

use super::*;
use crate::decide::{Requeue, backoff};

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
