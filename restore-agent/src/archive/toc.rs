//! The table of contents (`WriteToc`/`ReadToc` in pg_backup_archiver.c, with
//! the format's extra data: a data offset in custom archives
//! (pg_backup_custom.c `_ReadExtraToc`), a data file name in tar archives and
//! directory dumps), and the files a directory dump consists of.

use std::io::Read;

use proto::Section;
use serde::Serialize;

use super::ArchiveError;
use super::header::{ArchiveHeader, K_VERS_1_14, K_VERS_1_16, K_VERS_MAX_KNOWN, Primitives, parse_header};
use crate::format::Format;

/// Where a custom archive says an entry's data is (`K_OFFSET_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataState {
    /// The entry has data, but pg_dump could not seek back to record where
    /// (it wrote to a pipe): pg_restore finds it by scanning.
    PosNotSet,
    /// The data block starts at `data_offset`.
    PosSet,
    /// The entry has no data block.
    NoData,
}

/// One entry of the table of contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TocEntry {
    pub dump_id: i32,
    /// pg_dump had a data dumper for it: it has a data block or data file.
    pub had_dumper: bool,
    pub table_oid: u32,
    pub oid: u32,
    /// The object's name (e.g. `items`, `BLOBS`, `424242`).
    pub tag: String,
    /// Its type (`TABLE`, `TABLE DATA`, `INDEX`, `BLOBS`, ...).
    pub desc: String,
    /// `None` for SECTION_NONE entries (comments, ACLs) that go anywhere.
    pub section: Option<Section>,
    pub namespace: Option<String>,
    pub tablespace: Option<String>,
    /// Table access method (archive 1.14+).
    pub tableam: Option<String>,
    /// Relation kind, for TABLE entries (archive 1.16+).
    pub relkind: Option<char>,
    pub owner: Option<String>,
    /// Large objects the entry creates: 1 for a BLOB entry, the OIDs a
    /// BLOB METADATA entry (archive 1.16) lists, else 0.
    pub large_objects: u32,
    /// Whether the entry has a COPY statement (its data is COPY text).
    pub has_copy_statement: bool,
    /// Dump ids this entry depends on.
    pub dependencies: Vec<i32>,
    /// Tar and directory: the data file (`3338.dat`, `blobs_12.toc`).
    pub filename: Option<String>,
    /// Custom: whether and where the data block is.
    pub data_state: Option<DataState>,
    /// Custom: the data block's offset when `data_state` is `PosSet`.
    pub data_offset: Option<u64>,
}

impl TocEntry {
    /// `schema.name`, or `name` when the entry has no schema.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{}", self.tag),
            None => self.tag.clone(),
        }
    }
}

/// More entries than any real schema has: a corrupt count.
const MAX_TOC_ENTRIES: i64 = 100_000_000;

/// Reads the header and the table of contents of a custom archive (from its
/// first byte) or of a toc.dat (tar and directory dumps). The reader is left
/// just after the TOC: at the first data block of a custom archive.
pub fn read_header_and_toc<R: Read + ?Sized>(r: &mut R) -> Result<(ArchiveHeader, Vec<TocEntry>), ArchiveError> {
    let mut p = Primitives::new(r);
    let header = parse_header(&mut p)?;
    let toc = parse_toc(&mut p, &header)?;
    Ok((header, toc))
}

fn parse_toc<R: Read + ?Sized>(
    p: &mut Primitives<'_, R>,
    header: &ArchiveHeader,
) -> Result<Vec<TocEntry>, ArchiveError> {
    let version = header.version_code();
    if version > K_VERS_MAX_KNOWN {
        return Err(ArchiveError::UnsupportedVersion {
            version: header.version_string(),
            detail: format!(
                "it was written by pg_dump {} and is newer than the versions this agent reads (1.12 to 1.16, pg_dump 9.0 to 18)",
                header.pg_dump_version_number()
            ),
        });
    }
    p.context = "the table of contents".into();
    let count = p.int()?;
    if !(0..=MAX_TOC_ENTRIES).contains(&count) {
        return Err(ArchiveError::Corrupt(format!("the table of contents claims {count} entries")));
    }
    let custom = header.format == Format::Custom;
    let mut entries = Vec::with_capacity(count.min(65_536) as usize);
    for i in 0..count {
        p.context = format!("the table of contents (entry {} of {count})", i + 1);
        let dump_id = p.int32()?;
        if dump_id <= 0 {
            return Err(ArchiveError::Corrupt(format!("entry ID {dump_id} in {}", p.context)));
        }
        let had_dumper = p.int()? != 0;
        let table_oid = parse_oid(p.string()?, &p.context)?;
        let oid = parse_oid(p.string()?, &p.context)?;
        let tag = p.string()?.unwrap_or_default();
        let desc = p.string()?.unwrap_or_default();
        let section = match p.int()? {
            1 => None,
            2 => Some(Section::PreData),
            3 => Some(Section::Data),
            4 => Some(Section::PostData),
            other => return Err(ArchiveError::Corrupt(format!("section {other} in {}", p.context))),
        };
        // defn: kept only to count the OIDs a BLOB METADATA entry lists.
        let large_objects = match desc.as_str() {
            "BLOB" => {
                p.skip_string()?;
                1
            }
            "BLOB METADATA" => {
                let defn = p.string()?.unwrap_or_default();
                defn.split_whitespace().filter(|t| t.parse::<u32>().is_ok()).count() as u32
            }
            _ => {
                p.skip_string()?;
                0
            }
        };
        p.skip_string()?; // dropStmt
        let has_copy_statement = p.skip_string()?;
        let namespace = p.string()?.filter(|s| !s.is_empty());
        let tablespace = p.string()?;
        let tableam = if version >= K_VERS_1_14 { p.string()? } else { None };
        let relkind = if version >= K_VERS_1_16 {
            match p.int()? {
                0 => None,
                k => u8::try_from(k).ok().map(char::from),
            }
        } else {
            None
        };
        let owner = p.string()?;
        p.skip_string()?; // "false": tables WITH OIDS, no longer supported
        let mut dependencies = Vec::new();
        while let Some(dep) = p.string()? {
            let id = dep.trim().parse::<i32>().map_err(|_| {
                ArchiveError::Corrupt(format!("dependency \"{}\" in {}", dep.escape_debug(), p.context))
            })?;
            dependencies.push(id);
        }
        let (filename, data_state, data_offset) = if custom {
            let (flag, offset) = p.offset()?;
            let state = match flag {
                1 => DataState::PosNotSet,
                2 => DataState::PosSet,
                3 => DataState::NoData,
                other => return Err(ArchiveError::Corrupt(format!("data offset flag {other} in {}", p.context))),
            };
            (None, Some(state), (state == DataState::PosSet).then_some(offset))
        } else {
            (p.string()?.filter(|s| !s.is_empty()), None, None)
        };
        entries.push(TocEntry {
            dump_id,
            had_dumper,
            table_oid,
            oid,
            tag,
            desc,
            section,
            namespace,
            tablespace,
            tableam,
            relkind,
            owner,
            large_objects,
            has_copy_statement,
            dependencies,
            filename,
            data_state,
            data_offset,
        });
    }
    Ok(entries)
}

fn parse_oid(s: Option<String>, context: &str) -> Result<u32, ArchiveError> {
    match s {
        None => Ok(0),
        Some(s) => {
            s.trim().parse().map_err(|_| ArchiveError::Corrupt(format!("OID \"{}\" in {context}", s.escape_debug())))
        }
    }
}

/// The table of contents of a directory-format dump, any of which marks a
/// directory as one: `toc.dat`, or the compressed `toc.dat.gz`/`.lz4`/`.zst`
/// that pg_restore also reads.
pub const TOC_NAMES: [&str; 4] = ["toc.dat", "toc.dat.gz", "toc.dat.lz4", "toc.dat.zst"];

/// The files of a directory dump besides toc.dat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryLayout {
    pub header: ArchiveHeader,
    /// Data files as pg_dump names them (`3338.dat.gz` with compression).
    pub data_files: Vec<String>,
    /// Large-object TOC files (`blobs.toc` before archive 1.16,
    /// `blobs_<dumpid>.toc` after); they list the `blob_<oid>.dat` files,
    /// see [`large_object_files`]. Never compressed.
    pub blob_tocs: Vec<String>,
}

/// Reads a directory dump's toc.dat and names the files the dump needs.
pub fn directory_layout(toc: &[u8]) -> Result<DirectoryLayout, ArchiveError> {
    let (mut header, entries) = read_header_and_toc(&mut &toc[..])?;
    header.format = Format::Directory;
    let suffix = header.compression_algorithm.file_suffix();
    let mut data_files = Vec::new();
    let mut blob_tocs: Vec<String> = Vec::new();
    for e in &entries {
        let Some(name) = &e.filename else { continue };
        check_file_name(name)?;
        if e.desc == "BLOBS" {
            // pg_backup_directory.c: "we assume it must be blobs.toc in all archives before v16".
            let toc_name = if header.version_code() < K_VERS_1_16 { "blobs.toc".to_string() } else { name.clone() };
            if !blob_tocs.contains(&toc_name) {
                blob_tocs.push(toc_name);
            }
        } else {
            data_files.push(format!("{name}{suffix}"));
        }
    }
    Ok(DirectoryLayout { header, data_files, blob_tocs })
}

/// The large-object files a `blobs*.toc` lists (lines `<oid> blob_<oid>.dat`),
/// with the compression suffix of the archive whose toc.dat gave `header`.
pub fn large_object_files(blobs_toc: &[u8], header: &ArchiveHeader) -> Result<Vec<String>, ArchiveError> {
    let suffix = header.compression_algorithm.file_suffix();
    let mut files = Vec::new();
    for (i, line) in blobs_toc.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(oid), Some(name)) = (parts.next(), parts.next()) else {
            return Err(ArchiveError::Corrupt(format!(
                "line {} of a large-object TOC reads \"{}\"",
                i + 1,
                line.escape_debug()
            )));
        };
        if oid.parse::<u32>().is_err() {
            return Err(ArchiveError::Corrupt(format!(
                "line {} of a large-object TOC reads \"{}\"",
                i + 1,
                line.escape_debug()
            )));
        }
        check_file_name(name)?;
        files.push(format!("{name}{suffix}"));
    }
    Ok(files)
}

/// File names come from the archive: refuse anything that is not a plain
/// name in the dump's directory, so staging cannot write elsewhere.
fn check_file_name(name: &str) -> Result<(), ArchiveError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ArchiveError::Corrupt(format!(
            "the archive names a data file \"{}\", which is not a plain file name",
            name.escape_debug()
        )))
    }
}
