//! The restore pipeline: resolve the source, count and hash its bytes,
//! detect compression and format ([`prepare`]), create the target database
//! with `--create-database` ([`create`]), check that the target is empty,
//! and run the engine. The verdict on the stream as a whole (checksum,
//! trailer) is given to the engine before it commits, never after.

mod create;
mod prepare;
mod tail;

use prepare::format_name_choice;
pub use prepare::{HEAD_BYTES, Prepared, format_name, map_io, prepare, split_error};
use tail::{Tail, trailer_in_tail};

use std::io::BufRead;
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

use crate::cli::{RestoreArgs, SourceArgs, Toggle};
use crate::engine::native::{self, Msg, NativeOptions};
use crate::engine::pg_tools::{self, PgToolsOptions};
use crate::engine::{EngineChoice, OnError};
use crate::error::{DumpError, Error};
use crate::format::{DumpFormat, FormatChoice};
use crate::integrity::{ByteCounter, Hashing};
use crate::progress::{Outcome, ProgressSink, Reporter, Summary, Tracker};
use crate::source::{self, HttpOptions, OpenedSource, Resolved, S3Options, SourceLocation, SourceOptions};
use crate::sql::{Event, Splitter};
use crate::target::{self, TargetConfig};

/// Messages in flight between the reader thread and the engine (each at most
/// one statement or one COPY chunk): bounds memory whatever the dump size.
const CHANNEL_DEPTH: usize = 32;

/// Source options from the command line and the environment.
pub fn source_options(args: &SourceArgs) -> Result<SourceOptions, Error> {
    let headers = match std::env::var(&args.http_headers_env) {
        Ok(text) => parse_headers(&text)?,
        Err(_) => Vec::new(),
    };
    Ok(SourceOptions {
        pick: args.pick,
        s3: S3Options {
            endpoint: args.s3_endpoint.clone(),
            region: args.s3_region.clone(),
            path_style: args.s3_path_style,
            ..Default::default()
        },
        http: HttpOptions { headers, ca_file: args.http_ca_file.clone() },
        ..Default::default()
    })
}

/// `Name: value` per line; blank lines and `#` comments ignored.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            // Do not echo the line: it may hold a token.
            return Err(Error::Usage(format!("HTTP header line {} has no ':' (expected `Name: value`)", i + 1)));
        };
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// Runs a whole restore and reports its outcome to the sinks, failures
/// before the source is even open included.
pub async fn run(args: &RestoreArgs, sinks: Vec<Box<dyn ProgressSink>>) -> Result<Summary, Error> {
    let counter = Arc::new(ByteCounter::default());
    let tracker = Tracker::new(counter.clone(), None);
    let reporter = Reporter::start(tracker.clone(), sinks);
    let result = run_tracked(args, counter, tracker).await;
    reporter.finish(outcome(&result)).await;
    result
}

async fn run_tracked(args: &RestoreArgs, counter: Arc<ByteCounter>, tracker: Arc<Tracker>) -> Result<Summary, Error> {
    let target = TargetConfig::from_url_and_env(args.target.as_deref(), &|k| std::env::var(k).ok())?;
    let location = SourceLocation::parse(&args.source.source)?;
    let opts = source_options(&args.source)?;
    if args.on_error == OnError::Continue && args.single_transaction == Toggle::On {
        return Err(Error::Usage("--on-error continue cannot run in a single transaction".into()));
    }
    create::check_args(args, &target)?;
    let mut created = None;
    let result = match source::resolve(&location, &opts).await? {
        Resolved::Stream(opened) => {
            tracing::info!(source = opened.display.as_str(), size = ?opened.size, "reading");
            tracker.set_total(opened.size);
            restore_stream(args, target, opened, counter, tracker, &mut created).await
        }
        Resolved::Directory { path, display: shown, size, staging } => {
            tracing::info!(source = shown.as_str(), "reading a directory-format dump");
            if let Some(s) = size {
                counter.add(s);
            }
            tracker.set_total(size);
            let result = restore_directory(args, target, &path, tracker, &mut created).await;
            drop(staging);
            result
        }
    };
    if let (Err(e), Some(db)) = (&result, &created) {
        create::log_left_behind(db, &args.create_database_marker, e);
    }
    result
}

fn outcome(result: &Result<Summary, Error>) -> Outcome {
    match result {
        Ok(s) => Outcome::Completed(s.clone()),
        Err(e) => Outcome::Failed(e.to_failure()),
    }
}

/// Whether a plain script connects to other databases (pg_dump --create):
/// then it cannot run in one transaction, and it starts from `postgres`.
fn plain_is_multi_database(head: &[u8]) -> bool {
    head.split(|b| *b == b'\n').any(|l| l.starts_with(b"\\connect ") || l.starts_with(b"\\c "))
}

async fn restore_stream(
    args: &RestoreArgs,
    mut target: TargetConfig,
    opened: OpenedSource,
    counter: Arc<ByteCounter>,
    tracker: Arc<Tracker>,
    created: &mut Option<String>,
) -> Result<Summary, Error> {
    let (hashing, digest) = Hashing::new(opened.reader, counter, args.sha256.is_some());
    let bridge = SyncIoBridge::new(hashing);
    let (compression, format_choice, t) = (args.compression, args.format, tracker.clone());
    let prepared = tokio::task::spawn_blocking(move || prepare(bridge, compression, format_choice, t))
        .await
        .map_err(|e| Error::Internal(format!("reader thread failed: {e}")))??;
    let format = prepared.format;
    let multi =
        format == DumpFormat::PgDumpAll || (format == DumpFormat::Plain && plain_is_multi_database(&prepared.head));
    if args.create_database && multi {
        return Err(create::multi_database_refused(format));
    }
    let engine = match (format, args.engine) {
        (DumpFormat::Plain | DumpFormat::PgDumpAll, EngineChoice::Auto | EngineChoice::Native) => EngineChoice::Native,
        (DumpFormat::Plain | DumpFormat::PgDumpAll, EngineChoice::PgTools) => EngineChoice::PgTools,
        (_, EngineChoice::Native) => {
            return Err(Error::Usage(format!(
                "the native engine restores plain SQL and pg_dumpall scripts, and the source is {}; use --engine auto or pg-tools",
                format_name(format)
            )));
        }
        (_, _) => EngineChoice::PgTools,
    };
    if multi && !target.dbname_given {
        target = target.with_dbname("postgres");
    }
    let single_transaction = match args.single_transaction {
        Toggle::On if multi => {
            return Err(Error::Usage(
                "--single-transaction on: this dump creates and connects to databases, which cannot run in one transaction".into(),
            ));
        }
        Toggle::On => true,
        Toggle::Off => false,
        Toggle::Auto => !multi && args.on_error == OnError::Stop,
    };
    tracing::info!(
        compression = prepared.compression.name(),
        format = format_name(format),
        engine = ?engine,
        single_transaction,
        target = %target.display(),
        "restoring"
    );

    if engine == EngineChoice::PgTools {
        // Say "pg_restore is too old for this archive" before anything runs.
        match format {
            DumpFormat::Custom => {
                pg_tools::check_pg_restore_supports(&crate::archive::read_header(&mut &prepared.head[..])?)?
            }
            DumpFormat::Tar if prepared.head.len() > 512 => {
                pg_tools::check_pg_restore_supports(&crate::archive::read_header(&mut &prepared.head[512..])?)?
            }
            _ => {}
        }
    }

    create::create_target(args, &target, created).await?;
    let client = target.connect().await?;
    if !args.allow_non_empty {
        if multi {
            target::check_cluster_empty(&client, &target.dbname).await?;
        } else {
            target::check_database_empty(&client, &target.dbname).await?;
        }
    }

    let verify = verifier(args.sha256.clone(), digest.clone());
    let mut summary = Summary {
        format: format.name().into(),
        compression: prepared.compression.name().into(),
        engine: match engine {
            EngineChoice::Native => "native".into(),
            _ => "pg-tools".into(),
        },
        ..Default::default()
    };
    match engine {
        EngineChoice::Native => {
            let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
            let reader = prepared.reader;
            let producer =
                tokio::task::spawn_blocking(move || produce(reader, tx, format == DumpFormat::PgDumpAll, verify));
            let opts = NativeOptions { on_error: args.on_error, single_transaction, keep_failures: 5 };
            let result = native::run(rx, client, &target, &opts, &tracker).await;
            // The producer ends by itself once the engine has dropped its receiver.
            let _ = producer.await;
            let report = result?;
            summary.statements = report.statements;
            summary.copies = report.copies;
            summary.rows = report.rows;
            summary.warnings = report.tolerated;
            summary.databases = report.databases;
        }
        _ => {
            drop(client);
            let opts = PgToolsOptions {
                jobs: args.jobs,
                on_error: args.on_error,
                single_transaction: single_transaction && !multi,
            };
            let (t, tgt) = (tracker.clone(), target.clone());
            let reader = prepared.reader;
            let mut check = verify;
            let report = tokio::task::spawn_blocking(move || match format {
                DumpFormat::Plain | DumpFormat::PgDumpAll => {
                    let mut tail = Tail::new(reader);
                    let tail_buf = tail.buf.clone();
                    let cluster = format == DumpFormat::PgDumpAll;
                    let mut finish = move || {
                        check()?;
                        trailer_in_tail(&tail_buf.lock().unwrap_or_else(|p| p.into_inner()), cluster)
                    };
                    pg_tools::restore_plain_psql(Box::new(&mut tail), &tgt, &opts, &t, &mut finish)
                }
                _ => pg_tools::restore_archive_stream(reader, &tgt, &opts, &t, &mut check),
            })
            .await
            .map_err(|e| Error::Internal(format!("pg-tools thread failed: {e}")))??;
            summary.warnings = report.warnings;
            summary.databases = vec![target.dbname.clone()];
            summary.rows = tracker.rows();
        }
    }
    summary.bytes_read = tracker.bytes_read();
    summary.bytes_uncompressed = tracker.snapshot().bytes_uncompressed;
    summary.elapsed_seconds = tracker.elapsed().as_secs_f64();
    summary.sha256 = digest.get().cloned();
    Ok(summary)
}

async fn restore_directory(
    args: &RestoreArgs,
    target: TargetConfig,
    path: &std::path::Path,
    tracker: Arc<Tracker>,
    created: &mut Option<String>,
) -> Result<Summary, Error> {
    if args.sha256.is_some() {
        return Err(Error::Usage("--sha256 checks a single-file source; a directory-format dump is many files".into()));
    }
    if args.engine == EngineChoice::Native {
        return Err(Error::Usage(
            "the native engine restores plain SQL and pg_dumpall scripts, and the source is a directory-format dump; use --engine auto or pg-tools".into(),
        ));
    }
    if !matches!(args.format, FormatChoice::Auto | FormatChoice::Directory) {
        return Err(DumpError::NotADump(format!(
            "--format {} was given but the source is a directory-format dump",
            format_name_choice(args.format)
        ))
        .into());
    }
    create::create_target(args, &target, created).await?;
    let client = target.connect().await?;
    if !args.allow_non_empty {
        target::check_database_empty(&client, &target.dbname).await?;
    }
    drop(client);
    let single_transaction = match args.single_transaction {
        Toggle::On => true,
        Toggle::Off => false,
        Toggle::Auto => args.jobs == 1 && args.on_error == OnError::Stop,
    };
    if single_transaction && args.jobs > 1 {
        return Err(Error::Usage("--single-transaction on cannot be combined with --jobs > 1".into()));
    }
    let opts = PgToolsOptions { jobs: args.jobs, on_error: args.on_error, single_transaction };
    let (p, t, tgt) = (path.to_path_buf(), tracker.clone(), target.clone());
    let report = tokio::task::spawn_blocking(move || pg_tools::restore_directory(&p, &tgt, &opts, &t))
        .await
        .map_err(|e| Error::Internal(format!("pg-tools thread failed: {e}")))??;
    Ok(Summary {
        format: "directory".into(),
        compression: "none".into(),
        engine: "pg-tools".into(),
        warnings: report.warnings,
        databases: vec![target.dbname.clone()],
        bytes_read: tracker.bytes_read(),
        rows: tracker.rows(),
        elapsed_seconds: tracker.elapsed().as_secs_f64(),
        ..Default::default()
    })
}

/// The check run when the source is at its end, before anything commits.
fn verifier(
    expected: Option<String>,
    digest: Arc<OnceLock<String>>,
) -> impl FnMut() -> Result<(), Error> + Send + 'static {
    move || {
        let Some(expected) = &expected else { return Ok(()) };
        match digest.get() {
            Some(actual) if actual.eq_ignore_ascii_case(expected) => Ok(()),
            Some(actual) => {
                Err(DumpError::ChecksumMismatch { expected: expected.clone(), actual: actual.clone() }.into())
            }
            None => Err(Error::Internal("the source was not read to its end; cannot verify its checksum".into())),
        }
    }
}

/// Reads the script on a blocking thread and feeds the engine.
fn produce(
    reader: Box<dyn BufRead + Send>,
    tx: mpsc::Sender<Msg>,
    cluster: bool,
    mut verify: impl FnMut() -> Result<(), Error>,
) {
    let mut splitter = Splitter::new(reader);
    // The last "dump complete" trailer, if nothing but comments and meta-commands followed it.
    let mut trailer: Option<bool> = None;
    loop {
        match splitter.next_event() {
            Ok(Some(ev)) => {
                match &ev {
                    Event::DumpComplete { cluster } => trailer = Some(*cluster),
                    Event::Statement { .. } | Event::CopyStart { .. } | Event::Connect { .. } => trailer = None,
                    _ => {}
                }
                if tx.blocking_send(Msg::Event(ev)).is_err() {
                    return; // the engine stopped; it has its own error to report
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.blocking_send(Msg::End(Err(split_error(e))));
                return;
            }
        }
    }
    let verdict = verify().and_then(|()| match trailer {
        Some(c) if c == cluster => Ok(()),
        Some(_) => Err(DumpError::Truncated(
            "the pg_dumpall script ends after a database but before \"PostgreSQL database cluster dump complete\""
                .into(),
        )
        .into()),
        None => Err(DumpError::Truncated(format!(
            "the script does not end with pg_dump's \"-- PostgreSQL database {}dump complete\" trailer",
            if cluster { "cluster " } else { "" }
        ))
        .into()),
    });
    let _ = tx.blocking_send(Msg::End(verdict));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_without_echoing_secrets() {
        let h = parse_headers("Authorization: Bearer abc\n\n# note\nX-Key: v:w\n").unwrap();
        assert_eq!(h, vec![("Authorization".into(), "Bearer abc".into()), ("X-Key".into(), "v:w".into())]);
        let e = parse_headers("Bearer-token-without-colon").unwrap_err();
        assert!(!e.to_string().contains("Bearer-token"), "{e}");
    }

    #[test]
    fn create_scripts_are_multi_database() {
        assert!(plain_is_multi_database(b"CREATE DATABASE x;\n\\connect x\nSET a = 1;\n"));
        assert!(!plain_is_multi_database(b"SET a = 1;\nCOPY t FROM stdin;\n\\.\n"));
    }

    #[test]
    fn checksum_verdicts() {
        let digest = Arc::new(OnceLock::new());
        let mut v = verifier(Some("ab".repeat(32)), digest.clone());
        assert!(matches!(v(), Err(Error::Internal(_))));
        digest.set("cd".repeat(32)).unwrap();
        let e = v().unwrap_err();
        assert_eq!(e.reason(), "ChecksumMismatch");
        assert_eq!(e.exit_code(), proto::ExitCode::Source);
        let mut ok = verifier(Some("CD".repeat(32)), digest);
        assert!(ok().is_ok());
    }
}
