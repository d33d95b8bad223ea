//! pg_dump archives (custom, tar, directory): the header and table of
//! contents as pg_backup_archiver.c writes them, the files a directory dump
//! consists of, which pg_restore can read which archive version, a progress
//! tee that follows the archive's data as it streams into pg_restore, and a
//! summary for `restore-agent inspect`.
//!
//! Archive versions 1.12 to 1.16 are read (pg_dump 9.0 to 18). What each
//! version added, from `pg_backup_archiver.h`:
//!
//! | version | added | first pg_dump |
//! |---|---|---|
//! | 1.12 | separate BLOB entries | 9.0 |
//! | 1.13 | search_path behaviour (CVE-2018-1058 fix) | 9.3.22, 9.4.17, 9.5.12, 9.6.8, 10.3 |
//! | 1.14 | `tableam` in TOC entries | 12 |
//! | 1.15 | compression algorithm byte in the header (was a gzip level) | 16 |
//! | 1.16 | BLOB METADATA entries, several BLOBS entries, `relkind` | 17 (18 still writes 1.16) |

mod header;
mod rows;
mod summary;
mod tar_header;
mod tee;
mod toc;

pub use header::ArchiveHeader;
pub(crate) use header::read_header;
pub(crate) use rows::LineCounter;
pub(crate) use summary::{ArchiveSummary, summarize};
pub(crate) use tee::ArchiveProgress;
pub use toc::{DirectoryLayout, directory_layout};
pub(crate) use toc::{TOC_NAMES, TocEntry, large_object_files, read_header_and_toc};

/// The archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive ends before its header or table of contents is complete.
    #[error("the archive is truncated: {0}")]
    Truncated(String),
    /// The bytes do not follow pg_dump's archive layout.
    #[error("the archive is corrupt: {0}")]
    Corrupt(String),
    /// An archive version this agent does not read.
    #[error("unsupported archive version {version}: {detail}")]
    UnsupportedVersion { version: String, detail: String },
    /// Reading the underlying stream failed (source or decompression error).
    #[error("reading the archive failed: {0}")]
    Read(#[source] std::io::Error),
}

impl ArchiveError {
    /// A short CamelCase category for status and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ArchiveError::Truncated(_) => "TruncatedDump",
            ArchiveError::Corrupt(_) => "CorruptDump",
            ArchiveError::UnsupportedVersion { .. } => "UnsupportedArchiveVersion",
            // What failed below (the source, a decoder) is for the reader's owner to tell.
            ArchiveError::Read(_) => "SourceReadError",
        }
    }
}

/// An archive version as `major.minor` (the revision never mattered to pg_restore).
pub(crate) fn version_string(version: (u8, u8, u8)) -> String {
    format!("{}.{}", version.0, version.1)
}

/// The oldest pg_restore major version that reads archives of `version`.
///
/// pg_restore reads every archive version up to its own `K_VERS_MAX`
/// (`1.<its minor>.255`), so this is the first major release that wrote the
/// version. For 1.13 that is the 2018 minor releases of 9.3 to 10 (9.3.22,
/// 9.4.17, 9.5.12, 9.6.8, 10.3); 9.x majors are all reported as 9. Versions
/// newer than 1.16 are unknown: PostgreSQL 18 still writes 1.16, so they need
/// at least 19.
pub(crate) fn min_pg_restore_major(version: (u8, u8, u8)) -> u32 {
    match (version.0, version.1) {
        (0, _) => 7,
        (1, 0..=11) => 8,
        (1, 12 | 13) => 9,
        (1, 14) => 12,
        (1, 15) => 16,
        (1, 16) => 17,
        _ => 19,
    }
}

/// Whether pg_restore of major version `installed_major` (9 for any 9.x)
/// reads archives of `version`.
pub(crate) fn pg_restore_can_read(installed_major: u32, version: (u8, u8, u8)) -> bool {
    installed_major >= min_pg_restore_major(version)
}

#[cfg(test)]
mod tests;
