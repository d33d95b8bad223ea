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
            "TABLE DATA"
            | "SEQUENCE SET"
            | "BLOB"
            | "BLOBS"
            | "BLOB DATA"
            | "LARGE OBJECT"
            | "MATERIALIZED VIEW DATA" => Section::Data,
            "INDEX"
            | "INDEX ATTACH"
            | "CONSTRAINT"
            | "FK CONSTRAINT"
            | "TRIGGER"
            | "RULE"
            | "POLICY"
            | "EVENT TRIGGER"
            | "STATISTICS"
            | "PUBLICATION TABLE"
            | "PUBLICATION TABLES IN SCHEMA"
            | "CHECK CONSTRAINT"
            | "DEFAULT ACL" => Section::PostData,
            _ => Section::PreData,
        }
    }
}

/// Live progress of one restore. Every field is optional in the CRD status so
/// that the agent can send what it knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreProgress {
    /// The dump being read, as the agent resolved it: with `--pick latest`,
    /// the file or object it chose (never a URL's query string). The operator
    /// pins it so that a retry restores the same file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
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
/// error reports, collapsing whitespace runs so it fits on one line, with
/// secrets redacted (see [`redact_secrets`]).
pub fn statement_start(sql: &str, max: usize) -> String {
    let sql = redact_secrets(sql);
    let sql = sql.as_str();
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

/// Replaces the string literal that follows `PASSWORD` (roles, user
/// mappings) or `CONNECTION` (subscriptions) with `'<redacted>'`, so that an
/// error report about `ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'` or
/// `CREATE SUBSCRIPTION ... CONNECTION 'password=...'` shows no secret.
pub fn redact_secrets(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let lower = sql.to_ascii_lowercase();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < bytes.len() {
        let keyword = ["password", "connection"].into_iter().find(|k| {
            lower[i..].starts_with(k)
                && (i == 0 || !is_ident_byte(bytes[i - 1]))
                && !bytes.get(i + k.len()).is_some_and(|b| is_ident_byte(*b))
        });
        let Some(k) = keyword else {
            let ch = sql[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        };
        out.push_str(&sql[i..i + k.len()]);
        i += k.len();
        // Whitespace, then an optional E prefix, then the literal.
        let ws = sql[i..].len() - sql[i..].trim_start().len();
        out.push_str(&sql[i..i + ws]);
        i += ws;
        let start = if bytes.get(i).is_some_and(|b| *b == b'E' || *b == b'e') && bytes.get(i + 1) == Some(&b'\'') {
            i + 1
        } else {
            i
        };
        if bytes.get(start) != Some(&b'\'') {
            continue;
        }
        // Skip to the closing quote ('' is an escaped quote); an unclosed
        // literal is redacted to the end.
        let mut j = start + 1;
        while j < bytes.len() {
            if bytes[j] == b'\'' {
                if bytes.get(j + 1) == Some(&b'\'') {
                    j += 2;
                    continue;
                }
                break;
            }
            if bytes[j] == b'\\' && start > i {
                j += 1;
            }
            j += 1;
        }
        out.push_str("'<redacted>'");
        i = (j + 1).min(bytes.len());
    }
    out
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
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
    fn secrets_are_redacted_from_statements() {
        let cases = [
            (
                "ALTER ROLE app WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc=:def='",
                "ALTER ROLE app WITH LOGIN PASSWORD '<redacted>'",
            ),
            (
                "CREATE SUBSCRIPTION s CONNECTION 'host=x password=hunter2' PUBLICATION p",
                "CREATE SUBSCRIPTION s CONNECTION '<redacted>' PUBLICATION p",
            ),
            (
                "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'it''s')",
                "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password '<redacted>')",
            ),
            ("ALTER ROLE a PASSWORD E'x\\'y'", "ALTER ROLE a PASSWORD '<redacted>'"),
            ("ALTER ROLE a PASSWORD 'unterminated", "ALTER ROLE a PASSWORD '<redacted>'"),
            ("SELECT password_hash, 'keep' FROM t", "SELECT password_hash, 'keep' FROM t"),
            ("ALTER ROLE a PASSWORD NULL", "ALTER ROLE a PASSWORD NULL"),
        ];
        for (sql, want) in cases {
            assert_eq!(redact_secrets(sql), want, "{sql}");
        }
        assert!(!statement_start("ALTER ROLE a PASSWORD 'hunter2'", 200).contains("hunter2"));
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
