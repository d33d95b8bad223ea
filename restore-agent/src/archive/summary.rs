//! What an archive holds, for `restore-agent inspect`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::header::ArchiveHeader;
use super::toc::{DataState, TocEntry};
use crate::format::Format;
use crate::progress::human_bytes;

/// How many of the largest data items the summary lists.
const LARGEST: usize = 10;

/// The stored size of one entry's data (custom archives with data offsets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDataSize {
    /// `TABLE DATA`, `BLOBS`, ...
    pub kind: String,
    /// `schema.table`.
    pub name: String,
    /// Bytes as stored (compressed when the archive is).
    pub bytes: u64,
}

/// An archive at a glance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveSummary {
    pub format: Format,
    /// `1.14`.
    pub archive_version: String,
    pub compression: String,
    pub created: String,
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// The oldest pg_restore major version that reads the archive.
    pub min_pg_restore_major: u32,
    /// TOC entries in all.
    pub entries: usize,
    /// TOC entries per type (`TABLE`, `INDEX`, ...).
    pub entries_by_type: BTreeMap<String, usize>,
    /// TOC entries per section (`pre-data`, `data`, `post-data`, `none`).
    pub entries_by_section: BTreeMap<String, usize>,
    pub tables: usize,
    /// Tables (and materialized views) whose rows the archive holds.
    pub tables_with_data: usize,
    /// Large objects (`BLOB` entries, or the OIDs of `BLOB METADATA` entries).
    pub large_objects: usize,
    /// The databases it creates or was dumped from.
    pub databases: Vec<String>,
    /// Schemas it creates or puts objects in.
    pub schemas: Vec<String>,
    /// The largest data items, when the archive records data offsets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub largest_data: Vec<TableDataSize>,
}

/// Summarises an archive from its header and TOC.
pub fn summarize(header: &ArchiveHeader, toc: &[TocEntry]) -> ArchiveSummary {
    summarize_sized(header, toc, None)
}

/// Like [`summarize`]; `archive_len` (the custom archive's size) also sizes
/// the last data block.
pub(super) fn summarize_sized(header: &ArchiveHeader, toc: &[TocEntry], archive_len: Option<u64>) -> ArchiveSummary {
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_section: BTreeMap<String, usize> = BTreeMap::new();
    let mut schemas = BTreeSet::new();
    let mut databases = vec![header.dbname.clone()];
    let mut large_objects = 0;
    for e in toc {
        *by_type.entry(e.desc.clone()).or_default() += 1;
        let section = match e.section {
            None => "none",
            Some(proto::Section::PreData) => "pre-data",
            Some(proto::Section::Data) => "data",
            Some(proto::Section::PostData) => "post-data",
        };
        *by_section.entry(section.to_string()).or_default() += 1;
        large_objects += e.large_objects as usize;
        if let Some(ns) = &e.namespace {
            schemas.insert(ns.clone());
        }
        match e.desc.as_str() {
            "SCHEMA" => {
                schemas.insert(e.tag.clone());
            }
            "DATABASE" if !databases.contains(&e.tag) => databases.push(e.tag.clone()),
            _ => {}
        }
    }
    databases.retain(|d| !d.is_empty());
    let count = |t: &str| by_type.get(t).copied().unwrap_or(0);
    ArchiveSummary {
        format: header.format,
        archive_version: header.version_string(),
        compression: header.compression.clone(),
        created: header.created.clone(),
        database: header.dbname.clone(),
        server_version: header.server_version.clone(),
        pg_dump_version: header.pg_dump_version.clone(),
        min_pg_restore_major: super::min_pg_restore_major(header.version),
        entries: toc.len(),
        tables: count("TABLE"),
        tables_with_data: toc.iter().filter(|e| e.desc == "TABLE DATA" && e.had_dumper).count(),
        large_objects,
        entries_by_type: by_type,
        entries_by_section: by_section,
        databases,
        schemas: schemas.into_iter().collect(),
        largest_data: largest_data(toc, archive_len),
    }
}

/// Data sizes from consecutive data offsets, as pg_restore's
/// `_PrepParallelRestore` computes them (pg_dump writes data in TOC order).
fn largest_data(toc: &[TocEntry], archive_len: Option<u64>) -> Vec<TableDataSize> {
    let mut with_offsets: Vec<(&TocEntry, u64)> = toc
        .iter()
        .filter(|e| e.data_state == Some(DataState::PosSet))
        .filter_map(|e| e.data_offset.map(|o| (e, o)))
        .collect();
    with_offsets.sort_by_key(|(_, o)| *o);
    let mut sizes = Vec::new();
    for (i, (e, start)) in with_offsets.iter().enumerate() {
        let end = match with_offsets.get(i + 1) {
            Some((_, next)) => Some(*next),
            None => archive_len,
        };
        if let Some(end) = end.filter(|end| end > start) {
            sizes.push(TableDataSize { kind: e.desc.clone(), name: e.qualified_name(), bytes: end - start });
        }
    }
    sizes.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    sizes.truncate(LARGEST);
    sizes
}

impl fmt::Display for ArchiveSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pg_dump {} archive, format {}, compression {}",
            self.format, self.archive_version, self.compression
        )?;
        writeln!(f, "  database:   {}", self.database)?;
        writeln!(f, "  created:    {} by pg_dump {}", self.created, self.pg_dump_version)?;
        writeln!(f, "  server:     PostgreSQL {}", self.server_version)?;
        writeln!(f, "  restore:    needs pg_restore {} or newer", self.min_pg_restore_major)?;
        let sections: Vec<String> = ["pre-data", "data", "post-data", "none"]
            .iter()
            .filter_map(|s| self.entries_by_section.get(*s).map(|n| format!("{n} {s}")))
            .collect();
        writeln!(f, "  entries:    {} ({})", self.entries, sections.join(", "))?;
        writeln!(
            f,
            "  tables:     {} ({} with data); large objects: {}",
            self.tables, self.tables_with_data, self.large_objects
        )?;
        if self.databases.len() > 1 {
            writeln!(f, "  databases:  {}", self.databases.join(", "))?;
        }
        if !self.schemas.is_empty() {
            writeln!(f, "  schemas:    {}", self.schemas.join(", "))?;
        }
        let mut types: Vec<(&String, &usize)> = self.entries_by_type.iter().collect();
        types.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let types: Vec<String> = types.iter().map(|(t, n)| format!("{t} {n}")).collect();
        writeln!(f, "  by type:    {}", types.join(", "))?;
        if !self.largest_data.is_empty() {
            writeln!(f, "  largest data:")?;
            for d in &self.largest_data {
                writeln!(f, "    {:>10}  {} {}", human_bytes(d.bytes), d.kind, d.name)?;
            }
        }
        Ok(())
    }
}
