//! What the decide step asks the apply step to do.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use proto::KubegresRestoreStatus;

/// One change to make, as data. The apply step performs them in order, with
/// server-side apply under [`proto::OPERATOR_FIELD_MANAGER`] for creates.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Add the finalizer [`FINALIZER`](super::FINALIZER) to the restore.
    AddFinalizer,
    /// Remove the finalizer from the restore.
    RemoveFinalizer,
    /// Create the target Kubegres resource (a create, never an apply: an
    /// object of that name that appeared meanwhile is left alone and seen as
    /// not ours). `object` is the whole manifest (apiVersion, kind, metadata
    /// with the restore's labels, spec with one replica and no backup).
    CreateKubegres {
        /// The cluster's name.
        name: String,
        /// The Kubegres manifest.
        object: serde_json::Value,
    },
    /// Give the cluster its desired spec once restored (replicas, resources,
    /// the backup schedule) and remove the restore's labels: the cluster is
    /// the user's from then on. Conditional on the cluster's uid.
    HandOverKubegres {
        /// The cluster's name.
        name: String,
        /// The uid of the cluster object this restore created.
        uid: String,
        /// `spec.replicas` of the desired cluster spec.
        replicas: i64,
        /// `spec.resources` of the desired cluster spec (`None`: remove the
        /// restore-time resources).
        resources: Option<serde_json::Value>,
        /// `spec.backup` of the desired cluster spec, applied only now so
        /// that no backup of the half-restored cluster is ever taken.
        backup: Option<serde_json::Value>,
    },
    /// Apply the restore's ServiceAccount.
    CreateServiceAccount(ServiceAccount),
    /// Apply the restore's Role (get/patch on its own status only).
    CreateRole(Role),
    /// Apply the RoleBinding of the Role to the ServiceAccount.
    CreateRoleBinding(RoleBinding),
    /// Create the restore Pod of an attempt.
    CreateRestorePod {
        /// The Pod's name.
        name: String,
        /// The attempt (1 for the first).
        attempt: i32,
        /// The Pod.
        pod: Box<Pod>,
    },
    /// Delete an object this restore created, only if it is still the same
    /// object (a delete precondition on its uid): never by name alone.
    Delete {
        /// What it is.
        kind: Kind,
        /// Its name.
        name: String,
        /// Its uid, as observed.
        uid: String,
    },
    /// Remove the agent's progress of the previous attempt from the status.
    ResetProgress,
    /// Record a Kubernetes Event on the restore.
    EmitEvent {
        /// `Normal` or `Warning`.
        type_: EventType,
        /// A CamelCase reason.
        reason: String,
        /// One sentence.
        message: String,
    },
}

/// The kinds of object a restore creates, and may therefore delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The Kubegres cluster of the default flow.
    Kubegres,
    /// A data volume (PersistentVolumeClaim) of that cluster.
    Volume,
    /// A restore Pod.
    Pod,
    /// The restore's ServiceAccount.
    ServiceAccount,
    /// The restore's Role.
    Role,
    /// The restore's RoleBinding.
    RoleBinding,
}

impl Kind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Kubegres => "Kubegres",
            Kind::Volume => "PersistentVolumeClaim",
            Kind::Pod => "Pod",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Role => "Role",
            Kind::RoleBinding => "RoleBinding",
        }
    }
}

/// The type of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    /// The Event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// When to reconcile again without a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Only when something watched changes.
    None,
    /// After this long (a backoff wait, a deadline, an object being deleted).
    After(Duration),
}

impl Requeue {
    /// The sooner of two requeues.
    pub fn min(self, other: Requeue) -> Requeue {
        match (self, other) {
            (Requeue::None, r) | (r, Requeue::None) => r,
            (Requeue::After(a), Requeue::After(b)) => Requeue::After(a.min(b)),
        }
    }
}

/// The decide step's output.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// The status the restore should have.
    pub status: KubegresRestoreStatus,
    /// Whether `status` differs from the observed one (ignoring condition
    /// times that did not transition): write it only then.
    pub status_changed: bool,
    /// When to reconcile again.
    pub requeue: Requeue,
}

/// Labels of the objects the restore creates.
pub(crate) type Labels = BTreeMap<String, String>;
