//! What pg_restore and psql print on stderr: errors (with the failed
//! statement), warnings, and pg_restore's `--verbose` progress lines.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::process::ExitStatus;

use proto::statement_start;

use super::{PgToolsReport, ToolingError};
use crate::archive::TocEntry;
use crate::engine::OnError;
use crate::engine::expected;
use crate::error::{DumpError, Error};
use crate::progress::Tracker;
use crate::target::{STATEMENT_START_CHARS, SqlFailure, TargetConfig, TargetError};

/// Errors kept with their details (all are counted).
const KEEP_ERRORS: usize = 5;
/// Longest stderr line kept; the rest of a longer line is skipped.
const MAX_LINE: usize = 16 * 1024;
/// Longest failed statement kept (it is cut to a one-line start anyway).
const MAX_STATEMENT: usize = 4096;
/// Raw stderr kept for messages that match no known form.
const TAIL_BYTES: usize = 64 * 1024;

/// Which tool printed the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tool {
    PgRestore,
    Psql,
}

impl Tool {
    pub(super) fn name(self) -> &'static str {
        match self {
            Tool::PgRestore => "pg_restore",
            Tool::Psql => "psql",
        }
    }
}

/// One error as the tool printed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ToolError {
    /// The text after `error: ` (pg_restore) or after the SQLSTATE (psql).
    pub raw: String,
    /// The server's message alone.
    pub message: String,
    pub sqlstate: Option<String>,
    pub detail: Option<String>,
    pub statement: Option<String>,
    /// psql: the line it reported (where the statement ended).
    pub line: Option<u64>,
    /// pg_restore: `TOC entry 217: TABLE notes postgres`.
    pub toc_entry: Option<String>,
    pub database: Option<String>,
}

impl ToolError {
    fn failure(&self, default_db: &str) -> SqlFailure {
        let mut message = self.message.clone();
        if let Some(d) = &self.detail {
            message.push_str(&format!(" ({d})"));
        }
        SqlFailure {
            sqlstate: self.sqlstate.clone(),
            message,
            statement: self.statement.as_deref().map(|s| statement_start(s, STATEMENT_START_CHARS)).unwrap_or_default(),
            line: self.start_line(),
            database: Some(self.database.clone().unwrap_or_else(|| default_db.to_string())),
        }
    }

    /// psql reports the line where a statement ended; its start is that
    /// minus the statement's own line breaks. A COPY is reported at the end
    /// of its data, which the statement does not show: that line is kept.
    fn start_line(&self) -> Option<u64> {
        let line = self.line?;
        match &self.statement {
            Some(s) if !s.trim_start().to_ascii_uppercase().starts_with("COPY ") => {
                Some(line.saturating_sub(s.trim_end().matches('\n').count() as u64).max(1))
            }
            _ => Some(line),
        }
    }
}

/// Everything collected from a tool's stderr.
pub(super) struct ToolLog<'t> {
    tool: Tool,
    tracker: &'t Tracker,
    on_error: OnError,
    /// pg_restore item ids -> (desc, namespace, tag), for directory restores.
    items: HashMap<i32, (String, Option<String>, String)>,
    pub errors: Vec<ToolError>,
    pub error_count: u64,
    pub warnings: u64,
    /// pg_restore's "errors ignored on restore: N".
    pub ignored: Option<u64>,
    /// A connection failure before anything ran.
    pub connection_error: Option<String>,
    /// The error still receiving detail or statement lines.
    open: Option<ToolError>,
    in_statement: bool,
    toc_context: Option<String>,
    tail: VecDeque<String>,
    tail_bytes: usize,
}

impl<'t> ToolLog<'t> {
    pub(super) fn new(tool: Tool, tracker: &'t Tracker, on_error: OnError, toc: Option<&[TocEntry]>) -> Self {
        let items = toc
            .unwrap_or_default()
            .iter()
            .map(|e| (e.dump_id, (e.desc.clone(), e.namespace.clone(), e.tag.clone())))
            .collect();
        ToolLog {
            tool,
            tracker,
            on_error,
            items,
            errors: Vec::new(),
            error_count: 0,
            warnings: 0,
            ignored: None,
            connection_error: None,
            open: None,
            in_statement: false,
            toc_context: None,
            tail: VecDeque::new(),
            tail_bytes: 0,
        }
    }

    /// Reads the tool's stderr to its end.
    pub(super) fn collect(mut self, stderr: impl Read) -> Self {
        let mut r = BufReader::with_capacity(64 * 1024, stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match read_capped_line(&mut r, &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    self.line(text.trim_end_matches(['\n', '\r']));
                }
            }
        }
        self.close_error();
        self
    }

    pub(super) fn line(&mut self, line: &str) {
        self.keep_tail(line);
        match self.tool {
            Tool::PgRestore => self.pg_restore_line(line),
            Tool::Psql => self.psql_line(line),
        }
    }

    fn keep_tail(&mut self, line: &str) {
        self.tail_bytes += line.len() + 1;
        self.tail.push_back(line.to_string());
        while self.tail_bytes > TAIL_BYTES {
            match self.tail.pop_front() {
                Some(l) => self.tail_bytes -= l.len() + 1,
                None => break,
            }
        }
    }

    fn pg_restore_line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("pg_restore: ") {
            self.in_statement = false;
            if let Some(msg) = rest.strip_prefix("error: ") {
                self.close_error();
                let context = self.toc_context.take();
                let mut e = server_error(msg);
                e.toc_entry = context;
                if msg.starts_with("connection to server") || msg.starts_with("could not connect") {
                    self.connection_error.get_or_insert_with(|| msg.to_string());
                }
                self.open = Some(e);
            } else if let Some(msg) = rest.strip_prefix("warning: ") {
                match msg.strip_prefix("errors ignored on restore: ") {
                    Some(n) => self.ignored = n.trim().parse().ok(),
                    None => self.warnings += 1,
                }
            } else if let Some(ctx) = rest.strip_prefix("from TOC entry ") {
                self.toc_context = Some(describe_toc_context(ctx));
            } else {
                self.progress(rest);
            }
            return;
        }
        if let Some(cmd) = line.strip_prefix("Command was: ") {
            if let Some(e) = &mut self.open {
                e.statement = Some(cmd.to_string());
                self.in_statement = true;
            }
            return;
        }
        self.continuation(line);
    }

    /// `--verbose` lines: `processing item 217 TABLE notes`, `creating TABLE "public.notes"`,
    /// `processing data for table "shop.items"`, `restoring large object with OID 16384`.
    fn progress(&mut self, rest: &str) {
        let item = rest.strip_prefix("processing item ").or_else(|| rest.strip_prefix("launching item "));
        if let Some(item) = item {
            let id = item.split_whitespace().next().and_then(|t| t.parse::<i32>().ok());
            if let Some((desc, ns, tag)) = id.and_then(|id| self.items.get(&id)) {
                self.tracker.set_object(desc, ns.as_deref(), tag);
            }
        } else if let Some(name) = rest.strip_prefix("processing data for table ") {
            let (schema, table) = split_qualified(unquote(name));
            self.tracker.set_object("TABLE DATA", schema, table);
        } else if let Some(created) = rest.strip_prefix("creating ") {
            if let Some((kind, name)) = created.split_once(" \"") {
                let (schema, object) = split_qualified(name.trim_end_matches('"'));
                self.tracker.set_object(kind, schema, object);
            }
        } else if let Some(oid) = rest.strip_prefix("restoring large object with OID ") {
            self.tracker.set_object("LARGE OBJECT", None, oid.trim());
        }
    }

    fn psql_line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("psql:") {
            if let Some(msg) = rest.strip_prefix(" error: ") {
                // "psql: error: connection to server ... failed: ..."
                self.close_error();
                self.connection_error.get_or_insert_with(|| msg.to_string());
                self.open = Some(ToolError { raw: msg.to_string(), message: msg.to_string(), ..Default::default() });
                return;
            }
            if let Some((lineno, severity, text)) = psql_location(rest) {
                if severity == "STATEMENT" {
                    if let Some(e) = &mut self.open
                        && e.statement.is_none()
                    {
                        e.statement = Some(text.to_string());
                        self.in_statement = true;
                        return;
                    }
                    self.in_statement = false;
                    return;
                }
                self.in_statement = false;
                let (code, message) = sqlstate_prefix(text);
                let is_error = match severity {
                    "ERROR" | "FATAL" | "PANIC" | "error" => true,
                    "WARNING" | "NOTICE" | "INFO" | "LOG" | "DEBUG" | "warning" => false,
                    // A translated severity: the SQLSTATE class tells.
                    _ => code.is_some_and(|c| !(c.starts_with("00") || c.starts_with("01") || c.starts_with("02"))),
                };
                if is_error {
                    self.close_error();
                    self.open = Some(ToolError {
                        raw: text.to_string(),
                        message: message.to_string(),
                        sqlstate: code.map(str::to_string),
                        line: Some(lineno),
                        database: self.tracker.snapshot().current_database,
                        ..Default::default()
                    });
                } else if matches!(severity, "WARNING" | "warning") || code.is_some_and(|c| c.starts_with("01")) {
                    self.warnings += 1;
                }
                return;
            }
        }
        self.continuation(line);
    }

    /// A line that continues the open error: more of its statement, or its DETAIL.
    fn continuation(&mut self, line: &str) {
        if self.in_statement {
            self.append_statement(line);
        } else if let (Some(d), Some(e)) = (line.strip_prefix("DETAIL:  "), &mut self.open) {
            e.detail.get_or_insert_with(|| d.to_string());
        }
    }

    /// A further line of the open error's statement.
    fn append_statement(&mut self, line: &str) {
        if let Some(stmt) = self.open.as_mut().and_then(|e| e.statement.as_mut())
            && stmt.len() < MAX_STATEMENT
        {
            stmt.push('\n');
            stmt.push_str(line);
        }
    }

    /// The open error is complete: count it (or, for psql, tolerate the
    /// known-harmless errors of a `--clean` dump) and keep the first few.
    fn close_error(&mut self) {
        self.in_statement = false;
        let Some(e) = self.open.take() else { return };
        if self.tool == Tool::Psql {
            let harmless = match (&e.statement, &e.sqlstate) {
                (Some(sql), Some(code)) => expected::classify(sql, code, &e.message).is_some(),
                _ => false,
            };
            if harmless {
                self.warnings += 1;
                self.tracker.add_warning();
                return;
            }
        }
        self.error_count += 1;
        if self.on_error == OnError::Continue {
            self.tracker.add_warning();
        }
        if self.errors.len() < KEEP_ERRORS {
            self.errors.push(e);
        }
    }

    fn tail_text(&self, lines: usize) -> String {
        let start = self.tail.len().saturating_sub(lines);
        self.tail.iter().skip(start).map(String::as_str).collect::<Vec<_>>().join(" | ")
    }

    /// The run's result from the exit status and what was printed.
    pub(super) fn outcome(&self, status: ExitStatus, target: &TargetConfig) -> Result<PgToolsReport, Error> {
        let report = PgToolsReport { warnings: self.warnings, errors_ignored: 0 };
        let failures = || self.errors.iter().map(|e| e.failure(&target.dbname)).collect::<Vec<_>>();
        if status.success() && self.error_count == 0 {
            return Ok(report);
        }
        if let Some(msg) = &self.connection_error {
            return Err(connection_failure(self.tool, msg, target));
        }
        // --on-error continue: everything that could be applied was; fail with the count.
        let ignored = self.ignored.unwrap_or(0).max(if self.tool == Tool::Psql { self.error_count } else { 0 });
        if ignored > 0 && (self.on_error == OnError::Continue || status.success()) {
            return Err(TargetError::Errors { count: ignored, first: failures() }.into());
        }
        if let Some(first) = self.errors.first() {
            if let Some(e) = archive_problem(self.tool, &first.raw) {
                return Err(e);
            }
            return Err(match self.tool {
                Tool::Psql if first.sqlstate.is_some() => TargetError::Sql(first.failure(&target.dbname)).into(),
                _ => {
                    let mut message = first.message.clone();
                    if let Some(d) = &first.detail {
                        message.push_str(&format!(" ({d})"));
                    }
                    if let Some(ctx) = &first.toc_entry {
                        message.push_str(&format!(" in {ctx}"));
                    }
                    let failure = first.statement.is_some().then(|| first.failure(&target.dbname));
                    TargetError::Tool { tool: self.tool.name(), message, failure }.into()
                }
            });
        }
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        // The tail may hold a "Command was:" line: never let a PASSWORD literal through.
        let tail = proto::redact_secrets(&self.tail_text(3));
        let message = if tail.is_empty() { how } else { format!("{how}: {tail}") };
        Err(TargetError::Tool { tool: self.tool.name(), message, failure: None }.into())
    }
}

/// pg_restore's complaints about the archive itself.
fn archive_problem(tool: Tool, raw: &str) -> Option<Error> {
    if tool != Tool::PgRestore {
        return None;
    }
    if raw.contains("could not read from input file: end of file") || raw.contains("could not find block ID") {
        return Some(DumpError::Truncated(format!("pg_restore reached the end of the archive early ({raw})")).into());
    }
    if let Some(pos) = raw.find("unsupported version (") {
        let version = raw[pos + 21..].split(')').next().unwrap_or("").to_string();
        let (major, minor) = version.split_once('.').unwrap_or(("1", "0"));
        let v = (major.parse().unwrap_or(1), minor.parse().unwrap_or(0), 0);
        let (installed_major, installed) = super::tool_version("pg_restore").unwrap_or((0, "?".into()));
        let _ = installed_major;
        return Some(
            ToolingError::TooOld {
                tool: "pg_restore".into(),
                installed,
                archive_version: version,
                written_by: "unknown".into(),
                needed_major: crate::archive::min_pg_restore_major(v),
            }
            .into(),
        );
    }
    if raw.contains("did not find magic string") || raw.contains("does not appear to be a valid archive") {
        return Some(DumpError::NotADump(format!("pg_restore does not recognise the archive ({raw})")).into());
    }
    if raw.contains("corrupt")
        || raw.contains("unrecognized data block type")
        || raw.contains("could not uncompress data")
    {
        return Some(DumpError::Archive(crate::archive::ArchiveError::Corrupt(raw.to_string())).into());
    }
    None
}

/// A connection failure reported by a tool, classified like the native engine's.
fn connection_failure(tool: Tool, msg: &str, target: &TargetConfig) -> Error {
    let shown = target.display();
    if msg.contains("password authentication failed")
        || msg.contains("no password supplied")
        || msg.contains("password is required")
    {
        let detail = msg.rsplit("FATAL:  ").next().unwrap_or(msg).trim().to_string();
        return TargetError::Auth { target: shown, user: target.user.clone(), detail }.into();
    }
    if let Some(pos) = msg.find("database \"")
        && msg[pos..].contains("\" does not exist")
    {
        let rest = &msg[pos + 10..];
        let dbname = rest.split("\" does not exist").next().unwrap_or(&target.dbname).to_string();
        return TargetError::DatabaseMissing { target: shown, dbname }.into();
    }
    TargetError::Tool { tool: tool.name(), message: format!("cannot connect to {shown}: {msg}"), failure: None }.into()
}

/// `could not execute query: ERROR:  relation "x" already exists` -> the server's message.
fn server_error(msg: &str) -> ToolError {
    let message = match msg.find("ERROR:  ") {
        Some(pos) => {
            let prefix = msg[..pos].trim_end_matches([':', ' ']);
            let server = &msg[pos + 8..];
            if prefix.is_empty() || prefix == "could not execute query" {
                server.to_string()
            } else {
                format!("{prefix}: {server}")
            }
        }
        None => msg.to_string(),
    };
    ToolError { raw: msg.to_string(), message, ..Default::default() }
}

/// `217; 1259 16407 TABLE notes postgres` -> `TOC entry 217: TABLE notes postgres`.
fn describe_toc_context(ctx: &str) -> String {
    match ctx.split_once("; ") {
        Some((id, rest)) => {
            let what: Vec<&str> = rest.split_whitespace().skip(2).collect();
            format!("TOC entry {id}: {}", what.join(" "))
        }
        None => format!("TOC entry {ctx}"),
    }
}

/// `<stdin>:12: ERROR:  42P01: ...` -> (12, "ERROR", "42P01: ...").
fn psql_location(rest: &str) -> Option<(u64, &str, &str)> {
    // The file name is "<stdin>" here, but split from the right of the line number.
    let (before, after) = rest.split_once(": ")?;
    let (_, lineno) = before.rsplit_once(':')?;
    let lineno = lineno.parse().ok()?;
    let (severity, text) = after.split_once(":  ").or_else(|| after.split_once(": "))?;
    if severity.is_empty() || severity.contains(' ') {
        return None;
    }
    Some((lineno, severity, text))
}

/// `42P01: relation ...` -> (Some("42P01"), "relation ...").
fn sqlstate_prefix(text: &str) -> (Option<&str>, &str) {
    let b = text.as_bytes();
    if b.len() > 7
        && b[5] == b':'
        && b[6] == b' '
        && b[..5].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        (Some(&text[..5]), &text[7..])
    } else {
        (None, text)
    }
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// `shop.items` -> (Some("shop"), "items").
fn split_qualified(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((s, n)) if !s.is_empty() => (Some(s), n),
        _ => (None, name),
    }
}

/// Reads one line into `out`, keeping at most [`MAX_LINE`] bytes of it.
fn read_capped_line<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let (done, used) = {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(total);
            }
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    let room = MAX_LINE.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..(i + 1).min(room)]);
                    (true, i + 1)
                }
                None => {
                    let room = MAX_LINE.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..buf.len().min(room)]);
                    (false, buf.len())
                }
            }
        };
        r.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests;
