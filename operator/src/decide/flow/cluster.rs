//! The default flow's steps: a new Kubegres cluster that the restore creates,
//! and what happens when it is lost mid-restore.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proto::Phase;
use proto::crd::{CONDITION_TARGET_READY, PhaseEvent};
use serde_json::{Map, Value};

use super::record::{add, until};
use super::{DELETION_POLL, Draft, Flow, TARGET_POLL};
use crate::decide::actions::{Action, EventType};
use crate::decide::backoff::backoff;
use crate::decide::names;
use crate::decide::target::{self, TargetConnection};

/// What a new cluster is waiting for when nothing was observed of it yet.
const NO_PRIMARY_YET: &str = "no primary Pod yet";

impl Draft<'_> {
    /// One step of the default flow: a new Kubegres cluster.
    pub(super) fn cluster_step(
        &mut self,
        cluster: &str,
        desired: &Map<String, Value>,
        connection: &TargetConnection,
    ) -> Flow {
        let observed = self.observed;
        let target = &observed.target;
        let gone = !target.exists || target.deleted;
        if target.managed_by_us && target.attempt == Some(self.current_attempt()) {
            self.record_created_cluster(cluster);
        }
        self.record_owned_volumes(cluster);
        match self.status.phase() {
            Phase::Pending => {
                if target.exists && !target.managed_by_us {
                    return self.name_in_use(cluster);
                }
                self.transition(PhaseEvent::Started { creates_target: true })
            }
            Phase::CreatingTarget => self.create_cluster(cluster, desired),
            Phase::WaitingForTarget | Phase::Restoring if gone => self.target_lost(cluster),
            Phase::WaitingForTarget | Phase::Restoring if !target.managed_by_us => self.name_in_use(cluster),
            Phase::WaitingForTarget => self.wait_for_target(cluster),
            Phase::Restoring => self.run_attempt(connection, Some(cluster)),
            Phase::Finalizing => self.hand_over(cluster, desired),
            Phase::Succeeded | Phase::Failed => Flow::Stop,
        }
    }

    /// Creates the cluster, once nothing of that name is in the way: no
    /// Kubegres that is not this restore's, no data volume that is not its
    /// own (a new cluster would start on that data), and this restore's own
    /// previous cluster and volumes gone.
    fn create_cluster(&mut self, cluster: &str, desired: &Map<String, Value>) -> Flow {
        let observed = self.observed;
        let target = &observed.target;
        if target.api_missing {
            return self.fail_stop(
                "KubegresNotInstalled",
                "the Kubegres API (kubegres.reactive-tech.io/v1, kind Kubegres) is not installed in this cluster: \
                 install the Kubegres operator first",
            );
        }
        if target.exists && !target.managed_by_us {
            return self.name_in_use(cluster);
        }
        let attempt = self.current_attempt();
        if target.exists && !target.deleted {
            if target.attempt == Some(attempt) {
                // Created by this decision's predecessor and now seen.
                return self.transition(PhaseEvent::TargetCreated);
            }
            // An earlier attempt's cluster, still here: never reused.
            self.delete_our_cluster(cluster);
            self.requeue(DELETION_POLL);
            return Flow::Stop;
        }
        if target.deleted {
            self.condition(
                CONDITION_TARGET_READY,
                false,
                "TargetBeingDeleted",
                &format!("waiting for the previous Kubegres cluster {cluster} of this restore to be deleted"),
            );
            self.requeue(DELETION_POLL);
            return Flow::Stop;
        }
        let foreign: Vec<String> = self.foreign_volumes(cluster).iter().map(|volume| volume.name.clone()).collect();
        if !foreign.is_empty() {
            let message = format!(
                "the data volume{} {} of a Kubegres cluster named {cluster} already exist{} and {} not created by \
                 this restore: a new cluster {cluster} would start on that data. Nothing was created or deleted; \
                 delete the volume{} if its data is not needed, or restore under another cluster name",
                if foreign.len() == 1 { "" } else { "s" },
                foreign.join(", "),
                if foreign.len() == 1 { "s" } else { "" },
                if foreign.len() == 1 { "was" } else { "were" },
                if foreign.len() == 1 { "" } else { "s" },
            );
            return self.fail_stop("VolumeInUse", &message);
        }
        if self.delete_our_volumes(cluster) {
            self.condition(
                CONDITION_TARGET_READY,
                false,
                "TargetBeingDeleted",
                &format!("waiting for the data volumes of the previous Kubegres cluster {cluster} to be deleted"),
            );
            self.requeue(DELETION_POLL);
            return Flow::Stop;
        }
        if let Some(wait) = self.target_lost_wait() {
            // The cluster was deleted mid-restore: the fresh one comes after
            // the backoff, whatever reconciles in between.
            self.requeue(wait);
            return Flow::Stop;
        }
        if self.spec_changed() {
            return self.refuse_changed_spec("the Kubegres cluster");
        }
        let object = target::kubegres_manifest(&observed.restore, cluster, attempt, desired);
        self.actions.push(Action::CreateKubegres { name: cluster.to_string(), object });
        self.status.target_wait_start = Some(Time(observed.now));
        self.condition(
            CONDITION_TARGET_READY,
            false,
            "WaitingForPrimary",
            &format!("waiting for the primary of the Kubegres cluster {cluster} to be ready ({NO_PRIMARY_YET})"),
        );
        self.transition(PhaseEvent::TargetCreated);
        // What this decision creates is not observed yet: look again once it is.
        Flow::Stop
    }

    /// The restore is done: the cluster gets its desired spec (replicas,
    /// resources, backups) and loses the restore's labels, then the
    /// restore's own objects go and it succeeds.
    fn hand_over(&mut self, cluster: &str, desired: &Map<String, Value>) -> Flow {
        let observed = self.observed;
        let target = &observed.target;
        let created = self.status.created_cluster.as_ref().map(|created| created.uid.clone());
        let handed_over = target.exists && !target.managed_by_us && target.uid.is_some() && target.uid == created;
        if !target.exists || target.deleted || !(target.managed_by_us || handed_over) {
            let message = format!("the Kubegres cluster {cluster} was deleted before the restore was finalized");
            self.condition(CONDITION_TARGET_READY, false, "TargetDeleted", &message);
            return self.fail_stop("TargetDeleted", &message);
        }
        let mut waiting = self.delete_leftovers();
        if target.managed_by_us
            && let Some(uid) = target.uid.clone()
        {
            let replicas = match target::desired_replicas(cluster, desired) {
                Ok(replicas) => replicas,
                Err(error) => return self.fail_stop(error.reason(), &error.to_string()),
            };
            self.actions.push(Action::HandOverKubegres {
                name: cluster.to_string(),
                uid,
                replicas,
                resources: desired.get("resources").cloned(),
                backup: desired.get("backup").cloned(),
            });
            waiting = true;
        }
        if !waiting {
            self.succeed();
        }
        Flow::Stop
    }

    /// Waits for what the agent needs of the new cluster: a Ready primary
    /// and the Service `<cluster>` with a ready endpoint (Kubegres creates
    /// the Service only after its primary is ready), within the target
    /// timeout.
    pub(super) fn wait_for_target(&mut self, cluster: &str) -> Flow {
        let target = &self.observed.target;
        if target.primary_ready && target.service_ready {
            self.status.target_wait_start = None;
            self.condition(
                CONDITION_TARGET_READY,
                true,
                "PrimaryReady",
                &format!("the primary of the Kubegres cluster {cluster} and its Service are ready"),
            );
            return self.transition(PhaseEvent::TargetReady);
        }
        let what = if target.primary_ready {
            format!("waiting for the Service {cluster} of the Kubegres cluster {cluster} to have a ready endpoint")
        } else {
            format!("waiting for the primary of the Kubegres cluster {cluster} to be ready")
        };
        let state = target.waiting_for.clone().unwrap_or_else(|| NO_PRIMARY_YET.to_string());
        let timeout = self.observed.restore.spec.target_ready_timeout();
        let since = match &self.status.target_wait_start {
            Some(since) => since.0,
            None => {
                self.status.target_wait_start = Some(Time(self.observed.now));
                self.observed.now
            }
        };
        let deadline = add(since, timeout);
        if self.observed.now >= deadline {
            let message = format!(
                "the Kubegres cluster {cluster} was not ready within targetReadyTimeoutSeconds ({} s): {what}; \
                 last seen: {state}",
                timeout.as_secs()
            );
            self.condition(CONDITION_TARGET_READY, false, "TargetNotReady", &message);
            return self.fail_stop("TargetNotReady", &message);
        }
        let reason = if target.primary_ready { "WaitingForService" } else { "WaitingForPrimary" };
        self.condition(CONDITION_TARGET_READY, false, reason, &format!("{what} ({state})"));
        self.requeue(TARGET_POLL.min(until(self.observed.now, deadline).max(Duration::from_millis(100))));
        Flow::Stop
    }

    /// The cluster's name is held by a Kubegres that is not this restore's:
    /// fail, touching nothing.
    fn name_in_use(&mut self, cluster: &str) -> Flow {
        let namespace = names::namespace(&self.observed.restore);
        self.fail_stop(
            "NameInUse",
            &format!(
                "a Kubegres cluster named {namespace}/{cluster} already exists and was not created by this restore: \
                 it was left untouched; restore under another cluster name"
            ),
        )
    }

    /// The target cluster disappeared mid-restore: stop the attempt, say so,
    /// and create a fresh cluster after a backoff.
    pub(super) fn target_lost(&mut self, cluster: &str) -> Flow {
        let observed = self.observed;
        for pod in observed.pods.iter().filter(|pod| !pod.deleting) {
            self.actions.push(Action::Delete {
                kind: crate::decide::actions::Kind::Pod,
                name: pod.name.clone(),
                uid: pod.uid.clone(),
            });
        }
        // Its volumes outlive it and hold the half-restored data.
        self.delete_our_volumes(cluster);
        self.status.attempt_pod_uid = None;
        if self.status.progress.is_some() {
            self.actions.push(Action::ResetProgress);
        }
        let message = format!("the Kubegres cluster {cluster} was deleted mid-restore; a fresh one will be created");
        self.condition(CONDITION_TARGET_READY, false, "TargetDeleted", &message);
        self.event(EventType::Warning, "TargetDeleted", &message);
        self.transition(PhaseEvent::TargetLost);
        self.requeue(backoff(self.status.attempts.unwrap_or(1).max(1), observed.jitter_seed));
        Flow::Stop
    }

    /// How long to wait still before recreating a cluster deleted
    /// mid-restore (the backoff runs from the `TargetDeleted` transition).
    pub(super) fn target_lost_wait(&self) -> Option<Duration> {
        let lost = self.status.condition(CONDITION_TARGET_READY)?;
        if lost.reason != "TargetDeleted" || lost.status != "False" {
            return None;
        }
        let wait = backoff(self.status.attempts.unwrap_or(1).max(1), self.observed.jitter_seed);
        let ready_at = add(lost.last_transition_time.0, wait);
        (ready_at > self.observed.now).then(|| until(self.observed.now, ready_at))
    }
}
