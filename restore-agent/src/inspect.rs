//! `restore-agent inspect`: what a dump is, without restoring it.
//!
//! Archives (custom, tar, directory) are described from their header and
//! table of contents, read from the first bytes only. Scripts (plain,
//! pg_dumpall) are read to the end through the same splitter the native
//! engine uses, so inspect also tells whether the script is complete.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::sync::Arc;

use proto::crd::FormatChoice;
use serde::Serialize;

use crate::archive::{self, ArchiveSummary};
use crate::cli::InspectArgs;
use crate::dump::trailer::Trailer;
use crate::dump::{self, DumpDirectory, DumpError, DumpStream, Opened, ReadOptions};
use crate::error::Error;
use crate::format::Format;
use crate::integrity::ByteCounter;
use crate::progress::{Tracker, human_bytes};
use crate::source::SourceLocation;
use crate::sql::{Event, Splitter};

/// Everything inspect tells.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InspectReport {
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
pub(crate) struct ScriptSummary {
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

pub(crate) async fn inspect(args: &InspectArgs) -> Result<InspectReport, Error> {
    let location = SourceLocation::parse(&args.source.source)?;
    let source_options = args.source.options()?;
    let counter = Arc::new(ByteCounter::default());
    let tracker = Tracker::new(counter.clone(), None);
    let read = ReadOptions { compression: args.compression, format: FormatChoice::Auto, hash: true };
    match dump::open(&location, &source_options, read, counter, tracker.clone()).await? {
        Opened::Directory(dir) => inspect_directory(dir),
        Opened::Stream(stream) => inspect_stream(stream, tracker).await,
    }
}

/// A directory-format dump, from its toc.dat.
fn inspect_directory(dir: DumpDirectory) -> Result<InspectReport, Error> {
    let toc = std::fs::read(dir.path.join("toc.dat"))
        .map_err(|e| DumpError::not_a_dump(format!("cannot read toc.dat of the directory dump: {e}")))?;
    let (mut header, entries) = archive::read_header_and_toc(&mut &toc[..])?;
    // A directory's toc.dat carries the tar format code.
    header.format = Format::Directory;
    Ok(InspectReport {
        source: dir.display,
        size: dir.size,
        compression: header.compression.clone(),
        format: "directory".into(),
        server_version: Some(header.server_version.clone()),
        pg_dump_version: Some(header.pg_dump_version.clone()),
        archive: Some(archive::summarize(&header, &entries)),
        script: None,
        sha256: None,
    })
}

/// A stream: an archive from its header and TOC, a script from end to end.
async fn inspect_stream(stream: DumpStream, tracker: Arc<Tracker>) -> Result<InspectReport, Error> {
    let DumpStream { display, size, compression, format, head, mut reader, digest } = stream;
    let (server, dumper) = script_versions(&head);
    let (server, dumper, archive_summary, script) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        match format {
            Format::Custom | Format::Tar => {
                if format == Format::Tar {
                    // toc.dat is the tar's first member: skip its 512-byte header.
                    let mut tar_header = [0u8; 512];
                    reader.read_exact(&mut tar_header).map_err(DumpError::from_io)?;
                }
                let (h, toc) = archive::read_header_and_toc(&mut reader)?;
                drain(&mut reader)?;
                let s = archive::summarize(&h, &toc);
                Ok((Some(h.server_version), Some(h.pg_dump_version), Some(s), None))
            }
            _ => {
                let script = summarize_script(reader, format == Format::PgDumpAll, &tracker)?;
                Ok((server, dumper, None, Some(script)))
            }
        }
    })
    .await
    .map_err(|e| Error::Internal(format!("reader thread failed: {e}")))??;
    Ok(InspectReport {
        source: display,
        size,
        compression: compression.name().into(),
        format: format.description().into(),
        server_version: server,
        pg_dump_version: dumper,
        archive: archive_summary,
        script,
        sha256: digest.get().cloned(),
    })
}

/// Reads to the end, so the whole source is hashed and known to decompress.
fn drain(r: &mut dyn BufRead) -> Result<(), DumpError> {
    std::io::copy(r, &mut std::io::sink()).map_err(DumpError::from_io)?;
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

/// What a script holds; `cluster` for a pg_dumpall script, complete only
/// with pg_dumpall's trailer (the rule a restore applies).
fn summarize_script(
    reader: Box<dyn BufRead + Send>,
    cluster: bool,
    tracker: &Tracker,
) -> Result<ScriptSummary, DumpError> {
    let mut s = ScriptSummary::default();
    let mut splitter = Splitter::new(reader);
    let mut trailer = Trailer::default();
    while let Some(ev) = splitter.next_event()? {
        trailer.see(&ev);
        match ev {
            Event::Statement { .. } => s.statements += 1,
            Event::CopyStart { .. } => s.copy_blocks += 1,
            Event::CopyEnd { rows } => s.rows += rows,
            Event::Connect { dbname, .. } => {
                if s.databases.last() != Some(&dbname) {
                    s.databases.push(dbname);
                }
            }
            Event::Object { kind, .. } => *s.objects.entry(kind).or_default() += 1,
            Event::DumpComplete { .. } | Event::CopyData(_) | Event::Encoding { .. } => {}
        }
    }
    s.complete = trailer.verdict(cluster).is_ok();
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
