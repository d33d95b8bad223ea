//! Compression detected by magic bytes, and streaming decoders.
//!
//! gzip (every member of a multi-member file), zstd (every frame), lz4 frame
//! format, or none. Decoders are synchronous `Read`s: they run on the
//! blocking thread that also parses the dump.

use std::io::{self, BufRead, Read};

use proto::crd::CompressionChoice;

/// How the stored bytes are compressed, as detected (or forced with
/// `--compression`, a [`CompressionChoice`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Lz4,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const LZ4_MAGIC: &[u8] = &[0x04, 0x22, 0x4d, 0x18];

impl Compression {
    /// Detects the compression from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(LZ4_MAGIC) {
            Compression::Lz4
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }
}

/// The compression to use for a stream starting with `head`: the forced
/// one, or the one its magic bytes tell.
pub fn resolve(choice: CompressionChoice, head: &[u8]) -> Compression {
    match choice {
        CompressionChoice::Auto => Compression::detect(head),
        CompressionChoice::None => Compression::None,
        CompressionChoice::Gzip => Compression::Gzip,
        CompressionChoice::Zstd => Compression::Zstd,
        CompressionChoice::Lz4 => Compression::Lz4,
    }
}

/// A decoder failed: the compressed stream is corrupt or ends early.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("the {compression} stream is truncated: it ends before its end marker")]
    Truncated { compression: &'static str },
    #[error("the {compression} stream is corrupt: {source}")]
    Corrupt {
        compression: &'static str,
        #[source]
        source: io::Error,
    },
}

impl DecompressError {
    pub fn reason(&self) -> &'static str {
        match self {
            DecompressError::Truncated { .. } => "TruncatedDump",
            DecompressError::Corrupt { .. } => "CorruptDump",
        }
    }

    /// Classifies an I/O error raised by a decoder of `compression`.
    pub fn from_io(compression: Compression, e: io::Error) -> DecompressError {
        let name = compression.name();
        let text = e.to_string().to_ascii_lowercase();
        if e.kind() == io::ErrorKind::UnexpectedEof
            || text.contains("unexpected end")
            || text.contains("incomplete")
            || text.contains("truncated")
        {
            DecompressError::Truncated { compression: name }
        } else {
            DecompressError::Corrupt { compression: name, source: e }
        }
    }
}

/// Wraps `inner` in the decoder for `compression`.
pub fn decoder<'a, R: BufRead + Send + 'a>(
    compression: Compression,
    inner: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(inner),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(inner)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(inner)?;
            // pg_dump --compress=zstd and `zstd --long` may use windows above the default limit.
            d.window_log_max(31)?;
            Box::new(ZstdEofCheck { inner: d })
        }
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(inner)),
    })
}

/// zstd's streaming decoder returns a clean EOF when the input stops in the
/// middle of a frame; this wrapper turns that into an error by checking that
/// the decoder finished its last frame.
struct ZstdEofCheck<'a, R: BufRead> {
    inner: zstd::stream::read::Decoder<'a, R>,
}

impl<R: BufRead> Read for ZstdEofCheck<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        // EOF from the decoder: the underlying reader must be exhausted *and*
        // the last frame complete. zstd reports an incomplete frame as an
        // error on most versions; double-check that no input is left over.
        let rest = self.inner.get_mut().fill_buf()?;
        if !rest.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "trailing bytes after the last zstd frame"));
        }
        Ok(0)
    }
}

/// Maps decoder errors to [`DecompressError`] while reading, so the pipeline
/// can tell a corrupt stream from a failing source.
pub struct Decoded<'a> {
    inner: Box<dyn Read + Send + 'a>,
    compression: Compression,
}

impl<'a> Decoded<'a> {
    pub fn new(compression: Compression, inner: Box<dyn Read + Send + 'a>) -> Self {
        Decoded { inner, compression }
    }
}

impl Read for Decoded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if self.compression == Compression::None || crate::source::is_source_error(&e) {
                e
            } else {
                io::Error::other(DecompressError::from_io(self.compression, e))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(c: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Decoded::new(c, decoder(c, io::BufReader::new(data)).unwrap()).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn detects_by_magic() {
        assert_eq!(Compression::detect(&gzip(b"x")), Compression::Gzip);
        assert_eq!(Compression::detect(&zstd::encode_all(&b"x"[..], 1).unwrap()), Compression::Zstd);
        assert_eq!(
            Compression::detect(&lz4_flex::frame::FrameEncoder::new(Vec::new()).finish().unwrap()),
            Compression::Lz4
        );
        assert_eq!(Compression::detect(b"--\n-- PostgreSQL"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }

    #[test]
    fn gzip_reads_every_member() {
        let mut two = gzip(b"first;\n");
        two.extend(gzip(b"second;\n"));
        assert_eq!(read_all(Compression::Gzip, &two).unwrap(), b"first;\nsecond;\n");
    }

    #[test]
    fn truncated_streams_are_errors() {
        let payload: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let gz = gzip(&payload);
        let zs = zstd::encode_all(&payload[..], 3).unwrap();
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(&payload).unwrap();
        let lz = lz.finish().unwrap();
        for (c, bytes) in [(Compression::Gzip, gz), (Compression::Zstd, zs), (Compression::Lz4, lz)] {
            let cut = &bytes[..bytes.len() / 2];
            let err = read_all(c, cut).expect_err(&format!("{c:?} truncated must fail"));
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<DecompressError>());
            assert!(matches!(inner, Some(DecompressError::Truncated { .. })), "{c:?}: {err}");
            assert_eq!(read_all(c, &bytes).unwrap(), payload);
        }
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let payload = b"CREATE TABLE t (a int);\n".repeat(1000);
        let mut gz = gzip(&payload);
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        gz[mid + 1] ^= 0xff;
        assert!(read_all(Compression::Gzip, &gz).is_err());
        // Frames with a content checksum, as the zstd CLI and pg_dump write them.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(true).unwrap();
        enc.write_all(&payload).unwrap();
        let mut zs = enc.finish().unwrap();
        let mid = zs.len() / 2;
        zs[mid] ^= 0xff;
        assert!(read_all(Compression::Zstd, &zs).is_err());
        let mut lz = lz4_flex::frame::FrameEncoder::with_frame_info(
            lz4_flex::frame::FrameInfo::new().content_checksum(true),
            Vec::new(),
        );
        lz.write_all(&payload).unwrap();
        let mut lz = lz.finish().unwrap();
        let mid = lz.len() / 2;
        lz[mid] ^= 0xff;
        assert!(read_all(Compression::Lz4, &lz).is_err());
    }
}
