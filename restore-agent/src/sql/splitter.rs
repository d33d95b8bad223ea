//! The splitter: reads a psql script line by line, lexes it with psql's rules
//! and turns it into [`Event`]s. COPY data is handed to [`CopyIn`], which
//! streams it in chunks without looking at lines it does not need.
//!
//! Memory: the current statement (from its first token to the line being
//! lexed) plus one COPY chunk; nothing grows with the size of the dump.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use bytes::Bytes;
use memchr::memchr2;

use super::comment;
use super::copy::{CopyIn, Step};
use super::lexer::{self, FirstWord, Lexer, Stop};
use super::meta::{self, Meta};

/// One thing the restore must do, in dump order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An SQL statement (without its terminating `;`), and the 1-based dump line where it starts.
    Statement { sql: String, line: u64 },
    /// A `COPY ... FROM stdin` statement; `CopyData` chunks and one `CopyEnd` follow.
    CopyStart { sql: String, line: u64 },
    /// Raw COPY data, never including the terminating `\.` line.
    CopyData(Bytes),
    /// End of a COPY block, with the number of rows (data lines) it held.
    CopyEnd { rows: u64 },
    /// `\connect DBNAME` (any pg_dump spelling): reconnect to that database.
    Connect { dbname: String, line: u64 },
    /// `\encoding NAME`.
    Encoding { name: String, line: u64 },
    /// A pg_dump object header comment: `-- Name: film; Type: TABLE; Schema: public; Owner: postgres`
    /// (also `-- Data for Name: ...`).
    Object { name: String, kind: String, schema: Option<String> },
    /// The trailer comment `-- PostgreSQL database dump complete` (`cluster == false`) or
    /// `-- PostgreSQL database cluster dump complete` (`cluster == true`).
    DumpComplete { cluster: bool },
}

/// Why a script cannot be split.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// A meta-command the native engine does not run (`\!`, `\i`, `\set`, ...).
    #[error("unsupported psql meta-command \\{command} at line {line}")]
    UnknownMetaCommand { command: String, line: u64 },
    /// A meta-command between `\restrict KEY` and `\unrestrict KEY`.
    #[error(
        "psql meta-command \\{command} at line {line} comes between \\restrict and \\unrestrict, \
         where pg_dump never writes one; the dump may have been tampered with"
    )]
    RestrictedMetaCommand { command: String, line: u64 },
    /// A supported meta-command used in a way the native engine cannot follow.
    #[error("psql meta-command \\{command} at line {line} is not usable: {problem}")]
    InvalidMetaCommand { command: String, line: u64, problem: String },
    /// A statement or meta-command that is not valid UTF-8.
    #[error(
        "line {line} is not valid UTF-8; the native engine only restores UTF-8 dumps \
         (use --engine pg-tools for dumps in other encodings)"
    )]
    UnsupportedEncoding { line: u64 },
    /// The input ends in the middle of a statement, quote or comment.
    #[error("the dump is truncated: it ends inside a statement that starts at line {line}")]
    TruncatedStatement { line: u64 },
    /// The input ends before the `\.` line of a COPY block.
    #[error("the dump is truncated: it ends inside the data of the COPY statement at line {line} (no \\. line)")]
    TruncatedCopy { line: u64 },
    /// Reading the (decompressed) dump failed; the source may be a decompression error.
    #[error("I/O error reading the dump: {0}")]
    Io(#[from] io::Error),
}

impl SplitError {
    /// Short category for metrics and status.
    pub fn reason(&self) -> &'static str {
        match self {
            SplitError::UnknownMetaCommand { .. } => "UnsupportedMetaCommand",
            SplitError::RestrictedMetaCommand { .. } => "RestrictedMetaCommand",
            SplitError::InvalidMetaCommand { .. } => "InvalidMetaCommand",
            SplitError::UnsupportedEncoding { .. } => "UnsupportedEncoding",
            SplitError::TruncatedStatement { .. } | SplitError::TruncatedCopy { .. } => "TruncatedDump",
            SplitError::Io(_) => "SourceReadError",
        }
    }

    /// The dump line the error is about, if any.
    pub fn line(&self) -> Option<u64> {
        match self {
            SplitError::UnknownMetaCommand { line, .. }
            | SplitError::RestrictedMetaCommand { line, .. }
            | SplitError::InvalidMetaCommand { line, .. }
            | SplitError::UnsupportedEncoding { line }
            | SplitError::TruncatedStatement { line }
            | SplitError::TruncatedCopy { line } => Some(*line),
            SplitError::Io(_) => None,
        }
    }

    /// The I/O error behind a `SourceReadError` (which may wrap a
    /// decompression error), so the caller can classify it.
    pub fn into_io(self) -> Option<io::Error> {
        match self {
            SplitError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Line buffer capacity kept between statements.
const RETAINED_CAPACITY: usize = 1 << 20;

/// Splits a psql script (pg_dump / pg_dumpall plain output) into [`Event`]s.
pub struct Splitter<R> {
    r: R,
    /// The current statement from `start`, then the rest of the current line.
    buf: Vec<u8>,
    /// Where the current statement starts in `buf` (when the lexer has started one).
    start: usize,
    /// How far `buf` is lexed.
    pos: usize,
    /// Dump line of the last line read into `buf`.
    line_no: u64,
    /// Dump line of the next line the reader will give.
    next_line: u64,
    /// Dump line of the current statement's first token.
    stmt_line: u64,
    /// Dump line where an unterminated comment before any statement began.
    pending_line: Option<u64>,
    lexer: Lexer,
    /// The key of `\restrict`, while it is in force.
    restrict_key: Option<Vec<u8>>,
    copy: Option<CopyIn>,
    queued: VecDeque<Event>,
    done: bool,
}

impl<R: BufRead> Splitter<R> {
    /// A splitter reading the script from `r`.
    pub fn new(r: R) -> Self {
        Splitter {
            r,
            buf: Vec::new(),
            start: 0,
            pos: 0,
            line_no: 0,
            next_line: 1,
            stmt_line: 0,
            pending_line: None,
            lexer: Lexer::default(),
            restrict_key: None,
            copy: None,
            queued: VecDeque::new(),
            done: false,
        }
    }

    /// The next event, `Ok(None)` at the end of a well-formed script.
    pub fn next_event(&mut self) -> Result<Option<Event>, SplitError> {
        loop {
            if let Some(ev) = self.queued.pop_front() {
                return Ok(Some(ev));
            }
            if self.done {
                return Ok(None);
            }
            if let Some(copy) = &mut self.copy {
                match copy.step(&mut self.r)? {
                    Step::Data(data) => return Ok(Some(Event::CopyData(data))),
                    Step::End { last, rows, lines } => {
                        self.copy = None;
                        self.next_line += lines;
                        if !last.is_empty() {
                            self.queued.push_back(Event::CopyData(last));
                        }
                        self.queued.push_back(Event::CopyEnd { rows });
                        continue;
                    }
                }
            }
            if self.pos == self.buf.len() && !self.read_line()? {
                return self.end_of_input();
            }
            if let Some(ev) = self.lex()? {
                return Ok(Some(ev));
            }
        }
    }

    /// Read the next line into `buf`, dropping what is no longer needed.
    /// False at the end of the input.
    fn read_line(&mut self) -> Result<bool, SplitError> {
        if self.lexer.started() {
            if self.start > 0 {
                self.buf.drain(..self.start);
                for e in &mut self.lexer.escapes {
                    *e -= self.start;
                }
                self.start = 0;
            }
        } else {
            self.buf.clear();
            // Do not keep the memory of a huge statement for the rest of the dump.
            self.buf.shrink_to(RETAINED_CAPACITY);
        }
        self.pos = self.buf.len();
        loop {
            match self.r.read_until(b'\n', &mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.line_no = self.next_line;
        self.next_line += 1;
        Ok(true)
    }

    fn end_of_input(&mut self) -> Result<Option<Event>, SplitError> {
        self.done = true;
        if self.lexer.started() {
            return Err(SplitError::TruncatedStatement { line: self.stmt_line });
        }
        if self.lexer.in_literal_or_comment() {
            let line = self.pending_line.unwrap_or(self.line_no);
            return Err(SplitError::TruncatedStatement { line });
        }
        Ok(None)
    }

    /// Lex from `pos` until an event or the end of the line.
    fn lex(&mut self) -> Result<Option<Event>, SplitError> {
        loop {
            match self.lexer.scan(&self.buf, self.pos) {
                Stop::EndOfLine => {
                    self.pos = self.buf.len();
                    if self.lexer.started() || !self.lexer.in_literal_or_comment() {
                        self.pending_line = None;
                    } else if self.pending_line.is_none() {
                        self.pending_line = Some(self.line_no);
                    }
                    return Ok(None);
                }
                Stop::Token(i) => {
                    self.start = i;
                    self.pos = i;
                    self.stmt_line = self.line_no;
                    self.pending_line = None;
                }
                Stop::Comment(i) => {
                    let end = memchr2(b'\n', b'\r', &self.buf[i..]).map_or(self.buf.len(), |k| i + k);
                    self.pos = end;
                    if let Some(ev) = comment::parse(&self.buf[i..end]) {
                        return Ok(Some(ev));
                    }
                }
                Stop::Semicolon(i) => return self.statement(i).map(Some),
                Stop::Backslash(i) => {
                    if let Some(ev) = self.meta_command(i)? {
                        return Ok(Some(ev));
                    }
                }
            }
        }
    }

    /// The statement ending with the `;` at `semi` is complete.
    fn statement(&mut self, semi: usize) -> Result<Event, SplitError> {
        let start = self.start;
        let escapes: Vec<usize> = self.lexer.escapes.drain(..).map(|e| e - start).collect();
        let facts = self.lexer.finish_statement();
        let line = self.stmt_line;
        let mut end = semi;
        while end > self.start && lexer::is_space(self.buf[end - 1]) {
            end -= 1;
        }
        let rest_len = self.buf.len() - (semi + 1);
        let mut bytes = if rest_len < end - self.start {
            // Hand the buffer over and keep only the rest of the line.
            let rest = self.buf[semi + 1..].to_vec();
            self.buf.truncate(end);
            self.buf.drain(..self.start);
            self.pos = 0;
            std::mem::replace(&mut self.buf, rest)
        } else {
            self.pos = semi + 1;
            self.buf[self.start..end].to_vec()
        };
        self.start = self.pos;
        for &e in escapes.iter().rev() {
            bytes.remove(e);
        }
        let sql = String::from_utf8(bytes).map_err(|_| SplitError::UnsupportedEncoding { line })?;
        let std_strings = match facts.first {
            FirstWord::Set | FirstWord::Reset => lexer::standard_conforming_strings(&sql),
            FirstWord::Copy | FirstWord::Other => None,
        };
        if let Some(on) = std_strings {
            self.lexer.std_strings = on;
        }
        if facts.is_copy_from_stdin() {
            self.copy = Some(CopyIn::new(line));
            return Ok(Event::CopyStart { sql, line });
        }
        Ok(Event::Statement { sql, line })
    }

    /// The meta-command whose backslash is at `at` in `buf`.
    fn meta_command(&mut self, at: usize) -> Result<Option<Event>, SplitError> {
        let line = self.line_no;
        let text = &self.buf[at..];
        let (name, name_end) = meta::command_name(text);
        let command = String::from_utf8_lossy(name).into_owned();
        if self.lexer.started() {
            return Err(SplitError::InvalidMetaCommand {
                command,
                line,
                problem: "a meta-command inside an SQL statement is not supported".to_string(),
            });
        }
        if self.restrict_key.is_some() && name != b"unrestrict" {
            return Err(SplitError::RestrictedMetaCommand { command, line });
        }
        let invalid = |problem: String| SplitError::InvalidMetaCommand { command: command.clone(), line, problem };
        let (meta, end) = match meta::parse(name, text, name_end).map_err(invalid)? {
            Some(parsed) => parsed,
            None => {
                return Err(SplitError::UnknownMetaCommand { command: command.clone(), line });
            }
        };
        // `\\` after a command separates it from SQL on the same line.
        self.pos = at + end;
        if self.buf[self.pos..].starts_with(b"\\\\") {
            self.pos += 2;
        }
        let utf8 = |b: Vec<u8>| String::from_utf8(b).map_err(|_| SplitError::UnsupportedEncoding { line });
        Ok(match meta {
            Meta::Connect(db) => {
                // A new session starts with the server's default.
                self.lexer.std_strings = true;
                Some(Event::Connect { dbname: utf8(db)?, line })
            }
            Meta::Encoding(Some(name)) => Some(Event::Encoding { name: utf8(name)?, line }),
            Meta::Encoding(None) | Meta::EndOfData => None,
            Meta::Restrict(key) => {
                self.restrict_key = Some(key);
                None
            }
            Meta::Unrestrict(key) => match self.restrict_key.take() {
                Some(k) if k == key => None,
                Some(k) => {
                    self.restrict_key = Some(k);
                    return Err(invalid("the key differs from the one given to \\restrict".into()));
                }
                None => return Err(invalid("there is no \\restrict in force".into())),
            },
        })
    }
}
