//! Tests of the psql-script splitter: exact events for every lexing rule,
//! meta-commands, COPY streaming, real pg_dump / pg_dumpall output, and
//! reads split at every byte boundary.

mod copy;
mod dumps;
mod lexing;
mod meta;

use std::io::{BufRead, Read};

use super::{Event, SplitError, Splitter};

/// All events of `input`, with consecutive `CopyData` chunks merged (chunk
/// boundaries are not part of the contract), or the first error.
pub(super) fn split_reader(r: impl BufRead) -> Result<Vec<Event>, SplitError> {
    let mut s = Splitter::new(r);
    let mut out: Vec<Event> = Vec::new();
    while let Some(ev) = s.next_event()? {
        match (out.last_mut(), ev) {
            (Some(Event::CopyData(prev)), Event::CopyData(more)) => {
                let mut joined = prev.to_vec();
                joined.extend_from_slice(&more);
                *prev = joined.into();
            }
            (_, ev) => out.push(ev),
        }
    }
    // After the end, the splitter keeps saying so.
    assert_eq!(s.next_event().unwrap(), None);
    Ok(out)
}

pub(super) fn split(input: &[u8]) -> Result<Vec<Event>, SplitError> {
    split_reader(input)
}

/// The events of a script that must split cleanly.
pub(super) fn events(input: &str) -> Vec<Event> {
    match split(input.as_bytes()) {
        Ok(evs) => evs,
        Err(e) => panic!("unexpected error {e} for input {input:?}"),
    }
}

/// The events before the first error, and the error.
pub(super) fn events_then_error(input: &[u8]) -> (Vec<Event>, SplitError) {
    let mut s = Splitter::new(input);
    let mut out = Vec::new();
    loop {
        match s.next_event() {
            Ok(Some(ev)) => out.push(ev),
            Ok(None) => panic!("expected an error, got events {out:?}"),
            Err(e) => return (out, e),
        }
    }
}

/// The error a script must fail with.
pub(super) fn error(input: &str) -> SplitError {
    events_then_error(input.as_bytes()).1
}

pub(super) fn stmt(sql: &str, line: u64) -> Event {
    Event::Statement { sql: sql.to_string(), line }
}

pub(super) fn copy_start(sql: &str, line: u64) -> Event {
    Event::CopyStart { sql: sql.to_string(), line }
}

pub(super) fn data(d: &str) -> Event {
    Event::CopyData(bytes::Bytes::copy_from_slice(d.as_bytes()))
}

pub(super) fn connect(db: &str, line: u64) -> Event {
    Event::Connect { dbname: db.to_string(), line }
}

pub(super) fn object(name: &str, kind: &str, schema: Option<&str>) -> Event {
    Event::Object { name: name.to_string(), kind: kind.to_string(), schema: schema.map(str::to_string) }
}

/// A reader that hands out the input a few bytes at a time, cycling through
/// `sizes` (each `fill_buf` returns at most the current size).
pub(super) struct Trickle<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: Vec<usize>,
    next_size: usize,
    avail: usize,
}

impl<'a> Trickle<'a> {
    pub(super) fn new(data: &'a [u8], sizes: &[usize]) -> Self {
        assert!(sizes.iter().all(|&s| s > 0));
        Trickle { data, pos: 0, sizes: sizes.to_vec(), next_size: 0, avail: 0 }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Trickle<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.avail == 0 {
            self.avail = self.sizes[self.next_size % self.sizes.len()];
            self.next_size += 1;
        }
        let end = (self.pos + self.avail).min(self.data.len());
        Ok(&self.data[self.pos..end])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.avail -= n;
    }
}

/// Split `input` read whole and read in small pieces in many patterns; all
/// must agree. Returns the events (or the error's text).
pub(super) fn assert_chunking_invariant(input: &[u8]) -> Result<Vec<Event>, String> {
    let whole = split(input).map_err(|e| e.to_string());
    let mut patterns: Vec<Vec<usize>> = (1..=7).map(|n| vec![n]).collect();
    patterns.push(vec![1, 7, 2, 6, 3, 5, 4]);
    patterns.push(vec![3, 1, 4, 1, 5, 2, 6, 5, 3, 5]);
    for sizes in &patterns {
        let got = split_reader(Trickle::new(input, sizes)).map_err(|e| e.to_string());
        assert_eq!(got, whole, "read in pieces of {sizes:?}");
    }
    whole
}

/// A reader that gives `data[..at]`, then the rest: one read boundary at `at`.
pub(super) struct SplitAt<'a> {
    first: &'a [u8],
    second: &'a [u8],
}

impl<'a> SplitAt<'a> {
    pub(super) fn new(data: &'a [u8], at: usize) -> Self {
        let (first, second) = data.split_at(at);
        SplitAt { first, second }
    }
}

impl Read for SplitAt<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for SplitAt<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(if self.first.is_empty() { self.second } else { self.first })
    }

    fn consume(&mut self, n: usize) {
        if self.first.is_empty() {
            self.second = &self.second[n..];
        } else {
            self.first = &self.first[n..];
        }
    }
}

/// Random scripts built from the fragments that matter to the lexer never
/// panic, and give the same events (or error) however they are read.
#[test]
fn random_scripts_split_the_same_in_pieces() {
    const FRAGMENTS: &[&str] = &[
        "SELECT ",
        "'",
        "''",
        "E'",
        "\\",
        "\\\\",
        "\\.",
        "\n",
        ";",
        "$$",
        "$a$",
        "$1",
        "\"",
        "/*",
        "*/",
        "--",
        "(",
        ")",
        "COPY t FROM stdin;\n",
        "\\.\n",
        "\\.\r\n",
        "\\connect db\n",
        "BEGIN ",
        "END ",
        "CREATE FUNCTION ",
        "CASE ",
        "x",
        " ",
        "\r\n",
        "é",
        "\\restrict k\n",
        "\\unrestrict k\n",
        "-- Name: a; Type: TABLE; Schema: s; Owner: o\n",
        "SET standard_conforming_strings = off;",
        "\\;",
        "U&'",
        "B'",
        "\t",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..1500 {
        let len = 1 + (next() % 40) as usize;
        let script: String = (0..len).map(|_| FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize]).collect();
        let input = script.as_bytes();
        let whole = split(input).map_err(|e| e.to_string());
        let sizes = [1 + (next() % 7) as usize, 1 + (next() % 7) as usize, 1 + (next() % 7) as usize];
        let pieces = split_reader(Trickle::new(input, &sizes)).map_err(|e| e.to_string());
        assert_eq!(pieces, whole, "script {script:?} read in pieces of {sizes:?}");
        let at = (next() % (input.len() as u64 + 1)) as usize;
        let halves = split_reader(SplitAt::new(input, at)).map_err(|e| e.to_string());
        assert_eq!(halves, whole, "script {script:?} split at {at}");
    }
}
