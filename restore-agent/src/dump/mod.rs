//! Opening a dump, the stage `restore` and `inspect` share: the source is
//! resolved ([`crate::source`]), its stored bytes counted and, when asked,
//! hashed ([`crate::integrity`]), decompressed ([`crate::decompress`]) and
//! its format detected and reconciled with `--format` ([`crate::format`]).
//! What comes out is a stream positioned at its first decompressed byte, or
//! a directory-format dump on local disk.
//!
//! Its errors are [`DumpError`]s; [`trailer`] holds the one rule for
//! whether a script was written to its end.

mod detect;
mod error;
pub mod trailer;

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use proto::crd::{CompressionChoice, FormatChoice};
use tokio_util::io::SyncIoBridge;

pub use error::DumpError;

use crate::decompress::Compression;
use crate::format::{self, Format};
use crate::integrity::{ByteCounter, Digest, Hashing};
use crate::progress::Tracker;
use crate::source::{self, Resolved, SourceLocation, SourceOptions};

/// How to read the stream.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// `--compression`.
    pub compression: CompressionChoice,
    /// `--format`.
    pub format: FormatChoice,
    /// Whether to compute the SHA-256 of the stored bytes.
    pub hash: bool,
}

/// An opened dump.
pub enum Opened {
    Stream(DumpStream),
    Directory(DumpDirectory),
}

/// A single-stream dump, detected and ready to read.
pub struct DumpStream {
    /// The source as shown to a person (no credentials, no query string).
    pub display: String,
    /// The stored size, when known.
    pub size: Option<u64>,
    pub compression: Compression,
    pub format: Format,
    /// The first 64 KiB of decompressed data (also the first bytes `reader` yields).
    pub head: Vec<u8>,
    /// The decompressed dump from its first byte; read it on a blocking thread.
    pub reader: Box<dyn BufRead + Send>,
    /// The SHA-256 of the stored bytes, once `reader` reached the end (with [`ReadOptions::hash`]).
    pub digest: Digest,
}

/// A directory-format dump on local disk.
pub struct DumpDirectory {
    pub display: String,
    pub path: PathBuf,
    /// The sum of its files' sizes.
    pub size: Option<u64>,
    /// A remote dump's staging directory, never read: the dump lives as long as this.
    _staging: Option<tempfile::TempDir>,
}

/// Opens the dump at `location`: the stored bytes count into `counter` (and
/// `tracker`, which also learns the size and counts the decompressed bytes).
pub async fn open(
    location: &SourceLocation,
    source_options: &SourceOptions,
    read: ReadOptions,
    counter: Arc<ByteCounter>,
    tracker: Arc<Tracker>,
) -> Result<Opened, DumpError> {
    match source::resolve(location, source_options).await? {
        Resolved::Stream(opened) => {
            tracker.set_total(opened.size);
            let (hashing, digest) = Hashing::new(opened.reader, counter, read.hash);
            let bridge = SyncIoBridge::new(hashing);
            let detected =
                tokio::task::spawn_blocking(move || detect::detect(bridge, read.compression, read.format, tracker))
                    .await
                    .map_err(|e| DumpError::Internal(format!("reader thread failed: {e}")))??;
            Ok(Opened::Stream(DumpStream {
                display: opened.display,
                size: opened.size,
                compression: detected.compression,
                format: detected.format,
                head: detected.head,
                reader: detected.reader,
                digest,
            }))
        }
        Resolved::Directory { path, display, size, staging } => {
            format::resolve_directory(read.format)?;
            if let Some(s) = size {
                counter.add(s);
            }
            tracker.set_total(size);
            Ok(Opened::Directory(DumpDirectory { display, path, size, _staging: staging }))
        }
    }
}

#[cfg(test)]
mod tests;
