//! The blocking part of opening a dump: compression by magic bytes, then
//! the format from the first decompressed bytes.

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::Arc;

use proto::crd::{CompressionChoice, FormatChoice};

use super::DumpError;
use crate::decompress::{self, Compression, DecompressError};
use crate::format::{self, Format, FormatError};
use crate::progress::Tracker;

/// How much decompressed text format detection looks at.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Buffer between the decoder and the splitter.
const READ_BUFFER: usize = 256 * 1024;

/// The stream after detection: what it is, and a reader positioned at its
/// first decompressed byte.
pub struct Detected {
    pub compression: Compression,
    pub format: Format,
    /// The first [`HEAD_BYTES`] of decompressed data.
    pub head: Vec<u8>,
    pub reader: Box<dyn BufRead + Send>,
}

/// Detects compression and format (blocking: run on a blocking thread),
/// counting the decompressed bytes into `tracker`.
pub fn detect<R: Read + Send + 'static>(
    raw: R,
    compression: CompressionChoice,
    format_choice: FormatChoice,
    tracker: Arc<Tracker>,
) -> Result<Detected, DumpError> {
    let mut raw = BufReader::with_capacity(READ_BUFFER, raw);
    let magic = read_up_to(&mut raw, 8).map_err(DumpError::from_io)?;
    if magic.is_empty() {
        return Err(FormatError::Empty.into());
    }
    let compression = decompress::resolve(compression, &magic);
    let raw = Cursor::new(magic).chain(raw);
    let decoder = decompress::decoder(compression, BufReader::with_capacity(READ_BUFFER, raw))
        .map_err(|e| DecompressError::from_io(compression, e))?;
    let mut decoded = Counted { inner: decompress::Decoded::new(compression, decoder), tracker };
    let head = read_up_to(&mut decoded, HEAD_BYTES).map_err(DumpError::from_io)?;
    if head.is_empty() {
        return Err(DumpError::not_a_dump(format!("the {} stream decompresses to nothing", compression.name())));
    }
    let format = format::resolve(format_choice, &head)?;
    let reader = Box::new(BufReader::with_capacity(READ_BUFFER, Cursor::new(head.clone()).chain(decoded)));
    Ok(Detected { compression, format, head, reader })
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
