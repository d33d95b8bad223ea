//! The Restoring phase: the restore's objects, the current attempt's Pod,
//! and what its end means (success, retry after a backoff, failure).

use proto::crd::{CONDITION_PROGRESSING, CONDITION_TARGET_READY, PhaseEvent};

use super::record::{add, until};
use super::{DELETION_POLL, Draft, Flow};
use crate::decide::actions::{Action, EventType};
use crate::decide::backoff::backoff;
use crate::decide::failure::failure_of;
use crate::decide::names;
use crate::decide::observed::PodPhase;
use crate::decide::target::TargetConnection;

impl Draft<'_> {
    /// The Restoring phase: the restore's objects, the current attempt's Pod,
    /// and what its end means. `cluster` is the target cluster to recreate
    /// before a retry.
    pub(super) fn run_attempt(&mut self, connection: &TargetConnection, cluster: Option<&str>) -> Flow {
        let observed = self.observed;
        let restore = &observed.restore;
        let children = observed.children;
        if !children.service_account {
            self.actions.push(Action::CreateServiceAccount(names::service_account(restore)));
        }
        if !children.role {
            self.actions.push(Action::CreateRole(names::role(restore)));
        }
        if !children.role_binding {
            self.actions.push(Action::CreateRoleBinding(names::role_binding(restore)));
        }

        let attempt = self.status.attempts.unwrap_or(0).max(1);
        let limit = restore.spec.backoff_limit.max(0);
        if self.status.attempts != Some(attempt) {
            self.status.attempts = Some(attempt);
        }
        for stale in observed.pods.iter().filter(|pod| pod.attempt != Some(attempt) && !pod.deleting) {
            self.actions.push(Action::DeletePod { name: stale.name.clone() });
        }
        let Some(pod) = observed.pods.iter().find(|pod| pod.attempt == Some(attempt)) else {
            if self.spec_changed() {
                return self.refuse_changed_spec("the restore Pod");
            }
            let name = names::pod_name(names::name(restore), attempt);
            let pod = crate::decide::pod::restore_pod(restore, attempt, connection, &observed.agent_image);
            self.actions.push(Action::CreateRestorePod { name, attempt, pod: Box::new(pod) });
            self.condition(
                CONDITION_PROGRESSING,
                true,
                "Restoring",
                &format!("restore attempt {attempt} of {} is running", limit + 1),
            );
            return Flow::Stop;
        };
        if pod.deleting {
            // Deleted under our feet (or by a retry): recreated once gone.
            self.requeue(DELETION_POLL);
            return Flow::Stop;
        }
        match (pod.phase, &pod.blocked) {
            (PodPhase::Pending, Some((reason, message))) => {
                self.condition(
                    CONDITION_PROGRESSING,
                    false,
                    reason,
                    &format!("restore attempt {attempt} cannot start: {message}"),
                );
                Flow::Stop
            }
            (PodPhase::Pending | PodPhase::Running, _) => {
                self.condition(
                    CONDITION_PROGRESSING,
                    true,
                    "Restoring",
                    &format!("restore attempt {attempt} of {} is running", limit + 1),
                );
                Flow::Stop
            }
            (PodPhase::Succeeded, _) => self.transition(PhaseEvent::AgentSucceeded),
            (PodPhase::Failed, _) => {
                let (failure, retryable) = failure_of(pod);
                if !(retryable && attempt <= limit) {
                    let reason = failure.reason.clone();
                    let message = failure.message.clone();
                    self.fail(&reason, &message, Some(failure));
                    return Flow::Stop;
                }
                let wait = backoff(attempt, observed.jitter_seed);
                let ready_at = pod.finished_at.map(|at| add(at, wait));
                if let Some(ready_at) = ready_at.filter(|at| *at > observed.now) {
                    self.condition(
                        CONDITION_PROGRESSING,
                        true,
                        "BackoffWaiting",
                        &format!(
                            "restore attempt {attempt} failed ({}); attempt {} starts after a backoff of {} s",
                            failure.reason,
                            attempt + 1,
                            wait.as_secs()
                        ),
                    );
                    self.requeue(until(observed.now, ready_at));
                    return Flow::Stop;
                }
                self.actions.push(Action::DeletePod { name: pod.name.clone() });
                self.status.attempts = Some(attempt + 1);
                self.event(
                    EventType::Warning,
                    "AttemptFailed",
                    &format!("restore attempt {attempt} failed ({}): {}; retrying", failure.reason, failure.message),
                );
                self.transition(PhaseEvent::AttemptFailed { retry: true });
                if let Some(cluster) = cluster {
                    // A fresh target for the next attempt.
                    self.actions.push(Action::DeleteKubegres { name: cluster.to_string() });
                    self.actions.push(Action::DeleteClusterVolumes { name: cluster.to_string() });
                    self.condition(
                        CONDITION_TARGET_READY,
                        false,
                        "RecreatingTarget",
                        &format!("recreating the Kubegres cluster {cluster} for restore attempt {}", attempt + 1),
                    );
                    self.transition(PhaseEvent::TargetLost);
                }
                Flow::Stop
            }
        }
    }
}
