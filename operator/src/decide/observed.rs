//! What the observe step saw: the decide step's only input.
//!
//! Every object the restore might act on is classified by identity, never by
//! name alone: [`Child::Ours`] only when it carries this restore's uid (its
//! owner reference, or the uid label on a Kubegres cluster), with the uid of
//! the object itself so that a delete can be made conditional on it.

use k8s_openapi::jiff::Timestamp;
use proto::KubegresRestore;
use serde_json::{Map, Value};

/// Everything [`decide`](super::decide) needs, filled by the observe step.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The restore as read from the API server (spec, status, generation,
    /// finalizers, deletion timestamp).
    pub restore: KubegresRestore,
    /// The current time.
    pub now: Timestamp,
    /// A number that is stable for this restore (for example a hash of its
    /// uid), used to spread the retry backoff of many restores apart.
    pub jitter_seed: u64,
    /// The target Kubegres cluster: the new cluster, or the existing cluster
    /// of a `database` target.
    pub target: TargetCluster,
    /// The Kubegres spec of the cluster named by `copyFrom` /
    /// `dataSource.cluster.clusterName`, when the restore copies one and it
    /// exists.
    pub copy_from_spec: Option<Map<String, Value>>,
    /// The restore Pods that this restore owns (owner reference with its uid).
    pub pods: Vec<RestorePod>,
    /// The Pod named as the current attempt's Pod, when it exists and is
    /// not this restore's: its name is in use.
    pub foreign_pod: Option<String>,
    /// The restore's ServiceAccount, Role and RoleBinding.
    pub children: Children,
    /// The agent image for restores without `spec.agent.image` (the
    /// operator's `--agent-image`).
    pub agent_image: String,
    /// The images a restore's `spec.agent.image` may name (the operator's
    /// `--allowed-agent-images`; the default image is always allowed).
    pub allowed_images: Vec<String>,
}

/// An object the restore may have created, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Child {
    /// No object of that name.
    #[default]
    Missing,
    /// It exists and carries this restore's uid; the object's own uid.
    Ours(String),
    /// It exists and was not created by this restore: its name is in use.
    Foreign,
}

impl Child {
    /// The object's uid when it is this restore's.
    pub fn ours(&self) -> Option<&str> {
        match self {
            Child::Ours(uid) => Some(uid),
            _ => None,
        }
    }
}

/// The target Kubegres cluster as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetCluster {
    /// The Kubegres API (its CRD) is not installed.
    pub api_missing: bool,
    /// The Kubegres resource exists.
    pub exists: bool,
    /// Its uid.
    pub uid: Option<String>,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// It carries a deletion timestamp (being deleted).
    pub deleted: bool,
    /// It carries the label [`RESTORE_UID_LABEL`](super::RESTORE_UID_LABEL)
    /// with this restore's uid: this restore created it and has not handed it
    /// over yet.
    pub managed_by_us: bool,
    /// The restore attempt it was created for (the label
    /// [`ATTEMPT_LABEL`](super::ATTEMPT_LABEL)), when it is this restore's.
    pub attempt: Option<i32>,
    /// Its primary Pod (`app=<name>`, `replicationRole=primary`) is Ready.
    pub primary_ready: bool,
    /// The primary Service `<name>` exists and has a ready endpoint: what the
    /// agent connects to (Kubegres creates it after the primary is Ready).
    pub service_ready: bool,
    /// What the cluster is stuck on while it is not ready (its primary Pod's
    /// phase and waiting reason, a missing Service), for a timeout's message.
    pub waiting_for: Option<String>,
    /// Its `spec`, when it exists (used by a database target for the
    /// superuser password reference, and its port).
    pub spec: Option<Map<String, Value>>,
    /// The PersistentVolumeClaims named like its data volumes
    /// (`postgres-db-<name>-<index>-0`), whoever created them.
    pub volumes: Vec<DataVolume>,
}

/// A PersistentVolumeClaim named like a data volume of the target cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataVolume {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// It carries the label `app=<cluster>` that Kubegres's StatefulSets give
    /// their claims.
    pub cluster_label: bool,
    /// It is being deleted.
    pub deleting: bool,
}

/// The phase of a Pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    /// Not running yet.
    Pending,
    /// Running.
    Running,
    /// The agent exited 0.
    Succeeded,
    /// The agent exited non-zero (or the Pod was killed).
    Failed,
}

/// A restore Pod as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct RestorePod {
    /// The Pod's name.
    pub name: String,
    /// The Pod's uid.
    pub uid: String,
    /// The attempt, from the label [`ATTEMPT_LABEL`](super::ATTEMPT_LABEL);
    /// `None` if the label is missing or not a number.
    pub attempt: Option<i32>,
    /// The Pod's phase.
    pub phase: PodPhase,
    /// The agent container's exit code, once terminated.
    pub exit_code: Option<i32>,
    /// The terminated state's reason (`Error`, `OOMKilled`, ...).
    pub reason: Option<String>,
    /// The termination message (the agent writes a `RestoreFailure` JSON).
    pub message: Option<String>,
    /// When the container finished.
    pub finished_at: Option<Timestamp>,
    /// The Pod is being deleted.
    pub deleting: bool,
    /// Why a Pending Pod cannot start (it cannot be scheduled, its image
    /// cannot be pulled, a Secret or PVC it needs is missing): the reason and
    /// message kube-scheduler or kubelet gave.
    pub blocked: Option<(String, String)>,
}

/// The restore's own ServiceAccount, Role and RoleBinding, all named
/// `<restore>-restore`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Children {
    /// The ServiceAccount.
    pub service_account: Child,
    /// The Role.
    pub role: Child,
    /// The RoleBinding.
    pub role_binding: Child,
}

impl Children {
    /// Whether any of them is this restore's.
    pub fn any(&self) -> bool {
        [&self.service_account, &self.role, &self.role_binding].iter().any(|child| child.ours().is_some())
    }

    /// The kind of the first one whose name is held by another object.
    pub fn foreign(&self) -> Option<&'static str> {
        [(&self.service_account, "ServiceAccount"), (&self.role, "Role"), (&self.role_binding, "RoleBinding")]
            .into_iter()
            .find(|(child, _)| **child == Child::Foreign)
            .map(|(_, kind)| kind)
    }
}
