//! Which kind of dump a stream holds, told from its first (decompressed)
//! bytes: a pg_dump custom archive (`PGDMP`), a pg_dump tar archive (a tar
//! whose first entry is `toc.dat`), a pg_dumpall script, or a plain SQL
//! script. Directory-format dumps are directories, which the source
//! recognises by their `toc.dat`.
//!
//! A [`Format`] is what the bytes are; a [`FormatChoice`] (`--format`, the
//! CRD's `format`) is what the user asked for. [`resolve`] and
//! [`resolve_directory`] are the one rule that reconciles the two.

mod script;

use proto::crd::FormatChoice;

/// A dump format, as detected from the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A pg_dump plain SQL script.
    Plain,
    /// A pg_dumpall script (several databases, roles; `\connect`).
    PgDumpAll,
    /// pg_dump -Fc.
    Custom,
    /// pg_dump -Fd.
    Directory,
    /// pg_dump -Ft.
    Tar,
}

impl Format {
    /// The name a person reads: `plain`, `pg_dumpall`, `custom`, `directory`, `tar`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::PgDumpAll => "pg_dumpall",
            Format::Custom => "custom",
            Format::Directory => "directory",
            Format::Tar => "tar",
        }
    }

    /// What the dump is, in words: `plain SQL dump`, `custom-format archive`, ...
    pub fn description(self) -> &'static str {
        match self {
            Format::Plain => "plain SQL dump",
            Format::PgDumpAll => "pg_dumpall script",
            Format::Custom => "custom-format archive",
            Format::Directory => "directory-format dump",
            Format::Tar => "tar-format archive",
        }
    }

    /// A psql script (plain or pg_dumpall), rather than a pg_restore archive.
    pub fn is_script(self) -> bool {
        matches!(self, Format::Plain | Format::PgDumpAll)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The bytes are no dump, or not the dump `--format` asked for.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("the source is empty (0 bytes)")]
    Empty,
    #[error("the source is not a PostgreSQL dump: {0}")]
    NotADump(String),
}

/// The format of a stream starting with `head` (the first up to 64 KiB of
/// the decompressed bytes). `Auto` detects; a forced format is accepted only
/// when the bytes do not contradict it. `plain` takes a plain or a
/// pg_dumpall script (and keeps pg_dumpall: such a script `\connect`s), and
/// any text that detection does not recognise as SQL (the user knows better).
pub fn resolve(choice: FormatChoice, head: &[u8]) -> Result<Format, FormatError> {
    let found = match (choice, detect(head)) {
        (FormatChoice::Auto, detected) => return detected,
        (_, Err(FormatError::Empty)) => return Err(FormatError::Empty),
        (FormatChoice::Plain, Err(_)) if script::looks_like_text(head) => return Ok(Format::Plain),
        (_, Err(e)) => return Err(forced_mismatch(choice, e)),
        (_, Ok(found)) => found,
    };
    match choice {
        FormatChoice::Plain if found.is_script() => Ok(found),
        FormatChoice::Custom if found == Format::Custom => Ok(found),
        FormatChoice::Tar if found == Format::Tar => Ok(found),
        FormatChoice::Directory => Err(FormatError::NotADump(format!(
            "--format directory needs a directory that holds toc.dat, but the source is a single stream that holds a {} dump",
            found.name()
        ))),
        _ => Err(contradiction(choice, found)),
    }
}

/// The format of a directory-format dump (a directory holding `toc.dat`):
/// only `auto` and `directory` fit.
pub fn resolve_directory(choice: FormatChoice) -> Result<Format, FormatError> {
    match choice {
        FormatChoice::Auto | FormatChoice::Directory => Ok(Format::Directory),
        other => Err(contradiction(other, Format::Directory)),
    }
}

fn contradiction(forced: FormatChoice, found: Format) -> FormatError {
    FormatError::NotADump(format!("--format {forced} was given, but the source is a {} dump", found.name()))
}

fn forced_mismatch(forced: FormatChoice, e: FormatError) -> FormatError {
    match e {
        FormatError::NotADump(what) => {
            FormatError::NotADump(format!("--format {forced} was given, but the source is {what}"))
        }
        other => other,
    }
}

/// Whether a script creates or connects to databases itself (pg_dumpall, or
/// pg_dump --create, whose `\connect` shows in its first bytes): then it
/// cannot run in one transaction, starts from `postgres`, and needs an empty
/// cluster rather than an empty database.
pub fn is_multi_database(format: Format, head: &[u8]) -> bool {
    match format {
        Format::PgDumpAll => true,
        Format::Plain => head.split(|b| *b == b'\n').any(|l| l.starts_with(b"\\connect ") || l.starts_with(b"\\c ")),
        _ => false,
    }
}

const TAR_BLOCK: usize = 512;

/// Tells the format of a stream from its first bytes (the first up to
/// 64 KiB of the decompressed stream; fewer when the stream is shorter).
pub fn detect(head: &[u8]) -> Result<Format, FormatError> {
    if head.is_empty() {
        return Err(FormatError::Empty);
    }
    if head.starts_with(b"PGDMP") {
        return Ok(Format::Custom);
    }
    if head.len() >= 263 && &head[257..262] == b"ustar" {
        let name = tar_entry_name(&head[..TAR_BLOCK.min(head.len())]);
        return if name == "toc.dat" {
            Ok(Format::Tar)
        } else {
            Err(FormatError::NotADump(format!(
                "a tar file that is not a pg_dump archive (its first entry is \"{}\", pg_dump -Ft starts with toc.dat)",
                name.escape_debug()
            )))
        };
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if let Some(kind) = script::sql_script_kind(text) {
        return Ok(kind);
    }
    if text.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FormatError::NotADump("only whitespace".into()));
    }
    Err(FormatError::NotADump(script::describe(head)))
}

/// The name of the first tar entry (NUL-terminated, at most 100 bytes).
fn tar_entry_name(block: &[u8]) -> String {
    let name = &block[..100.min(block.len())];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

#[cfg(test)]
mod tests;
