//! Which kind of dump a stream holds, told from its first (decompressed)
//! bytes: a pg_dump custom archive (`PGDMP`), a pg_dump tar archive (a tar
//! whose first entry is `toc.dat`), a pg_dumpall script, or a plain SQL
//! script. Directory-format dumps are directories, recognised by
//! [`is_directory_dump`].

use std::path::Path;

use crate::error::DumpError;

/// The dump formats the agent knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpFormat {
    /// A pg_dump plain SQL script.
    Plain,
    /// A pg_dumpall script (several databases, roles; `\connect`).
    #[value(skip)]
    PgDumpAll,
    /// pg_dump -Fc.
    Custom,
    /// pg_dump -Fd.
    Directory,
    /// pg_dump -Ft.
    Tar,
}

impl DumpFormat {
    /// The name a person reads: `plain`, `pg_dumpall`, `custom`, `directory`, `tar`.
    pub fn name(self) -> &'static str {
        match self {
            DumpFormat::Plain => "plain",
            DumpFormat::PgDumpAll => "pg_dumpall",
            DumpFormat::Custom => "custom",
            DumpFormat::Directory => "directory",
            DumpFormat::Tar => "tar",
        }
    }

    /// Whether pg_restore (rather than an SQL client) reads this format.
    pub fn is_archive(self) -> bool {
        matches!(self, DumpFormat::Custom | DumpFormat::Directory | DumpFormat::Tar)
    }
}

impl std::fmt::Display for DumpFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `--format`: a format, or detection from the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FormatChoice {
    /// Tell the format from the first bytes (or a directory's `toc.dat`).
    #[default]
    Auto,
    /// A plain SQL script (pg_dump's default format, or any SQL file).
    Plain,
    /// A pg_dump -Fc archive.
    Custom,
    /// A pg_dump -Fd directory.
    Directory,
    /// A pg_dump -Ft archive.
    Tar,
}

impl FormatChoice {
    /// The format of a stream starting with `head` (the first up to 64 KiB of
    /// the decompressed bytes). `Auto` detects; a forced format is accepted
    /// only when the bytes do not contradict it.
    pub fn resolve(self, head: &[u8]) -> Result<DumpFormat, DumpError> {
        let detected = detect(head);
        match self {
            FormatChoice::Auto => detected,
            FormatChoice::Plain => match detected {
                Ok(DumpFormat::Plain | DumpFormat::PgDumpAll) => Ok(DumpFormat::Plain),
                Ok(other) => Err(contradiction("plain", other)),
                Err(DumpError::Empty) => Err(DumpError::Empty),
                // Not recognised as SQL, but text: the user knows better.
                Err(_) if looks_like_text(head) => Ok(DumpFormat::Plain),
                Err(e) => Err(forced_mismatch("plain", e)),
            },
            FormatChoice::Custom => match detected {
                Ok(DumpFormat::Custom) => Ok(DumpFormat::Custom),
                Ok(other) => Err(contradiction("custom", other)),
                Err(DumpError::Empty) => Err(DumpError::Empty),
                Err(e) => Err(forced_mismatch("custom", e)),
            },
            FormatChoice::Tar => match detected {
                Ok(DumpFormat::Tar) => Ok(DumpFormat::Tar),
                Ok(other) => Err(contradiction("tar", other)),
                Err(DumpError::Empty) => Err(DumpError::Empty),
                Err(e) => Err(forced_mismatch("tar", e)),
            },
            FormatChoice::Directory => match detected {
                Err(DumpError::Empty) => Err(DumpError::Empty),
                Ok(other) => Err(DumpError::NotADump(format!(
                    "--format directory needs a directory that holds toc.dat, but the source is a single stream that holds a {} dump",
                    other.name()
                ))),
                Err(e) => Err(forced_mismatch("directory", e)),
            },
        }
    }

    /// The format of a local directory: only a pg_dump directory dump (or `Auto`) fits.
    pub fn resolve_directory(self, path: &Path) -> Result<DumpFormat, DumpError> {
        if !is_directory_dump(path) {
            return Err(DumpError::NotADump(format!(
                "{} is a directory without toc.dat, not a pg_dump directory-format dump",
                path.display()
            )));
        }
        match self {
            FormatChoice::Auto | FormatChoice::Directory => Ok(DumpFormat::Directory),
            FormatChoice::Plain => Err(contradiction("plain", DumpFormat::Directory)),
            FormatChoice::Custom => Err(contradiction("custom", DumpFormat::Directory)),
            FormatChoice::Tar => Err(contradiction("tar", DumpFormat::Directory)),
        }
    }
}

fn contradiction(forced: &str, found: DumpFormat) -> DumpError {
    DumpError::NotADump(format!("--format {forced} was given, but the source is a {} dump", found.name()))
}

fn forced_mismatch(forced: &str, e: DumpError) -> DumpError {
    match e {
        DumpError::NotADump(what) => {
            DumpError::NotADump(format!("--format {forced} was given, but the source is {what}"))
        }
        other => other,
    }
}

/// Whether `path` is a pg_dump directory-format dump (a directory holding
/// `toc.dat`, or the `toc.dat.gz`/`.lz4`/`.zst` that pg_restore also accepts).
pub fn is_directory_dump(path: &Path) -> bool {
    path.is_dir() && ["toc.dat", "toc.dat.gz", "toc.dat.lz4", "toc.dat.zst"].iter().any(|f| path.join(f).is_file())
}

const CLUSTER_DUMP_MARK: &str = "-- PostgreSQL database cluster dump";
const DATABASE_DUMP_MARK: &str = "-- PostgreSQL database dump";
const TAR_BLOCK: usize = 512;

/// Tells the format of a stream from its first bytes (the first up to
/// 64 KiB of the decompressed stream; fewer when the stream is shorter).
pub fn detect(head: &[u8]) -> Result<DumpFormat, DumpError> {
    if head.is_empty() {
        return Err(DumpError::Empty);
    }
    if head.starts_with(b"PGDMP") {
        return Ok(DumpFormat::Custom);
    }
    if head.len() >= 263 && &head[257..262] == b"ustar" {
        let name = tar_entry_name(&head[..TAR_BLOCK.min(head.len())]);
        return if name == "toc.dat" {
            Ok(DumpFormat::Tar)
        } else {
            Err(DumpError::NotADump(format!(
                "a tar file that is not a pg_dump archive (its first entry is \"{}\", pg_dump -Ft starts with toc.dat)",
                name.escape_debug()
            )))
        };
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if let Some(kind) = sql_script_kind(text) {
        return Ok(kind);
    }
    if text.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DumpError::NotADump("only whitespace".into()));
    }
    Err(DumpError::NotADump(describe(head)))
}

/// The name of the first tar entry (NUL-terminated, at most 100 bytes).
fn tar_entry_name(block: &[u8]) -> String {
    let name = &block[..100.min(block.len())];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

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

fn looks_like_text(head: &[u8]) -> bool {
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    !has_binary_bytes(text) && is_utf8_text(text)
}

/// Plain or pg_dumpall when `text` reads like an SQL script.
fn sql_script_kind(text: &[u8]) -> Option<DumpFormat> {
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
        return Some(DumpFormat::PgDumpAll);
    }
    if first.starts_with(b"--")
        || first.starts_with(b"/*")
        || first.starts_with(b"\\")
        || starts_with_sql_keyword(first)
    {
        return Some(DumpFormat::Plain);
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
fn describe(head: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn not_a_dump(head: &[u8]) -> String {
        match detect(head) {
            Err(DumpError::NotADump(what)) => what,
            other => panic!("expected NotADump, got {other:?}"),
        }
    }

    fn tar_with_first_entry(name: &str) -> Vec<u8> {
        let mut h = vec![0u8; 1024];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    #[test]
    fn archives_are_told_by_their_magic() {
        assert!(matches!(detect(b"PGDMP\x01\x0e\x00\x04\x08\x01"), Ok(DumpFormat::Custom)));
        assert!(matches!(detect(&tar_with_first_entry("toc.dat")), Ok(DumpFormat::Tar)));
        let real_tar = include_bytes!("archive/testdata/archive.tar");
        assert!(matches!(detect(real_tar), Ok(DumpFormat::Tar)));
        let real_custom = include_bytes!("archive/testdata/custom.dump");
        assert!(matches!(detect(real_custom), Ok(DumpFormat::Custom)));
    }

    #[test]
    fn a_tar_that_is_not_pg_dump_is_named() {
        let what = not_a_dump(&tar_with_first_entry("etc/passwd"));
        assert_eq!(
            what,
            "a tar file that is not a pg_dump archive (its first entry is \"etc/passwd\", pg_dump -Ft starts with toc.dat)"
        );
    }

    #[test]
    fn scripts_are_plain_or_pg_dumpall() {
        let pg_dump = b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET statement_timeout = 0;\n";
        assert!(matches!(detect(pg_dump), Ok(DumpFormat::Plain)));
        let dumpall =
            b"--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict k\nSET default_transaction_read_only = off;\n";
        assert!(matches!(detect(dumpall), Ok(DumpFormat::PgDumpAll)));
        // The mark only counts in the leading comment block.
        let later = b"SELECT 1;\n-- PostgreSQL database cluster dump\n";
        assert!(matches!(detect(later), Ok(DumpFormat::Plain)));
        for s in [
            &b"  \n\nCREATE TABLE t (a int);"[..],
            b"create table t(a int);",
            b"BEGIN;",
            b"/* hello */ SELECT 1",
            b"\\connect foo\n",
            b"insert into t values (1)",
            b"COPY t FROM stdin;\n1\n\\.\n",
            b"\xEF\xBB\xBFSET x = 1;",
            b"alter\ttable t add b int",
        ] {
            assert!(matches!(detect(s), Ok(DumpFormat::Plain)), "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn a_cut_utf8_character_at_the_end_is_fine_but_invalid_utf8_is_not() {
        let mut s = "-- données\nINSERT INTO t VALUES ('é".as_bytes().to_vec();
        s.extend_from_slice(&"é".as_bytes()[..1]);
        assert!(matches!(detect(&s), Ok(DumpFormat::Plain)));
        let bad = b"SELECT '\xff\xfe';\n";
        assert_eq!(
            not_a_dump(bad),
            "text that is not UTF-8 and has no pg_dump header (starts with \"SELECT \\'\u{fffd}\u{fffd}\\';\")"
        );
        // ...unless pg_dump's header says it is a dump (a LATIN1 database).
        let latin1 = b"--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'LATIN1';\nINSERT INTO t VALUES ('caf\xe9');\n";
        assert!(matches!(detect(latin1), Ok(DumpFormat::Plain)));
    }

    #[test]
    fn empty_and_binary_inputs_are_refused_with_what_they_look_like() {
        assert!(matches!(detect(b""), Err(DumpError::Empty)));
        assert_eq!(not_a_dump(b"\x7fELF\x02\x01\x01\x00\x00"), "an ELF executable");
        assert_eq!(not_a_dump(b"   \n\t "), "only whitespace");
        assert_eq!(
            not_a_dump(b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09"),
            "binary data starting with 00 01 02 03 04 05 06 07"
        );
        assert_eq!(
            not_a_dump(b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>"),
            "an XML document, perhaps an error response from the server (starts with \"<?xml version=\\\"1.0\\\"?><Error><Code>NoSuchKey</Code></Error>\")"
        );
        assert!(not_a_dump(b"<!DOCTYPE html><html>").starts_with("an HTML page"));
        assert_eq!(not_a_dump(b"hello world\n"), "text that does not look like SQL (starts with \"hello world\")");
        assert_eq!(
            not_a_dump(b"SELECTED works\n"),
            "text that does not look like SQL (starts with \"SELECTED works\")"
        );
    }

    #[test]
    fn random_bytes_are_not_a_dump() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut buf = vec![0u8; 4096];
            rng.fill(&mut buf[..]);
            if buf.starts_with(b"PGDMP") {
                continue;
            }
            assert!(matches!(detect(&buf), Err(DumpError::NotADump(_))));
        }
    }

    #[test]
    fn forced_formats_must_match_the_bytes() {
        let custom = include_bytes!("archive/testdata/custom.dump");
        let plain = b"--\n-- PostgreSQL database dump\n--\nSET x = 1;\n";
        assert!(matches!(FormatChoice::Custom.resolve(custom), Ok(DumpFormat::Custom)));
        assert!(matches!(FormatChoice::Auto.resolve(plain), Ok(DumpFormat::Plain)));
        match FormatChoice::Custom.resolve(plain) {
            Err(DumpError::NotADump(m)) => assert_eq!(m, "--format custom was given, but the source is a plain dump"),
            other => panic!("{other:?}"),
        }
        match FormatChoice::Plain.resolve(custom) {
            Err(DumpError::NotADump(m)) => assert_eq!(m, "--format plain was given, but the source is a custom dump"),
            other => panic!("{other:?}"),
        }
        match FormatChoice::Tar.resolve(b"\x7fELF\x02") {
            Err(DumpError::NotADump(m)) => assert_eq!(m, "--format tar was given, but the source is an ELF executable"),
            other => panic!("{other:?}"),
        }
        match FormatChoice::Directory.resolve(custom) {
            Err(DumpError::NotADump(m)) => assert!(m.starts_with("--format directory needs a directory"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Plain accepts any SQL-ish text, even what detection does not recognise.
        assert!(matches!(FormatChoice::Plain.resolve(b"hello world;\n"), Ok(DumpFormat::Plain)));
        // A pg_dumpall script forced to plain is treated as the user says.
        assert!(matches!(
            FormatChoice::Plain.resolve(b"--\n-- PostgreSQL database cluster dump\n--\n"),
            Ok(DumpFormat::Plain)
        ));
        assert!(matches!(FormatChoice::Custom.resolve(b""), Err(DumpError::Empty)));
    }

    #[test]
    fn directory_dumps_hold_toc_dat() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_directory_dump(dir.path()));
        assert!(FormatChoice::Auto.resolve_directory(dir.path()).is_err());
        std::fs::write(dir.path().join("toc.dat"), b"PGDMP").unwrap();
        assert!(is_directory_dump(dir.path()));
        assert!(matches!(FormatChoice::Auto.resolve_directory(dir.path()), Ok(DumpFormat::Directory)));
        assert!(FormatChoice::Custom.resolve_directory(dir.path()).is_err());
        assert!(!is_directory_dump(&dir.path().join("toc.dat")));
    }
}
