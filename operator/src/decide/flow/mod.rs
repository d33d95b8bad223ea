//! The restore's flow, phase by phase.

use std::time::Duration;

use proto::KubegresRestoreStatus;
use proto::crd::ResolvedTarget;

use super::actions::{Action, Requeue};
use super::names::FINALIZER;
use super::observed::Observed;
use super::target;

mod attempt;
mod cluster;
mod existing;
mod ownership;
mod record;

/// How long to wait for an object being deleted before looking again.
pub(super) const DELETION_POLL: Duration = Duration::from_secs(5);
/// How often to look at a target that is not ready yet (a primary that is
/// not Ready; a Service Kubegres has not created yet: neither is watched).
pub(super) const TARGET_POLL: Duration = Duration::from_secs(2);

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

        if restore.metadata.deletion_timestamp.is_some() {
            if !self.clean_up_deleted() && has_finalizer {
                self.actions.push(Action::RemoveFinalizer);
            }
            return;
        }
        if self.status.phase().is_terminal() {
            self.delete_leftovers();
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
        if let Some(message) = self.image_refused() {
            return self.fail("AgentImageNotAllowed", &message, None);
        }

        if self.status.phase() == proto::Phase::Pending {
            // A name of ours already taken ends the restore before it makes
            // anything (a cluster it would only delete again).
            if let Some(message) = self.name_clash() {
                return self.fail("NameInUse", &message, None);
            }
            self.start();
        }
        self.check_spec_changed();
        if self.deadline_passed() {
            return;
        }

        let desired = match target::desired_cluster_spec(&resolved, observed.copy_from_spec.as_ref()) {
            Ok(desired) => desired,
            Err(error) if error.is_transient() => {
                self.condition(proto::crd::CONDITION_TARGET_READY, false, error.reason(), &error.to_string());
                self.requeue(super::backoff(1, observed.jitter_seed));
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
        for _ in 0..proto::Phase::ALL.len() {
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

    /// `spec.agent.image` must be the operator's own agent image or match
    /// one of `--allowed-agent-images`: who may create a restore must not
    /// thereby run any image with the Secrets the restore Pod gets.
    fn image_refused(&self) -> Option<String> {
        let observed = self.observed;
        let image = observed.restore.spec.agent.as_ref()?.image.as_deref()?;
        if image == observed.agent_image || observed.allowed_images.iter().any(|allowed| image_matches(allowed, image))
        {
            return None;
        }
        Some(format!(
            "spec.agent.image {image} is not allowed by the operator (its own agent image {} and \
             --allowed-agent-images are): ask the operator's admin to allow it",
            observed.agent_image
        ))
    }
}

/// An allowlist entry matches an image exactly, or as a prefix when it ends
/// with `*` (`registry.example/restore-agent:*`).
pub(super) fn image_matches(allowed: &str, image: &str) -> bool {
    match allowed.strip_suffix('*') {
        Some(prefix) => image.starts_with(prefix),
        None => allowed == image,
    }
}
