//! What pg_restore and psql print on stderr: errors (with the failed
//! statement), warnings, and pg_restore's `--verbose` progress lines. The
//! lines are collected here (their forms in [`parse`]); [`outcome`] judges
//! a run from them and the exit status.

mod outcome;
mod parse;

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Read};

use proto::crd::OnError;
use proto::statement_start;

use crate::archive::TocEntry;
use crate::engine::expected;
use crate::postgres::{STATEMENT_START_CHARS, SqlFailure};
use crate::progress::Tracker;
use parse::{
    describe_toc_context, psql_location, read_capped_line, server_error, split_qualified, sqlstate_prefix, unquote,
};

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
}

#[cfg(test)]
mod tests;
