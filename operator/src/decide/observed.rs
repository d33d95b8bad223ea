//! What the observe step saw: the decide step's only input.

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
    /// The restore Pods of this restore (label `kubegres.reactive-tech.io/restore`).
    pub pods: Vec<RestorePod>,
    /// Which of the restore's own objects exist.
    pub children: Children,
    /// The agent image for restores without `spec.agent.image` (the
    /// operator's `--agent-image`).
    pub agent_image: String,
}

/// The target Kubegres cluster as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetCluster {
    /// The Kubegres resource exists.
    pub exists: bool,
    /// It carries a deletion timestamp (being deleted).
    pub deleted: bool,
    /// It carries the label [`MANAGED_BY_RESTORE_LABEL`](super::MANAGED_BY_RESTORE_LABEL)
    /// with this restore's name.
    pub managed_by_us: bool,
    /// Its primary Pod (`app=<name>`, `replicationRole=primary`) is Ready.
    pub primary_ready: bool,
    /// Its `spec`, when it exists (used by a database target for the
    /// superuser password reference).
    pub spec: Option<Map<String, Value>>,
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

/// Which of the restore's own objects exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Children {
    /// The ServiceAccount `<restore>-restore`.
    pub service_account: bool,
    /// The Role `<restore>-restore`.
    pub role: bool,
    /// The RoleBinding `<restore>-restore`.
    pub role_binding: bool,
}

impl Children {
    /// Whether any of them exists.
    pub fn any(&self) -> bool {
        self.service_account || self.role || self.role_binding
    }
}
