//! The open stage as `restore` and `inspect` run it: real files through
//! counting, decompression and detection, with every `--format` rule.

use std::io::{Read, Write};

use super::*;
use crate::format::FormatError;

const PLAIN: &[u8] = b"--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n";
const DUMPALL: &[u8] =
    b"--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict k\nSET default_transaction_read_only = off;\n";
const CUSTOM: &[u8] = include_bytes!("../archive/testdata/custom.dump");
const TAR: &[u8] = include_bytes!("../archive/testdata/archive.tar");

async fn open_bytes(bytes: &[u8], format: FormatChoice) -> Result<Opened, DumpError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump");
    std::fs::write(&path, bytes).unwrap();
    let read = ReadOptions { compression: CompressionChoice::Auto, format, hash: true };
    let counter = Arc::new(ByteCounter::default());
    let tracker = Tracker::new(counter.clone(), None);
    open(&SourceLocation::File(path), &SourceOptions::default(), read, counter, tracker).await
}

async fn format_of(bytes: &[u8], format: FormatChoice) -> Format {
    match open_bytes(bytes, format).await {
        Ok(Opened::Stream(s)) => s.format,
        Ok(Opened::Directory(_)) => panic!("a file opened as a directory"),
        Err(e) => panic!("--format {format}: {e}"),
    }
}

/// The NotADump message of a refused `--format`.
async fn refusal(bytes: &[u8], format: FormatChoice) -> String {
    match open_bytes(bytes, format).await {
        Err(DumpError::Format(FormatError::NotADump(m))) => m,
        Err(e) => panic!("--format {format}: expected NotADump, got {e:?}"),
        Ok(_) => panic!("--format {format} was accepted"),
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn auto_detects_every_stream_format() {
    assert_eq!(format_of(PLAIN, FormatChoice::Auto).await, Format::Plain);
    assert_eq!(format_of(DUMPALL, FormatChoice::Auto).await, Format::PgDumpAll);
    assert_eq!(format_of(CUSTOM, FormatChoice::Auto).await, Format::Custom);
    assert_eq!(format_of(TAR, FormatChoice::Auto).await, Format::Tar);
    assert_eq!(format_of(&gzip(DUMPALL), FormatChoice::Auto).await, Format::PgDumpAll);
}

#[tokio::test]
async fn forced_formats_that_match_are_accepted() {
    assert_eq!(format_of(PLAIN, FormatChoice::Plain).await, Format::Plain);
    assert_eq!(format_of(CUSTOM, FormatChoice::Custom).await, Format::Custom);
    assert_eq!(format_of(TAR, FormatChoice::Tar).await, Format::Tar);
}

#[tokio::test]
async fn plain_takes_a_pg_dumpall_script_and_keeps_it_pg_dumpall() {
    assert_eq!(format_of(DUMPALL, FormatChoice::Plain).await, Format::PgDumpAll);
    assert_eq!(format_of(&gzip(DUMPALL), FormatChoice::Plain).await, Format::PgDumpAll);
}

#[tokio::test]
async fn plain_takes_text_that_detection_does_not_recognise() {
    let text = b"hello world;\n";
    assert!(matches!(open_bytes(text, FormatChoice::Auto).await, Err(DumpError::Format(FormatError::NotADump(_)))));
    assert_eq!(format_of(text, FormatChoice::Plain).await, Format::Plain);
}

#[tokio::test]
async fn every_contradiction_names_the_forced_and_the_found_format() {
    assert_eq!(refusal(CUSTOM, FormatChoice::Plain).await, "--format plain was given, but the source is a custom dump");
    assert_eq!(refusal(TAR, FormatChoice::Plain).await, "--format plain was given, but the source is a tar dump");
    assert_eq!(refusal(PLAIN, FormatChoice::Custom).await, "--format custom was given, but the source is a plain dump");
    assert_eq!(
        refusal(DUMPALL, FormatChoice::Custom).await,
        "--format custom was given, but the source is a pg_dumpall dump"
    );
    assert_eq!(refusal(CUSTOM, FormatChoice::Tar).await, "--format tar was given, but the source is a custom dump");
    assert_eq!(refusal(TAR, FormatChoice::Custom).await, "--format custom was given, but the source is a tar dump");
    assert_eq!(
        refusal(PLAIN, FormatChoice::Directory).await,
        "--format directory needs a directory that holds toc.dat, but the source is a single stream that holds a plain dump"
    );
    assert_eq!(
        refusal(b"\x7fELF\x02\x01\x01\x00", FormatChoice::Custom).await,
        "--format custom was given, but the source is an ELF executable"
    );
    assert_eq!(
        refusal(b"\x00\x01\x02\x03\x04\x05\x06\x07\x08", FormatChoice::Plain).await,
        "--format plain was given, but the source is binary data starting with 00 01 02 03 04 05 06 07"
    );
    let e = open_bytes(PLAIN, FormatChoice::Tar).await.err().unwrap();
    assert_eq!(
        e.to_string(),
        "the source is not a PostgreSQL dump: --format tar was given, but the source is a plain dump"
    );
}

#[tokio::test]
async fn an_empty_source_is_empty_whatever_the_format() {
    for format in [FormatChoice::Auto, FormatChoice::Plain, FormatChoice::Custom, FormatChoice::Directory] {
        assert!(matches!(open_bytes(b"", format).await, Err(DumpError::Format(FormatError::Empty))), "{format}");
    }
}

#[tokio::test]
async fn a_directory_dump_opens_as_a_directory_unless_another_format_is_forced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("toc.dat"), b"PGDMP").unwrap();
    let open_dir = |format| {
        let read = ReadOptions { compression: CompressionChoice::Auto, format, hash: false };
        let counter = Arc::new(ByteCounter::default());
        let location = SourceLocation::File(dir.path().to_path_buf());
        async move { open(&location, &SourceOptions::default(), read, counter.clone(), Tracker::detached()).await }
    };
    assert!(matches!(open_dir(FormatChoice::Auto).await, Ok(Opened::Directory(_))));
    assert!(matches!(open_dir(FormatChoice::Directory).await, Ok(Opened::Directory(_))));
    match open_dir(FormatChoice::Custom).await {
        Err(DumpError::Format(FormatError::NotADump(m))) => {
            assert_eq!(m, "--format custom was given, but the source is a directory dump")
        }
        other => panic!("{:?}", other.err()),
    }
}

#[tokio::test]
async fn the_stream_reads_from_its_first_byte_and_is_counted_and_hashed() {
    let data = gzip(&PLAIN.repeat(5000));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.sql.gz");
    std::fs::write(&path, &data).unwrap();
    let counter = Arc::new(ByteCounter::default());
    let tracker = Tracker::new(counter.clone(), None);
    let read = ReadOptions { compression: CompressionChoice::Auto, format: FormatChoice::Auto, hash: true };
    let Opened::Stream(s) =
        open(&SourceLocation::File(path), &SourceOptions::default(), read, counter.clone(), tracker.clone())
            .await
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(s.compression, Compression::Gzip);
    assert_eq!(s.size, Some(data.len() as u64));
    assert_eq!(&s.head[..PLAIN.len()], PLAIN);
    let mut reader = s.reader;
    let all = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert_eq!(all, PLAIN.repeat(5000));
    assert_eq!(counter.get(), data.len() as u64);
    assert_eq!(tracker.snapshot().bytes_uncompressed, all.len() as u64);
    use sha2::Digest as _;
    assert_eq!(s.digest.get().unwrap(), &hex::encode(sha2::Sha256::digest(&data)));
}
