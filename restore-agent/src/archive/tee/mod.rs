//! A progress tee for archive bytes on their way to pg_restore: it follows
//! the archive's structure without holding its data, and says which TOC
//! entry's data is streaming (and, where the data is readable, how many rows
//! went by). What custom archives look like is in [`custom`], tar archives
//! in [`tar`]; this is what both share: the start, the TOC's data entries,
//! and what is reported.
//!
//! The tee never fails: on anything unexpected it stops observing.

mod custom;
mod tar;

use std::collections::HashMap;

use proto::Section;

use super::header::ArchiveCompression;
use super::rows::RowCounter;
use super::tar_header::TAR_BLOCK;
use super::toc::TocEntry;
use crate::format::Format;
use crate::progress::Tracker;
use custom::Custom;
use tar::Tar;

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
    #[cfg(test)]
    pub fn is_observing(&self) -> bool {
        !matches!(self.mode, Mode::Stopped)
    }

    /// How many data objects (table data, large objects, ...) it reported.
    #[cfg(test)]
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

    fn learn_toc(&mut self, toc: &[TocEntry], format: Format) {
        for e in toc.iter().filter(|e| e.had_dumper) {
            let table_rows = e.desc == "TABLE DATA";
            self.data.insert(
                e.dump_id,
                DataEntry { desc: e.desc.clone(), namespace: e.namespace.clone(), tag: e.tag.clone(), table_rows },
            );
            if format != Format::Custom
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
}
