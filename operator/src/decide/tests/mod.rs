//! Unit tests of the decide step: fixtures, and a tiny world that applies
//! actions the way the apply step would.

mod flow;
mod lifecycle;
mod pod;
mod retries;
mod targets;

use k8s_openapi::jiff::Timestamp;
use proto::{KubegresRestore, Phase};
use serde_json::{Value, json};

use super::{
    Action, Children, DEFAULT_AGENT_IMAGE, Decision, FINALIZER, Observed, PodPhase, RestorePod, TargetCluster, decide,
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
        children: Children::default(),
        agent_image: DEFAULT_AGENT_IMAGE.to_string(),
    }
}

/// Applies the decision to the observed world, as the apply step and the
/// API server would (Pods start Pending, deletions are immediate).
pub(super) fn apply(observed: &Observed, decision: &Decision) -> Observed {
    let mut next = observed.clone();
    next.restore.status = Some(decision.status.clone());
    for action in &decision.actions {
        match action {
            Action::AddFinalizer => next.restore.metadata.finalizers.get_or_insert_default().push(FINALIZER.into()),
            Action::RemoveFinalizer => {
                next.restore.metadata.finalizers.get_or_insert_default().retain(|f| f != FINALIZER)
            }
            Action::CreateKubegres { object, .. } => {
                next.target = TargetCluster {
                    exists: true,
                    managed_by_us: true,
                    spec: object["spec"].as_object().cloned(),
                    ..Default::default()
                }
            }
            Action::DeleteKubegres { .. } => next.target = TargetCluster::default(),
            Action::DeleteClusterVolumes { .. } => {}
            Action::ScaleKubegresToDesired { .. } => {}
            Action::RemoveManagedLabel { .. } => next.target.managed_by_us = false,
            Action::CreateServiceAccount(_) => next.children.service_account = true,
            Action::CreateRole(_) => next.children.role = true,
            Action::CreateRoleBinding(_) => next.children.role_binding = true,
            Action::CreateRestorePod { name, attempt, .. } => next.pods.push(pod(name, *attempt, PodPhase::Pending)),
            Action::DeletePod { name } => next.pods.retain(|pod| &pod.name != name),
            Action::DeleteChildren => {
                next.pods.clear();
                next.children = Children::default();
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

/// The actions other than Events, by variant name.
pub(super) fn kinds(decision: &Decision) -> Vec<&'static str> {
    decision
        .actions
        .iter()
        .filter_map(|action| {
            Some(match action {
                Action::AddFinalizer => "AddFinalizer",
                Action::RemoveFinalizer => "RemoveFinalizer",
                Action::CreateKubegres { .. } => "CreateKubegres",
                Action::DeleteKubegres { .. } => "DeleteKubegres",
                Action::DeleteClusterVolumes { .. } => "DeleteClusterVolumes",
                Action::ScaleKubegresToDesired { .. } => "ScaleKubegresToDesired",
                Action::RemoveManagedLabel { .. } => "RemoveManagedLabel",
                Action::CreateServiceAccount(_) => "CreateServiceAccount",
                Action::CreateRole(_) => "CreateRole",
                Action::CreateRoleBinding(_) => "CreateRoleBinding",
                Action::CreateRestorePod { .. } => "CreateRestorePod",
                Action::DeletePod { .. } => "DeletePod",
                Action::DeleteChildren => "DeleteChildren",
                Action::EmitEvent { .. } => return None,
            })
        })
        .collect()
}

/// The actions other than Events.
pub(super) fn changes(decision: &Decision) -> Vec<&Action> {
    decision.actions.iter().filter(|action| !matches!(action, Action::EmitEvent { .. })).collect()
}

/// A restore whose first attempt's Pod runs.
pub(super) fn running() -> Observed {
    let (_, mut o) = step(&observed(restore(default_spec())));
    o.target.primary_ready = true;
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
