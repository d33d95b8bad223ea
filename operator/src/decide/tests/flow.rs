//! The default flow, step by step: a new cluster, its primary, the attempt's Pod, success.

use std::time::Duration;

use proto::Phase;
use proto::crd::{CONDITION_FAILED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_TARGET_READY};
use serde_json::json;

use super::*;
use crate::decide::Requeue;

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
