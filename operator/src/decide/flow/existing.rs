//! The steps of targets the restore does not create: a new database in an
//! existing Kubegres cluster, and an existing PostgreSQL server.

use proto::Phase;
use proto::crd::{CONDITION_TARGET_READY, PhaseEvent};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::record::add;
use super::{Draft, Flow, TARGET_POLL};
use crate::decide::target::TargetConnection;

impl Draft<'_> {
    /// A `database` target needs its existing cluster: before the restore
    /// runs, wait for it (it may be created after the restore); once the
    /// restore ran, its loss ends the restore (the cluster is not ours to
    /// recreate).
    pub(super) fn database_cluster_gate(&mut self, cluster: &str) -> Flow {
        let target = &self.observed.target;
        if target.api_missing {
            self.fail_stop(
                "KubegresNotInstalled",
                "the Kubegres API (kubegres.reactive-tech.io/v1, kind Kubegres) is not installed in this cluster: \
                 install the Kubegres operator first",
            );
            return Flow::Stop;
        }
        if target.exists && !target.deleted {
            return Flow::Continue;
        }
        match self.status.phase() {
            Phase::Pending | Phase::CreatingTarget | Phase::WaitingForTarget => {
                self.transition(PhaseEvent::Started { creates_target: true });
                let since = match &self.status.target_wait_start {
                    Some(since) => since.0,
                    None => {
                        self.status.target_wait_start = Some(Time(self.observed.now));
                        self.observed.now
                    }
                };
                let timeout = self.observed.restore.spec.target_ready_timeout();
                if self.observed.now >= add(since, timeout) {
                    let message = format!(
                        "the Kubegres cluster {cluster} did not exist within targetReadyTimeoutSeconds ({} s)",
                        timeout.as_secs()
                    );
                    self.condition(CONDITION_TARGET_READY, false, "ClusterNotFound", &message);
                    self.fail_stop("ClusterNotFound", &message);
                    return Flow::Stop;
                }
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
            Phase::WaitingForTarget => self.wait_for_target(cluster),
            // Each attempt's agent drops and recreates the database an
            // earlier attempt created (same marker): no target to recreate.
            Phase::Restoring => self.run_attempt(connection, None),
            Phase::Finalizing => self.server_step(connection),
            Phase::Succeeded | Phase::Failed => Flow::Stop,
        }
    }

    /// One step for an existing PostgreSQL server: nothing to create.
    pub(super) fn server_step(&mut self, connection: &TargetConnection) -> Flow {
        match self.status.phase() {
            Phase::Pending => self.transition(PhaseEvent::Started { creates_target: false }),
            Phase::Restoring => self.run_attempt(connection, None),
            Phase::Finalizing => {
                if !self.delete_leftovers() {
                    self.succeed();
                }
                Flow::Stop
            }
            _ => Flow::Stop,
        }
    }
}
