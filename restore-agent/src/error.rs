//! The agent's top-level error: every failure maps to one documented exit code
//! and one short reason, and renders as one sentence that names the problem.

use proto::{ExitCode, RestoreFailure};

use crate::archive::ArchiveError;
use crate::decompress::DecompressError;
use crate::engine::pg_tools::ToolingError;
use crate::source::SourceError;
use crate::sql::SplitError;
use crate::target::TargetError;

/// Everything that can end a run of the agent with a non-zero status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or configuration.
    #[error("{0}")]
    Usage(String),
    /// The source could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The bytes are not a usable dump (corrupt, truncated, unknown format).
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// The target failed or refused.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// pg_restore/psql missing or unusable for this dump.
    #[error(transparent)]
    Tooling(#[from] ToolingError),
    /// A bug or an unexpected condition.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The dump itself is unusable.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("the source is empty (0 bytes)")]
    Empty,
    #[error("the source is not a PostgreSQL dump: {0}")]
    NotADump(String),
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Script(#[from] SplitError),
    #[error("the dump is truncated: {0}")]
    Truncated(String),
    #[error("checksum mismatch: expected sha256 {expected}, the source has {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("error reading the source: {0}")]
    Read(#[source] std::io::Error),
}

impl DumpError {
    pub fn reason(&self) -> &'static str {
        match self {
            DumpError::Empty => "EmptySource",
            DumpError::NotADump(_) => "NotADump",
            DumpError::Decompress(e) => e.reason(),
            DumpError::Archive(e) => e.reason(),
            DumpError::Script(e) => e.reason(),
            DumpError::Truncated(_) => "TruncatedDump",
            DumpError::ChecksumMismatch { .. } => "ChecksumMismatch",
            DumpError::Read(_) => "SourceReadError",
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Source(_) | Error::Dump(_) => ExitCode::Source,
            Error::Target(TargetError::NotEmpty { .. } | TargetError::DatabaseExists { .. }) => {
                ExitCode::TargetNotEmpty
            }
            Error::Target(TargetError::Config(_)) => ExitCode::Usage,
            Error::Target(_) => ExitCode::Target,
            Error::Tooling(_) => ExitCode::Tooling,
            Error::Internal(_) => ExitCode::Internal,
        }
    }

    /// A short CamelCase category for status and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Usage(_) => "InvalidUsage",
            Error::Source(e) => e.reason(),
            Error::Dump(e) => e.reason(),
            Error::Target(e) => e.reason(),
            Error::Tooling(e) => e.reason(),
            Error::Internal(_) => "InternalError",
        }
    }

    /// The failure as the agent reports it in status and JSON output.
    pub fn to_failure(&self) -> RestoreFailure {
        let mut f = RestoreFailure {
            reason: self.reason().to_string(),
            message: self.to_string(),
            exit_code: Some(self.exit_code().code()),
            ..Default::default()
        };
        if let Error::Target(t) = self
            && let Some(sql) = t.sql_failure()
        {
            f.sqlstate = sql.sqlstate.clone();
            f.statement = Some(sql.statement.clone());
            f.line = sql.line;
        }
        if let Error::Dump(DumpError::Script(e)) = self {
            f.line = e.line();
        }
        f
    }
}

impl From<SplitError> for Error {
    fn from(e: SplitError) -> Self {
        Error::Dump(DumpError::Script(e))
    }
}

impl From<ArchiveError> for Error {
    fn from(e: ArchiveError) -> Self {
        Error::Dump(DumpError::Archive(e))
    }
}

impl From<DecompressError> for Error {
    fn from(e: DecompressError) -> Self {
        Error::Dump(DumpError::Decompress(e))
    }
}
