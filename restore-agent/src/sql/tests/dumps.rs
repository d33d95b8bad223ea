//! Real dumps: Pagila (pg_dump) and a pg_dumpall -c of a cluster with hard
//! content, checked against counts computed independently from the text.

use super::*;
use crate::sql::Event;

/// `shared/` sits beside the checkout (the repository root is two levels above this crate's manifest).
const PAGILA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/pagila");
const DUMPALL: &str = include_str!("../testdata/pg_dumpall_15.sql");

/// What a simple line-oriented reading of pg_dump output finds: pg_dump ends
/// every statement with `;` at the end of a line, starts COPY data on the
/// next line and ends it with a `\.` line, and puts function bodies in
/// dollar quotes. (Independent of the splitter; it knows nothing of
/// parentheses or BEGIN ATOMIC, so use it on dumps without those.)
#[derive(Debug, Default, PartialEq)]
struct LineCounts {
    statements: usize,
    copy_rows: Vec<u64>,
    meta_commands: usize,
    headers: usize,
}

fn line_counts(text: &str) -> LineCounts {
    let mut c = LineCounts::default();
    let mut copy_rows: Option<u64> = None;
    let mut dollar: Option<String> = None;
    for line in text.split('\n') {
        if let Some(rows) = copy_rows.as_mut() {
            if line == "\\." {
                c.copy_rows.push(*rows);
                copy_rows = None;
            } else {
                *rows += 1;
            }
            continue;
        }
        if dollar.is_none() {
            if line.starts_with("-- Name: ") || line.starts_with("-- Data for Name: ") {
                c.headers += 1;
            }
            if line.starts_with("--") || line.trim().is_empty() {
                continue;
            }
            if line.starts_with('\\') {
                c.meta_commands += 1;
                continue;
            }
        }
        // Dollar quotes opened and closed on this line.
        let mut rest = line;
        while let Some(start) = rest.find('$') {
            let after = &rest[start + 1..];
            let Some(len) = after.find('$') else { break };
            let tag = &rest[start..start + len + 2];
            let is_tag = tag[1..tag.len() - 1].chars().all(|ch| ch.is_alphanumeric() || ch == '_');
            if !is_tag {
                rest = after;
                continue;
            }
            match &dollar {
                None => dollar = Some(tag.to_string()),
                Some(open) if open == tag => dollar = None,
                Some(_) => {}
            }
            rest = &rest[start + tag.len()..];
        }
        if dollar.is_none() && line.trim_end().ends_with(';') {
            if line.starts_with("COPY ") && line.ends_with(" FROM stdin;") {
                copy_rows = Some(0);
            } else {
                c.statements += 1;
            }
        }
    }
    c
}

/// The same numbers, from the splitter's events.
fn event_counts(events: &[Event]) -> LineCounts {
    let mut c = LineCounts::default();
    for ev in events {
        match ev {
            Event::Statement { .. } => c.statements += 1,
            Event::CopyEnd { rows } => c.copy_rows.push(*rows),
            Event::Object { .. } => c.headers += 1,
            _ => {}
        }
    }
    c
}

fn read_pagila(name: &str) -> String {
    let path = format!("{PAGILA}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read the Pagila dump {path}: {e}"))
}

#[test]
fn pagila_schema() {
    let text = read_pagila("pagila-schema.sql");
    let evs = split(text.as_bytes()).unwrap();
    let want = line_counts(&text);
    assert_eq!(want.meta_commands, 0);
    // psql sends 233 statements for this file (counted in the server log
    // with log_statement = all when the tests were written).
    assert_eq!(want.statements, 233, "{want:?}");
    assert_eq!(event_counts(&evs), LineCounts { meta_commands: 0, ..want });
    assert_eq!(evs.first(), Some(&stmt("SET statement_timeout = 0", 8)));
    assert_eq!(evs.last(), Some(&Event::DumpComplete { cluster: false }));
    assert!(evs.contains(&object("bıgınt", "DOMAIN", Some("public"))));
    // A function body with `;` and `$1` inside, whole.
    let body = evs
        .iter()
        .find_map(|e| match e {
            Event::Statement { sql, line } if sql.starts_with("CREATE FUNCTION public.film_in_stock") => {
                Some((sql, *line))
            }
            _ => None,
        })
        .expect("film_in_stock function");
    assert!(body.0.ends_with("AND inventory_in_stock(inventory_id);\n$_$"), "{body:?}");
    assert_eq!(body.1, 83);
}

#[test]
fn pagila_data() {
    let text = read_pagila("pagila-data.sql");
    let evs = split(text.as_bytes()).unwrap();
    let want = line_counts(&text);
    let terminators = text.split('\n').filter(|l| *l == "\\.").count();
    assert_eq!(want.copy_rows.len(), terminators);
    assert_eq!(terminators, 21);
    assert_eq!(event_counts(&evs), want);
    // psql sends 44 statements: 23 plus the 21 COPYs.
    assert_eq!(want.statements, 23);
    // The data is passed through byte for byte: data + terminators + the
    // rest (statements, comments) account for the whole file.
    let copy_bytes: usize = evs
        .iter()
        .map(|e| match e {
            Event::CopyData(d) => d.len(),
            _ => 0,
        })
        .sum();
    let rows: u64 = want.copy_rows.iter().sum();
    let data_lines: usize = {
        let mut in_copy = false;
        let mut bytes = 0;
        for line in text.split_inclusive('\n') {
            if in_copy {
                if line == "\\.\n" {
                    in_copy = false;
                } else {
                    bytes += line.len();
                }
            } else if line.starts_with("COPY ") && line.ends_with(" FROM stdin;\n") {
                in_copy = true;
            }
        }
        bytes
    };
    assert_eq!(copy_bytes, data_lines);
    assert!(rows > 40_000, "{rows}");
    assert_eq!(evs.last(), Some(&Event::DumpComplete { cluster: false }));
}

#[test]
fn pagila_in_pieces() {
    // The data dump read a few bytes at a time gives the same events.
    let text = read_pagila("pagila-data.sql");
    let whole = split(text.as_bytes()).unwrap();
    for sizes in [&[1usize, 7, 2, 6, 3, 5, 4][..], &[5]] {
        assert_eq!(split_reader(Trickle::new(text.as_bytes(), sizes)).unwrap(), whole, "{sizes:?}");
    }
}

/// The fixture is `pg_dumpall -c` (PostgreSQL 15.18, with \restrict) of a
/// throwaway cluster with: a role, a database named `odd;db "q"` holding a
/// table with a unicode name, COPY data with tabs, backslashes, newlines,
/// NULLs, empty lines and `\.`-like values, a plpgsql function whose body
/// holds `;`, `$$` and `\.`, a BEGIN ATOMIC function, a rule with two
/// actions and a view; and a database `shop` with a serial column.
#[test]
fn pg_dumpall_fixture() {
    let evs = assert_chunking_invariant(DUMPALL.as_bytes()).unwrap();

    let connects: Vec<(&str, u64)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Connect { dbname, line } => Some((dbname.as_str(), *line)),
            _ => None,
        })
        .collect();
    assert_eq!(
        connects,
        [("template1", 92), ("template1", 121), ("odd;db \"q\"", 184), ("postgres", 365), ("shop", 426)]
    );
    // `\encoding SQL_ASCII` comes right before the quoted \connect.
    let at = evs.iter().position(|e| matches!(e, Event::Connect { line: 184, .. })).unwrap();
    assert_eq!(evs[at - 1], Event::Encoding { name: "SQL_ASCII".into(), line: 183 });

    let completes: Vec<bool> = evs
        .iter()
        .filter_map(|e| match e {
            Event::DumpComplete { cluster } => Some(*cluster),
            _ => None,
        })
        .collect();
    assert_eq!(completes, [false, false, false, false, true]);
    assert_eq!(evs.last(), Some(&Event::DumpComplete { cluster: true }));

    // Established independently: psql restoring this fixture into a cluster
    // with log_statement = all sent 147 statements, the same texts as ours:
    // 143 statements, 3 COPYs and the `set client_encoding to 'SQL_ASCII'`
    // psql derives from `\encoding`.
    let counts = event_counts(&evs);
    assert_eq!(counts.statements, 143);
    assert_eq!(counts.copy_rows, [5, 4, 3]);
    assert_eq!(counts.headers, line_counts(DUMPALL).headers);
    assert_eq!(counts.headers, 26);

    assert!(evs.contains(&stmt("DROP DATABASE \"odd;db \"\"q\"\"\"", 16)));
    assert!(evs.contains(&object("odd;db \"q\"", "DATABASE", None)));
    assert!(evs.contains(&object("Ünïcode tbl Ünïcode tbl_pkey", "CONSTRAINT", Some("public"))));
    assert!(evs.contains(&stmt(
        "CREATE FUNCTION public.tricky() RETURNS text\n    LANGUAGE plpgsql\n    AS $_$\nBEGIN\n  -- a comment; with semicolon\n  RETURN E'\\\\.' || $$;$$ || ';';\nEND;\n$_$",
        219
    )));
    assert!(evs.contains(&stmt(
        "CREATE FUNCTION public.atomic_add(a integer, b integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT\n         CASE\n             WHEN (a IS NULL) THEN 0\n             ELSE (a + b)\n         END AS \"case\";\nEND",
        202
    )));
    assert!(evs.contains(&stmt(
        "CREATE RULE no_delete AS\n    ON DELETE TO public.log DO INSTEAD ( INSERT INTO public.log (msg)\n  VALUES ('a;b'::text);\n INSERT INTO public.log (msg)\n  VALUES ('c'::text);\n)",
        316
    )));
    let log_copy = evs.iter().position(|e| *e == copy_start("COPY public.log (msg) FROM stdin", 283)).unwrap();
    assert_eq!(evs[log_copy + 1], data("\\\\.\n\n\\\\\nx\\\\.\n\\\\.\\r\n"));
    assert_eq!(evs[log_copy + 2], Event::CopyEnd { rows: 5 });
    assert_eq!(evs[log_copy + 3], object("Ünïcode tbl", "TABLE DATA", Some("public")));
}

#[test]
fn pg_dumpall_fixture_split_at_every_byte() {
    // One read boundary at every offset of the first database's COPY region.
    let whole = split(DUMPALL.as_bytes()).unwrap();
    let start = DUMPALL.find("COPY public.log").unwrap() - 200;
    let end = DUMPALL.find("ALTER TABLE ONLY public.\"Ünïcode tbl\"").unwrap();
    for at in start..end {
        let got = split_reader(SplitAt::new(DUMPALL.as_bytes(), at)).unwrap();
        assert_eq!(got, whole, "boundary at byte {at}");
    }
}

#[test]
fn truncated_dumps() {
    // Cut the fixture inside the COPY data, inside a statement, and between
    // statements: the first two are errors, the last is detected by the
    // missing trailer.
    let in_copy = DUMPALL.find("2\tnew\\nline").unwrap();
    let (_, err) = events_then_error(&DUMPALL.as_bytes()[..in_copy]);
    assert!(matches!(err, SplitError::TruncatedCopy { line: 296 }), "{err}");

    let in_stmt = DUMPALL.find("CREATE RULE no_delete").unwrap() + 40;
    let (_, err) = events_then_error(&DUMPALL.as_bytes()[..in_stmt]);
    assert!(matches!(err, SplitError::TruncatedStatement { line: 316 }), "{err}");

    let between = DUMPALL.find("\\connect shop").unwrap();
    let evs = split(&DUMPALL.as_bytes()[..between]).unwrap();
    assert_ne!(evs.last(), Some(&Event::DumpComplete { cluster: true }));
}
