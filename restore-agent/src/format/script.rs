//! Whether the first bytes read like an SQL script (and which kind), and
//! what bytes that are no dump look like, for the error that says so.

use super::Format;

const CLUSTER_DUMP_MARK: &str = "-- PostgreSQL database cluster dump";
const DATABASE_DUMP_MARK: &str = "-- PostgreSQL database dump";

/// Control bytes other than tab, CR, LF and form feed mark binary data.
fn has_binary_bytes(b: &[u8]) -> bool {
    b.iter().any(|&c| (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r' | 0x0c)) || c == 0x7f)
}

/// Valid UTF-8 except, perhaps, for a character cut at the end of the head.
fn is_utf8_text(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && b.len() - e.valid_up_to() < 4,
    }
}

pub(super) fn looks_like_text(head: &[u8]) -> bool {
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    !has_binary_bytes(text) && is_utf8_text(text)
}

/// Plain or pg_dumpall when `text` reads like an SQL script.
pub(super) fn sql_script_kind(text: &[u8]) -> Option<Format> {
    if has_binary_bytes(text) {
        return None;
    }
    let first = first_content(text)?;
    let pg_dump_header = first.starts_with(b"--") && leading_comments_contain(text, DATABASE_DUMP_MARK);
    // A pg_dump script of a LATIN1 (or other non-UTF-8) database is still a
    // dump: accept its bytes when pg_dump's own header says what it is.
    if !is_utf8_text(text) && !pg_dump_header && !leading_comments_contain(text, CLUSTER_DUMP_MARK) {
        return None;
    }
    if first.starts_with(b"--") && leading_comments_contain(text, CLUSTER_DUMP_MARK) {
        return Some(Format::PgDumpAll);
    }
    if first.starts_with(b"--")
        || first.starts_with(b"/*")
        || first.starts_with(b"\\")
        || starts_with_sql_keyword(first)
    {
        return Some(Format::Plain);
    }
    None
}

/// The text from the first non-blank byte on.
fn first_content(text: &[u8]) -> Option<&[u8]> {
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    Some(&text[start..])
}

/// Whether a comment line of the leading comment block (blank lines and
/// `--` lines before anything else) contains `mark`.
fn leading_comments_contain(text: &[u8], mark: &str) -> bool {
    for line in text.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with(b"--") {
            return false;
        }
        if memchr::memmem::find(line, &mark.as_bytes()[3..]).is_some() {
            return true;
        }
    }
    false
}

const SQL_KEYWORDS: &[&str] = &[
    "ABORT",
    "ALTER",
    "ANALYZE",
    "BEGIN",
    "CALL",
    "CHECKPOINT",
    "CLOSE",
    "CLUSTER",
    "COMMENT",
    "COMMIT",
    "COPY",
    "CREATE",
    "DEALLOCATE",
    "DECLARE",
    "DELETE",
    "DISCARD",
    "DO",
    "DROP",
    "END",
    "EXECUTE",
    "EXPLAIN",
    "GRANT",
    "IMPORT",
    "INSERT",
    "LISTEN",
    "LOCK",
    "MERGE",
    "NOTIFY",
    "PREPARE",
    "REASSIGN",
    "REFRESH",
    "REINDEX",
    "RELEASE",
    "RESET",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SECURITY",
    "SELECT",
    "SET",
    "SHOW",
    "START",
    "TABLE",
    "TRUNCATE",
    "UNLISTEN",
    "UPDATE",
    "VACUUM",
    "VALUES",
    "WITH",
];

fn starts_with_sql_keyword(text: &[u8]) -> bool {
    let word_len = text.iter().position(|b| !b.is_ascii_alphabetic()).unwrap_or(text.len());
    if word_len == 0 || word_len > 12 {
        return false;
    }
    // The keyword must be a whole word: followed by a separator or the end.
    if let Some(&next) = text.get(word_len)
        && !(next.is_ascii_whitespace() || matches!(next, b';' | b'('))
    {
        return false;
    }
    let word = &text[..word_len];
    SQL_KEYWORDS.iter().any(|k| k.as_bytes().eq_ignore_ascii_case(word))
}

/// What the bytes look like, for a "not a dump" message.
pub(super) fn describe(head: &[u8]) -> String {
    const MAGICS: &[(&[u8], &str)] = &[
        (b"\x7fELF", "an ELF executable"),
        (b"PK\x03\x04", "a zip archive (unzip it first; the agent reads gzip, zstd and lz4)"),
        (b"\x1f\x8b", "gzip data inside the decompressed stream (compressed twice?)"),
        (b"\x28\xb5\x2f\xfd", "zstd data inside the decompressed stream (compressed twice?)"),
        (b"BZh", "bzip2-compressed data (the agent reads gzip, zstd and lz4)"),
        (b"\xfd7zXZ\x00", "xz-compressed data (the agent reads gzip, zstd and lz4)"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"SQLite format 3\x00", "an SQLite database"),
    ];
    for (magic, what) in MAGICS {
        if head.starts_with(magic) {
            return (*what).to_string();
        }
    }
    if looks_like_text(head) {
        let text = String::from_utf8_lossy(head);
        let trimmed = text.trim_start();
        let lower: String = trimmed.chars().take(64).collect::<String>().to_ascii_lowercase();
        let start = first_line_start(trimmed);
        if lower.starts_with("<?xml") {
            return format!("an XML document, perhaps an error response from the server (starts with \"{start}\")");
        }
        if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
            return format!("an HTML page, perhaps an error page from the server (starts with \"{start}\")");
        }
        if lower.starts_with('{') || lower.starts_with('[') {
            return format!("JSON text (starts with \"{start}\")");
        }
        return format!("text that does not look like SQL (starts with \"{start}\")");
    }
    if !has_binary_bytes(head) {
        let start = first_line_start(String::from_utf8_lossy(head).trim_start());
        return format!("text that is not UTF-8 and has no pg_dump header (starts with \"{start}\")");
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("binary data starting with {}", hex.join(" "))
}

fn first_line_start(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut s: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        s.push_str("...");
    }
    s.escape_debug().to_string()
}
