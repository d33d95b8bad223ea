//! The restore's flow, phase by phase.

use std::time::Duration;

use proto::crd::{CONDITION_TARGET_READY, ResolvedTarget};
use proto::{KubegresRestoreStatus, Phase};

use super::actions::{Action, Requeue};
use super::backoff::backoff;
use super::names::FINALIZER;
use super::observed::Observed;
use super::target::{self};

mod attempt;
mod cluster;
mod existing;
mod record;

/// How long to wait for an object being deleted before looking again.
pub(super) const DELETION_POLL: Duration = Duration::from_secs(5);
/// How often to look at a cluster whose primary is not ready yet (its Pods
/// are not watched).
pub(super) const TARGET_POLL: Duration = Duration::from_secs(10);

/// Whether the flow goes on to the new phase in the same decision.
pub(super) enum Flow {
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
}
