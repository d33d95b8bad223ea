//! The agent's documented exit codes. The operator reads them from the
//! terminated restore container to decide between retrying and failing.

use serde::{Deserialize, Serialize};

/// How a `restore-agent` process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ExitCode {
    /// The restore (or inspection) completed.
    Success = 0,
    /// A bug or an unexpected condition inside the agent.
    Internal = 1,
    /// Bad command line: unknown flag, malformed URL, conflicting options.
    Usage = 2,
    /// The source cannot be read or is not a usable dump: missing, 403/404,
    /// empty, corrupt, truncated, checksum mismatch, unknown format.
    Source = 3,
    /// The target failed: cannot connect, authentication, missing database,
    /// an SQL error during the restore.
    Target = 4,
    /// The target is not empty and `--allow-non-empty` was not given; nothing
    /// was written.
    TargetNotEmpty = 5,
    /// A required tool is missing or too old for the dump (for example the
    /// installed pg_restore cannot read the archive's format version).
    Tooling = 6,
}

impl ExitCode {
    /// Every code, in numeric order (for documentation and tests).
    pub const ALL: [ExitCode; 7] = [
        ExitCode::Success,
        ExitCode::Internal,
        ExitCode::Usage,
        ExitCode::Source,
        ExitCode::Target,
        ExitCode::TargetNotEmpty,
        ExitCode::Tooling,
    ];

    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Maps a process exit status back to the code, if it is one of ours.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        Self::ALL.into_iter().find(|c| i32::from(c.code()) == code)
    }

    /// Whether another attempt could succeed without anyone changing anything.
    /// A corrupt dump or a refused target will fail the same way again; a
    /// connection that dropped or an internal error might not.
    pub fn is_retryable(self) -> bool {
        matches!(self, ExitCode::Internal | ExitCode::Target)
    }

    /// One-line description, used in `--help` and the README.
    pub fn describe(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Internal => "internal error",
            ExitCode::Usage => "bad usage",
            ExitCode::Source => "the source cannot be read or is not a valid dump",
            ExitCode::Target => "the target failed (connection, authentication, SQL error)",
            ExitCode::TargetNotEmpty => "the target is not empty (see --allow-non-empty)",
            ExitCode::Tooling => "pg_restore/psql missing or too old for the dump",
        }
    }
}

/// Whether an SQL error with this SQLSTATE could go away on another attempt:
/// the connection broke (class 08), the transaction was rolled back by a
/// conflict (40), the server ran short of resources (53), was shut down or
/// is starting (57), or hit an I/O error (58). Any other class (bad data,
/// syntax, a missing object, a violated constraint) fails the same way again.
pub fn is_transient_sqlstate(sqlstate: &str) -> bool {
    matches!(sqlstate.get(..2), Some("08" | "40" | "53" | "57" | "58"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_transient_sqlstates_are_worth_a_retry() {
        for transient in ["08006", "40001", "40P01", "53100", "57P01", "58030"] {
            assert!(super::is_transient_sqlstate(transient), "{transient}");
        }
        for deterministic in ["22P02", "42601", "42P07", "23505", "XX000", "", "4"] {
            assert!(!super::is_transient_sqlstate(deterministic), "{deterministic}");
        }
    }

    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for c in ExitCode::ALL {
            assert_eq!(ExitCode::from_code(i32::from(c.code())), Some(c));
        }
        let mut seen: Vec<u8> = ExitCode::ALL.iter().map(|c| c.code()).collect();
        seen.dedup();
        assert_eq!(seen.len(), ExitCode::ALL.len());
        assert_eq!(ExitCode::from_code(42), None);
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(ExitCode::Target.is_retryable());
        assert!(!ExitCode::Source.is_retryable());
        assert!(!ExitCode::TargetNotEmpty.is_retryable());
        assert!(!ExitCode::Usage.is_retryable());
    }
}
