//! Unit tests of the decide step: fixtures, and a tiny world that applies
//! actions the way the apply step would.

mod flow;
mod lifecycle;
mod pod;
mod properties;
mod retries;
mod safety;
mod targets;

use k8s_openapi::jiff::Timestamp;
use proto::{KubegresRestore, Phase};
use serde_json::{Value, json};

use super::{
    Action, Child, Children, DEFAULT_AGENT_IMAGE, DataVolume, Decision, FINALIZER, Kind, Observed, PodPhase,
    RestorePod, TargetCluster, decide,
};

/// The time of every scenario's first reconcile.
pub(super) fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// `t0` plus `seconds`.
pub(super) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(t0().as_second() + seconds).unwrap()
}

/// The default-flow spec: a file source and an inline cluster spec.
pub(super) fn cluster_spec() -> Value {
    json!({
        "replicas": 3,
        "image": "postgres:17",
        "database": {"size": "1Gi"},
        "resources": {"requests": {"memory": "1Gi"}},
        "env": [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg-secret", "key": "superUserPassword"}}}]
    })
}

pub(super) fn default_spec() -> Value {
    json!({
        "clusterName": "restored",
        "dataSource": {
            "file": {"pvcName": "backups"},
            "cluster": {"clusterSpec": cluster_spec()}
        }
    })
}

/// A restore `db/orders` with this spec, generation 1, with the finalizer.
pub(super) fn restore(spec: Value) -> KubegresRestore {
    serde_json::from_value(json!({
        "apiVersion": "kubegres.reactive-tech.io/v1",
        "kind": "KubegresRestore",
        "metadata": {"name": "orders", "namespace": "db", "uid": "uid-1", "generation": 1, "finalizers": [FINALIZER]},
        "spec": spec,
    }))
    .unwrap()
}

/// A fresh observation of `restore` at `t0`, nothing else existing.
pub(super) fn observed(restore: KubegresRestore) -> Observed {
    Observed {
        restore,
        now: t0(),
        jitter_seed: 42,
        target: TargetCluster::default(),
        copy_from_spec: None,
        pods: Vec::new(),
        foreign_pod: None,
        children: Children::default(),
        agent_image: DEFAULT_AGENT_IMAGE.to_string(),
        allowed_images: Vec::new(),
    }
}

/// The cluster this restore created for `attempt`, its primary and Service
/// ready (what the tiny world's Kubegres makes of a create, once ready).
pub(super) fn ready_cluster(attempt: i32) -> TargetCluster {
    TargetCluster {
        exists: true,
        uid: Some(format!("kubegres-uid-{attempt}")),
        created: Some(t0()),
        managed_by_us: true,
        attempt: Some(attempt),
        primary_ready: true,
        service_ready: true,
        ..Default::default()
    }
}

/// Makes the tiny world's cluster ready (its primary and Service).
pub(super) fn make_ready(o: &mut Observed) {
    o.target.primary_ready = true;
    o.target.service_ready = true;
}

/// The uid the tiny world gives a restore Pod.
pub(super) fn pod_uid(name: &str) -> String {
    format!("pod-uid-{name}")
}

/// Applies the decision to the observed world, as the apply step, the API
/// server and Kubegres would: a created Kubegres gets a uid of its attempt
/// and its primary's data volume at once, Pods start Pending, deletions are
/// immediate.
pub(super) fn apply(observed: &Observed, decision: &Decision) -> Observed {
    let mut next = observed.clone();
    next.restore.status = Some(decision.status.clone());
    for action in &decision.actions {
        match action {
            Action::AddFinalizer => next.restore.metadata.finalizers.get_or_insert_default().push(FINALIZER.into()),
            Action::RemoveFinalizer => {
                next.restore.metadata.finalizers.get_or_insert_default().retain(|f| f != FINALIZER)
            }
            Action::CreateKubegres { name, object } if !next.target.exists => {
                let attempt: i32 =
                    object["metadata"]["labels"][super::ATTEMPT_LABEL].as_str().unwrap().parse().unwrap();
                next.target = TargetCluster {
                    exists: true,
                    uid: Some(format!("kubegres-uid-{attempt}")),
                    created: Some(observed.now),
                    managed_by_us: true,
                    attempt: Some(attempt),
                    spec: object["spec"].as_object().cloned(),
                    volumes: vec![DataVolume {
                        name: format!("postgres-db-{name}-1-0"),
                        uid: format!("volume-uid-{attempt}"),
                        created: Some(observed.now),
                        cluster_label: true,
                        deleting: false,
                    }],
                    ..Default::default()
                }
            }
            Action::CreateKubegres { .. } => {}
            Action::HandOverKubegres { uid, .. } => {
                assert_eq!(next.target.uid.as_ref(), Some(uid), "handed over another cluster");
                next.target.managed_by_us = false;
                next.target.attempt = None;
            }
            Action::CreateServiceAccount(_) => next.children.service_account = Child::Ours("sa-uid".into()),
            Action::CreateRole(_) => next.children.role = Child::Ours("role-uid".into()),
            Action::CreateRoleBinding(_) => next.children.role_binding = Child::Ours("rb-uid".into()),
            Action::CreateRestorePod { name, attempt, .. } => next.pods.push(pod(name, *attempt, PodPhase::Pending)),
            Action::Delete { kind, uid, .. } => match kind {
                Kind::Kubegres => {
                    if next.target.uid.as_ref() == Some(uid) {
                        let volumes = std::mem::take(&mut next.target.volumes);
                        next.target = TargetCluster { volumes, ..Default::default() };
                    }
                }
                Kind::Volume => next.target.volumes.retain(|volume| &volume.uid != uid),
                Kind::Pod => next.pods.retain(|pod| &pod.uid != uid),
                Kind::ServiceAccount => next.children.service_account = Child::Missing,
                Kind::Role => next.children.role = Child::Missing,
                Kind::RoleBinding => next.children.role_binding = Child::Missing,
            },
            Action::ResetProgress => {
                if let Some(status) = next.restore.status.as_mut() {
                    status.progress = None;
                }
            }
            Action::EmitEvent { .. } => {}
        }
    }
    next
}

/// A restore Pod.
pub(super) fn pod(name: &str, attempt: i32, phase: PodPhase) -> RestorePod {
    RestorePod {
        name: name.to_string(),
        uid: pod_uid(name),
        attempt: Some(attempt),
        phase,
        exit_code: None,
        reason: None,
        message: None,
        finished_at: None,
        deleting: false,
        blocked: None,
    }
}

/// Decides, applies, and returns both.
pub(super) fn step(observed: &Observed) -> (Decision, Observed) {
    let decision = decide(observed);
    let next = apply(observed, &decision);
    (decision, next)
}

pub(super) fn phase(observed: &Observed) -> Phase {
    observed.restore.status.as_ref().map(|status| status.phase()).unwrap_or_default()
}

/// The reasons of the Events among the actions.
pub(super) fn events(decision: &Decision) -> Vec<&str> {
    decision
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::EmitEvent { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

/// The actions other than Events, by variant name (deletes by kind).
pub(super) fn kinds(decision: &Decision) -> Vec<&'static str> {
    decision
        .actions
        .iter()
        .filter_map(|action| {
            Some(match action {
                Action::AddFinalizer => "AddFinalizer",
                Action::RemoveFinalizer => "RemoveFinalizer",
                Action::CreateKubegres { .. } => "CreateKubegres",
                Action::HandOverKubegres { .. } => "HandOverKubegres",
                Action::CreateServiceAccount(_) => "CreateServiceAccount",
                Action::CreateRole(_) => "CreateRole",
                Action::CreateRoleBinding(_) => "CreateRoleBinding",
                Action::CreateRestorePod { .. } => "CreateRestorePod",
                Action::Delete { kind: Kind::Kubegres, .. } => "DeleteKubegres",
                Action::Delete { kind: Kind::Volume, .. } => "DeleteVolume",
                Action::Delete { kind: Kind::Pod, .. } => "DeletePod",
                Action::Delete { kind: Kind::ServiceAccount, .. } => "DeleteServiceAccount",
                Action::Delete { kind: Kind::Role, .. } => "DeleteRole",
                Action::Delete { kind: Kind::RoleBinding, .. } => "DeleteRoleBinding",
                Action::ResetProgress => "ResetProgress",
                Action::EmitEvent { .. } => return None,
            })
        })
        .collect()
}

/// What "delete the restore's leftovers" is, with one Pod.
pub(super) const LEFTOVER_DELETES: [&str; 4] = ["DeletePod", "DeleteRoleBinding", "DeleteRole", "DeleteServiceAccount"];

/// The deletes of the restore's own Pods and RBAC objects, by kind name, as
/// [`kinds`] lists them (what "delete its children" means).
pub(super) const CHILD_DELETES: [&str; 3] = ["DeleteRoleBinding", "DeleteRole", "DeleteServiceAccount"];

/// The agent's args of the restore Pod the decision creates.
pub(super) fn created_pod_args(decision: &Decision) -> Vec<String> {
    let pod = decision
        .actions
        .iter()
        .find_map(|action| match action {
            Action::CreateRestorePod { pod, .. } => Some(pod),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no restore Pod created: {:?}", kinds(decision)));
    pod.spec.as_ref().unwrap().containers[0].args.clone().unwrap()
}

/// The actions other than Events.
pub(super) fn changes(decision: &Decision) -> Vec<&Action> {
    decision.actions.iter().filter(|action| !matches!(action, Action::EmitEvent { .. })).collect()
}

/// A restore whose first attempt's Pod runs.
pub(super) fn running() -> Observed {
    running_with(default_spec())
}

/// A restore of this spec whose first attempt's Pod runs.
pub(super) fn running_with(spec: Value) -> Observed {
    let (_, mut o) = step(&observed(restore(spec)));
    make_ready(&mut o);
    let (_, mut o) = step(&o);
    o.pods[0].phase = PodPhase::Running;
    let (_, o) = step(&o);
    assert_eq!(phase(&o), Phase::Restoring);
    o
}

/// `running()` with the Pod failed with this exit code and message at t0+60s.
pub(super) fn failed_attempt(o: &mut Observed, code: i32, message: &str) {
    let pod = o.pods.last_mut().unwrap();
    pod.phase = PodPhase::Failed;
    pod.exit_code = Some(code);
    pod.reason = Some("Error".into());
    pod.message = Some(message.into());
    pod.finished_at = Some(at(60));
}

/// The status and reason of a condition of the decided status.
pub(super) fn condition<'a>(decision: &'a Decision, type_: &str) -> (&'a str, &'a str) {
    let condition = decision.status.condition(type_).unwrap_or_else(|| panic!("no {type_} condition"));
    (condition.status.as_str(), condition.reason.as_str())
}

impl Observed {
    /// The restore's status, created if missing.
    pub(super) fn status_mut(&mut self) -> &mut proto::KubegresRestoreStatus {
        self.restore.status.get_or_insert_default()
    }
}
