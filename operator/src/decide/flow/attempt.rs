//! The Restoring phase: the restore's objects, the current attempt's Pod,
//! and what its end means (success, retry after a backoff into a fresh
//! target, failure).

use k8s_openapi::jiff::Timestamp;
use proto::RestoreFailure;
use proto::crd::{CONDITION_PROGRESSING, CONDITION_TARGET_READY, PhaseEvent, ResolvedTarget, Snapshot};

use super::record::{add, until};
use super::{DELETION_POLL, Draft, Flow};
use crate::decide::actions::{Action, EventType, Kind};
use crate::decide::backoff::backoff;
use crate::decide::failure::failure_of;
use crate::decide::names;
use crate::decide::observed::{Child, PodPhase};
use crate::decide::target::TargetConnection;

impl Draft<'_> {
    /// The Restoring phase: the restore's objects, the current attempt's Pod,
    /// and what its end means. `cluster` is the target cluster to recreate
    /// before a retry.
    pub(super) fn run_attempt(&mut self, connection: &TargetConnection, cluster: Option<&str>) -> Flow {
        let observed = self.observed;
        let restore = &observed.restore;
        let children = &observed.children;
        if let Some(message) = self.name_clash() {
            return self.fail_stop("NameInUse", &message);
        }
        if children.service_account == Child::Missing {
            self.actions.push(Action::CreateServiceAccount(names::service_account(restore)));
        }
        if children.role == Child::Missing {
            self.actions.push(Action::CreateRole(names::role(restore)));
        }
        if children.role_binding == Child::Missing {
            self.actions.push(Action::CreateRoleBinding(names::role_binding(restore)));
        }

        let attempt = self.current_attempt();
        let limit = restore.spec.backoff_limit.max(0);
        if self.status.attempts != Some(attempt) {
            self.status.attempts = Some(attempt);
        }
        for stale in observed.pods.iter().filter(|pod| pod.attempt != Some(attempt) && !pod.deleting) {
            self.actions.push(Action::Delete { kind: Kind::Pod, name: stale.name.clone(), uid: stale.uid.clone() });
        }
        let Some(pod) = observed.pods.iter().find(|pod| pod.attempt == Some(attempt)) else {
            if self.status.attempt_pod_uid.is_some() {
                // Seen before, gone now (an eviction, a drain, a person): what
                // it wrote is in the target, so the attempt failed.
                let failure = RestoreFailure {
                    reason: "PodDeleted".to_string(),
                    message: format!(
                        "the restore Pod {} of attempt {attempt} was deleted before it finished",
                        names::pod_name(names::name(restore), attempt)
                    ),
                    ..Default::default()
                };
                return self.attempt_failed(failure, true, None, cluster);
            }
            if self.spec_changed() {
                return self.refuse_changed_spec("the restore Pod");
            }
            let name = names::pod_name(names::name(restore), attempt);
            let pinned = self.status.pinned_source.clone();
            let pod =
                crate::decide::pod::restore_pod(restore, attempt, connection, &observed.agent_image, pinned.as_deref());
            if self.status.progress.is_some() {
                self.actions.push(Action::ResetProgress);
            }
            self.actions.push(Action::CreateRestorePod { name, attempt, pod: Box::new(pod) });
            self.condition(
                CONDITION_PROGRESSING,
                true,
                "Restoring",
                &format!("restore attempt {attempt} of {} is running", limit + 1),
            );
            return Flow::Stop;
        };
        if self.status.attempt_pod_uid.as_deref() != Some(pod.uid.as_str()) {
            self.status.attempt_pod_uid = Some(pod.uid.clone());
        }
        match (pod.phase, &pod.blocked) {
            (PodPhase::Succeeded, _) => {
                self.pin_source();
                self.transition(PhaseEvent::AgentSucceeded)
            }
            (PodPhase::Failed, _) => {
                let (failure, retryable) = failure_of(pod, self.status.progress.as_ref());
                self.attempt_failed(failure, retryable, pod.finished_at, cluster)
            }
            _ if pod.deleting => {
                // Being deleted mid-attempt: the attempt fails once it is gone.
                self.requeue(DELETION_POLL);
                Flow::Stop
            }
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
        }
    }

    /// An object of one of the restore's own names (its ServiceAccount,
    /// Role, RoleBinding, the attempt's Pod) that someone else created: said,
    /// and left untouched.
    pub(super) fn name_clash(&self) -> Option<String> {
        let observed = self.observed;
        let namespace = names::namespace(&observed.restore);
        let (kind, name) = match (observed.children.foreign(), &observed.foreign_pod) {
            (Some(kind), _) => (kind, names::children_name(names::name(&observed.restore))),
            (None, Some(pod)) => ("Pod", pod.clone()),
            (None, None) => return None,
        };
        Some(format!(
            "the {kind} {namespace}/{name} already exists and was not created by this restore: it was left \
             untouched; delete it or give the restore another name"
        ))
    }

    /// An attempt failed: retry it into a fresh target after a backoff, or
    /// fail the restore (the failure would recur, the retries are used up,
    /// or the target cannot be made fresh).
    fn attempt_failed(
        &mut self,
        failure: RestoreFailure,
        retryable: bool,
        finished_at: Option<Timestamp>,
        cluster: Option<&str>,
    ) -> Flow {
        let observed = self.observed;
        let attempt = self.current_attempt();
        let limit = observed.restore.spec.backoff_limit.max(0);
        let resumable = self.target_resumable();
        if !(retryable && attempt <= limit && resumable) {
            let mut failure = failure;
            if retryable && attempt <= limit && !resumable {
                failure.message.push_str(
                    "; not retried: the target is an existing server restored with allowNonEmpty, which \
                     another attempt would restore into on top of what this one wrote",
                );
            }
            let (reason, message) = (failure.reason.clone(), failure.message.clone());
            self.fail(&reason, &message, Some(failure));
            return Flow::Stop;
        }
        let wait = backoff(attempt, observed.jitter_seed);
        if let Some(ready_at) = finished_at.map(|at| add(at, wait)).filter(|at| *at > observed.now) {
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
        self.pin_source();
        for pod in observed.pods.iter().filter(|pod| pod.attempt == Some(attempt) && !pod.deleting) {
            self.actions.push(Action::Delete { kind: Kind::Pod, name: pod.name.clone(), uid: pod.uid.clone() });
        }
        self.status.attempts = Some(attempt + 1);
        self.status.attempt_pod_uid = None;
        self.event(
            EventType::Warning,
            "AttemptFailed",
            &format!("restore attempt {attempt} failed ({}): {}; retrying", failure.reason, failure.message),
        );
        self.transition(PhaseEvent::AttemptFailed { retry: true });
        if let Some(cluster) = cluster {
            // A fresh target for the next attempt.
            self.delete_our_cluster(cluster);
            self.delete_our_volumes(cluster);
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

    /// Whether another attempt may run into the target: a new cluster is
    /// recreated and a `database` target's database is dropped and created
    /// again by the agent (its marker); an existing server is checked empty
    /// by the agent, unless `allowNonEmpty` lets it restore on top.
    fn target_resumable(&self) -> bool {
        !matches!(self.observed.restore.spec.target(), Ok(ResolvedTarget::Postgres(postgres)) if postgres.allow_non_empty)
    }

    /// Pins the backup the failed attempt chose (with `snapshot: latest` or
    /// an S3 prefix), as the agent reported it, so that every retry restores
    /// the same file.
    fn pin_source(&mut self) {
        if self.status.pinned_source.is_some() {
            return;
        }
        let Some(reported) = self.status.progress.as_ref().and_then(|progress| progress.source.clone()) else {
            return;
        };
        let data_source = &self.observed.restore.spec.data_source;
        let pinnable = match (&data_source.file, &data_source.s3) {
            (Some(file), _) if file.snapshot() == Snapshot::Latest => {
                let root = format!("{}/", file.mount_path.trim_end_matches('/'));
                reported.starts_with(&root) && !reported.split('/').any(|part| part == "..")
            }
            (_, Some(s3)) if s3.key.is_none() => reported.starts_with(&format!("s3://{}/", s3.bucket)),
            _ => false,
        };
        if pinnable {
            self.status.pinned_source = Some(reported);
        }
    }
}
