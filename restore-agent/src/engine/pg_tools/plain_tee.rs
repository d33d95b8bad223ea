//! Progress for a plain script on its way to psql: pg_dump's object headers
//! (`-- Name: items; Type: TABLE; Schema: shop; Owner: app`), `\connect`
//! lines, and the rows of COPY blocks. Constant memory: only the start of
//! the current line is kept.

use crate::archive::LineCounter;
use crate::progress::Tracker;

/// How much of a line is looked at.
const LINE_START: usize = 1024;

/// Follows a plain SQL script as it streams.
pub struct PlainProgress<'a> {
    tracker: &'a Tracker,
    /// The start of the current line (outside COPY data).
    line: Vec<u8>,
    /// Inside COPY data: counts its rows up to `\.`.
    copy: Option<LineCounter>,
}

impl<'a> PlainProgress<'a> {
    pub fn new(tracker: &'a Tracker) -> Self {
        PlainProgress { tracker, line: Vec::with_capacity(LINE_START), copy: None }
    }

    /// Feeds the next bytes of the script.
    pub fn observe(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if let Some(counter) = &mut self.copy {
                let (rows, used) = counter.feed(b);
                if rows > 0 {
                    self.tracker.add_rows(rows);
                }
                b = &b[used..];
                if counter.done {
                    self.copy = None;
                }
                continue;
            }
            match memchr::memchr(b'\n', b) {
                Some(i) => {
                    self.take(&b[..i]);
                    b = &b[i + 1..];
                    self.end_of_line();
                }
                None => {
                    self.take(b);
                    b = &[];
                }
            }
        }
    }

    fn take(&mut self, part: &[u8]) {
        let room = LINE_START.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_of_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("-- Data for Name: ").or_else(|| line.strip_prefix("-- Name: ")) {
            if let Some((name, kind, schema)) = parse_object_header(rest) {
                self.tracker.set_object(kind, schema, name);
            }
        } else if line.starts_with("COPY ") && line.trim_end().ends_with("FROM stdin;") {
            self.copy = Some(LineCounter::default());
        } else if line.starts_with("INSERT INTO ") {
            self.tracker.add_rows(1);
        } else if let Some(args) = line.strip_prefix("\\connect ").or_else(|| line.strip_prefix("\\c "))
            && let Some(db) = connect_dbname(args)
        {
            self.tracker.set_database(&db);
        }
    }
}

/// `items; Type: TABLE; Schema: shop; Owner: app` -> ("items", "TABLE", Some("shop")).
fn parse_object_header(rest: &str) -> Option<(&str, &str, Option<&str>)> {
    let (name, rest) = rest.split_once("; Type: ")?;
    let (kind, rest) = rest.split_once("; Schema: ")?;
    let schema = rest.split(';').next().unwrap_or("").trim();
    let schema = (!schema.is_empty() && schema != "-").then_some(schema);
    Some((name, kind, schema))
}

/// The database of a `\connect` line: `-reuse-previous=on "dbname='app'"`
/// (pg_dumpall 12+), `"Shop"`, or `app`.
fn connect_dbname(args: &str) -> Option<String> {
    let mut rest = args.trim();
    if let Some(r) = rest.strip_prefix("-reuse-previous=on") {
        rest = r.trim_start();
    }
    if let Some(r) = rest.strip_prefix("\"dbname='") {
        let mut out = String::new();
        let mut chars = r.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '\'' => return Some(out),
                c => out.push(c),
            }
        }
        return None;
    }
    if let Some(r) = rest.strip_prefix('"') {
        let end = r.find('"')?;
        return Some(r[..end].to_string());
    }
    rest.split_whitespace().next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "--\n-- PostgreSQL database dump\n--\n\n\
        --\n-- Name: items; Type: TABLE; Schema: shop; Owner: app\n--\n\nCREATE TABLE shop.items (id int);\n\n\
        --\n-- Data for Name: items; Type: TABLE DATA; Schema: shop; Owner: app\n--\n\n\
        COPY shop.items (id) FROM stdin;\n1\n2\n3\n\\.\n\n\
        INSERT INTO shop.items VALUES (4);\n\
        \\connect -reuse-previous=on \"dbname='it\\'s'\"\n\
        --\n-- Name: items_pkey; Type: CONSTRAINT; Schema: shop; Owner: app\n--\n";

    #[test]
    fn headers_rows_and_databases_are_followed_in_any_chunking() {
        for step in [1, 2, 7, 64, SCRIPT.len()] {
            let t = Tracker::detached();
            let mut tee = PlainProgress::new(&t);
            for chunk in SCRIPT.as_bytes().chunks(step) {
                tee.observe(chunk);
            }
            let s = t.snapshot();
            assert_eq!(t.rows(), 4, "chunks of {step}");
            assert_eq!(s.current_object.as_deref(), Some("CONSTRAINT shop.items_pkey"));
            assert_eq!(s.current_database.as_deref(), Some("it's"), "chunks of {step}");
        }
    }

    #[test]
    fn connect_lines_name_their_database() {
        assert_eq!(connect_dbname("app").as_deref(), Some("app"));
        assert_eq!(connect_dbname("\"My DB\"").as_deref(), Some("My DB"));
        assert_eq!(connect_dbname("-reuse-previous=on \"dbname='odd;db'\"").as_deref(), Some("odd;db"));
    }
}
