//! What the agent reports while it restores, and why it failed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The part of a dump being restored, in pg_dump's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Roles, databases, schemas, tables, functions: everything before data.
    #[default]
    PreData,
    /// Table contents, sequence values, large objects.
    Data,
    /// Indexes, constraints, triggers, rules, policies, grants.
    PostData,
}

impl Section {
    /// Classifies a pg_dump TOC entry type ("TABLE DATA", "INDEX", ...).
    pub fn of_object_type(kind: &str) -> Section {
        match kind {
            "TABLE DATA" | "SEQUENCE SET" | "BLOB" | "BLOBS" | "BLOB DATA" | "LARGE OBJECT"
            | "MATERIALIZED VIEW DATA" => Section::Data,
            "INDEX" | "INDEX ATTACH" | "CONSTRAINT" | "FK CONSTRAINT" | "TRIGGER" | "RULE"
            | "POLICY" | "EVENT TRIGGER" | "STATISTICS" | "PUBLICATION TABLE"
            | "PUBLICATION TABLES IN SCHEMA" | "CHECK CONSTRAINT" | "DEFAULT ACL" => Section::PostData,
            _ => Section::PreData,
        }
    }
}

/// Live progress of one restore. Every field is optional in the CRD status so
/// that the agent can send what it knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreProgress {
    /// Bytes of the source read so far (compressed, as stored).
    pub bytes_read: u64,
    /// Size of the source in bytes, when the source tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// Uncompressed bytes fed to the restore so far.
    #[serde(default)]
    pub bytes_uncompressed: u64,
    /// Percent of the source read, 0-100, when the size is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Rows sent by COPY so far.
    #[serde(default)]
    pub rows_copied: u64,
    /// The object being restored, e.g. `TABLE DATA public.film`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_object: Option<String>,
    /// The database being restored into (changes while a pg_dumpall dump runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_database: Option<String>,
    /// pre-data, data or post-data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<Section>,
    /// Source read rate, human readable, e.g. `12.3 MiB/s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<String>,
    /// Source read rate in bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    /// Estimated time left, e.g. `1m 20s`, when the size is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
    /// Seconds since the restore started.
    #[serde(default)]
    pub elapsed_seconds: u64,
    /// SQL errors seen and tolerated so far (`--on-error continue`, or the
    /// known harmless errors of a `pg_dumpall --clean` dump).
    #[serde(default)]
    pub warnings: u64,
}

/// Why a restore failed. Never contains a secret: statements are cut to their
/// start and connection strings are never included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFailure {
    /// A short CamelCase category, e.g. `ChecksumMismatch`, `SqlError`,
    /// `SourceNotFound`, `TargetNotEmpty`.
    pub reason: String,
    /// A sentence for a person.
    pub message: String,
    /// The PostgreSQL SQLSTATE of a failed statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// The start of the failing statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// The line of the dump where the failing statement starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The agent's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
}

/// Cuts a statement to its first `max` characters (on a char boundary) for
/// error reports, collapsing whitespace runs so it fits on one line.
pub fn statement_start(sql: &str, max: usize) -> String {
    let mut out = String::with_capacity(max.min(sql.len()) + 3);
    let mut last_space = true;
    let mut n = 0;
    for ch in sql.trim().chars() {
        if n >= max {
            out.push_str("...");
            return out;
        }
        if ch.is_whitespace() {
            if !last_space {
                out.push(' ');
                n += 1;
            }
            last_space = true;
        } else {
            out.push(ch);
            n += 1;
            last_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_pg_dump() {
        assert_eq!(Section::of_object_type("TABLE"), Section::PreData);
        assert_eq!(Section::of_object_type("TABLE DATA"), Section::Data);
        assert_eq!(Section::of_object_type("FK CONSTRAINT"), Section::PostData);
        assert_eq!(Section::of_object_type("SEQUENCE SET"), Section::Data);
    }

    #[test]
    fn statement_start_is_one_line_and_cut() {
        assert_eq!(statement_start("  CREATE\n  TABLE t (\n a int);", 100), "CREATE TABLE t ( a int);");
        assert_eq!(statement_start("SELECT 'ééééé'", 9), "SELECT 'é...");
    }

    #[test]
    fn progress_serialises_camel_case_without_unknowns() {
        let p = RestoreProgress { bytes_read: 10, rows_copied: 2, ..Default::default() };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["bytesRead"], 10);
        assert_eq!(v["rowsCopied"], 2);
        assert!(v.get("bytesTotal").is_none());
        assert!(v.get("percent").is_none());
    }
}
