//! A progress tee for archive bytes on their way to pg_restore: it follows
//! the archive's structure without holding its data, and says which TOC
//! entry's data is streaming (and, where the data is readable, how many rows
//! went by).
//!
//! Custom archives: header and TOC, then data blocks (pg_backup_custom.c): a
//! block type byte (`BLK_DATA` 1, `BLK_BLOBS` 3) and the entry's dump id;
//! `BLK_DATA` is followed by length-prefixed chunks of the (compressed) data
//! up to a zero length, `BLK_BLOBS` by `<oid> <chunks...> 0` per large object
//! up to a zero OID. Tar archives: 512-byte headers, `toc.dat` first, then a
//! member per data entry (`3338.dat`) or large object (`blob_<oid>.dat`).
//!
//! The tee never fails: on anything unexpected it stops observing.

use std::collections::HashMap;

use proto::Section;

use super::header::ArchiveCompression;
use super::rows::RowCounter;
use super::tar_header::{TAR_BLOCK, tar_checksum, tar_number};
use super::toc::TocEntry;
use crate::format::DumpFormat;
use crate::progress::Tracker;

/// Where the tee reports what it sees (the [`Tracker`] in a restore).
pub trait ArchiveObserver {
    /// The object whose data is streaming (`TABLE DATA`, `shop`, `items`).
    fn object(&self, kind: &str, schema: Option<&str>, name: &str);
    /// Rows that went by.
    fn rows(&self, n: u64);
    /// The section the restore is in.
    fn section(&self, section: Section);
}

impl ArchiveObserver for Tracker {
    fn object(&self, kind: &str, schema: Option<&str>, name: &str) {
        self.set_object(kind, schema, name);
    }
    fn rows(&self, n: u64) {
        self.add_rows(n);
    }
    fn section(&self, section: Section) {
        self.set_section(section);
    }
}

/// The most TOC bytes the tee keeps while waiting for the TOC to complete.
const TOC_CAP: usize = 256 * 1024 * 1024;

struct DataEntry {
    desc: String,
    namespace: Option<String>,
    tag: String,
    /// Table data as COPY text (or INSERT lines): rows can be counted.
    table_rows: bool,
}

enum Mode {
    /// The first bytes, until custom or tar is known.
    Start(Vec<u8>),
    /// Custom: header and TOC, until they parse.
    CustomToc {
        buf: Vec<u8>,
        next_try: usize,
    },
    Custom(Custom),
    Tar(Tar),
    /// The archive's structure ended; later bytes are ignored.
    Done,
    Stopped,
}

enum Custom {
    BlockType,
    Int { acc: IntAcc, then: AfterInt },
    Chunk { left: u64, blob: bool },
}

#[derive(Clone, Copy)]
enum AfterInt {
    BlockId { blob: bool },
    DataLen,
    BlobOid,
    BlobLen,
}

enum Tar {
    Header { buf: Box<[u8; TAR_BLOCK]>, got: usize },
    Content { left: u64, pad: u64, member: Member },
    Padding { left: u64 },
}

enum Member {
    Toc(Vec<u8>),
    Data { rows: bool },
    Other,
}

/// Accumulates a pg_dump int (sign byte + `int_size` bytes, least significant first).
struct IntAcc {
    need: usize,
    got: usize,
    sign: bool,
    value: i64,
}

impl IntAcc {
    fn new(int_size: usize) -> IntAcc {
        IntAcc { need: 1 + int_size, got: 0, sign: false, value: 0 }
    }

    /// Takes bytes from `b`; returns the value once complete.
    fn feed(&mut self, b: &mut &[u8]) -> Option<i64> {
        while self.got < self.need {
            let (&first, rest) = b.split_first()?;
            *b = rest;
            if self.got == 0 {
                self.sign = first != 0;
            } else if self.got <= 8 {
                self.value |= (first as i64) << (8 * (self.got - 1));
            }
            self.got += 1;
        }
        Some(if self.sign { -self.value } else { self.value })
    }
}

/// Follows an archive as it streams; see the module documentation.
pub struct ArchiveProgress<'a> {
    obs: &'a dyn ArchiveObserver,
    pos: u64,
    mode: Mode,
    int_size: usize,
    compression: ArchiveCompression,
    data: HashMap<i32, DataEntry>,
    by_file: HashMap<String, i32>,
    rows: RowCounter,
    hold_from: Option<u64>,
    objects: u64,
}

impl<'a> ArchiveProgress<'a> {
    /// A tee reporting to the restore's tracker.
    pub fn new(tracker: &'a Tracker) -> Self {
        Self::with_observer(tracker)
    }

    /// A tee reporting to any observer.
    pub fn with_observer(obs: &'a dyn ArchiveObserver) -> Self {
        ArchiveProgress {
            obs,
            pos: 0,
            mode: Mode::Start(Vec::new()),
            int_size: 4,
            compression: ArchiveCompression::None,
            data: HashMap::new(),
            by_file: HashMap::new(),
            rows: RowCounter::Off,
            hold_from: None,
            objects: 0,
        }
    }

    /// Whether the tee still follows the archive (false once it met
    /// something it did not expect).
    pub fn is_observing(&self) -> bool {
        !matches!(self.mode, Mode::Stopped)
    }

    /// How many data objects (table data, large objects, ...) it reported.
    pub fn objects_reported(&self) -> u64 {
        self.objects
    }

    /// Tar archives: the stream offset of the last byte of the latest data
    /// member. pg_restore stops reading after the last data member (the
    /// `restore.sql` that follows is for people), so a writer that wants
    /// pg_restore to wait for the end of the stream holds back the bytes
    /// from here on. `None` for custom archives, whose last byte pg_restore
    /// always needs.
    pub fn hold_from(&self) -> Option<u64> {
        self.hold_from
    }

    /// Feeds the next bytes of the stream.
    pub fn observe(&mut self, chunk: &[u8]) {
        let end = self.pos + chunk.len() as u64;
        let mut b = chunk;
        while !b.is_empty() {
            let before = b.len();
            match self.mode {
                Mode::Done | Mode::Stopped => break,
                Mode::Start(_) => self.step_start(&mut b),
                Mode::CustomToc { .. } => self.step_custom_toc(&mut b),
                Mode::Custom(_) => self.step_custom(&mut b),
                Mode::Tar(_) => self.step_tar(&mut b),
            }
            self.pos += (before - b.len()) as u64;
            if b.len() == before && !matches!(self.mode, Mode::Done | Mode::Stopped) {
                // No progress on non-empty input would be a bug: never spin.
                self.stop();
            }
        }
        self.pos = end;
    }

    /// The stream ended: parses what is buffered, ends the row count.
    pub fn finish(&mut self) {
        match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Start(head) if head.starts_with(b"PGDMP") => self.try_custom_toc(head, true),
            Mode::CustomToc { buf, .. } => self.try_custom_toc(buf, true),
            other => self.mode = other,
        }
        self.rows = RowCounter::Off;
    }

    fn stop(&mut self) {
        self.rows = RowCounter::Off;
        self.mode = Mode::Stopped;
        self.hold_from = None;
    }

    /// The first bytes, at stream offset 0: `PGDMP`, or a tar header.
    fn step_start(&mut self, b: &mut &[u8]) {
        let Mode::Start(head) = &mut self.mode else { return };
        let want = if head.len() < 5 { 5 } else { TAR_BLOCK };
        let take = (want - head.len()).min(b.len());
        head.extend_from_slice(&b[..take]);
        *b = &b[take..];
        if head.len() < 5 {
            return;
        }
        if head.starts_with(b"PGDMP") {
            let head = std::mem::take(head);
            self.mode = Mode::CustomToc { buf: Vec::new(), next_try: 4096 };
            self.custom_toc_bytes(&head);
            return;
        }
        if head.len() < TAR_BLOCK {
            return;
        }
        let mut h = [0u8; TAR_BLOCK];
        h.copy_from_slice(head);
        if &h[257..262] != b"ustar" {
            return self.stop();
        }
        if let Some(next) = self.tar_member(&h, TAR_BLOCK as u64) {
            self.mode = Mode::Tar(next);
        }
    }

    fn step_custom_toc(&mut self, b: &mut &[u8]) {
        let bytes = std::mem::take(b);
        self.custom_toc_bytes(bytes);
    }

    /// Adds bytes to the buffered header and TOC; parses them once there is
    /// twice as much as at the last attempt (linear work overall).
    fn custom_toc_bytes(&mut self, bytes: &[u8]) {
        let Mode::CustomToc { buf, next_try } = &mut self.mode else { return };
        buf.extend_from_slice(bytes);
        if buf.len() > TOC_CAP {
            return self.stop();
        }
        if buf.len() < *next_try {
            return;
        }
        let buf = std::mem::take(buf);
        self.try_custom_toc(buf, false);
    }

    /// Parses a custom archive's header and TOC from `buf`; on success
    /// follows the data blocks in the bytes after the TOC.
    fn try_custom_toc(&mut self, buf: Vec<u8>, last: bool) {
        let mut slice: &[u8] = &buf;
        match super::read_header_and_toc(&mut slice) {
            Ok((header, toc)) => {
                let consumed = buf.len() - slice.len();
                self.int_size = header.int_size as usize;
                self.compression = header.compression_algorithm;
                self.learn_toc(&toc, DumpFormat::Custom);
                self.mode = Mode::Custom(Custom::BlockType);
                let mut rest = &buf[consumed..];
                while !rest.is_empty() && matches!(self.mode, Mode::Custom(_)) {
                    let before = rest.len();
                    self.step_custom(&mut rest);
                    if rest.len() == before {
                        self.stop();
                    }
                }
            }
            Err(super::ArchiveError::Truncated(_)) if !last => {
                let next_try = buf.len().saturating_mul(2).max(4096);
                self.mode = Mode::CustomToc { buf, next_try };
            }
            Err(_) => self.stop(),
        }
    }

    fn learn_toc(&mut self, toc: &[TocEntry], format: DumpFormat) {
        for e in toc.iter().filter(|e| e.had_dumper) {
            let table_rows = e.desc == "TABLE DATA";
            self.data.insert(
                e.dump_id,
                DataEntry { desc: e.desc.clone(), namespace: e.namespace.clone(), tag: e.tag.clone(), table_rows },
            );
            if format != DumpFormat::Custom
                && let Some(f) = &e.filename
            {
                self.by_file.insert(f.clone(), e.dump_id);
            }
        }
        self.obs.section(Section::PreData);
    }

    /// Reports the entry `id` and starts counting its rows when it has any.
    fn enter_entry(&mut self, id: i32, compression: ArchiveCompression) -> bool {
        let Some(entry) = self.data.get(&id) else {
            return false;
        };
        self.obs.object(&entry.desc, entry.namespace.as_deref(), &entry.tag);
        self.objects += 1;
        self.rows = if entry.table_rows { RowCounter::start(compression) } else { RowCounter::Off };
        true
    }

    fn enter_large_object(&mut self, oid: &str) {
        self.obs.object("LARGE OBJECT", None, oid);
        self.objects += 1;
        self.rows = RowCounter::Off;
    }

    fn step_custom(&mut self, b: &mut &[u8]) {
        let Mode::Custom(state) = std::mem::replace(&mut self.mode, Mode::Stopped) else {
            return;
        };
        let int_size = self.int_size;
        let int = move |then| Custom::Int { acc: IntAcc::new(int_size), then };
        let next = match state {
            Custom::BlockType => {
                let Some((&t, rest)) = b.split_first() else {
                    self.mode = Mode::Custom(Custom::BlockType);
                    return;
                };
                *b = rest;
                match t {
                    1 => int(AfterInt::BlockId { blob: false }),
                    3 => int(AfterInt::BlockId { blob: true }),
                    _ => return self.stop(),
                }
            }
            Custom::Int { mut acc, then } => {
                let Some(v) = acc.feed(b) else {
                    self.mode = Mode::Custom(Custom::Int { acc, then });
                    return;
                };
                match then {
                    AfterInt::BlockId { blob } => {
                        let Ok(id) = i32::try_from(v) else { return self.stop() };
                        if !self.enter_entry(id, self.compression) {
                            return self.stop();
                        }
                        if blob {
                            self.rows = RowCounter::Off;
                            int(AfterInt::BlobOid)
                        } else {
                            int(AfterInt::DataLen)
                        }
                    }
                    AfterInt::DataLen if v == 0 => {
                        self.rows = RowCounter::Off;
                        Custom::BlockType
                    }
                    AfterInt::DataLen if v > 0 => Custom::Chunk { left: v as u64, blob: false },
                    AfterInt::BlobOid if v == 0 => Custom::BlockType,
                    AfterInt::BlobOid if v > 0 => {
                        self.enter_large_object(&v.to_string());
                        int(AfterInt::BlobLen)
                    }
                    AfterInt::BlobLen if v == 0 => int(AfterInt::BlobOid),
                    AfterInt::BlobLen if v > 0 => Custom::Chunk { left: v as u64, blob: true },
                    _ => return self.stop(),
                }
            }
            Custom::Chunk { left, blob } => {
                let n = left.min(b.len() as u64) as usize;
                if !blob {
                    self.rows.feed(&b[..n], self.obs);
                }
                *b = &b[n..];
                let left = left - n as u64;
                if left > 0 {
                    Custom::Chunk { left, blob }
                } else {
                    int(if blob { AfterInt::BlobLen } else { AfterInt::DataLen })
                }
            }
        };
        self.mode = Mode::Custom(next);
    }

    fn step_tar(&mut self, b: &mut &[u8]) {
        let Mode::Tar(state) = std::mem::replace(&mut self.mode, Mode::Stopped) else {
            return;
        };
        let next = match state {
            Tar::Header { mut buf, got } => {
                let take = (TAR_BLOCK - got).min(b.len());
                buf[got..got + take].copy_from_slice(&b[..take]);
                *b = &b[take..];
                if got + take < TAR_BLOCK {
                    Tar::Header { buf, got: got + take }
                } else {
                    match self.tar_member(&buf, self.pos + take as u64) {
                        Some(next) => next,
                        None => return,
                    }
                }
            }
            Tar::Content { left, pad, mut member } => {
                let n = left.min(b.len() as u64) as usize;
                match &mut member {
                    Member::Toc(buf) => buf.extend_from_slice(&b[..n]),
                    Member::Data { rows: true } => self.rows.feed(&b[..n], self.obs),
                    _ => {}
                }
                *b = &b[n..];
                let left = left - n as u64;
                if left > 0 {
                    Tar::Content { left, pad, member }
                } else if self.end_member(member) {
                    padding(pad)
                } else {
                    return;
                }
            }
            Tar::Padding { left } => {
                let n = left.min(b.len() as u64) as usize;
                *b = &b[n..];
                padding(left - n as u64)
            }
        };
        self.mode = Mode::Tar(next);
    }

    /// A member's content ended; false when the tee stopped.
    fn end_member(&mut self, member: Member) -> bool {
        match member {
            Member::Toc(buf) => {
                let Ok((header, toc)) = super::read_header_and_toc(&mut &buf[..]) else {
                    self.stop();
                    return false;
                };
                self.int_size = header.int_size as usize;
                self.compression = header.compression_algorithm;
                self.learn_toc(&toc, DumpFormat::Tar);
            }
            Member::Data { .. } => self.rows = RowCounter::Off,
            Member::Other => {}
        }
        true
    }

    /// Interprets a complete tar header whose content starts at stream
    /// offset `content_start`; `None` when the tee stopped or the archive ended.
    fn tar_member(&mut self, h: &[u8; TAR_BLOCK], content_start: u64) -> Option<Tar> {
        if h.iter().all(|&c| c == 0) {
            self.mode = Mode::Done;
            return None;
        }
        let size = tar_number(&h[124..136]);
        if size.is_none() || tar_number(&h[148..156]) != Some(tar_checksum(h)) {
            self.stop();
            return None;
        }
        let size = size.unwrap_or(0);
        let end = h[..100].iter().position(|&c| c == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..end]).into_owned();
        let pad = (TAR_BLOCK as u64 - size % TAR_BLOCK as u64) % TAR_BLOCK as u64;
        let member = if name == "toc.dat" {
            if size > TOC_CAP as u64 {
                self.stop();
                return None;
            }
            Member::Toc(Vec::with_capacity(size as usize))
        } else if let Some(&id) = self.by_file.get(&name) {
            self.hold_from = Some((content_start + size).saturating_sub(1));
            // Tar members are never compressed (pg_backup_tar.c refuses it).
            self.enter_entry(id, ArchiveCompression::None);
            Member::Data { rows: matches!(self.rows, RowCounter::Counting { .. }) && !name.ends_with(".gz") }
        } else if let Some(oid) =
            name.strip_prefix("blob_").and_then(|r| r.split('.').next()).filter(|o| o.parse::<u32>().is_ok())
        {
            self.hold_from = Some((content_start + size).saturating_sub(1));
            self.enter_large_object(oid);
            Member::Data { rows: false }
        } else {
            Member::Other
        };
        if size == 0 {
            return self.end_member(member).then(|| padding(pad));
        }
        Some(Tar::Content { left: size, pad, member })
    }
}

fn padding(left: u64) -> Tar {
    if left > 0 { Tar::Padding { left } } else { Tar::Header { buf: Box::new([0; TAR_BLOCK]), got: 0 } }
}
