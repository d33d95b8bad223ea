use super::*;

fn not_a_dump(head: &[u8]) -> String {
    match detect(head) {
        Err(FormatError::NotADump(what)) => what,
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
    assert!(matches!(detect(b"PGDMP\x01\x0e\x00\x04\x08\x01"), Ok(Format::Custom)));
    assert!(matches!(detect(&tar_with_first_entry("toc.dat")), Ok(Format::Tar)));
    let real_tar = include_bytes!("../archive/testdata/archive.tar");
    assert!(matches!(detect(real_tar), Ok(Format::Tar)));
    let real_custom = include_bytes!("../archive/testdata/custom.dump");
    assert!(matches!(detect(real_custom), Ok(Format::Custom)));
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
    assert!(matches!(detect(pg_dump), Ok(Format::Plain)));
    let dumpall =
        b"--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict k\nSET default_transaction_read_only = off;\n";
    assert!(matches!(detect(dumpall), Ok(Format::PgDumpAll)));
    // The mark only counts in the leading comment block.
    let later = b"SELECT 1;\n-- PostgreSQL database cluster dump\n";
    assert!(matches!(detect(later), Ok(Format::Plain)));
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
        assert!(matches!(detect(s), Ok(Format::Plain)), "{}", String::from_utf8_lossy(s));
    }
}

#[test]
fn a_cut_utf8_character_at_the_end_is_fine_but_invalid_utf8_is_not() {
    let mut s = "-- données\nINSERT INTO t VALUES ('é".as_bytes().to_vec();
    s.extend_from_slice(&"é".as_bytes()[..1]);
    assert!(matches!(detect(&s), Ok(Format::Plain)));
    let bad = b"SELECT '\xff\xfe';\n";
    assert_eq!(
        not_a_dump(bad),
        "text that is not UTF-8 and has no pg_dump header (starts with \"SELECT \\'\u{fffd}\u{fffd}\\';\")"
    );
    // ...unless pg_dump's header says it is a dump (a LATIN1 database).
    let latin1 =
        b"--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'LATIN1';\nINSERT INTO t VALUES ('caf\xe9');\n";
    assert!(matches!(detect(latin1), Ok(Format::Plain)));
}

#[test]
fn empty_and_binary_inputs_are_refused_with_what_they_look_like() {
    assert!(matches!(detect(b""), Err(FormatError::Empty)));
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
    assert_eq!(not_a_dump(b"SELECTED works\n"), "text that does not look like SQL (starts with \"SELECTED works\")");
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
        assert!(matches!(detect(&buf), Err(FormatError::NotADump(_))));
    }
}

#[test]
fn forced_formats_must_match_the_bytes() {
    let custom = include_bytes!("../archive/testdata/custom.dump");
    let plain = b"--\n-- PostgreSQL database dump\n--\nSET x = 1;\n";
    assert!(matches!(resolve(FormatChoice::Custom, custom), Ok(Format::Custom)));
    assert!(matches!(resolve(FormatChoice::Auto, plain), Ok(Format::Plain)));
    match resolve(FormatChoice::Custom, plain) {
        Err(FormatError::NotADump(m)) => assert_eq!(m, "--format custom was given, but the source is a plain dump"),
        other => panic!("{other:?}"),
    }
    match resolve(FormatChoice::Plain, custom) {
        Err(FormatError::NotADump(m)) => assert_eq!(m, "--format plain was given, but the source is a custom dump"),
        other => panic!("{other:?}"),
    }
    match resolve(FormatChoice::Tar, b"\x7fELF\x02") {
        Err(FormatError::NotADump(m)) => assert_eq!(m, "--format tar was given, but the source is an ELF executable"),
        other => panic!("{other:?}"),
    }
    match resolve(FormatChoice::Directory, custom) {
        Err(FormatError::NotADump(m)) => assert!(m.starts_with("--format directory needs a directory"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Plain accepts any SQL-ish text, even what detection does not recognise.
    assert!(matches!(resolve(FormatChoice::Plain, b"hello world;\n"), Ok(Format::Plain)));
    // A pg_dumpall script forced to plain stays pg_dumpall: it \connects.
    assert!(matches!(
        resolve(FormatChoice::Plain, b"--\n-- PostgreSQL database cluster dump\n--\n"),
        Ok(Format::PgDumpAll)
    ));
    assert!(matches!(resolve(FormatChoice::Custom, b""), Err(FormatError::Empty)));
}

#[test]
fn a_directory_dump_is_only_auto_or_directory() {
    assert!(matches!(resolve_directory(FormatChoice::Auto), Ok(Format::Directory)));
    assert!(matches!(resolve_directory(FormatChoice::Directory), Ok(Format::Directory)));
    for (choice, forced) in
        [(FormatChoice::Plain, "plain"), (FormatChoice::Custom, "custom"), (FormatChoice::Tar, "tar")]
    {
        match resolve_directory(choice) {
            Err(FormatError::NotADump(m)) => {
                assert_eq!(m, format!("--format {forced} was given, but the source is a directory dump"))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn create_scripts_are_multi_database() {
    assert!(is_multi_database(Format::Plain, b"CREATE DATABASE x;\n\\connect x\nSET a = 1;\n"));
    assert!(!is_multi_database(Format::Plain, b"SET a = 1;\nCOPY t FROM stdin;\n\\.\n"));
    assert!(is_multi_database(Format::PgDumpAll, b"SET a = 1;\n"));
    assert!(!is_multi_database(Format::Custom, b"PGDMP\n\\connect x\n"));
}
