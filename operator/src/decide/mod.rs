//! The decide step: observed state in, desired actions and status out.
//!
//! [`decide`] is pure: it reads an [`Observed`] (the restore, the time, the
//! target cluster, the restore Pods, the restore's own objects) and returns a
//! [`Decision`]: the [`Action`]s for the apply step, the status the restore
//! should have (written only when `status_changed`), and a [`Requeue`] hint.
//! Calling it again on the state its actions produced asks for nothing new.
//!
//! The default flow (a new Kubegres cluster):
//!
//! ```text
//! Pending -> CreatingTarget (Kubegres, 1 replica, managed label)
//!         -> WaitingForTarget (until its primary is ready)
//!         -> Restoring (ServiceAccount, Role, RoleBinding, restore Pod)
//!         -> Finalizing (desired replicas and resources, label removed, children deleted)
//!         -> Succeeded
//! ```
//!
//! A failed attempt is retried into a fresh cluster after an exponential
//! backoff while the agent's exit code is retryable and `backoffLimit`
//! allows; then the restore is Failed with the agent's reason.

mod actions;
mod backoff;
mod failure;
mod flow;
mod names;
mod observed;
mod pod;
mod target;

#[cfg(test)]
mod tests;

pub use actions::{Action, Decision, EventType, Kind, Requeue};
pub use backoff::{BASE_BACKOFF, MAX_BACKOFF, backoff};
pub use names::{
    ATTEMPT_LABEL, FINALIZER, MANAGED_BY_LABEL, MANAGED_BY_RESTORE_LABEL, MANAGED_BY_VALUE, RESTORE_LABEL,
    RESTORE_UID_LABEL, child_labels, children_name, owned_by, owner_reference, pod_name, role, role_binding,
    service_account,
};
pub use observed::{Child, Children, DataVolume, Observed, PodPhase, RestorePod, TargetCluster};
pub use pod::{AGENT_CONTAINER, CA_MOUNT_PATH, DEFAULT_AGENT_IMAGE, HTTP_HEADERS_ENV, restore_pod};
pub use target::{
    TargetConnection, TargetError, connection, desired_cluster_spec, encode_path_segment, kubegres_manifest,
};

/// Decides what to do about one restore. Pure: same input, same output.
pub fn decide(observed: &Observed) -> Decision {
    let before = observed.restore.status.clone().unwrap_or_default();
    let mut draft = flow::Draft::new(observed, before.clone());
    draft.run();
    let (actions, status, requeue) = draft.finish();
    Decision { status_changed: status != before, actions, status, requeue }
}
