//! The restore's phases and the pure transition function between them.
//!
//! ```text
//! Pending --Started{creates target}--> CreatingTarget --TargetCreated--> WaitingForTarget
//!    |                                      |  ^                              |
//!    |                         TargetReady  |  +---------- TargetLost --------+ (and from Restoring)
//!    |                                      v                                 v
//!    +---------Started{existing}------> Restoring <------- TargetReady -------+
//!                                        |   ^ AttemptFailed{retry}
//!                         AgentSucceeded |   |
//!                                        v   |
//!                                      Finalizing --Finalized--> Succeeded
//! any phase that is not over --Fatal / AttemptFailed{no retry}--> Failed
//! ```

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a restore is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted; nothing done yet.
    #[default]
    Pending,
    /// Creating the target: the Kubegres cluster or the database.
    CreatingTarget,
    /// Waiting for the target to be ready (the new cluster's primary).
    WaitingForTarget,
    /// The restore agent runs.
    Restoring,
    /// The dump is restored; giving the cluster its desired spec and deleting
    /// what the restore created.
    Finalizing,
    /// Done: only the database is left.
    Succeeded,
    /// Failed for good; see the `Failed` condition and `status.failure`.
    Failed,
}

/// What the operator observed, as far as the phase is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhaseEvent {
    /// The operator starts the restore. `creates_target` is true for a new
    /// cluster or database, false for an existing PostgreSQL.
    Started {
        /// Whether there is a target to create first.
        creates_target: bool,
    },
    /// The target exists (the Kubegres resource was created).
    TargetCreated,
    /// The target is ready to be restored into.
    TargetReady,
    /// The target disappeared (a Kubegres cluster deleted mid-restore): the
    /// operator creates a fresh one. While finalizing, the restored data is
    /// gone with it, so the restore fails.
    TargetLost,
    /// The agent finished without error.
    AgentSucceeded,
    /// An attempt failed; `retry` when the failure is retryable and attempts
    /// are left.
    AttemptFailed {
        /// Whether another attempt follows.
        retry: bool,
    },
    /// The cluster has its desired spec and the restore's own objects are
    /// deleted.
    Finalized,
    /// Something ends the restore whatever the phase: the deadline passed, an
    /// invalid spec, a non-retryable error.
    Fatal,
}

impl Phase {
    /// Every phase, in the order a successful restore goes through them, then
    /// `Failed`.
    pub const ALL: [Phase; 7] = [
        Phase::Pending,
        Phase::CreatingTarget,
        Phase::WaitingForTarget,
        Phase::Restoring,
        Phase::Finalizing,
        Phase::Succeeded,
        Phase::Failed,
    ];

    /// The phase's name as stored in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::CreatingTarget => "CreatingTarget",
            Phase::WaitingForTarget => "WaitingForTarget",
            Phase::Restoring => "Restoring",
            Phase::Finalizing => "Finalizing",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    /// Whether the restore is over (Succeeded or Failed): nothing moves it
    /// any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    /// The phase as a sentence, for the fork's `status.stage`.
    pub fn stage(self) -> &'static str {
        match self {
            Phase::Pending => "Restore pending",
            Phase::CreatingTarget => "Creating the target",
            Phase::WaitingForTarget => "Waiting for the target to be ready",
            Phase::Restoring => "Restoring the dump",
            Phase::Finalizing => "Finalizing the restored cluster",
            Phase::Succeeded => "Restore completed",
            Phase::Failed => "Restore failed",
        }
    }

    /// The phase after `event`, or `None` when the event does not apply in
    /// this phase (the operator then leaves the phase as it is). Terminal
    /// phases accept no event.
    pub fn next(self, event: PhaseEvent) -> Option<Phase> {
        use Phase::*;
        use PhaseEvent as E;
        if self.is_terminal() {
            return None;
        }
        let next = match (self, event) {
            (_, E::Fatal) | (_, E::AttemptFailed { retry: false }) => Failed,
            (Pending, E::Started { creates_target: true }) => CreatingTarget,
            (Pending, E::Started { creates_target: false }) => Restoring,
            (CreatingTarget, E::TargetCreated) => WaitingForTarget,
            (CreatingTarget | WaitingForTarget, E::TargetReady) => Restoring,
            (CreatingTarget | WaitingForTarget | Restoring, E::TargetLost) => CreatingTarget,
            (Finalizing, E::TargetLost) => Failed,
            (Restoring, E::AttemptFailed { retry: true }) => Restoring,
            (Restoring, E::AgentSucceeded) => Finalizing,
            (Finalizing, E::Finalized) => Succeeded,
            _ => return None,
        };
        Some(next)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
