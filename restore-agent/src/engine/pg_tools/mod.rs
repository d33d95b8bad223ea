//! The pg-tools engine: pg_restore for archives, psql for plain scripts.
//!
//! Blocking functions, meant for a blocking thread. The dump streams into
//! the tool's stdin; its last bytes are held back until the stream has ended
//! and the caller's `finish_check` (the checksum) passed, so that a dump
//! that turns out to be corrupt never completes: the tool is killed without
//! them, and with `--single-transaction` nothing is committed.
//!
//! Connection settings and the password reach the tools only through the
//! environment ([`TargetConfig::libpq_env`]); the command line holds nothing
//! secret.

mod logs;
mod plain_tee;
mod run;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use proto::crd::OnError;

use super::EngineError;
use crate::archive::{self, ArchiveHeader, ArchiveProgress};
use crate::dump::DumpError;
use crate::dump::trailer::Tail;
use crate::postgres::TargetConfig;
use crate::progress::Tracker;

pub use plain_tee::PlainProgress;

/// How the tools run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgToolsOptions {
    /// pg_restore `--jobs` (directory dumps only: a stream cannot be read in parallel).
    pub jobs: u32,
    pub on_error: OnError,
    /// `--single-transaction` (pg_restore only with one job).
    pub single_transaction: bool,
}

/// What a successful run reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PgToolsReport {
    /// Warnings the tool printed.
    pub warnings: u64,
    /// Errors the tool went past (always 0 on success: with
    /// `--on-error continue` errors make the run fail at the end).
    pub errors_ignored: u64,
}

/// pg_restore or psql cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ToolingError {
    #[error("{tool} is not installed or not on PATH")]
    Missing { tool: String },
    #[error(
        "{tool} {installed} cannot read archive format {archive_version} (written by pg_dump {written_by}); install {tool} {needed_major} or newer"
    )]
    TooOld { tool: String, installed: String, archive_version: String, written_by: String, needed_major: u32 },
    #[error("{tool} cannot be run: {detail}")]
    Unusable { tool: String, detail: String },
}

impl ToolingError {
    /// A short CamelCase category for status and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ToolingError::Missing { .. } => "ToolMissing",
            ToolingError::TooOld { .. } => "ToolTooOld",
            ToolingError::Unusable { .. } => "ToolFailed",
        }
    }
}

/// `tool --version`: (major, version), e.g. (15, "15.18"). 9.x versions
/// report major 9.
pub fn tool_version(tool: &str) -> Result<(u32, String), ToolingError> {
    let out = Command::new(tool).arg("--version").stdin(Stdio::null()).output().map_err(|e| spawn_error(tool, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| ToolingError::Unusable {
        tool: tool.to_string(),
        detail: format!("`{tool} --version` printed \"{}\"", text.trim().escape_debug()),
    })
}

/// `pg_restore (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` -> (15, "15.18").
fn parse_version(text: &str) -> Option<(u32, String)> {
    let token = text.split_whitespace().find(|t| t.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
    Some((digits.parse().ok()?, token.to_string()))
}

fn spawn_error(tool: &str, e: std::io::Error) -> ToolingError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ToolingError::Missing { tool: tool.to_string() }
    } else {
        ToolingError::Unusable { tool: tool.to_string(), detail: e.to_string() }
    }
}

/// Fails when the installed pg_restore is older than the archive needs.
pub fn check_pg_restore_supports(header: &ArchiveHeader) -> Result<(), ToolingError> {
    let (major, version) = tool_version("pg_restore")?;
    check_supports("pg_restore", major, &version, header)
}

fn check_supports(tool: &str, major: u32, version: &str, header: &ArchiveHeader) -> Result<(), ToolingError> {
    if archive::pg_restore_can_read(major, header.version) {
        return Ok(());
    }
    let written_by = match header.pg_dump_version_number() {
        "" => "unknown".to_string(),
        v => v.to_string(),
    };
    Err(ToolingError::TooOld {
        tool: tool.to_string(),
        installed: version.to_string(),
        archive_version: header.version_string(),
        written_by,
        needed_major: archive::min_pg_restore_major(header.version),
    })
}

/// Streams a custom or tar archive (from its first byte) into pg_restore.
///
/// `finish_check` runs once the reader reached its end, before pg_restore
/// gets the last bytes; if it fails, pg_restore is killed and its error
/// returned. pg_restore needs a seekable file for `--jobs`, so a stream is
/// restored by one connection.
pub fn restore_archive_stream(
    reader: Box<dyn Read + Send + '_>,
    target: &TargetConfig,
    opts: &PgToolsOptions,
    tracker: &Tracker,
    finish_check: &mut dyn FnMut() -> Result<(), DumpError>,
) -> Result<PgToolsReport, EngineError> {
    let mut args =
        vec!["--verbose".to_string(), format!("--dbname={}", conninfo_dbname(&target.dbname)), "--no-password".into()];
    if opts.on_error == OnError::Stop {
        args.push("--exit-on-error".into());
    }
    if opts.single_transaction {
        args.push("--single-transaction".into());
    }
    let cmd = tool_command("pg_restore", &args, target);
    let mut tee = ArchiveProgress::new(tracker);
    run::stream_into(run::Tool::PgRestore, cmd, reader, target, opts.on_error, tracker, &mut tee, None, finish_check)
}

/// Restores a directory-format dump with `pg_restore --jobs`.
pub fn restore_directory(
    path: &Path,
    target: &TargetConfig,
    opts: &PgToolsOptions,
    tracker: &Tracker,
) -> Result<PgToolsReport, EngineError> {
    let toc =
        std::fs::read(path.join("toc.dat")).ok().and_then(|bytes| archive::read_header_and_toc(&mut &bytes[..]).ok());
    let jobs = opts.jobs.max(1);
    let mut args = vec![
        "--verbose".to_string(),
        format!("--dbname={}", conninfo_dbname(&target.dbname)),
        "--no-password".into(),
        format!("--jobs={jobs}"),
    ];
    if opts.on_error == OnError::Stop {
        args.push("--exit-on-error".into());
    }
    if opts.single_transaction && jobs == 1 {
        args.push("--single-transaction".into());
    }
    args.push("--".into());
    args.push(path.to_string_lossy().into_owned());
    let cmd = tool_command("pg_restore", &args, target);
    let entries = toc.map(|(_, entries)| entries);
    run::run_directory(cmd, target, opts.on_error, tracker, entries.as_deref())
}

/// Streams a plain SQL script (pg_dump, or pg_dumpall when `cluster`) into
/// psql. Like `finish_check`, the script's trailer is checked before psql
/// gets its last bytes.
///
/// Errors are reported as psql prints them with `VERBOSITY=verbose`
/// (`psql:<stdin>:LINE: ERROR:  SQLSTATE: message`); the failed statement
/// comes from `--echo-errors`.
pub fn restore_plain_psql(
    reader: Box<dyn Read + Send + '_>,
    cluster: bool,
    target: &TargetConfig,
    opts: &PgToolsOptions,
    tracker: &Tracker,
    finish_check: &mut dyn FnMut() -> Result<(), DumpError>,
) -> Result<PgToolsReport, EngineError> {
    let stop = if opts.on_error == OnError::Stop { "ON_ERROR_STOP=1" } else { "ON_ERROR_STOP=0" };
    let mut args: Vec<String> = ["-X", "-q", "--no-password", "--echo-errors", "-v", stop, "-v", "VERBOSITY=verbose"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if opts.single_transaction {
        args.push("--single-transaction".into());
    }
    args.push(format!("--dbname={}", conninfo_dbname(&target.dbname)));
    // --single-transaction needs -f; "-" is stdin.
    args.extend(["-f".to_string(), "-".to_string()]);
    let cmd = tool_command("psql", &args, target);
    let mut tee = PlainProgress::new(tracker);
    let tail = Tail::new(reader);
    let watch = tail.watch();
    let mut finish = || {
        finish_check()?;
        watch.trailer().verdict(cluster)
    };
    run::stream_into(run::Tool::Psql, cmd, Box::new(tail), target, opts.on_error, tracker, &mut tee, None, &mut finish)
}

/// Connection variables of the agent's own environment that the target
/// settings do not cover and that would send a tool elsewhere.
const FOREIGN_PG_VARS: &[&str] = &["PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE", "PGTARGETSESSIONATTRS", "PGREQUIRESSL"];

/// The tool with the target in its environment and messages in English
/// (they are parsed).
fn tool_command(tool: &str, args: &[String], target: &TargetConfig) -> Command {
    let mut cmd = Command::new(tool);
    cmd.args(args);
    for v in FOREIGN_PG_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in target.libpq_env() {
        cmd.env(k, v);
    }
    cmd.env_remove("LANGUAGE").env_remove("LC_ALL").env("LC_MESSAGES", "C").env("PG_COLOR", "never");
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// `dbname='...'`: a conninfo string, so that a database name containing
/// `=` or starting with `postgres://` is not taken for one.
fn conninfo_dbname(dbname: &str) -> String {
    let escaped = dbname.replace('\\', "\\\\").replace('\'', "\\'");
    format!("dbname='{escaped}'")
}

#[cfg(test)]
mod tests;
