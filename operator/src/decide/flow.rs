//! The restore's flow, phase by phase.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use proto::crd::{
    CONDITION_FAILED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_SPEC_CHANGED, CONDITION_TARGET_READY,
    PhaseEvent, ResolvedTarget, set_condition,
};
use proto::{KubegresRestoreStatus, Phase, RestoreFailure};
use serde_json::{Map, Value};

use super::actions::{Action, EventType, Requeue};
use super::backoff::backoff;
use super::failure::failure_of;
use super::names::{self, FINALIZER};
use super::observed::{Observed, PodPhase};
use super::target::{self, TargetConnection};

/// How long to wait for an object being deleted before looking again.
const DELETION_POLL: Duration = Duration::from_secs(5);
/// How often to look at a cluster whose primary is not ready yet (its Pods
/// are not watched).
const TARGET_POLL: Duration = Duration::from_secs(10);

/// Whether the flow goes on to the new phase in the same decision.
enum Flow {
    Continue,
    Stop,
}

/// The decision being built.
pub(super) struct Draft<'a> {
    observed: &'a Observed,
    actions: Vec<Action>,
    status: KubegresRestoreStatus,
    requeue: Requeue,
}

impl<'a> Draft<'a> {
    pub(super) fn new(observed: &'a Observed, status: KubegresRestoreStatus) -> Self {
        Draft { observed, actions: Vec::new(), status, requeue: Requeue::None }
    }

    pub(super) fn finish(self) -> (Vec<Action>, KubegresRestoreStatus, Requeue) {
        (self.actions, self.status, self.requeue)
    }

    pub(super) fn run(&mut self) {
        let observed = self.observed;
        let restore = &observed.restore;
        let has_finalizer = restore.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER);
        let leftovers = !observed.pods.is_empty() || observed.children.any();

        if restore.metadata.deletion_timestamp.is_some() {
            // A cluster this restore created and never handed over (the
            // restore did not succeed) is half-restored: it goes too.
            let unfinished_cluster = match restore.spec.target() {
                Ok(ResolvedTarget::NewCluster { name, .. }) if observed.target.managed_by_us => Some(name),
                _ => None,
            };
            if let Some(cluster) = unfinished_cluster.filter(|_| !observed.target.deleted) {
                self.actions.push(Action::DeleteKubegres { name: cluster.to_string() });
                self.actions.push(Action::DeleteClusterVolumes { name: cluster.to_string() });
            }
            if leftovers || unfinished_cluster.is_some() {
                if leftovers {
                    self.actions.push(Action::DeleteChildren);
                }
                self.requeue(DELETION_POLL);
            } else if has_finalizer {
                self.actions.push(Action::RemoveFinalizer);
            }
            return;
        }
        if self.status.phase().is_terminal() {
            if leftovers {
                self.actions.push(Action::DeleteChildren);
            }
            return;
        }
        if !has_finalizer {
            self.actions.push(Action::AddFinalizer);
        }

        let spec = &restore.spec;
        if let Err(error) = spec.source_kind() {
            return self.fail(error.reason(), error.message(), None);
        }
        let resolved = match spec.target() {
            Ok(resolved) => resolved,
            Err(error) => return self.fail(error.reason(), error.message(), None),
        };

        if self.status.phase() == Phase::Pending {
            self.start();
        }
        self.check_spec_changed();
        if self.deadline_passed() {
            return;
        }

        let desired = match target::desired_cluster_spec(&resolved, observed.copy_from_spec.as_ref()) {
            Ok(desired) => desired,
            Err(error) if error.is_transient() => {
                self.condition(CONDITION_TARGET_READY, false, error.reason(), &error.to_string());
                self.requeue(backoff(1, observed.jitter_seed));
                return;
            }
            Err(error) => return self.fail(error.reason(), &error.to_string(), None),
        };
        if let ResolvedTarget::Database(database) = &resolved
            && let Flow::Stop = self.database_cluster_gate(&database.cluster_name)
        {
            return;
        }
        let existing = observed.target.spec.as_ref();
        let connection = match target::connection(restore, &resolved, desired.as_ref(), existing) {
            Ok(connection) => connection,
            Err(error) => return self.fail(error.reason(), &error.to_string(), None),
        };

        // Each handler either stops or moves the phase on; a phase is never
        // visited twice, so this ends.
        for _ in 0..Phase::ALL.len() {
            let flow = match (&resolved, desired.as_ref()) {
                (ResolvedTarget::NewCluster { name, .. }, Some(desired)) => {
                    self.cluster_step(name, desired, &connection)
                }
                (ResolvedTarget::Database(database), _) => self.database_step(&database.cluster_name, &connection),
                _ => self.server_step(&connection),
            };
            if let Flow::Stop = flow {
                break;
            }
        }
    }

    /// One step of the default flow: a new Kubegres cluster.
    fn cluster_step(&mut self, cluster: &str, desired: &Map<String, Value>, connection: &TargetConnection) -> Flow {
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

    /// A `database` target needs its existing cluster: before the restore
    /// runs, wait for it (it may be created after the restore); once the
    /// restore ran, its loss ends the restore (the cluster is not ours to
    /// recreate).
    fn database_cluster_gate(&mut self, cluster: &str) -> Flow {
        let target = &self.observed.target;
        if target.exists && !target.deleted {
            return Flow::Continue;
        }
        match self.status.phase() {
            Phase::Pending | Phase::CreatingTarget | Phase::WaitingForTarget => {
                self.transition(PhaseEvent::Started { creates_target: true });
                self.condition(
                    CONDITION_TARGET_READY,
                    false,
                    "ClusterNotFound",
                    &format!("waiting for the Kubegres cluster {cluster} to exist"),
                );
                self.requeue(TARGET_POLL);
                Flow::Stop
            }
            _ => {
                let message = format!("the Kubegres cluster {cluster} was deleted mid-restore");
                self.condition(CONDITION_TARGET_READY, false, "TargetDeleted", &message);
                self.fail_stop("TargetDeleted", &message)
            }
        }
    }

    /// One step of a `database` target: the cluster exists (checked by
    /// [`Self::database_cluster_gate`]); the agent creates the database.
    fn database_step(&mut self, cluster: &str, connection: &TargetConnection) -> Flow {
        match self.status.phase() {
            Phase::Pending => self.transition(PhaseEvent::Started { creates_target: true }),
            Phase::CreatingTarget => self.transition(PhaseEvent::TargetCreated),
            Phase::WaitingForTarget => self.wait_for_primary(cluster),
            // Each attempt's agent drops and recreates the database an
            // earlier attempt created (same marker): no target to recreate.
            Phase::Restoring => self.run_attempt(connection, None),
            Phase::Finalizing => self.server_step(connection),
            Phase::Succeeded | Phase::Failed => Flow::Stop,
        }
    }

    /// Waits for the cluster's primary to be Ready (its Pods are not
    /// watched by name, so also look again every [`TARGET_POLL`]), then moves
    /// on to the restore.
    fn wait_for_primary(&mut self, cluster: &str) -> Flow {
        if !self.observed.target.primary_ready {
            self.condition(
                CONDITION_TARGET_READY,
                false,
                "WaitingForPrimary",
                &format!("waiting for the primary of the Kubegres cluster {cluster} to be ready"),
            );
            self.requeue(TARGET_POLL);
            return Flow::Stop;
        }
        self.condition(
            CONDITION_TARGET_READY,
            true,
            "PrimaryReady",
            &format!("the primary of the Kubegres cluster {cluster} is ready"),
        );
        self.transition(PhaseEvent::TargetReady)
    }

    /// One step for an existing PostgreSQL server: nothing to create.
    fn server_step(&mut self, connection: &TargetConnection) -> Flow {
        match self.status.phase() {
            Phase::Pending => self.transition(PhaseEvent::Started { creates_target: false }),
            Phase::Restoring => self.run_attempt(connection, None),
            Phase::Finalizing => {
                if !self.observed.pods.is_empty() || self.observed.children.any() {
                    self.actions.push(Action::DeleteChildren);
                    return Flow::Stop;
                }
                self.succeed();
                Flow::Stop
            }
            _ => Flow::Stop,
        }
    }

    /// The Restoring phase: the restore's objects, the current attempt's Pod,
    /// and what its end means. `cluster` is the target cluster to recreate
    /// before a retry.
    fn run_attempt(&mut self, connection: &TargetConnection, cluster: Option<&str>) -> Flow {
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
            let pod = super::pod::restore_pod(restore, attempt, connection, &observed.agent_image);
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
        match pod.phase {
            PodPhase::Pending if pod.blocked.is_some() => {
                let (reason, message) = pod.blocked.as_ref().expect("the guard said blocked");
                self.condition(
                    CONDITION_PROGRESSING,
                    false,
                    reason,
                    &format!("restore attempt {attempt} cannot start: {message}"),
                );
                Flow::Stop
            }
            PodPhase::Pending | PodPhase::Running => {
                self.condition(
                    CONDITION_PROGRESSING,
                    true,
                    "Restoring",
                    &format!("restore attempt {attempt} of {} is running", limit + 1),
                );
                Flow::Stop
            }
            PodPhase::Succeeded => self.transition(PhaseEvent::AgentSucceeded),
            PodPhase::Failed => {
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

    /// The target cluster disappeared mid-restore: stop the attempt, say so,
    /// and create a fresh cluster after a backoff.
    fn target_lost(&mut self, cluster: &str) -> Flow {
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
    fn target_lost_wait(&self) -> Option<Duration> {
        let lost = self.status.condition(CONDITION_TARGET_READY)?;
        if lost.reason != "TargetDeleted" || lost.status != "False" {
            return None;
        }
        let wait = backoff(self.status.attempts.unwrap_or(1).max(1), self.observed.jitter_seed);
        let ready_at = add(lost.last_transition_time.0, wait);
        (ready_at > self.observed.now).then(|| until(self.observed.now, ready_at))
    }

    /// First reconcile: record what the restore acts on.
    fn start(&mut self) {
        let observed = self.observed;
        let restore = &observed.restore;
        self.status.start_time = Some(Time(observed.now));
        self.status.observed_generation = restore.metadata.generation;
        self.status.source = restore.spec.source_summary();
        self.status.target = restore.spec.target_summary();
        self.status.set_phase(Phase::Pending);
        self.event(EventType::Normal, "Started", "the restore started");
    }

    /// A spec changed after the start is not acted on: say so.
    fn check_spec_changed(&mut self) {
        let generation = self.observed.restore.metadata.generation;
        match (self.status.observed_generation, generation) {
            (Some(acted_on), Some(current)) if acted_on != current => self.condition(
                CONDITION_SPEC_CHANGED,
                true,
                "SpecChangedAfterStart",
                &format!(
                    "the spec changed after the restore started (generation {current}); the restore goes on with \
                     generation {acted_on} and the change is not acted on: create a new KubegresRestore instead"
                ),
            ),
            _ => {}
        }
    }

    /// Whether the spec changed after the restore started.
    fn spec_changed(&self) -> bool {
        matches!(
            (self.status.observed_generation, self.observed.restore.metadata.generation),
            (Some(acted_on), Some(current)) if acted_on != current
        )
    }

    /// What the restore would create next (a retry's Pod or cluster, or a
    /// deleted one) can only be built from the current spec, which the
    /// restore does not act on: end it instead of running a spec half
    /// changed.
    fn refuse_changed_spec(&mut self, what: &str) -> Flow {
        let message = format!(
            "the spec changed after the restore started and {what} would have to be created again from it; \
             create a new KubegresRestore instead"
        );
        self.fail_stop("SpecChangedAfterStart", &message)
    }

    /// Fails the restore when `activeDeadlineSeconds` passed; else requeues
    /// for the deadline.
    fn deadline_passed(&mut self) -> bool {
        let observed = self.observed;
        let (Some(seconds), Some(Time(start))) =
            (observed.restore.spec.active_deadline_seconds, &self.status.start_time)
        else {
            return false;
        };
        let deadline = add(*start, Duration::from_secs(u64::try_from(seconds).unwrap_or(0)));
        if observed.now >= deadline {
            self.fail(
                "DeadlineExceeded",
                &format!("the restore did not finish within activeDeadlineSeconds ({seconds} s)"),
                None,
            );
            return true;
        }
        self.requeue(until(observed.now, deadline));
        false
    }

    /// Moves the phase on `event`; an event that does not apply changes
    /// nothing and stops the flow.
    fn transition(&mut self, event: PhaseEvent) -> Flow {
        let phase = self.status.phase();
        let Some(next) = phase.next(event) else {
            return Flow::Stop;
        };
        if next == phase {
            return Flow::Stop;
        }
        self.status.set_phase(next);
        if !next.is_terminal() {
            self.condition(CONDITION_PROGRESSING, true, next.as_str(), next.stage());
        }
        if next != Phase::Failed {
            self.event(EventType::Normal, next.as_str(), next.stage());
        }
        Flow::Continue
    }

    fn succeed(&mut self) {
        self.transition(PhaseEvent::Finalized);
        let message = "the dump is restored; only the database is left";
        self.status.completion_time = Some(Time(self.observed.now));
        self.condition(CONDITION_READY, true, "Succeeded", message);
        self.condition(CONDITION_PROGRESSING, false, "Succeeded", message);
    }

    fn fail_stop(&mut self, reason: &str, message: &str) -> Flow {
        self.fail(reason, message, None);
        Flow::Stop
    }

    /// Ends the restore: Failed, with the reason, and its objects deleted.
    fn fail(&mut self, reason: &str, message: &str, failure: Option<RestoreFailure>) {
        self.status.set_phase(Phase::Failed);
        self.status.completion_time = Some(Time(self.observed.now));
        self.status.failure = Some(failure.unwrap_or_else(|| RestoreFailure {
            reason: reason.to_string(),
            message: message.to_string(),
            ..Default::default()
        }));
        self.condition(CONDITION_FAILED, true, reason, message);
        self.condition(CONDITION_PROGRESSING, false, reason, message);
        self.condition(CONDITION_READY, false, reason, message);
        if !self.observed.pods.is_empty() || self.observed.children.any() {
            self.actions.push(Action::DeleteChildren);
        }
        self.event(EventType::Warning, reason, message);
    }

    fn condition(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let generation = self.status.observed_generation.or(self.observed.restore.metadata.generation);
        set_condition(
            &mut self.status.conditions,
            Condition {
                type_: type_.to_string(),
                status: if status { "True" } else { "False" }.to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                observed_generation: generation,
                last_transition_time: Time(self.observed.now),
            },
        );
    }

    fn event(&mut self, type_: EventType, reason: &str, message: &str) {
        self.actions.push(Action::EmitEvent { type_, reason: reason.to_string(), message: message.to_string() });
    }

    fn requeue(&mut self, after: Duration) {
        self.requeue = self.requeue.min(Requeue::After(after));
    }
}

fn not_ours(cluster: &str) -> String {
    format!("a Kubegres cluster named {cluster} already exists and was not created by this restore")
}

fn add(at: Timestamp, wait: Duration) -> Timestamp {
    let millis = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millisecond(at.as_millisecond().saturating_add(millis)).unwrap_or(Timestamp::MAX)
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(at.as_millisecond() - now.as_millisecond()).unwrap_or(0))
}
