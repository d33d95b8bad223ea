//! The contract between the kubegres-restore operator and its restore agent.
//!
//! Types and pure functions only: no client code, no I/O. The agent writes
//! [`RestoreProgress`] and [`RestoreFailure`]; the operator reads them and the
//! agent's [`ExitCode`] to decide what happens next.

pub mod crd;
mod exit;
mod progress;

pub use crd::{KubegresRestore, KubegresRestoreSpec, KubegresRestoreStatus, OPERATOR_FIELD_MANAGER, Phase};
pub use exit::{ExitCode, is_transient_sqlstate};
pub use progress::{RestoreFailure, RestoreProgress, Section, redact_secrets, statement_start};

/// Field manager the restore agent uses for its server-side-apply patches of
/// `status.progress` and `status.failure`.
pub const AGENT_FIELD_MANAGER: &str = "kubegres-restore-agent";
