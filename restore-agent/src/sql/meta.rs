//! psql meta-commands (backslash commands) as pg_dump and pg_dumpall write
//! them, parsed with the rules of psql's psqlscanslash.l and command.c.
//!
//! A meta-command runs from its backslash to the end of the line or to the
//! next unquoted backslash (`\\` separates it from SQL on the same line; a
//! single backslash starts another meta-command).

use super::lexer::is_space;

/// A recognised meta-command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Meta {
    /// `\connect` / `\c` with the database to connect to.
    Connect(Vec<u8>),
    /// `\encoding NAME`; `None` for a bare `\encoding` (psql only prints it).
    Encoding(Option<Vec<u8>>),
    /// `\restrict KEY`.
    Restrict(Vec<u8>),
    /// `\unrestrict KEY`.
    Unrestrict(Vec<u8>),
    /// `\.` outside COPY data: nothing to do.
    EndOfData,
}

/// The command name after the backslash at `text[0]`, and the index after it:
/// psql takes everything up to whitespace or the next backslash.
pub(super) fn command_name(text: &[u8]) -> (&[u8], usize) {
    let end = text[1..].iter().position(|&b| is_space(b) || b == b'\\').map_or(text.len(), |k| k + 1);
    (&text[1..end], end)
}

/// Parse the arguments of the meta-command `name` in `text`, starting at `pos`
/// (just after the name). Returns the command and the index where the
/// command ends (end of text, or an unquoted backslash), `None` for a
/// command this module does not support, or the problem with the arguments.
pub(super) fn parse(name: &[u8], text: &[u8], pos: usize) -> Result<Option<(Meta, usize)>, String> {
    let mut args = Args { text, pos };
    let meta = match name {
        b"c" | b"connect" => Meta::Connect(connect(&mut args)?),
        b"encoding" => Meta::Encoding(args.next(Mode::Normal, false)?.map(|a| a.value)),
        b"restrict" | b"unrestrict" => {
            let key = args.next(Mode::Normal, false)?.ok_or_else(|| "the key argument is missing".to_string())?;
            if name == b"restrict" { Meta::Restrict(key.value) } else { Meta::Unrestrict(key.value) }
        }
        b"." => Meta::EndOfData,
        _ => return Ok(None),
    };
    if let Some(extra) = args.next(Mode::Normal, false)? {
        return Err(format!("unexpected extra argument \"{}\"", String::from_utf8_lossy(&extra.value)));
    }
    Ok(Some((meta, args.pos)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `OT_NORMAL`: double quotes stay in the value.
    Normal,
    /// `OT_SQLIDHACK`: double quotes are stripped (`""` -> `"`), case kept.
    SqlIdHack,
}

struct Arg {
    value: Vec<u8>,
    quoted: bool,
}

struct Args<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Args<'_> {
    /// psql_scan_slash_option: the next argument, or `None` at the end of
    /// the command. `semicolon` strips unquoted trailing semicolons.
    fn next(&mut self, mode: Mode, semicolon: bool) -> Result<Option<Arg>, String> {
        let t = self.text;
        while self.pos < t.len() && is_space(t[self.pos]) {
            self.pos += 1;
        }
        if self.pos == t.len() || t[self.pos] == b'\\' {
            return Ok(None);
        }
        let mut out = Vec::new();
        let mut quoted = false;
        let mut unquoted_tail = 0usize;
        while self.pos < t.len() && !is_space(t[self.pos]) && t[self.pos] != b'\\' {
            match t[self.pos] {
                b'\'' => {
                    quoted = true;
                    unquoted_tail = 0;
                    self.pos += 1;
                    self.single_quoted(&mut out)?;
                }
                b'"' => {
                    quoted = true;
                    unquoted_tail = 0;
                    let close = t[self.pos + 1..]
                        .iter()
                        .position(|&b| b == b'"')
                        .ok_or_else(|| "unterminated quoted string".to_string())?;
                    let end = self.pos + 1 + close + 1;
                    out.extend_from_slice(&t[self.pos..end]);
                    self.pos = end;
                }
                b'`' => {
                    return Err("backquoted shell commands are not supported".to_string());
                }
                b => {
                    out.push(b);
                    unquoted_tail += 1;
                    self.pos += 1;
                }
            }
        }
        if semicolon {
            while unquoted_tail > 0 && out.last() == Some(&b';') {
                out.pop();
                unquoted_tail -= 1;
            }
        }
        if mode == Mode::SqlIdHack {
            out = dequote(&out);
        }
        if out.is_empty() && !quoted {
            return Ok(None);
        }
        Ok(Some(Arg { value: out, quoted }))
    }

    /// The body of a psql single-quoted argument, after the opening quote.
    fn single_quoted(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let t = self.text;
        loop {
            let Some(&c) = t.get(self.pos) else {
                return Err("unterminated quoted string".to_string());
            };
            let next = t.get(self.pos + 1).copied();
            match c {
                b'\'' if next == Some(b'\'') => {
                    out.push(b'\'');
                    self.pos += 2;
                }
                b'\'' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    let Some(e) = next else {
                        out.push(b'\\');
                        self.pos += 1;
                        continue;
                    };
                    self.pos += 2;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(0x08),
                        b'r' => out.push(b'\r'),
                        b'f' => out.push(0x0c),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match t.get(self.pos) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        b'x' if t.get(self.pos).is_some_and(u8::is_ascii_hexdigit) => {
                            let mut v = 0u32;
                            for _ in 0..2 {
                                match t.get(self.pos).and_then(|&d| (d as char).to_digit(16)) {
                                    Some(d) => {
                                        v = v * 16 + d;
                                        self.pos += 1;
                                    }
                                    None => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        other => out.push(other),
                    }
                }
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

/// psql's dequote_downcase_identifier without downcasing: double quotes
/// toggle quoting and vanish, `""` inside quotes is one `"`.
fn dequote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut inquotes = false;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'"' {
            if inquotes && s.get(i + 1) == Some(&b'"') {
                out.push(b'"');
                i += 2;
                continue;
            }
            inquotes = !inquotes;
        } else {
            out.push(s[i]);
        }
        i += 1;
    }
    out
}

/// psql's read_connect_arg: an unquoted empty or `-` argument means "reuse".
fn connect_arg(args: &mut Args<'_>) -> Result<Option<Vec<u8>>, String> {
    Ok(match args.next(Mode::SqlIdHack, true)? {
        Some(a) if !a.quoted && (a.value.is_empty() || a.value == b"-") => None,
        Some(a) => Some(a.value),
        None => None,
    })
}

/// `\connect [-reuse-previous=BOOL] DBNAME [USER HOST PORT]`, where DBNAME
/// may be a conninfo string. Only the database may change.
fn connect(args: &mut Args<'_>) -> Result<Vec<u8>, String> {
    const REUSE: &[u8] = b"-reuse-previous=";
    let mut first = connect_arg(args)?;
    if let Some(a) = first.as_deref().filter(|a| a.starts_with(REUSE)) {
        let value = String::from_utf8_lossy(&a[REUSE.len()..]).to_ascii_lowercase();
        if parse_bool(&value).is_none() {
            return Err(format!("invalid value \"{value}\" for -reuse-previous"));
        }
        first = connect_arg(args)?;
    }
    for _ in 0..3 {
        if let Some(other) = connect_arg(args)? {
            return Err(format!(
                "changing the user, host or port (\"{}\") is not supported",
                String::from_utf8_lossy(&other)
            ));
        }
    }
    let db = first.ok_or_else(|| "a database name is required".to_string())?;
    if is_connection_string(&db) { conninfo_dbname(&db) } else { Ok(db) }
}

/// psql's ParseVariableBool.
fn parse_bool(v: &str) -> Option<bool> {
    let prefix_of = |word: &str, min: usize| v.len() >= min && word.starts_with(v);
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || v == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || v == "0" {
        Some(false)
    } else {
        None
    }
}

/// libpq's recognized_connection_string: a URI or something with `=`.
fn is_connection_string(s: &[u8]) -> bool {
    s.starts_with(b"postgresql://") || s.starts_with(b"postgres://") || s.contains(&b'=')
}

/// The `dbname` of a libpq `key=value` connection string (conninfo_parse
/// rules: values may be single-quoted; a backslash escapes the next byte).
fn conninfo_dbname(s: &[u8]) -> Result<Vec<u8>, String> {
    if !s.contains(&b'=') || s.starts_with(b"postgresql://") || s.starts_with(b"postgres://") {
        return Err("connection URIs are not supported".to_string());
    }
    let mut dbname = None;
    let mut i = 0;
    loop {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == s.len() {
            break;
        }
        let key_start = i;
        while i < s.len() && s[i] != b'=' && !s[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = String::from_utf8_lossy(&s[key_start..i]).into_owned();
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if s.get(i) != Some(&b'=') {
            return Err(format!("missing \"=\" after \"{key}\" in the connection string"));
        }
        i += 1;
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if s.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match s.get(i) {
                    None => {
                        return Err("unterminated quoted string in the connection string".into());
                    }
                    Some(b'\\') => {
                        if let Some(&b) = s.get(i + 1) {
                            value.push(b);
                        }
                        i += 2;
                    }
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < s.len() && !s[i].is_ascii_whitespace() {
                if s[i] == b'\\' {
                    i += 1;
                    if let Some(&b) = s.get(i) {
                        value.push(b);
                        i += 1;
                    }
                } else {
                    value.push(s[i]);
                    i += 1;
                }
            }
        }
        if key != "dbname" {
            return Err(format!("connection option \"{key}\" is not supported"));
        }
        dbname = Some(value);
    }
    dbname.ok_or_else(|| "the connection string has no dbname".to_string())
}
