//! Detection: compression by magic bytes, then the format from the first
//! decompressed bytes; and the mapping of reader errors to their category.

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::Arc;

use crate::decompress::{self, Compression, CompressionChoice, DecompressError};
use crate::error::{DumpError, Error};
use crate::format::{self, DumpFormat, FormatChoice};
use crate::integrity::SourceIoError;
use crate::progress::Tracker;
use crate::sql::SplitError;

/// How much decompressed text format detection looks at.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Buffer between the decoder and the splitter.
const READ_BUFFER: usize = 256 * 1024;

/// The stream after detection: what it is, and a reader positioned at its
/// first decompressed byte.
pub struct Prepared {
    pub compression: Compression,
    pub format: DumpFormat,
    /// The first [`HEAD_BYTES`] of decompressed data.
    pub head: Vec<u8>,
    pub reader: Box<dyn BufRead + Send>,
}

/// Detects compression and format (blocking: run on a blocking thread).
pub fn prepare<R: Read + Send + 'static>(
    raw: R,
    compression: CompressionChoice,
    format_choice: FormatChoice,
    tracker: Arc<Tracker>,
) -> Result<Prepared, Error> {
    let mut raw = BufReader::with_capacity(READ_BUFFER, raw);
    let magic = read_up_to(&mut raw, 8).map_err(map_io)?;
    if magic.is_empty() {
        return Err(DumpError::Empty.into());
    }
    let compression = compression.resolve(&magic);
    let raw = Cursor::new(magic).chain(raw);
    let decoder = decompress::decoder(compression, BufReader::with_capacity(READ_BUFFER, raw))
        .map_err(|e| Error::from(DecompressError::from_io(compression, e)))?;
    let mut decoded = Counted { inner: decompress::Decoded::new(compression, decoder), tracker };
    let head = read_up_to(&mut decoded, HEAD_BYTES).map_err(map_io)?;
    if head.is_empty() {
        return Err(DumpError::NotADump(format!("the {} stream decompresses to nothing", compression.name())).into());
    }
    let detected = format::detect(&head)?;
    let format = match (format_choice, detected) {
        (FormatChoice::Auto, d) => d,
        (FormatChoice::Plain, d @ (DumpFormat::Plain | DumpFormat::PgDumpAll)) => d,
        (FormatChoice::Custom, DumpFormat::Custom) => DumpFormat::Custom,
        (FormatChoice::Tar, DumpFormat::Tar) => DumpFormat::Tar,
        (choice, d) => {
            return Err(DumpError::NotADump(format!(
                "--format {} was given but the source is {}",
                format_name_choice(choice),
                format_name(d)
            ))
            .into());
        }
    };
    let reader = Box::new(BufReader::with_capacity(READ_BUFFER, Cursor::new(head.clone()).chain(decoded)));
    Ok(Prepared { compression, format, head, reader })
}

pub fn format_name(f: DumpFormat) -> &'static str {
    match f {
        DumpFormat::Plain => "a plain SQL dump",
        DumpFormat::PgDumpAll => "a pg_dumpall script",
        DumpFormat::Custom => "a custom-format archive",
        DumpFormat::Directory => "a directory-format dump",
        DumpFormat::Tar => "a tar-format archive",
    }
}

pub(super) fn format_name_choice(f: FormatChoice) -> &'static str {
    match f {
        FormatChoice::Auto => "auto",
        FormatChoice::Plain => "plain",
        FormatChoice::Custom => "custom",
        FormatChoice::Directory => "directory",
        FormatChoice::Tar => "tar",
    }
}

/// Maps a splitter error, unwrapping source and decompression failures.
pub fn split_error(e: SplitError) -> Error {
    match e {
        SplitError::Io(io) => map_io(io),
        other => other.into(),
    }
}

/// Maps an I/O error from the reading side to the right category.
pub fn map_io(e: io::Error) -> Error {
    let kind = e.kind();
    let Some(inner) = e.into_inner() else {
        return DumpError::Read(io::Error::from(kind)).into();
    };
    let inner = match inner.downcast::<SourceIoError>() {
        Ok(s) => return Error::Source(s.0),
        Err(other) => other,
    };
    let inner = match inner.downcast::<DecompressError>() {
        Ok(d) => return Error::Dump(DumpError::Decompress(*d)),
        Err(other) => other,
    };
    DumpError::Read(io::Error::new(kind, inner)).into()
}

fn read_up_to<R: Read>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Counts decompressed bytes into the tracker.
struct Counted<R> {
    inner: R,
    tracker: Arc<Tracker>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tracker.add_uncompressed(n as u64);
        Ok(n)
    }
}
