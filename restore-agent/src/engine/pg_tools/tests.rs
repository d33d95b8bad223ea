use std::io::{Cursor, Read};
use std::process::{Command, Stdio};

use super::run::{Fed, Sink, StreamTee, feed};
use super::*;
use crate::Error;
use crate::archive::read_header;
use crate::dump::DumpError;
use crate::integrity::ChecksumError;

fn header(minor: u8, dump_version: &str) -> ArchiveHeader {
    let mut bytes = b"PGDMP".to_vec();
    bytes.extend_from_slice(&[1, minor, 0, 4, 8, 1]);
    if minor >= 15 {
        bytes.push(1);
    } else {
        bytes.extend_from_slice(&[0, 1, 0, 0, 0]);
    }
    for _ in 0..7 {
        bytes.extend_from_slice(&[0, 1, 0, 0, 0]);
    }
    for s in ["app", dump_version, dump_version] {
        bytes.extend_from_slice(&[0, s.len() as u8, 0, 0, 0]);
        bytes.extend_from_slice(s.as_bytes());
    }
    read_header(&mut &bytes[..]).unwrap()
}

#[test]
fn versions_are_parsed_from_the_version_line() {
    assert_eq!(parse_version("pg_restore (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"), Some((15, "15.18".into())));
    assert_eq!(parse_version("psql (PostgreSQL) 9.6.24\n"), Some((9, "9.6.24".into())));
    assert_eq!(parse_version("pg_restore (PostgreSQL) 18beta1\n"), Some((18, "18beta1".into())));
    assert_eq!(parse_version("nothing here"), None);
}

#[test]
fn an_old_pg_restore_is_refused_with_a_clear_message() {
    let h = header(16, "17.2 (Debian 17.2-1)");
    let e = check_supports("pg_restore", 15, "15.18", &h).unwrap_err();
    assert_eq!(e.reason(), "ToolTooOld");
    assert_eq!(
        e.to_string(),
        "pg_restore 15.18 cannot read archive format 1.16 (written by pg_dump 17.2); install pg_restore 17 or newer"
    );
    assert!(check_supports("pg_restore", 17, "17.0", &h).is_ok());
    assert!(check_supports("pg_restore", 15, "15.18", &header(14, "12.1")).is_ok());
    let e = check_supports("pg_restore", 15, "15.18", &header(15, "16.4")).unwrap_err();
    assert!(e.to_string().ends_with("install pg_restore 16 or newer"), "{e}");
}

#[test]
fn the_installed_pg_restore_is_checked_against_the_archive() {
    // This machine's pg_restore (the agent image's, in CI) against a 1.16 archive.
    let (major, version) = tool_version("pg_restore").expect("pg_restore must be installed for these tests");
    assert!(major >= 9, "{version}");
    let h = header(16, "17.2");
    match check_pg_restore_supports(&h) {
        Ok(()) => assert!(major >= 17, "pg_restore {version} accepted a 1.16 archive"),
        Err(e) => {
            assert!(major < 17);
            assert_eq!(
                e.to_string(),
                format!(
                    "pg_restore {version} cannot read archive format 1.16 (written by pg_dump 17.2); install pg_restore 17 or newer"
                )
            );
            assert_eq!(Error::from(e).exit_code(), proto::ExitCode::Tooling);
        }
    }
    let custom = include_bytes!("../../archive/testdata/custom.dump");
    check_pg_restore_supports(&read_header(&mut &custom[..]).unwrap()).expect("pg_dump 15's archive");
}

#[test]
fn a_missing_tool_is_named() {
    let e = tool_version("pg_restore-that-does-not-exist").unwrap_err();
    assert_eq!(e.reason(), "ToolMissing");
    assert_eq!(e.to_string(), "pg_restore-that-does-not-exist is not installed or not on PATH");
}

#[test]
fn secrets_go_through_the_environment_only() {
    let env = |k: &str| match k {
        "PGPASSWORD" => Some("s3cr3t".to_string()),
        _ => None,
    };
    let target = TargetConfig::from_url_and_env(Some("postgres://app@db:5432/it's=db"), &env).unwrap();
    let cmd = tool_command("pg_restore", &["--dbname=x".into()], &target);
    let argv: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    assert!(argv.iter().all(|a| !a.contains("s3cr3t")), "{argv:?}");
    let envs: Vec<(String, Option<String>)> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_string_lossy().into_owned())))
        .collect();
    assert!(envs.contains(&("PGPASSWORD".into(), Some("s3cr3t".into()))));
    assert!(envs.contains(&("PGHOST".into(), Some("db".into()))));
    assert!(envs.contains(&("PGHOSTADDR".into(), None)), "a foreign PGHOSTADDR is removed");
    assert_eq!(conninfo_dbname("it's=db"), "dbname='it\\'s=db'");
    assert_eq!(conninfo_dbname("a\\b"), "dbname='a\\\\b'");
}

/// A tee that asks to hold back from a fixed offset.
struct HoldFrom(Option<u64>, u64);

impl StreamTee for HoldFrom {
    fn observe(&mut self, chunk: &[u8]) {
        self.1 += chunk.len() as u64;
    }
    fn hold_from(&self) -> Option<u64> {
        self.0
    }
    fn finish(&mut self) {}
}

/// `cat > file`: what the tool received.
fn cat_into(file: &std::path::Path) -> std::process::Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("exec cat > '{}'", file.display()))
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh and cat")
}

fn payload() -> Vec<u8> {
    (0..1_000_000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn the_last_chunk_waits_for_the_finish_check() {
    let dir = tempfile::tempdir().unwrap();
    let data = payload();
    let tracker = Tracker::detached();

    // The check passes: everything arrives, stdin is closed.
    let out = dir.path().join("ok");
    let mut child = cat_into(&out);
    let mut sink = Sink::new(child.stdin.take().unwrap());
    let mut tee = HoldFrom(None, 0);
    let mut checked = false;
    let fed = feed(&mut sink, &mut Cursor::new(&data), &tracker, &mut tee, &mut || {
        checked = true;
        Ok(())
    })
    .unwrap();
    assert_eq!(fed, Fed::All);
    assert!(checked);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(tee.1, data.len() as u64);
    assert_eq!(tracker.snapshot().bytes_uncompressed, data.len() as u64);

    // The check fails: the tool is killed before it sees the last chunk or the end of its input.
    let out = dir.path().join("bad");
    let mut child = cat_into(&out);
    let mut sink = Sink::new(child.stdin.take().unwrap());
    let err = feed(&mut sink, &mut Cursor::new(&data), &tracker, &mut HoldFrom(None, 0), &mut || {
        Err(ChecksumError::Mismatch { expected: "a".into(), actual: "b".into() }.into())
    })
    .map_err(Error::from)
    .unwrap_err();
    assert_eq!(err.reason(), "ChecksumMismatch");
    child.kill().unwrap();
    drop(sink);
    assert!(!child.wait().unwrap().success());
    let got = std::fs::read(&out).unwrap();
    let last_chunk = data.len() % (256 * 1024);
    assert!(got.len() <= data.len() - last_chunk, "{} bytes arrived", got.len());
    assert_eq!(got[..], data[..got.len()]);
}

#[test]
fn a_tee_can_hold_back_more_than_the_last_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let data = payload();
    let tracker = Tracker::detached();
    let out = dir.path().join("held");
    let mut child = cat_into(&out);
    let mut sink = Sink::new(child.stdin.take().unwrap());
    let err = feed(&mut sink, &mut Cursor::new(&data), &tracker, &mut HoldFrom(Some(1000), 0), &mut || {
        Err(DumpError::Internal("stop".into()))
    })
    .map_err(Error::from)
    .unwrap_err();
    assert_eq!(err.reason(), "InternalError");
    drop(sink);
    child.wait().unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data[..1000]);
}

/// A reader that fails after some bytes, as a decoder does on corrupt input.
struct FailingReader(usize);

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other(crate::decompress::DecompressError::Truncated { compression: "gzip" }));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn reader_errors_keep_their_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::detached();
    let mut child = cat_into(&dir.path().join("f"));
    let mut sink = Sink::new(child.stdin.take().unwrap());
    let err = feed(&mut sink, &mut FailingReader(300_000), &tracker, &mut HoldFrom(None, 0), &mut || Ok(()))
        .map_err(Error::from)
        .unwrap_err();
    assert_eq!(err.reason(), "TruncatedDump");
    assert!(matches!(err, Error::Dump(DumpError::Decompress(_))), "{err:?}");
    child.kill().unwrap();
    drop(sink);
    child.wait().unwrap();
}

#[test]
fn a_tool_that_stops_reading_is_noticed() {
    let tracker = Tracker::detached();
    let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let mut sink = Sink::new(child.stdin.take().unwrap());
    child.wait().unwrap();
    let data = payload();
    let fed = feed(&mut sink, &mut Cursor::new(&data), &tracker, &mut HoldFrom(None, 0), &mut || Ok(())).unwrap();
    assert_eq!(fed, Fed::ClosedEarly);
}
