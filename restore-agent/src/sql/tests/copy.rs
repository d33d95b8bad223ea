//! COPY ... FROM stdin blocks: detection, data framing, terminators, chunks,
//! truncation and throughput.

use std::io::{BufReader, Read};
use std::time::Instant;

use super::*;
use crate::sql::Event;
use crate::sql::copy::CHUNK;

#[test]
fn copy_block() {
    let script = "COPY public.t (a, b) FROM stdin;\n1\tx\\ty\n2\t\\N\n\\.\nSELECT 1;\n";
    assert_eq!(
        events(script),
        vec![
            copy_start("COPY public.t (a, b) FROM stdin", 1),
            data("1\tx\\ty\n2\t\\N\n"),
            Event::CopyEnd { rows: 2 },
            stmt("SELECT 1", 5),
        ]
    );
}

#[test]
fn empty_copy_block() {
    assert_eq!(
        events("COPY t FROM stdin;\n\\.\nSELECT 1;"),
        vec![copy_start("COPY t FROM stdin", 1), Event::CopyEnd { rows: 0 }, stmt("SELECT 1", 3)]
    );
}

#[test]
fn lines_that_look_like_the_terminator_are_data() {
    let rows = ["\\\\.", "", "\\.x", " \\.", "\\.\\.", "\\", "\\.\t1", "a\\.", "\\.\r\r"];
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let script = format!("COPY t FROM stdin;\n{body}\\.\nSELECT 1;\n");
    assert_eq!(
        events(&script),
        vec![
            copy_start("COPY t FROM stdin", 1),
            data(&body),
            Event::CopyEnd { rows: rows.len() as u64 },
            stmt("SELECT 1", rows.len() as u64 + 3),
        ]
    );
}

#[test]
fn crlf_terminator_and_final_terminator_without_newline() {
    assert_eq!(
        events("COPY t FROM stdin;\r\n1\r\n\\.\r\nSELECT 1;\r\n"),
        vec![copy_start("COPY t FROM stdin", 1), data("1\r\n"), Event::CopyEnd { rows: 1 }, stmt("SELECT 1", 4)]
    );
    assert_eq!(
        events("COPY t FROM stdin;\n1\n\\."),
        vec![copy_start("COPY t FROM stdin", 1), data("1\n"), Event::CopyEnd { rows: 1 }]
    );
}

#[test]
fn copy_detection() {
    for sql in [
        "copy t from STDIN",
        "COPY public.\"Odd;Name\" (a, \"b)\") FROM stdin",
        "COPY t FROM stdin WITH (FORMAT text)",
        "COPY t FROM /* x */ stdin",
        "COPY t FROM\n stdin",
        "COPY (a) FROM stdin",
    ] {
        let script = format!("{sql};\n1\n\\.\n");
        assert_eq!(events(&script), vec![copy_start(sql, 1), data("1\n"), Event::CopyEnd { rows: 1 }], "{sql}");
    }
    for sql in [
        "COPY t TO stdout",
        "COPY (SELECT * FROM stdin) TO stdout",
        "COPY t FROM '/tmp/stdin'",
        "SELECT * FROM stdin",
        "COPY t FROM \"stdin\"",
        "COPY t FROM stdin_table",
    ] {
        let script = format!("{sql};\nSELECT 1;\n");
        assert_eq!(events(&script), vec![stmt(sql, 1), stmt("SELECT 1", 2)], "{sql}");
    }
}

#[test]
fn rest_of_the_copy_line_comes_after_the_data() {
    // psql reads the data from the next line and lexes the rest afterwards.
    assert_eq!(
        events("COPY t FROM stdin; SELECT 2;\n1\n\\.\nSELECT 3;\n"),
        vec![
            copy_start("COPY t FROM stdin", 1),
            data("1\n"),
            Event::CopyEnd { rows: 1 },
            stmt("SELECT 2", 1),
            stmt("SELECT 3", 4),
        ]
    );
}

#[test]
fn end_inside_copy_data_is_truncation() {
    for script in [
        "SELECT 1;\n\nCOPY t FROM stdin;\n1\n2\n",
        "SELECT 1;\n\nCOPY t FROM stdin;\n1\n2",
        "SELECT 1;\n\nCOPY t FROM stdin;",
        "SELECT 1;\n\nCOPY t FROM stdin;\n1\n\\",
        "SELECT 1;\n\nCOPY t FROM stdin;\n1\n\\.\r",
        "SELECT 1;\n\nCOPY t FROM stdin;\n\\\\.\n",
    ] {
        let (evs, err) = events_then_error(script.as_bytes());
        assert_eq!(evs[..2], [stmt("SELECT 1", 1), copy_start("COPY t FROM stdin", 3)], "{script:?}");
        assert!(evs[2..].iter().all(|e| matches!(e, Event::CopyData(_))), "{script:?}");
        assert!(matches!(err, SplitError::TruncatedCopy { line: 3 }), "{script:?}: {err}");
        assert_eq!(err.reason(), "TruncatedDump");
        assert_eq!(err.line(), Some(3));
        assert_eq!(
            err.to_string(),
            "the dump is truncated: it ends inside the data of the COPY statement at line 3 (no \\. line)"
        );
    }
}

#[test]
fn terminator_split_across_reads() {
    let script = "COPY t FROM stdin;\n1\n\\\\.\n\\.x\n\\.\r\n\\.\nSELECT 1;\n";
    let want = events(script);
    for at in 0..=script.len() {
        let got = split_reader(SplitAt::new(script.as_bytes(), at)).unwrap();
        assert_eq!(got, want, "split at {at}");
    }
    assert_chunking_invariant(script.as_bytes()).unwrap();
}

/// COPY data made of `rows` lines of varying length with tabs, escapes and
/// lines that start with a backslash.
fn copy_body(rows: usize) -> String {
    let mut s = String::new();
    for i in 0..rows {
        match i % 5 {
            0 => s.push_str(&format!("{i}\tname {i}\t\\N\n")),
            1 => s.push_str(&format!("\\\\.{i}\tback\\\\slash\\ttab\n")),
            2 => s.push_str(&format!("{i}\t{}\n", "x".repeat(i % 300))),
            3 => s.push('\n'),
            _ => s.push_str(&format!("\\.{i}\tnew\\nline\n")),
        }
    }
    s
}

#[test]
fn large_copy_is_chunked() {
    let body = copy_body(40_000);
    assert!(body.len() > 4 * CHUNK);
    let script = format!("COPY t FROM stdin;\n{body}\\.\nSELECT 1;\n");
    for reader_capacity in [8 * 1024, 64 * 1024, 1024 * 1024, script.len()] {
        let mut s = Splitter::new(BufReader::with_capacity(reader_capacity, script.as_bytes()));
        assert_eq!(s.next_event().unwrap(), Some(copy_start("COPY t FROM stdin", 1)));
        let mut got = Vec::new();
        let mut chunks = Vec::new();
        let rows = loop {
            match s.next_event().unwrap() {
                Some(Event::CopyData(d)) => {
                    chunks.push(d.len());
                    got.extend_from_slice(&d);
                }
                Some(Event::CopyEnd { rows }) => break rows,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(got, body.as_bytes(), "capacity {reader_capacity}");
        assert_eq!(rows, 40_000);
        let (last, full) = chunks.split_last().unwrap();
        assert!(full.iter().all(|&n| (64 * 1024..=256 * 1024).contains(&n)), "{chunks:?}");
        assert!(*last > 0 && *last <= 256 * 1024);
        assert_eq!(s.next_event().unwrap(), Some(stmt("SELECT 1", 40_003)));
        assert_eq!(s.next_event().unwrap(), None);
    }
}

#[test]
fn copy_in_pieces_matches_whole() {
    let body = copy_body(400);
    let script = format!("SELECT 1;\nCOPY t FROM stdin;\n{body}\\.\nCOPY u FROM stdin;\n\\.\n");
    let evs = assert_chunking_invariant(script.as_bytes()).unwrap();
    assert_eq!(evs.len(), 6);
    assert_eq!(evs[2], data(&body));
    assert_eq!(evs[3], Event::CopyEnd { rows: 400 });
}

/// Generates `COPY ... FROM stdin` with `total` bytes of data lines, without
/// holding them in memory.
struct Generated {
    header: &'static [u8],
    line: Vec<u8>,
    remaining: usize,
    offset: usize,
    trailer: &'static [u8],
    state: u8,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            match self.read_some(&mut out[n..]) {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

impl Generated {
    fn read_some(&mut self, out: &mut [u8]) -> usize {
        loop {
            let src: &[u8] = match self.state {
                0 => &self.header[self.offset..],
                1 if self.remaining > 0 => &self.line[self.offset..],
                2 => &self.trailer[self.offset..],
                1 => {
                    self.state = 2;
                    self.offset = 0;
                    continue;
                }
                _ => return 0,
            };
            if src.is_empty() {
                self.offset = 0;
                if self.state == 1 {
                    self.remaining -= 1;
                } else {
                    self.state += 1;
                }
                continue;
            }
            let n = src.len().min(out.len());
            out[..n].copy_from_slice(&src[..n]);
            self.offset += n;
            return n;
        }
    }
}

/// Throughput check (not asserted): ~200 MB of COPY data in release builds,
/// 16 MB in debug builds. Run with
/// `cargo test --release -p restore-agent --lib sql::tests::copy::copy_throughput -- --nocapture`.
#[test]
fn copy_throughput() {
    let line = b"12345\tSome film title that is long enough\t2006\t\\N\t4.99\t2022-02-15 10:03:42+00\n".to_vec();
    let target = if cfg!(debug_assertions) { 16 << 20 } else { 200 << 20 };
    let lines = target / line.len();
    let total = lines * line.len();
    let source = Generated {
        header: b"SET client_encoding = 'UTF8';\nCOPY public.film FROM stdin;\n",
        line,
        remaining: lines,
        offset: 0,
        trailer: b"\\.\n-- PostgreSQL database dump complete\n",
        state: 0,
    };
    let reader = BufReader::with_capacity(128 * 1024, source);
    let started = Instant::now();
    let mut s = Splitter::new(reader);
    let mut bytes = 0usize;
    let mut rows = None;
    let mut max_chunk = 0;
    let mut last = None;
    while let Some(ev) = s.next_event().unwrap() {
        match &ev {
            Event::CopyData(d) => {
                bytes += d.len();
                max_chunk = max_chunk.max(d.len());
            }
            Event::CopyEnd { rows: r } => rows = Some(*r),
            _ => {}
        }
        last = Some(ev);
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(bytes, total);
    assert_eq!(rows, Some(lines as u64));
    assert!(max_chunk <= 256 * 1024);
    assert_eq!(last, Some(Event::DumpComplete { cluster: false }));
    println!("split {:.0} MB of COPY data in {secs:.3}s: {:.0} MB/s", total as f64 / 1e6, total as f64 / 1e6 / secs);
}

#[test]
fn reader_errors_keep_their_source() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt deflate stream"))
        }
    }
    let mut s = Splitter::new(BufReader::new(Failing));
    let err = s.next_event().unwrap_err();
    assert_eq!(err.reason(), "SourceReadError");
    assert_eq!(err.line(), None);
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(err.to_string(), "I/O error reading the dump: corrupt deflate stream");
    let io = err.into_io().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);

    // The same inside COPY data.
    let script: &[u8] = b"COPY t FROM stdin;\n1\n";
    let mut s = Splitter::new(BufReader::new(script.chain(Failing)));
    assert_eq!(s.next_event().unwrap(), Some(copy_start("COPY t FROM stdin", 1)));
    let err = loop {
        match s.next_event() {
            Ok(Some(Event::CopyData(_))) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.reason(), "SourceReadError");
}
