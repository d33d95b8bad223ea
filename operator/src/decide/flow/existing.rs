//! The steps of targets the restore does not create: a new database in an
//! existing Kubegres cluster, and an existing PostgreSQL server.

use proto::Phase;
use proto::crd::{CONDITION_TARGET_READY, PhaseEvent};

use super::{Draft, Flow, TARGET_POLL};
use crate::decide::actions::Action;
use crate::decide::target::TargetConnection;

impl Draft<'_> {
    /// A `database` target needs its existing cluster: before the restore
    /// runs, wait for it (it may be created after the restore); once the
    /// restore ran, its loss ends the restore (the cluster is not ours to
    /// recreate).
    pub(super) fn database_cluster_gate(&mut self, cluster: &str) -> Flow {
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
    pub(super) fn database_step(&mut self, cluster: &str, connection: &TargetConnection) -> Flow {
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
    pub(super) fn wait_for_primary(&mut self, cluster: &str) -> Flow {
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
    pub(super) fn server_step(&mut self, connection: &TargetConnection) -> Flow {
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
}
