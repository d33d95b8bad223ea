//! The agent's top-level error: every failure maps to one documented exit code
//! and one short reason, and renders as one sentence that names the problem.
//!
//! The modules below own their errors; this is the one place that decides
//! what each of them means to the caller: the exit code (`proto::ExitCode`)
//! and the reason written into the KubegresRestore's status.

use std::io;

use proto::{ExitCode, RestoreFailure};

use crate::archive::ArchiveError;
use crate::decompress::DecompressError;
use crate::dump::DumpError;
use crate::engine::EngineError;
use crate::engine::pg_tools::ToolingError;
use crate::format::FormatError;
use crate::integrity::ChecksumError;
use crate::postgres::TargetError;
use crate::source::{SourceError, SourceIoError};

/// Everything that can end a run of the agent with a non-zero status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or configuration.
    #[error("{0}")]
    Usage(String),
    /// The source could not be read.
    #[error(transparent)]
    Source(SourceError),
    /// The bytes are not a usable dump (corrupt, truncated, unknown format).
    #[error(transparent)]
    Dump(DumpError),
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
            Error::Dump(e) => dump_reason(e),
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

fn dump_reason(e: &DumpError) -> &'static str {
    match e {
        DumpError::Source(e) => e.reason(),
        DumpError::Format(FormatError::Empty) => "EmptySource",
        DumpError::Format(FormatError::NotADump(_)) => "NotADump",
        DumpError::Decompress(e) => e.reason(),
        DumpError::Archive(ArchiveError::Read(e)) => io_reason(e),
        DumpError::Archive(e) => e.reason(),
        DumpError::Script(e) => e.reason(),
        DumpError::Truncated(_) => "TruncatedDump",
        DumpError::Checksum(ChecksumError::Mismatch { .. }) => "ChecksumMismatch",
        DumpError::Checksum(ChecksumError::Unfinished) | DumpError::Internal(_) => "InternalError",
        DumpError::Read(_) => "SourceReadError",
    }
}

/// The reason of an I/O error from the reading side: the source's or the
/// decoder's it carries, else a read error.
fn io_reason(e: &io::Error) -> &'static str {
    let inner = e.get_ref();
    if let Some(s) = inner.and_then(|i| i.downcast_ref::<SourceIoError>()) {
        s.0.reason()
    } else if let Some(d) = inner.and_then(|i| i.downcast_ref::<DecompressError>()) {
        d.reason()
    } else {
        "SourceReadError"
    }
}

impl From<SourceError> for Error {
    fn from(e: SourceError) -> Self {
        Error::Source(e)
    }
}

impl From<DumpError> for Error {
    fn from(e: DumpError) -> Self {
        match e {
            DumpError::Source(s) => Error::Source(s),
            DumpError::Checksum(c @ ChecksumError::Unfinished) => Error::Internal(c.to_string()),
            DumpError::Internal(m) => Error::Internal(m),
            other => Error::Dump(other),
        }
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Target(t) => Error::Target(t),
            EngineError::Tooling(t) => Error::Tooling(t),
            EngineError::Dump(d) => d.into(),
            EngineError::Internal(m) => Error::Internal(m),
        }
    }
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Dump(DumpError::Format(e))
    }
}

impl From<ArchiveError> for Error {
    fn from(e: ArchiveError) -> Self {
        Error::Dump(DumpError::Archive(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_keeps_its_exit_code_and_reason() {
        let cases: Vec<(Error, ExitCode, &str)> = vec![
            (Error::Usage("x".into()), ExitCode::Usage, "InvalidUsage"),
            (SourceError::Invalid("x".into()).into(), ExitCode::Source, "InvalidSource"),
            (DumpError::Source(SourceError::Invalid("x".into())).into(), ExitCode::Source, "InvalidSource"),
            (FormatError::Empty.into(), ExitCode::Source, "EmptySource"),
            (FormatError::NotADump("x".into()).into(), ExitCode::Source, "NotADump"),
            (DumpError::Truncated("x".into()).into(), ExitCode::Source, "TruncatedDump"),
            (
                DumpError::from(ChecksumError::Mismatch { expected: "a".into(), actual: "b".into() }).into(),
                ExitCode::Source,
                "ChecksumMismatch",
            ),
            (DumpError::from(ChecksumError::Unfinished).into(), ExitCode::Internal, "InternalError"),
            (
                DumpError::Decompress(DecompressError::Truncated { compression: "gzip" }).into(),
                ExitCode::Source,
                "TruncatedDump",
            ),
            (
                ArchiveError::Read(io::Error::other(DecompressError::Truncated { compression: "zstd" })).into(),
                ExitCode::Source,
                "TruncatedDump",
            ),
            (
                ArchiveError::Read(SourceError::Http { status: 404, url: "u".into() }.into_io()).into(),
                ExitCode::Source,
                "SourceNotFound",
            ),
            (TargetError::NotEmpty { what: "x".into() }.into(), ExitCode::TargetNotEmpty, "TargetNotEmpty"),
            (TargetError::DatabaseExists { dbname: "x".into() }.into(), ExitCode::TargetNotEmpty, "TargetNotEmpty"),
            (TargetError::Config("x".into()).into(), ExitCode::Usage, "InvalidTarget"),
            (
                EngineError::Target(TargetError::Lost { target: "t".into(), message: "m".into() }).into(),
                ExitCode::Target,
                "ConnectionLost",
            ),
            (
                EngineError::Tooling(ToolingError::Missing { tool: "psql".into() }).into(),
                ExitCode::Tooling,
                "ToolMissing",
            ),
            (EngineError::Internal("x".into()).into(), ExitCode::Internal, "InternalError"),
        ];
        for (e, code, reason) in cases {
            assert_eq!((e.exit_code(), e.reason()), (code, reason), "{e}");
        }
    }

    #[test]
    fn internal_errors_say_so_once() {
        let e = Error::from(DumpError::from(ChecksumError::Unfinished));
        assert_eq!(e.to_string(), "internal error: the source was not read to its end; cannot verify its checksum");
        let e = Error::from(EngineError::Internal("the dump reader stopped without a verdict".into()));
        assert_eq!(e.to_string(), "internal error: the dump reader stopped without a verdict");
    }
}
