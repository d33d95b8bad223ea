//! psql's SQL lexer (src/fe_utils/psqlscan.l), reduced to what splitting needs:
//! where a statement starts, where its terminating `;` is, where a backslash
//! meta-command starts, and a few facts about the statement (is it
//! `COPY ... FROM stdin`, is it a `SET`).
//!
//! The lexer is fed one line at a time (a line always ends with `\n` except at
//! the end of the input); its state carries over between lines. No token
//! spans a line end except quoted text, dollar quotes and `/* */` comments,
//! which are states here, so the one-byte lookahead the rules need (`--`, `/*`,
//! `*/`, `''`, `""`, `$tag$`, `E'`) never has to look past the current line.

use memchr::{memchr, memchr2};

/// Where [`Lexer::scan`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The line is lexed to its end; feed the next line.
    EndOfLine,
    /// The first token of a new statement is at this index; the lexer now
    /// counts the statement as started. Call `scan` again from this index.
    Token(usize),
    /// A `--` comment between statements starts at this index and runs to
    /// the end of the line (or to a `\r`); resume scanning after it.
    Comment(usize),
    /// The statement's terminating `;` is at this index. Call
    /// [`Lexer::finish_statement`] before scanning on.
    Semicolon(usize),
    /// An unquoted backslash that starts a meta-command is at this index
    /// (inside a statement if [`Lexer::started`] is true).
    Backslash(usize),
}

/// What the statement's first word was, for the few statements the splitter
/// must look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstWord {
    Copy,
    Set,
    Reset,
    Other,
}

/// Facts about a finished statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts {
    /// The first token, if it was one of the interesting words.
    pub first: FirstWord,
    /// `FROM STDIN` appears at the top level (outside parentheses).
    pub from_stdin: bool,
}

impl Facts {
    /// `COPY ... FROM stdin`: data lines follow the statement.
    pub fn is_copy_from_stdin(&self) -> bool {
        self.first == FirstWord::Copy && self.from_stdin
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// `'...'` with standard_conforming_strings on, and `U&'...'`: only `''` escapes.
    Standard,
    /// `E'...'`, or `'...'` with standard_conforming_strings off: `\x` and `''` escape.
    Escape,
    /// `B'...'` and `X'...'`: the next `'` ends the literal.
    Bits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    Quote(Quote),
    /// `"..."` and `U&"..."`.
    Ident,
    /// Inside `$tag$ ... $tag$`; the delimiter is in `Lexer::dollar_tag`.
    Dollar,
    /// Inside a `/* */` comment, nested `depth` levels deeper than the first.
    Comment {
        depth: u32,
    },
}

/// The lexer state that persists across lines and statements.
#[derive(Debug)]
pub(super) struct Lexer {
    state: State,
    /// Whether `'...'` is a standard string (psql's `std_strings`).
    pub std_strings: bool,
    started: bool,
    paren_depth: u32,
    /// psql's heuristic for `CREATE FUNCTION ... BEGIN ATOMIC ... END`.
    begin_depth: u32,
    ident_count: u32,
    idents: [u8; 4],
    first: Option<FirstWord>,
    prev_from: bool,
    from_stdin: bool,
    /// The whole delimiter, `$tag$`, of the dollar quote we are in.
    dollar_tag: Vec<u8>,
    /// Indices (in the scanned buffer) of the backslashes of `\;` and `\:`
    /// in the current statement: psql drops them from the statement text.
    pub escapes: Vec<usize>,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer {
            state: State::Normal,
            std_strings: true,
            started: false,
            paren_depth: 0,
            begin_depth: 0,
            ident_count: 0,
            idents: [0; 4],
            first: None,
            prev_from: false,
            from_stdin: false,
            dollar_tag: Vec::new(),
            escapes: Vec::new(),
        }
    }
}

/// psql's `{space}`: `[ \t\n\r\f\v]`.
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `ident_start`: `[A-Za-z\200-\377_]` (also `dolq_start`).
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// `ident_cont`: `[A-Za-z\200-\377_0-9\$]`.
fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// `dolq_cont`: `[A-Za-z\200-\377_0-9]`.
fn is_dolq_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

impl Lexer {
    /// True once the current statement has a token (leading whitespace and
    /// comments do not count).
    pub fn started(&self) -> bool {
        self.started
    }

    /// True when the lexer is inside a quote, dollar quote or comment.
    pub fn in_literal_or_comment(&self) -> bool {
        self.state != State::Normal
    }

    /// Forget the current statement after its `;` and return what we learnt
    /// (take [`Lexer::escapes`] first).
    pub fn finish_statement(&mut self) -> Facts {
        let facts = Facts { first: self.first.unwrap_or(FirstWord::Other), from_stdin: self.from_stdin };
        self.started = false;
        self.paren_depth = 0;
        self.begin_depth = 0;
        self.ident_count = 0;
        self.first = None;
        self.prev_from = false;
        self.from_stdin = false;
        self.escapes.clear();
        facts
    }

    /// Lex `line` from index `i` until something the splitter must act on.
    pub fn scan(&mut self, line: &[u8], mut i: usize) -> Stop {
        let n = line.len();
        while i < n {
            i = match self.state {
                State::Normal => match self.normal(line, i) {
                    Ok(next) => next,
                    Err(stop) => return stop,
                },
                State::Quote(kind) => self.quoted(line, i, kind),
                State::Ident => match memchr(b'"', &line[i..]) {
                    None => n,
                    Some(k) if line.get(i + k + 1) == Some(&b'"') => i + k + 2,
                    Some(k) => {
                        self.state = State::Normal;
                        i + k + 1
                    }
                },
                State::Dollar => match memchr(b'$', &line[i..]) {
                    None => n,
                    Some(k) if line[i + k..].starts_with(&self.dollar_tag) => {
                        self.state = State::Normal;
                        i + k + self.dollar_tag.len()
                    }
                    Some(k) => i + k + 1,
                },
                State::Comment { depth } => match memchr2(b'*', b'/', &line[i..]) {
                    None => n,
                    Some(k) => {
                        let p = i + k;
                        let next = line.get(p + 1).copied();
                        if line[p] == b'*' && next == Some(b'/') {
                            self.state = match depth {
                                0 => State::Normal,
                                d => State::Comment { depth: d - 1 },
                            };
                            p + 2
                        } else if line[p] == b'/' && next == Some(b'*') {
                            self.state = State::Comment { depth: depth + 1 };
                            p + 2
                        } else {
                            p + 1
                        }
                    }
                },
            };
        }
        Stop::EndOfLine
    }

    fn quoted(&mut self, line: &[u8], i: usize, kind: Quote) -> usize {
        let rest = &line[i..];
        let found = match kind {
            Quote::Escape => memchr2(b'\'', b'\\', rest),
            Quote::Standard | Quote::Bits => memchr(b'\'', rest),
        };
        let Some(k) = found else { return line.len() };
        let p = i + k;
        if line[p] == b'\\' {
            // A backslash escapes the next byte (psql's xeescape & co.).
            return (p + 2).min(line.len());
        }
        if kind != Quote::Bits && line.get(p + 1) == Some(&b'\'') {
            return p + 2;
        }
        self.state = State::Normal;
        p + 1
    }

    /// One token in the normal state. `Ok(next index)` to go on, `Err(stop)` to
    /// hand control back to the splitter.
    fn normal(&mut self, line: &[u8], i: usize) -> Result<usize, Stop> {
        let n = line.len();
        let c = line[i];
        let next = line.get(i + 1).copied();
        if is_space(c) {
            return Ok(i + 1);
        }
        if c == b'-' && next == Some(b'-') {
            if !self.started {
                return Err(Stop::Comment(i));
            }
            // A comment inside a statement stays in its text.
            return Ok(memchr2(b'\n', b'\r', &line[i..]).map_or(n, |k| i + k));
        }
        if c == b'/' && next == Some(b'*') {
            self.state = State::Comment { depth: 0 };
            return Ok(i + 2);
        }
        let escaped_punct = c == b'\\' && matches!(next, Some(b';' | b':'));
        if !self.started {
            match c {
                // An empty statement: psql would send it, the server ignores it.
                b';' => return Ok(i + 1),
                b'\\' if !escaped_punct => return Err(Stop::Backslash(i)),
                _ => {
                    self.started = true;
                    return Err(Stop::Token(i));
                }
            }
        }
        match c {
            b';' if self.paren_depth == 0 && self.begin_depth == 0 => {
                return Err(Stop::Semicolon(i));
            }
            b'\\' if escaped_punct => {
                // `\;` and `\:` put a literal `;` or `:` in the statement.
                if next == Some(b';') {
                    self.ident_count = 0;
                }
                self.escapes.push(i);
                self.other_token();
                return Ok(i + 2);
            }
            b'\\' => return Err(Stop::Backslash(i)),
            _ => {}
        }
        Ok(self.token(line, i))
    }

    /// Lex one token of a started statement in the normal state.
    fn token(&mut self, line: &[u8], i: usize) -> usize {
        let n = line.len();
        let c = line[i];
        let at = |k: usize| line.get(i + k).copied();
        match c {
            b'\'' => {
                self.other_token();
                self.state = State::Quote(if self.std_strings { Quote::Standard } else { Quote::Escape });
                i + 1
            }
            b'"' => {
                self.other_token();
                self.state = State::Ident;
                i + 1
            }
            b'$' => {
                self.other_token();
                // `$tag$` (dolqdelim), `$1` (param), or a lone `$`.
                let mut j = i + 1;
                if j < n && is_ident_start(line[j]) {
                    j += 1;
                    while j < n && is_dolq_cont(line[j]) {
                        j += 1;
                    }
                }
                if j < n && line[j] == b'$' {
                    self.dollar_tag.clear();
                    self.dollar_tag.extend_from_slice(&line[i..=j]);
                    self.state = State::Dollar;
                    j + 1
                } else {
                    let mut j = i + 1;
                    while j < n && line[j].is_ascii_digit() {
                        j += 1;
                    }
                    j
                }
            }
            b'(' => {
                self.other_token();
                self.paren_depth += 1;
                i + 1
            }
            b')' => {
                self.other_token();
                self.paren_depth = self.paren_depth.saturating_sub(1);
                i + 1
            }
            b'0'..=b'9' => {
                // A number, with any identifier glued to it (integer_junk).
                self.other_token();
                let mut j = i + 1;
                while j < n && (line[j].is_ascii_digit() || line[j] == b'_') {
                    j += 1;
                }
                if j < n && is_ident_start(line[j]) {
                    while j < n && is_ident_cont(line[j]) {
                        j += 1;
                    }
                }
                j
            }
            b'e' | b'E' if at(1) == Some(b'\'') => {
                self.other_token();
                self.state = State::Quote(Quote::Escape);
                i + 2
            }
            b'b' | b'B' | b'x' | b'X' if at(1) == Some(b'\'') => {
                self.other_token();
                self.state = State::Quote(Quote::Bits);
                i + 2
            }
            // N'...': eat only the N; the quote is then an ordinary one.
            b'n' | b'N' if at(1) == Some(b'\'') => {
                self.other_token();
                i + 1
            }
            b'u' | b'U' if at(1) == Some(b'&') && at(2) == Some(b'\'') => {
                self.other_token();
                self.state = State::Quote(Quote::Standard);
                i + 3
            }
            b'u' | b'U' if at(1) == Some(b'&') && at(2) == Some(b'"') => {
                self.other_token();
                self.state = State::Ident;
                i + 3
            }
            _ if is_ident_start(c) => {
                let mut j = i + 1;
                while j < n && is_ident_cont(line[j]) {
                    j += 1;
                }
                self.word(&line[i..j]);
                j
            }
            _ => {
                self.other_token();
                i + 1
            }
        }
    }

    /// A token that is not an identifier.
    fn other_token(&mut self) {
        self.prev_from = false;
        if self.first.is_none() {
            self.first = Some(FirstWord::Other);
        }
    }

    /// An unquoted identifier or keyword (psql's `{identifier}` rule).
    fn word(&mut self, w: &[u8]) {
        let is = |kw: &str| w.eq_ignore_ascii_case(kw.as_bytes());
        if self.ident_count == 0 {
            self.idents = [0; 4];
        }
        let routine_word = is("create") || is("function") || is("procedure") || is("or") || is("replace");
        if let Some(slot) = self.idents.get_mut(self.ident_count as usize).filter(|_| routine_word) {
            *slot = w[0].to_ascii_lowercase();
        }
        self.ident_count = self.ident_count.saturating_add(1);
        let id = self.idents;
        let create_routine = id[0] == b'c'
            && (id[1] == b'f' || id[1] == b'p' || (id[1] == b'o' && id[2] == b'r' && (id[3] == b'f' || id[3] == b'p')));
        if create_routine && self.paren_depth == 0 {
            if is("begin") {
                self.begin_depth += 1;
            } else if is("case") {
                // CASE also ends with END; only counted inside a BEGIN.
                if self.begin_depth >= 1 {
                    self.begin_depth += 1;
                }
            } else if is("end") {
                self.begin_depth = self.begin_depth.saturating_sub(1);
            }
        }

        if self.first.is_none() {
            self.first = Some(if is("copy") {
                FirstWord::Copy
            } else if is("set") {
                FirstWord::Set
            } else if is("reset") {
                FirstWord::Reset
            } else {
                FirstWord::Other
            });
        }
        if self.paren_depth == 0 {
            if self.prev_from && is("stdin") {
                self.from_stdin = true;
            }
            self.prev_from = is("from");
        } else {
            self.prev_from = false;
        }
    }
}

/// The value a `SET`/`RESET` statement gives `standard_conforming_strings`, if
/// it is about that setting.
pub(super) fn standard_conforming_strings(sql: &str) -> Option<bool> {
    let lower = sql.to_ascii_lowercase();
    let words: Vec<&str> =
        lower.split(|c: char| c.is_ascii_whitespace() || c == '=').filter(|w| !w.is_empty()).collect();
    match words.as_slice() {
        ["reset", "all" | "standard_conforming_strings"] => Some(true),
        ["set", rest @ ..] => {
            let rest = match rest {
                ["session" | "local", rest @ ..] => rest,
                rest => rest,
            };
            let value = match rest {
                ["standard_conforming_strings", "to", v] | ["standard_conforming_strings", v] => *v,
                _ => return None,
            };
            match value.trim_matches(|c| c == '\'' || c == '"') {
                "on" | "true" | "yes" | "1" | "default" => Some(true),
                "off" | "false" | "no" | "0" => Some(false),
                _ => None,
            }
        }
        _ => None,
    }
}
