//! Why a dump cannot be read to its end, or is not a usable dump.

use std::io;

use crate::archive::ArchiveError;
use crate::decompress::DecompressError;
use crate::format::FormatError;
use crate::integrity::ChecksumError;
use crate::source::{SourceError, SourceIoError};
use crate::sql::SplitError;

/// The dump is unusable, or reading it failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The source failed while the dump was opened or read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Empty, not a dump, or not the format `--format` asked for.
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The script cannot be split (see [`SplitError`]; its I/O errors become
    /// the source or decompression error they carry).
    #[error(transparent)]
    Script(SplitError),
    #[error("the dump is truncated: {0}")]
    Truncated(String),
    #[error(transparent)]
    Checksum(#[from] ChecksumError),
    #[error("error reading the source: {0}")]
    Read(#[source] io::Error),
    /// A bug: a reader thread failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DumpError {
    /// The error behind an I/O error from the reading side: the source's
    /// (marked by [`SourceIoError`]), a decoder's, or the I/O error itself.
    pub fn from_io(e: io::Error) -> DumpError {
        let e = match SourceIoError::take(e) {
            Ok(source) => return DumpError::Source(source),
            Err(e) => e,
        };
        if !e.get_ref().is_some_and(|inner| inner.is::<DecompressError>()) {
            return DumpError::Read(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<DecompressError>()) {
            Some(Ok(d)) => DumpError::Decompress(*d),
            Some(Err(other)) => DumpError::Read(io::Error::new(kind, other)),
            None => DumpError::Read(io::Error::from(kind)),
        }
    }

    /// Not a PostgreSQL dump, for the reason given.
    pub fn not_a_dump(what: impl Into<String>) -> DumpError {
        DumpError::Format(FormatError::NotADump(what.into()))
    }
}

impl From<SplitError> for DumpError {
    fn from(e: SplitError) -> Self {
        match e {
            SplitError::Io(io) => DumpError::from_io(io),
            other => DumpError::Script(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_become_what_they_carry() {
        let source = SourceError::Http { status: 500, url: "u".into() }.into_io();
        assert!(matches!(DumpError::from_io(source), DumpError::Source(SourceError::Http { status: 500, .. })));
        let decoder = io::Error::other(DecompressError::Truncated { compression: "gzip" });
        assert!(matches!(DumpError::from_io(decoder), DumpError::Decompress(DecompressError::Truncated { .. })));
        let other = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        assert_eq!(DumpError::from_io(other).to_string(), "error reading the source: pipe");
        let split = SplitError::Io(io::Error::other(DecompressError::Truncated { compression: "lz4" }));
        assert!(matches!(DumpError::from(split), DumpError::Decompress(_)));
    }
}
