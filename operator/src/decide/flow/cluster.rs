//! The default flow's steps: a new Kubegres cluster that the restore creates,
//! and what happens when it is lost mid-restore.

use std::time::Duration;

use proto::Phase;
use proto::crd::{CONDITION_TARGET_READY, PhaseEvent};
use serde_json::{Map, Value};

use super::record::{add, until};
use super::{DELETION_POLL, Draft, Flow};
use crate::decide::actions::{Action, EventType};
use crate::decide::backoff::backoff;
use crate::decide::target::{self, TargetConnection};

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
        match self.status.phase() {
            Phase::Pending => {
                if target.exists && !target.managed_by_us {
                    return self.fail_stop("TargetExists", &not_ours(cluster));
                }
                self.transition(PhaseEvent::Started { creates_target: true })
            }
            Phase::CreatingTarget => {
                if target.exists && !target.managed_by_us {
                    return self.fail_stop("TargetExists", &not_ours(cluster));
                }
                if target.deleted {
                    self.condition(
                        CONDITION_TARGET_READY,
                        false,
                        "TargetBeingDeleted",
                        &format!("waiting for the previous Kubegres cluster {cluster} to be deleted"),
                    );
                    self.requeue(DELETION_POLL);
                    return Flow::Stop;
                }
                let create = !target.exists;
                if create && let Some(wait) = self.target_lost_wait() {
                    // The cluster was deleted mid-restore: the fresh one comes
                    // after the backoff, whatever reconciles in between.
                    self.requeue(wait);
                    return Flow::Stop;
                }
                if create && self.spec_changed() {
                    return self.refuse_changed_spec("the Kubegres cluster");
                }
                if create {
                    let object = target::kubegres_manifest(&observed.restore, cluster, desired);
                    self.actions.push(Action::CreateKubegres { name: cluster.to_string(), object });
                }
                self.condition(
                    CONDITION_TARGET_READY,
                    false,
                    "WaitingForPrimary",
                    &format!("waiting for the primary of the Kubegres cluster {cluster} to be ready"),
                );
                let flow = self.transition(PhaseEvent::TargetCreated);
                // What this decision creates is not observed yet: look again
                // once it is.
                if create { Flow::Stop } else { flow }
            }
            Phase::WaitingForTarget => {
                if gone {
                    return self.target_lost(cluster);
                }
                self.wait_for_primary(cluster)
            }
            Phase::Restoring => {
                if gone {
                    return self.target_lost(cluster);
                }
                self.run_attempt(connection, Some(cluster))
            }
            Phase::Finalizing => {
                if gone {
                    let message =
                        format!("the Kubegres cluster {cluster} was deleted before the restore was finalized");
                    self.condition(CONDITION_TARGET_READY, false, "TargetDeleted", &message);
                    return self.fail_stop("TargetDeleted", &message);
                }
                let leftovers = !observed.pods.is_empty() || observed.children.any();
                if target.managed_by_us {
                    let replicas = match target::desired_replicas(cluster, desired) {
                        Ok(replicas) => replicas,
                        Err(error) => return self.fail_stop(error.reason(), &error.to_string()),
                    };
                    self.actions.push(Action::ScaleKubegresToDesired {
                        name: cluster.to_string(),
                        replicas,
                        resources: desired.get("resources").cloned(),
                    });
                    self.actions.push(Action::RemoveManagedLabel { name: cluster.to_string() });
                }
                if leftovers {
                    self.actions.push(Action::DeleteChildren);
                }
                if target.managed_by_us || leftovers {
                    return Flow::Stop;
                }
                self.succeed();
                Flow::Stop
            }
            Phase::Succeeded | Phase::Failed => Flow::Stop,
        }
    }

    /// The target cluster disappeared mid-restore: stop the attempt, say so,
    /// and create a fresh cluster after a backoff.
    pub(super) fn target_lost(&mut self, cluster: &str) -> Flow {
        let observed = self.observed;
        for pod in observed.pods.iter().filter(|pod| !pod.deleting) {
            self.actions.push(Action::DeletePod { name: pod.name.clone() });
        }
        // Its volumes outlive it and hold the half-restored data.
        self.actions.push(Action::DeleteClusterVolumes { name: cluster.to_string() });
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

pub(super) fn not_ours(cluster: &str) -> String {
    format!("a Kubegres cluster named {cluster} already exists and was not created by this restore")
}
