//! `restore-agent inspect`: what a dump is, without restoring it.
//!
//! Archives (custom, tar, directory) are described from their header and
//! table of contents, read from the first bytes only. Scripts (plain,
//! pg_dumpall) are read to the end through the same splitter the native
//! engine uses, so inspect also tells whether the script is complete.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::sync::Arc;

use serde::Serialize;
use tokio_util::io::SyncIoBridge;

use crate::archive::{self, ArchiveSummary};
use crate::cli::InspectArgs;
use crate::error::{DumpError, Error};
use crate::format::{DumpFormat, FormatChoice};
use crate::integrity::{ByteCounter, Hashing};
use crate::progress::{Tracker, human_bytes};
use crate::restore::{self, format_name};
use crate::source::{self, Resolved, SourceLocation};
use crate::sql::{Event, Splitter};

/// Everything inspect tells.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectReport {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub compression: String,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_dump_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What a plain or pg_dumpall script contains.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptSummary {
    pub statements: u64,
    pub copy_blocks: u64,
    pub rows: u64,
    /// Databases the script connects to, in order.
    pub databases: Vec<String>,
    /// Objects by pg_dump type (from the `-- Name: ...; Type: ...` headers).
    pub objects: BTreeMap<String, u64>,
    /// Whether the script ends with pg_dump's "dump complete" trailer.
    pub complete: bool,
    pub uncompressed_bytes: u64,
}

pub async fn run(args: &InspectArgs) -> Result<(), Error> {
    let report = inspect(args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

pub async fn inspect(args: &InspectArgs) -> Result<InspectReport, Error> {
    let location = SourceLocation::parse(&args.source.source)?;
    let opts = restore::source_options(&args.source)?;
    match source::resolve(&location, &opts).await? {
        Resolved::Directory { path, display: shown, size, staging } => {
            let toc = std::fs::read(path.join("toc.dat"))
                .map_err(|e| DumpError::NotADump(format!("cannot read toc.dat of the directory dump: {e}")))?;
            let (mut header, entries) = archive::read_header_and_toc(&mut &toc[..])?;
            // A directory's toc.dat carries the tar format code.
            header.format = DumpFormat::Directory;
            drop(staging);
            Ok(InspectReport {
                source: shown,
                size,
                compression: header.compression.clone(),
                format: "directory".into(),
                server_version: Some(header.server_version.clone()),
                pg_dump_version: Some(header.pg_dump_version.clone()),
                archive: Some(archive::summarize(&header, &entries)),
                script: None,
                sha256: None,
            })
        }
        Resolved::Stream(opened) => {
            let counter = Arc::new(ByteCounter::default());
            let (hashing, digest) = Hashing::new(opened.reader, counter.clone(), true);
            let bridge = SyncIoBridge::new(hashing);
            let tracker = Tracker::new(counter, opened.size);
            let compression = args.compression;
            let t = tracker.clone();
            let (prepared_compression, format, server, dumper, archive_summary, script) =
                tokio::task::spawn_blocking(move || -> Result<_, Error> {
                    let prepared = restore::prepare(bridge, compression, FormatChoice::Auto, t.clone())?;
                    let (server, dumper) = script_versions(&prepared.head);
                    let format = prepared.format;
                    let mut reader = prepared.reader;
                    match format {
                        DumpFormat::Custom | DumpFormat::Tar => {
                            if format == DumpFormat::Tar {
                                // toc.dat is the tar's first member: skip its 512-byte header.
                                let mut tar_header = [0u8; 512];
                                reader.read_exact(&mut tar_header).map_err(restore::map_io)?;
                            }
                            let (h, toc) = archive::read_header_and_toc(&mut reader)?;
                            drain(&mut reader)?;
                            let s = archive::summarize(&h, &toc);
                            Ok((
                                prepared.compression,
                                format,
                                Some(h.server_version),
                                Some(h.pg_dump_version),
                                Some(s),
                                None,
                            ))
                        }
                        _ => {
                            let script = summarize_script(reader, &t)?;
                            Ok((prepared.compression, format, server, dumper, None, Some(script)))
                        }
                    }
                })
                .await
                .map_err(|e| Error::Internal(format!("reader thread failed: {e}")))??;
            Ok(InspectReport {
                source: opened.display,
                size: opened.size,
                compression: prepared_compression.name().into(),
                format: format_name(format).trim_start_matches("a ").into(),
                server_version: server,
                pg_dump_version: dumper,
                archive: archive_summary,
                script,
                sha256: digest.get().cloned(),
            })
        }
    }
}

/// Reads to the end, so the whole source is hashed and known to decompress.
fn drain(r: &mut dyn BufRead) -> Result<(), Error> {
    std::io::copy(r, &mut std::io::sink()).map_err(restore::map_io)?;
    Ok(())
}

/// `-- Dumped from database version X` / `-- Dumped by pg_dump version Y`.
fn script_versions(head: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(head);
    let find = |prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix)).map(|v| v.trim().to_string());
    (
        find("-- Dumped from database version "),
        find("-- Dumped by pg_dump version ").or_else(|| find("-- Dumped by pg_dumpall version ")),
    )
}

fn summarize_script(reader: Box<dyn BufRead + Send>, tracker: &Tracker) -> Result<ScriptSummary, Error> {
    let mut s = ScriptSummary::default();
    let mut splitter = Splitter::new(reader);
    let mut trailer = false;
    while let Some(ev) = splitter.next_event().map_err(restore::split_error)? {
        match ev {
            Event::Statement { .. } => {
                s.statements += 1;
                trailer = false;
            }
            Event::CopyStart { .. } => {
                s.copy_blocks += 1;
                trailer = false;
            }
            Event::CopyEnd { rows } => s.rows += rows,
            Event::Connect { dbname, .. } => {
                if s.databases.last() != Some(&dbname) {
                    s.databases.push(dbname);
                }
            }
            Event::Object { kind, .. } => *s.objects.entry(kind).or_default() += 1,
            Event::DumpComplete { .. } => trailer = true,
            Event::CopyData(_) | Event::Encoding { .. } => {}
        }
    }
    s.complete = trailer;
    s.uncompressed_bytes = tracker.snapshot().bytes_uncompressed;
    Ok(s)
}

fn render(r: &InspectReport) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<16} {v}\n"));
    line("source", &r.source);
    if let Some(size) = r.size {
        line("size", &format!("{} ({size} bytes)", human_bytes(size)));
    }
    line("compression", &r.compression);
    line("format", &r.format);
    if let Some(v) = &r.server_version {
        line("dumped from", &format!("PostgreSQL {v}"));
    }
    if let Some(v) = &r.pg_dump_version {
        line("dumped by", &format!("pg_dump {v}"));
    }
    if let Some(h) = &r.sha256 {
        line("sha256", h);
    }
    if let Some(s) = &r.script {
        line("uncompressed", &human_bytes(s.uncompressed_bytes));
        line(
            "complete",
            if s.complete {
                "yes (ends with the \"dump complete\" trailer)"
            } else {
                "NO: the trailer is missing, the dump looks truncated"
            },
        );
        if !s.databases.is_empty() {
            line("databases", &s.databases.join(", "));
        }
        line("statements", &s.statements.to_string());
        line("COPY blocks", &format!("{} ({} rows)", s.copy_blocks, s.rows));
        let objects: Vec<String> = s.objects.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        line("objects", &objects.join(", "));
    }
    if let Some(a) = &r.archive {
        out.push_str(&format!("{a}"));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_header_comments() {
        let head = b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.18 (Debian)\n-- Dumped by pg_dump version 15.18 (Debian)\n";
        let (s, d) = script_versions(head);
        assert_eq!(s.as_deref(), Some("15.18 (Debian)"));
        assert_eq!(d.as_deref(), Some("15.18 (Debian)"));
        assert_eq!(script_versions(b"SELECT 1;"), (None, None));
    }
}
