//! The archive header (`WriteHead`/`ReadHead` in pg_backup_archiver.c) and
//! the primitive readers every part of the archive is made of: `ReadInt` (a
//! sign byte, then `int_size` bytes, least significant first), `ReadStr` (an
//! int length, -1 for NULL, then the bytes) and `ReadOffset` (a flag byte,
//! then `off_size` bytes).

use std::io::{self, Read};

use serde::Serialize;

use super::ArchiveError;
use crate::format::Format;

/// `MAKE_ARCHIVE_VERSION(1, minor, 0)`.
pub(super) const fn vers(minor: u8) -> u32 {
    (1 << 16) | ((minor as u32) << 8)
}

pub(super) const K_VERS_1_12: u32 = vers(12);
pub(super) const K_VERS_1_14: u32 = vers(14);
pub(super) const K_VERS_1_15: u32 = vers(15);
pub(super) const K_VERS_1_16: u32 = vers(16);
/// The newest version whose TOC layout this module knows (`K_VERS_1_16.255`).
pub(super) const K_VERS_MAX_KNOWN: u32 = K_VERS_1_16 | 255;

/// `ArchiveFormat` codes in the header (pg_backup.h). A directory dump's
/// toc.dat carries the tar code: "the directory is compatible with 'tar'".
const ARCH_CUSTOM: u8 = 1;
const ARCH_TAR: u8 = 3;
const ARCH_DIRECTORY: u8 = 5;

/// How the archive's data is compressed (`pg_compress_algorithm`; before
/// archive 1.15 a zlib level, where 0 meant none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "algorithm")]
pub enum ArchiveCompression {
    None,
    /// zlib/gzip; `level` only in archives before 1.15 (-1 is zlib's default).
    Gzip {
        level: Option<i32>,
    },
    Lz4,
    Zstd,
}

impl ArchiveCompression {
    /// The suffix pg_dump adds to a directory dump's data files.
    pub fn file_suffix(self) -> &'static str {
        match self {
            ArchiveCompression::None => "",
            ArchiveCompression::Gzip { .. } => ".gz",
            ArchiveCompression::Lz4 => ".lz4",
            ArchiveCompression::Zstd => ".zst",
        }
    }

    /// `none`, `gzip`, `gzip level 6`, `lz4`, `zstd`.
    pub fn describe(self) -> String {
        match self {
            ArchiveCompression::None => "none".into(),
            ArchiveCompression::Gzip { level: Some(l) } if l > 0 => format!("gzip level {l}"),
            ArchiveCompression::Gzip { .. } => "gzip".into(),
            ArchiveCompression::Lz4 => "lz4".into(),
            ArchiveCompression::Zstd => "zstd".into(),
        }
    }
}

/// What the archive header says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveHeader {
    /// Archive format version (major, minor, revision), e.g. (1, 14, 0).
    pub version: (u8, u8, u8),
    /// Bytes per integer (4 on every platform pg_dump runs on).
    pub int_size: u8,
    /// Bytes per file offset.
    pub off_size: u8,
    /// Custom, or Tar for a tar archive and for a directory dump's toc.dat
    /// (both carry the tar code; callers that know they read a directory
    /// may set `Directory`).
    pub format: Format,
    /// `none`, `gzip`, `gzip level N`, `lz4` or `zstd`.
    pub compression: String,
    /// The same, as a value.
    pub compression_algorithm: ArchiveCompression,
    /// When pg_dump started, in the dumping machine's local time (`YYYY-MM-DD HH:MM:SS`).
    pub created: String,
    /// The database that was dumped.
    pub dbname: String,
    /// The server's version string (e.g. `15.18 (Debian 15.18-0+deb12u1)`).
    pub server_version: String,
    /// pg_dump's version string.
    pub pg_dump_version: String,
}

impl ArchiveHeader {
    /// The version as pg_backup_archiver.h encodes it.
    pub(super) fn version_code(&self) -> u32 {
        ((self.version.0 as u32) << 16) | ((self.version.1 as u32) << 8) | self.version.2 as u32
    }

    /// `1.14`.
    pub fn version_string(&self) -> String {
        super::version_string(self.version)
    }

    /// pg_dump's version number alone (`15.18` of `15.18 (Debian ...)`).
    pub fn pg_dump_version_number(&self) -> &str {
        self.pg_dump_version.split_whitespace().next().unwrap_or("")
    }
}

/// Reads pg_dump's primitives from a stream, remembering what it is reading
/// so that a short read says where the archive ends.
pub(super) struct Primitives<'r, R: Read + ?Sized> {
    inner: &'r mut R,
    pub(super) int_size: usize,
    pub(super) off_size: usize,
    /// What is being read, for "it ends inside ..." messages.
    pub(super) context: String,
}

impl<'r, R: Read + ?Sized> Primitives<'r, R> {
    pub(super) fn new(inner: &'r mut R) -> Self {
        Primitives { inner, int_size: 4, off_size: 8, context: "the header".into() }
    }

    fn truncated(&self) -> ArchiveError {
        ArchiveError::Truncated(format!("it ends inside {}", self.context))
    }

    fn map_io(&self, e: io::Error) -> ArchiveError {
        if e.kind() == io::ErrorKind::UnexpectedEof { self.truncated() } else { ArchiveError::Read(e) }
    }

    pub(super) fn bytes(&mut self, buf: &mut [u8]) -> Result<(), ArchiveError> {
        self.inner.read_exact(buf).map_err(|e| self.map_io(e))
    }

    pub(super) fn byte(&mut self) -> Result<u8, ArchiveError> {
        let mut b = [0u8; 1];
        self.bytes(&mut b)?;
        Ok(b[0])
    }

    /// `ReadInt`: sign byte, then `int_size` bytes, least significant first.
    pub(super) fn int(&mut self) -> Result<i64, ArchiveError> {
        let sign = self.byte()?;
        let mut buf = [0u8; 8];
        let n = self.int_size;
        self.bytes(&mut buf[..n])?;
        let value = i64::from_le_bytes(buf);
        Ok(if sign != 0 { -value } else { value })
    }

    /// An int that must fit in a C `int`.
    pub(super) fn int32(&mut self) -> Result<i32, ArchiveError> {
        let v = self.int()?;
        i32::try_from(v).map_err(|_| ArchiveError::Corrupt(format!("integer {v} out of range in {}", self.context)))
    }

    /// `ReadStr`: NULL for a negative length. Invalid UTF-8 (a dump of a
    /// LATIN1 database) is replaced, as the text is only shown to people.
    pub(super) fn string(&mut self) -> Result<Option<String>, ArchiveError> {
        let Some(len) = self.string_len()? else {
            return Ok(None);
        };
        // Grows as bytes arrive: a corrupt length cannot allocate gigabytes up front.
        let mut buf = Vec::with_capacity(len.min(64 * 1024) as usize);
        let got = (&mut *self.inner).take(len).read_to_end(&mut buf).map_err(|e| self.map_io(e))?;
        if (got as u64) < len {
            return Err(self.truncated());
        }
        Ok(Some(match String::from_utf8(buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }))
    }

    /// A string that is read past without being kept (definitions, drop statements).
    pub(super) fn skip_string(&mut self) -> Result<bool, ArchiveError> {
        let Some(len) = self.string_len()? else {
            return Ok(false);
        };
        let got = io::copy(&mut (&mut *self.inner).take(len), &mut io::sink()).map_err(|e| self.map_io(e))?;
        if got < len {
            return Err(self.truncated());
        }
        Ok(true)
    }

    fn string_len(&mut self) -> Result<Option<u64>, ArchiveError> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        if len > i32::MAX as i64 {
            return Err(ArchiveError::Corrupt(format!("string length {len} in {}", self.context)));
        }
        Ok(Some(len as u64))
    }

    /// `ReadOffset`: (flag, offset).
    pub(super) fn offset(&mut self) -> Result<(u8, u64), ArchiveError> {
        let flag = self.byte()?;
        let mut value = 0u64;
        for i in 0..self.off_size {
            let b = self.byte()?;
            if i < 8 {
                value |= (b as u64) << (8 * i);
            } else if b != 0 {
                return Err(ArchiveError::Corrupt(format!("file offset too large in {}", self.context)));
            }
        }
        Ok((flag, value))
    }
}

/// Reads the header of a custom archive or of a toc.dat (tar and directory).
pub fn read_header<R: Read + ?Sized>(r: &mut R) -> Result<ArchiveHeader, ArchiveError> {
    let mut p = Primitives::new(r);
    parse_header(&mut p)
}

pub(super) fn parse_header<R: Read + ?Sized>(p: &mut Primitives<'_, R>) -> Result<ArchiveHeader, ArchiveError> {
    p.context = "the header".into();
    let mut magic = [0u8; 5];
    p.bytes(&mut magic)?;
    if &magic != b"PGDMP" {
        return Err(ArchiveError::Corrupt("it does not start with PGDMP, the mark of pg_dump archives".into()));
    }
    let vmaj = p.byte()?;
    let vmin = p.byte()?;
    let vrev = p.byte()?;
    let version = (vmaj, vmin, vrev);
    let code = ((vmaj as u32) << 16) | ((vmin as u32) << 8) | vrev as u32;
    if vmaj != 1 || code < K_VERS_1_12 {
        return Err(ArchiveError::UnsupportedVersion {
            version: super::version_string(version),
            detail: "it was written by pg_dump older than 9.0; this agent reads archive versions 1.12 to 1.16 (pg_dump 9.0 to 18)".into(),
        });
    }
    let int_size = p.byte()?;
    if !(1..=8).contains(&int_size) {
        return Err(ArchiveError::Corrupt(format!("integer size {int_size} in the header")));
    }
    p.int_size = int_size as usize;
    let off_size = p.byte()?;
    if !(1..=16).contains(&off_size) {
        return Err(ArchiveError::Corrupt(format!("offset size {off_size} in the header")));
    }
    p.off_size = off_size as usize;
    let format = match p.byte()? {
        ARCH_CUSTOM => Format::Custom,
        ARCH_TAR => Format::Tar,
        ARCH_DIRECTORY => Format::Directory,
        other => {
            return Err(ArchiveError::Corrupt(format!(
                "archive format code {other} (pg_restore reads 1 custom, 3 tar)"
            )));
        }
    };
    let compression_algorithm = if code >= K_VERS_1_15 {
        match p.byte()? {
            0 => ArchiveCompression::None,
            1 => ArchiveCompression::Gzip { level: None },
            2 => ArchiveCompression::Lz4,
            3 => ArchiveCompression::Zstd,
            other => {
                return Err(ArchiveError::Corrupt(format!("unknown compression algorithm code {other} in the header")));
            }
        }
    } else {
        match p.int32()? {
            0 => ArchiveCompression::None,
            level => ArchiveCompression::Gzip { level: Some(level) },
        }
    };
    let mut tm = [0i32; 7];
    for v in tm.iter_mut() {
        *v = p.int32()?;
    }
    let [sec, min, hour, mday, mon, year, _isdst] = tm;
    let created =
        format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", year as i64 + 1900, mon as i64 + 1, mday, hour, min, sec);
    let dbname = p.string()?.unwrap_or_default();
    // Both exist since archive 1.10.
    let server_version = p.string()?.unwrap_or_default();
    let pg_dump_version = p.string()?.unwrap_or_default();
    Ok(ArchiveHeader {
        version,
        int_size,
        off_size,
        format,
        compression: compression_algorithm.describe(),
        compression_algorithm,
        created,
        dbname,
        server_version,
        pg_dump_version,
    })
}

#[cfg(test)]
pub(super) mod build {
    //! Writes archive primitives, for synthetic test archives.

    /// `WriteInt` with 4-byte integers.
    pub fn int(out: &mut Vec<u8>, v: i64) {
        out.push(u8::from(v < 0));
        out.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
    }

    /// `WriteStr`.
    pub fn string(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => {
                int(out, s.len() as i64);
                out.extend_from_slice(s.as_bytes());
            }
            None => int(out, -1),
        }
    }

    /// A custom-format header of `version` (minor) written by pg_dump `dump_version`.
    pub fn header(minor: u8, format: u8, dump_version: &str) -> Vec<u8> {
        let mut h = b"PGDMP".to_vec();
        h.extend_from_slice(&[1, minor, 0, 4, 8, format]);
        if minor >= 15 {
            h.push(3); // zstd
        } else {
            int(&mut h, 6);
        }
        for v in [5, 4, 3, 2, 0, 125, 0] {
            int(&mut h, v);
        }
        string(&mut h, Some("app"));
        string(&mut h, Some(dump_version));
        string(&mut h, Some(dump_version));
        h
    }
}
