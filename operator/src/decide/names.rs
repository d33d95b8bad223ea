//! Deterministic names, labels and owner references of what a restore
//! creates, and its ServiceAccount, Role and RoleBinding.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use proto::KubegresRestore;

use super::actions::Labels;

/// `app.kubernetes.io/managed-by` on every object the restore creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = proto::OPERATOR_FIELD_MANAGER;
/// The restore's name, on every object it creates.
pub const RESTORE_LABEL: &str = "kubegres.reactive-tech.io/restore";
/// The attempt number, on restore Pods.
pub const ATTEMPT_LABEL: &str = "kubegres.reactive-tech.io/restore-attempt";
/// The restore's uid, on every object it creates: what makes an object the
/// restore's. A name alone never does (an object of that name may be a
/// user's, or another restore's).
pub const RESTORE_UID_LABEL: &str = "kubegres.reactive-tech.io/restore-uid";
/// On the target Kubegres cluster while the restore manages it; its value is
/// the restore's name (for people and for the operator's watch: ownership is
/// [`RESTORE_UID_LABEL`]).
pub const MANAGED_BY_RESTORE_LABEL: &str = "kubegres.reactive-tech.io/managed-by-restore";
/// The restore's finalizer: its children are deleted before it goes.
pub const FINALIZER: &str = "kubegres.reactive-tech.io/restore-cleanup";

/// The restore's name (empty if the object has none, which the API server
/// never serves).
pub fn name(restore: &KubegresRestore) -> &str {
    restore.metadata.name.as_deref().unwrap_or_default()
}

/// The restore's namespace.
pub fn namespace(restore: &KubegresRestore) -> &str {
    restore.metadata.namespace.as_deref().unwrap_or_default()
}

/// The restore Pod of an attempt: `<restore>-restore-<attempt>`.
pub fn pod_name(restore: &str, attempt: i32) -> String {
    format!("{restore}-restore-{attempt}")
}

/// The ServiceAccount, Role and RoleBinding: `<restore>-restore`.
pub fn children_name(restore: &str) -> String {
    format!("{restore}-restore")
}

/// The restore's uid (empty if the object has none, which the API server
/// never serves).
pub fn uid(restore: &KubegresRestore) -> &str {
    restore.metadata.uid.as_deref().unwrap_or_default()
}

/// Labels of every object the restore creates.
pub fn child_labels(restore: &KubegresRestore) -> Labels {
    Labels::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (RESTORE_LABEL.to_string(), name(restore).to_string()),
        (RESTORE_UID_LABEL.to_string(), uid(restore).to_string()),
    ])
}

/// Whether an object's owner references name this restore by uid.
pub fn owned_by(owners: Option<&[OwnerReference]>, restore: &KubegresRestore) -> bool {
    !uid(restore).is_empty() && owners.into_iter().flatten().any(|owner| owner.uid == uid(restore))
}

/// The controller owner reference to the restore.
pub fn owner_reference(restore: &KubegresRestore) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", proto::crd::GROUP, proto::crd::VERSION),
        kind: proto::crd::KIND.to_string(),
        name: name(restore).to_string(),
        uid: uid(restore).to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn child_meta(restore: &KubegresRestore) -> ObjectMeta {
    ObjectMeta {
        name: Some(children_name(name(restore))),
        namespace: Some(namespace(restore).to_string()),
        labels: Some(child_labels(restore)),
        owner_references: Some(vec![owner_reference(restore)]),
        ..Default::default()
    }
}

/// The restore's ServiceAccount.
pub fn service_account(restore: &KubegresRestore) -> ServiceAccount {
    ServiceAccount { metadata: child_meta(restore), ..Default::default() }
}

/// The Role that lets the agent read and patch this one restore's status.
pub fn role(restore: &KubegresRestore) -> Role {
    Role {
        metadata: child_meta(restore),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![proto::crd::GROUP.to_string()]),
            resources: Some(vec![format!("{}/status", proto::crd::PLURAL)]),
            resource_names: Some(vec![name(restore).to_string()]),
            verbs: vec!["get".to_string(), "patch".to_string()],
            non_resource_urls: None,
        }]),
    }
}

/// The RoleBinding of [`role`] to [`service_account`].
pub fn role_binding(restore: &KubegresRestore) -> RoleBinding {
    RoleBinding {
        metadata: child_meta(restore),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "Role".to_string(),
            name: children_name(name(restore)),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: children_name(name(restore)),
            namespace: Some(namespace(restore).to_string()),
            api_group: None,
        }]),
    }
}
