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
    /// Create (apply) the target Kubegres resource: `object` is the whole
    /// manifest (apiVersion, kind, metadata with the managed label, spec with
    /// one replica).
    CreateKubegres {
        /// The cluster's name.
        name: String,
        /// The Kubegres manifest.
        object: serde_json::Value,
    },
    /// Delete the target Kubegres resource so that the next attempt gets a
    /// fresh one. Only ever asked for a cluster this restore manages.
    DeleteKubegres {
        /// The cluster's name.
        name: String,
    },
    /// Delete the data volumes of a Kubegres cluster this restore created
    /// (`postgres-db-<cluster>-<index>-0`, labelled `app=<cluster>`): Kubegres
    /// keeps them when the cluster is deleted (StatefulSet PVCs are
    /// retained), and a cluster recreated under the same name would start
    /// on the half-restored data of the previous attempt.
    DeleteClusterVolumes {
        /// The cluster's name.
        name: String,
    },
    /// Give the cluster its desired spec once restored.
    ScaleKubegresToDesired {
        /// The cluster's name.
        name: String,
        /// `spec.replicas` of the desired cluster spec.
        replicas: i64,
        /// `spec.resources` of the desired cluster spec (`None`: remove the
        /// restore-time resources).
        resources: Option<serde_json::Value>,
    },
    /// Remove [`MANAGED_BY_RESTORE_LABEL`](super::MANAGED_BY_RESTORE_LABEL)
    /// from the cluster.
    RemoveManagedLabel {
        /// The cluster's name.
        name: String,
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
    /// Delete a restore Pod.
    DeletePod {
        /// The Pod's name.
        name: String,
    },
    /// Delete every object the restore created (Pods, ServiceAccount, Role,
    /// RoleBinding), found by name and label.
    DeleteChildren,
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
