//! `status`: written by the operator (phase, conditions, attempts, times,
//! summaries) and by the agent (`progress`, `failure`), each with its own
//! server-side-apply field manager.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cel;
use super::phase::Phase;
use crate::{RestoreFailure, RestoreProgress};

/// What the restore is doing and how far it got. Every field is optional so
/// that each field manager applies only what it owns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubegresRestoreStatus {
    /// Where the restore is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Standard conditions: `Ready`, `Progressing`, `Failed`, `SpecChanged`,
    /// `TargetReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = cel::conditions_list_map)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` of the spec the operator acts on. A spec
    /// changed after the restore started is not acted on (see the
    /// `SpecChanged` condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Restore attempts started so far (the first one included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// When the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the restore succeeded or failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// What is restored, in one line (`pvc/backups:latest`, `s3://bucket/key`,
    /// a URL without credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where it goes, in one line (`cluster/restored`, `cluster/main:orders`,
    /// `postgres://host:5432/db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The Kubegres cluster this restore created, as it proves ownership:
    /// the operator deletes a cluster only when its uid is the one recorded
    /// here, and a data volume only when it is recorded here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_cluster: Option<CreatedCluster>,
    /// The backup file the first attempt chose (with `snapshot: latest` or
    /// an S3 prefix): every retry restores this same file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_source: Option<String>,
    /// The uid of the current attempt's restore Pod, once seen: a Pod that
    /// disappears mid-attempt (eviction, drain) fails the attempt instead
    /// of being run again into a half-restored target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_pod_uid: Option<String>,
    /// When the current attempt's wait for its target began (the target
    /// must be ready within `targetReadyTimeoutSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_wait_start: Option<Time>,
    /// Live progress, written by the restore agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RestoreProgress>,
    /// Why the last attempt failed, written by the restore agent (or the
    /// operator when the agent could not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RestoreFailure>,
    /// The phase as a sentence, as in the Kubegres fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Whether the restore succeeded, as in the Kubegres fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_completed: Option<bool>,
}

/// The Kubegres cluster a restore created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedCluster {
    /// The cluster's name.
    pub name: String,
    /// The uid of the cluster object the restore created last (a retry
    /// creates a fresh one under the same name).
    pub uid: String,
    /// When the restore created its first cluster of this name.
    pub first_created: Time,
    /// The data volumes (`postgres-db-<name>-<n>-0`) that the restore's own
    /// clusters created, recorded while such a cluster existed (created
    /// after it, with its label): the only volumes the restore ever deletes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<OwnedVolume>,
}

/// A data volume of a cluster the restore created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnedVolume {
    /// The PersistentVolumeClaim's name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// `True`: the restore succeeded and its target is ready for use.
pub const CONDITION_READY: &str = "Ready";
/// `True` while the restore moves forward (creating the target, restoring,
/// finalizing); `False` once it ended.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// `True` when the restore failed for good; the reason is the agent's.
pub const CONDITION_FAILED: &str = "Failed";
/// `True` when the spec changed after the restore started: the change is
/// not acted on.
pub const CONDITION_SPEC_CHANGED: &str = "SpecChanged";
/// `True` when the target (cluster, database, server) is there and ready;
/// `False` with a reason while it is not (for example deleted mid-restore).
pub const CONDITION_TARGET_READY: &str = "TargetReady";

/// The condition of this type, if any.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|condition| condition.type_ == type_)
}

/// Sets a condition the way Kubernetes expects: `lastTransitionTime` changes
/// only when the status does; the reason, message and observed generation
/// follow `new`. Returns whether anything but the time changed, so that the
/// caller writes status only when it must.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|condition| condition.type_ == new.type_) {
        None => {
            conditions.push(new);
            true
        }
        Some(old) => {
            let transition = old.status != new.status;
            let changed = transition
                || old.reason != new.reason
                || old.message != new.message
                || old.observed_generation != new.observed_generation;
            let last_transition_time =
                if transition { new.last_transition_time } else { old.last_transition_time.clone() };
            *old = Condition { last_transition_time, ..new };
            changed
        }
    }
}

impl KubegresRestoreStatus {
    /// The phase, `Pending` when none was written yet.
    pub fn phase(&self) -> Phase {
        self.phase.unwrap_or_default()
    }

    /// The condition of this type, if any.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(&self.conditions, type_)
    }

    /// Sets `phase` and the fork's `stage` and `isCompleted` that mirror it.
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = Some(phase);
        self.stage = Some(phase.stage().to_string());
        self.is_completed = Some(phase == Phase::Succeeded);
    }
}
