//! The result of a tool's run, from its exit status and what it printed.

use std::process::ExitStatus;

use proto::crd::OnError;

use super::{Tool, ToolLog};
use crate::archive::ArchiveError;
use crate::dump::DumpError;
use crate::engine::EngineError;
use crate::engine::pg_tools::{PgToolsReport, ToolingError, tool_version};
use crate::postgres::{TargetConfig, TargetError};

impl ToolLog<'_> {
    /// The run's result from the exit status and what was printed.
    pub(crate) fn outcome(&self, status: ExitStatus, target: &TargetConfig) -> Result<PgToolsReport, EngineError> {
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
fn archive_problem(tool: Tool, raw: &str) -> Option<EngineError> {
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
        let (installed_major, installed) = tool_version("pg_restore").unwrap_or((0, "?".into()));
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
        return Some(DumpError::not_a_dump(format!("pg_restore does not recognise the archive ({raw})")).into());
    }
    if raw.contains("corrupt")
        || raw.contains("unrecognized data block type")
        || raw.contains("could not uncompress data")
    {
        return Some(DumpError::Archive(ArchiveError::Corrupt(raw.to_string())).into());
    }
    None
}

/// A connection failure reported by a tool, classified like the native engine's.
fn connection_failure(tool: Tool, msg: &str, target: &TargetConfig) -> EngineError {
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
