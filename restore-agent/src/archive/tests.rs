//! Tests on real archives written by pg_dump 15 (see testdata/README.md)
//! and on synthetic archives of the versions pg_dump 15 does not write.

use std::cell::RefCell;

use proto::Section;

use super::header::{ArchiveCompression, build};
use super::summary::summarize_sized;
use super::tee::ArchiveObserver;
use super::toc::DataState;
use super::*;
use crate::format::Format;

const CUSTOM: &[u8] = include_bytes!("testdata/custom.dump");
const CUSTOM_Z0: &[u8] = include_bytes!("testdata/custom_z0.dump");
const TAR: &[u8] = include_bytes!("testdata/archive.tar");
const DIRECTORY_TOC: &[u8] = include_bytes!("testdata/directory_toc.dat");

/// (dump id, desc, schema, tag) in TOC order, as `pg_restore -l` lists them
/// after the four entries it does not show.
const ENTRIES: &[(i32, &str, Option<&str>, &str)] = &[
    (3367, "ENCODING", None, "ENCODING"),
    (3368, "STDSTRINGS", None, "STDSTRINGS"),
    (3369, "SEARCHPATH", None, "SEARCHPATH"),
    (3370, "DATABASE", None, "archive_fixture"),
    (6, "SCHEMA", None, "shop"),
    (218, "TABLE", Some("public"), "empty_t"),
    (217, "TABLE", Some("public"), "notes"),
    (219, "SEQUENCE", Some("public"), "ticket_seq"),
    (216, "TABLE", Some("shop"), "items"),
    (3371, "COMMENT", Some("shop"), "TABLE items"),
    (220, "VIEW", Some("shop"), "cheap_items"),
    (215, "SEQUENCE", Some("shop"), "items_id_seq"),
    (3372, "SEQUENCE OWNED BY", Some("shop"), "items_id_seq"),
    (3211, "DEFAULT", Some("shop"), "items id"),
    (3363, "BLOB", None, "424242"),
    (3361, "TABLE DATA", Some("public"), "empty_t"),
    (3360, "TABLE DATA", Some("public"), "notes"),
    (3359, "TABLE DATA", Some("shop"), "items"),
    (3373, "SEQUENCE SET", Some("public"), "ticket_seq"),
    (3374, "SEQUENCE SET", Some("shop"), "items_id_seq"),
    (3364, "BLOBS", None, "BLOBS"),
    (3214, "CONSTRAINT", Some("shop"), "items items_pkey"),
    (3212, "INDEX", Some("shop"), "items_name_idx"),
];

fn listing(toc: &[TocEntry]) -> Vec<(i32, &str, Option<&str>, &str)> {
    toc.iter().map(|e| (e.dump_id, e.desc.as_str(), e.namespace.as_deref(), e.tag.as_str())).collect()
}

fn entry(toc: &[TocEntry], id: i32) -> &TocEntry {
    toc.iter().find(|e| e.dump_id == id).unwrap()
}

#[test]
fn custom_header_is_read_as_pg_dump_15_wrote_it() {
    let (h, _) = read_header_and_toc(&mut &CUSTOM[..]).unwrap();
    assert_eq!(h.version, (1, 14, 0));
    assert_eq!((h.int_size, h.off_size), (4, 8));
    assert_eq!(h.format, Format::Custom);
    assert_eq!(h.compression, "gzip");
    assert_eq!(h.compression_algorithm, ArchiveCompression::Gzip { level: Some(-1) });
    assert_eq!(h.created, "2026-11-24 15:47:57");
    assert_eq!(h.dbname, "archive_fixture");
    assert_eq!(h.server_version, "15.18 (Debian 15.18-0+deb12u1)");
    assert_eq!(h.pg_dump_version, "15.18 (Debian 15.18-0+deb12u1)");
    assert_eq!(h.pg_dump_version_number(), "15.18");
    assert_eq!(read_header(&mut &CUSTOM[..]).unwrap(), h);

    let (h0, _) = read_header_and_toc(&mut &CUSTOM_Z0[..]).unwrap();
    assert_eq!(h0.compression, "none");
    assert_eq!(h0.compression_algorithm, ArchiveCompression::None);
}

#[test]
fn custom_toc_lists_every_entry_with_its_data_offset() {
    for archive in [CUSTOM, CUSTOM_Z0] {
        let mut rest = archive;
        let (_, toc) = read_header_and_toc(&mut rest).unwrap();
        assert_eq!(listing(&toc), ENTRIES);
        let items = entry(&toc, 3359);
        assert!(items.had_dumper && items.has_copy_statement);
        assert_eq!(items.section, Some(Section::Data));
        assert_eq!(items.dependencies, vec![216]);
        assert_eq!(items.data_state, Some(DataState::PosSet));
        assert_eq!(items.owner.as_deref(), Some("postgres"));
        assert_eq!(entry(&toc, 216).tablespace.as_deref(), Some(""));
        assert_eq!(entry(&toc, 216).tableam.as_deref(), Some("heap"));
        assert_eq!(entry(&toc, 216).relkind, None, "relkind is stored from archive 1.16 on");
        assert_eq!(entry(&toc, 3212).section, Some(Section::PostData));
        assert_eq!(entry(&toc, 3371).section, None, "comments are SECTION_NONE");
        assert_eq!(entry(&toc, 3363).large_objects, 1);
        assert_eq!(entry(&toc, 3214).data_state, Some(DataState::NoData));
        // The reader stops at the first data block: BLK_DATA of the first data entry.
        let first = toc.iter().filter_map(|e| e.data_offset).min().unwrap();
        assert_eq!(archive.len() - rest.len(), first as usize);
        assert_eq!(rest[0], 1, "BLK_DATA");
        assert_eq!(&rest[1..6], &[0, 0x21, 0x0d, 0, 0], "dump id 3361 (public.empty_t), sign byte first");
    }
}

#[test]
fn tar_and_directory_tocs_name_their_data_files() {
    // A tar archive's first member is toc.dat.
    let (h, toc) = read_header_and_toc(&mut &TAR[512..]).unwrap();
    assert_eq!(h.format, Format::Tar);
    assert_eq!(h.compression, "none");
    assert_eq!(listing(&toc), ENTRIES);
    assert_eq!(entry(&toc, 3359).filename.as_deref(), Some("3359.dat"));
    assert_eq!(entry(&toc, 3364).filename.as_deref(), Some("3364.dat"));
    assert_eq!(entry(&toc, 216).filename, None);
    assert_eq!(entry(&toc, 3359).data_state, None);

    let (h, toc) = read_header_and_toc(&mut &DIRECTORY_TOC[..]).unwrap();
    assert_eq!(h.format, Format::Tar, "a directory's toc.dat carries the tar code");
    assert_eq!(h.compression, "gzip");
    assert_eq!(listing(&toc), ENTRIES);

    let layout = directory_layout(DIRECTORY_TOC).unwrap();
    assert_eq!(layout.header.format, Format::Directory);
    assert_eq!(layout.data_files, ["3361.dat.gz", "3360.dat.gz", "3359.dat.gz"]);
    assert_eq!(layout.blob_tocs, ["blobs.toc"]);
    assert_eq!(large_object_files(b"424242 blob_424242.dat\n", &layout.header).unwrap(), ["blob_424242.dat.gz"]);
    assert!(large_object_files(b"424242 ../../etc/passwd\n", &layout.header).is_err());
    assert!(large_object_files(b"garbage\n", &layout.header).is_err());
}

#[test]
fn every_cut_of_the_header_and_toc_is_truncated() {
    let (_, toc) = read_header_and_toc(&mut &CUSTOM[..]).unwrap();
    let toc_end = toc.iter().filter_map(|e| e.data_offset).min().unwrap() as usize;
    for cut in 0..toc_end {
        match read_header_and_toc(&mut &CUSTOM[..cut]) {
            Err(ArchiveError::Truncated(m)) => assert!(m.starts_with("it ends inside"), "{m}"),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let e = read_header_and_toc(&mut &CUSTOM[..2000]).unwrap_err();
    assert_eq!(e.reason(), "TruncatedDump");
    assert!(e.to_string().starts_with("the archive is truncated: it ends inside the table of contents (entry "), "{e}");
}

#[test]
fn corrupt_and_unsupported_archives_are_named() {
    let e = read_header_and_toc(&mut &b"PGDMQ\x01\x0e\x00"[..]).unwrap_err();
    assert_eq!(e.reason(), "CorruptDump");
    assert_eq!(e.to_string(), "the archive is corrupt: it does not start with PGDMP, the mark of pg_dump archives");

    let mut old = CUSTOM.to_vec();
    old[6] = 11;
    let e = read_header(&mut &old[..]).unwrap_err();
    assert_eq!(e.reason(), "UnsupportedArchiveVersion");
    assert!(
        e.to_string().starts_with("unsupported archive version 1.11: it was written by pg_dump older than 9.0"),
        "{e}"
    );

    // A future version: the header still reads (pg_restore may know it), the TOC does not.
    let future = build::header(17, 1, "19.0");
    let h = read_header(&mut &future[..]).unwrap();
    assert_eq!(h.version, (1, 17, 0));
    let e = read_header_and_toc(&mut &future[..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported archive version 1.17: it was written by pg_dump 19.0 and is newer than the versions this agent reads (1.12 to 1.16, pg_dump 9.0 to 18)"
    );

    let mut bad_section = build::header(14, 1, "15.0");
    build::int(&mut bad_section, 1);
    synthetic_entry(&mut bad_section, 14, 7, "TABLE", 9);
    let e = read_header_and_toc(&mut &bad_section[..]).unwrap_err();
    assert_eq!(e.to_string(), "the archive is corrupt: section 9 in the table of contents (entry 1 of 1)");

    let mut bad_format = build::header(14, 4, "15.0");
    build::int(&mut bad_format, 0);
    assert_eq!(read_header_and_toc(&mut &bad_format[..]).unwrap_err().reason(), "CorruptDump");
}

/// One custom-format TOC entry of archive version `minor`, as WriteToc writes it.
fn synthetic_entry(out: &mut Vec<u8>, minor: u8, id: i64, desc: &str, section: i64) {
    use build::{int, string};
    int(out, id);
    int(out, 1); // had dumper
    string(out, Some("1259"));
    string(out, Some("16398"));
    string(out, Some("items"));
    string(out, Some(desc));
    int(out, section);
    string(out, Some(if desc == "BLOB METADATA" { "16384 16385 16390" } else { "CREATE TABLE shop.items (id int);" }));
    string(out, Some("DROP TABLE shop.items;"));
    string(out, None);
    string(out, Some("shop"));
    string(out, Some(""));
    if minor >= 14 {
        string(out, Some("heap"));
    }
    if minor >= 16 {
        int(out, b'r' as i64);
    }
    string(out, Some("app"));
    string(out, Some("false"));
    string(out, Some("5"));
    string(out, Some("6"));
    string(out, None);
    out.push(2); // K_OFFSET_POS_SET
    out.extend_from_slice(&1234u64.to_le_bytes());
}

#[test]
fn each_version_reads_the_fields_it_has() {
    for minor in 12..=16u8 {
        let mut a = build::header(minor, 1, "x");
        build::int(&mut a, 2);
        synthetic_entry(&mut a, minor, 7, "TABLE", 2);
        synthetic_entry(&mut a, minor, 8, "BLOB METADATA", 3);
        let (h, toc) = read_header_and_toc(&mut &a[..]).unwrap_or_else(|e| panic!("1.{minor}: {e}"));
        assert_eq!(h.version, (1, minor, 0));
        let expected = if minor >= 15 { "zstd" } else { "gzip level 6" };
        assert_eq!(h.compression, expected, "1.{minor}");
        assert_eq!(h.created, "2025-01-02 03:04:05");
        assert_eq!(toc.len(), 2);
        let t = &toc[0];
        assert_eq!((t.dump_id, t.desc.as_str(), t.tag.as_str()), (7, "TABLE", "items"));
        assert_eq!(t.tableam.as_deref(), (minor >= 14).then_some("heap"), "1.{minor}");
        assert_eq!(t.relkind, (minor >= 16).then_some('r'), "1.{minor}");
        assert_eq!(t.dependencies, vec![5, 6]);
        assert_eq!(t.data_offset, Some(1234));
        assert_eq!(t.section, Some(Section::PreData));
        assert_eq!(toc[1].large_objects, 3);
        assert_eq!(summarize(&h, &toc).large_objects, 3);
    }
}

#[test]
fn pg_restore_versions_follow_the_archive_history() {
    assert_eq!(min_pg_restore_major((1, 12, 0)), 9);
    assert_eq!(min_pg_restore_major((1, 13, 0)), 9);
    assert_eq!(min_pg_restore_major((1, 14, 0)), 12);
    assert_eq!(min_pg_restore_major((1, 15, 0)), 16);
    assert_eq!(min_pg_restore_major((1, 16, 0)), 17);
    assert_eq!(min_pg_restore_major((1, 16, 255)), 17);
    assert_eq!(min_pg_restore_major((1, 17, 0)), 19);
    assert!(pg_restore_can_read(15, (1, 14, 0)));
    assert!(pg_restore_can_read(15, (1, 12, 0)));
    assert!(!pg_restore_can_read(15, (1, 15, 0)));
    assert!(!pg_restore_can_read(16, (1, 16, 0)));
    assert!(pg_restore_can_read(18, (1, 16, 0)));
    assert!(!pg_restore_can_read(11, (1, 14, 0)));
}

/// Records what the tee reports.
#[derive(Default)]
struct Recorder {
    objects: RefCell<Vec<String>>,
    rows: RefCell<u64>,
    sections: RefCell<Vec<Section>>,
}

impl ArchiveObserver for Recorder {
    fn object(&self, kind: &str, schema: Option<&str>, name: &str) {
        let label = match schema {
            Some(s) => format!("{kind} {s}.{name}"),
            None => format!("{kind} {name}"),
        };
        self.objects.borrow_mut().push(label);
    }
    fn rows(&self, n: u64) {
        *self.rows.borrow_mut() += n;
    }
    fn section(&self, section: Section) {
        self.sections.borrow_mut().push(section);
    }
}

const DATA_OBJECTS: &[&str] = &[
    "TABLE DATA public.empty_t",
    "TABLE DATA public.notes",
    "TABLE DATA shop.items",
    "BLOBS BLOBS",
    "LARGE OBJECT 424242",
];

fn tee_run(archive: &[u8], step: usize) -> (Recorder, bool, Option<u64>) {
    let rec = Recorder::default();
    let (observing, hold) = {
        let mut tee = ArchiveProgress::with_observer(&rec);
        for chunk in archive.chunks(step) {
            tee.observe(chunk);
        }
        tee.finish();
        assert_eq!(tee.objects_reported(), rec.objects.borrow().len() as u64);
        (tee.is_observing(), tee.hold_from())
    };
    (rec, observing, hold)
}

#[test]
fn the_tee_follows_custom_archives_in_any_chunking() {
    for archive in [CUSTOM, CUSTOM_Z0] {
        for step in [1, 3, 512, 4096, 65536, archive.len()] {
            let (rec, observing, hold) = tee_run(archive, step);
            assert!(observing, "step {step}");
            assert_eq!(*rec.objects.borrow(), DATA_OBJECTS, "step {step}");
            assert_eq!(*rec.rows.borrow(), 53, "50 items + 3 notes, step {step}");
            assert_eq!(*rec.sections.borrow(), [Section::PreData]);
            assert_eq!(hold, None);
        }
    }
}

/// The end offset of each tar member's content, by name.
fn tar_members(tar: &[u8]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 512 <= tar.len() && tar[pos..pos + 512].iter().any(|&b| b != 0) {
        let h = &tar[pos..pos + 512];
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap();
        let name = String::from_utf8(h[..name_end].to_vec()).unwrap();
        let size = u64::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap().trim(), 8).unwrap();
        out.push((name, (pos + 512) as u64 + size));
        pos += 512 + size.div_ceil(512) as usize * 512;
    }
    out
}

#[test]
fn the_tee_follows_tar_archives_and_holds_back_after_the_last_data_member() {
    let members = tar_members(TAR);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["toc.dat", "3361.dat", "3360.dat", "3359.dat", "blob_424242.dat", "blobs.toc", "restore.sql"]);
    let last_data_end = members[4].1;
    for step in [1, 7, 512, 10_000, TAR.len()] {
        let (rec, observing, hold) = tee_run(TAR, step);
        assert!(observing, "step {step}");
        assert_eq!(
            *rec.objects.borrow(),
            ["TABLE DATA public.empty_t", "TABLE DATA public.notes", "TABLE DATA shop.items", "LARGE OBJECT 424242"],
            "step {step}"
        );
        assert_eq!(*rec.rows.borrow(), 53, "step {step}");
        assert_eq!(hold, Some(last_data_end - 1), "step {step}");
    }
}

#[test]
fn the_tee_never_fails_on_unexpected_bytes() {
    let (rec, observing, _) = tee_run(b"this is not an archive at all, just some text that goes on and on", 5);
    assert!(rec.objects.borrow().is_empty());
    assert!(observing, "too short to decide: still waiting");
    let mut garbage = vec![0x5au8; 4096];
    garbage[..5].copy_from_slice(b"PGDMP");
    let (rec, observing, _) = tee_run(&garbage, 100);
    assert!(!observing);
    assert!(rec.objects.borrow().is_empty());
    // Truncated in the data: what was seen is reported, nothing breaks.
    let (rec, _, _) = tee_run(&CUSTOM[..CUSTOM.len() - 40], 333);
    assert_eq!(rec.objects.borrow()[0], "TABLE DATA public.empty_t");
    // Corrupt data block type after the TOC.
    let (_, toc) = read_header_and_toc(&mut &CUSTOM[..]).unwrap();
    let first = toc.iter().filter_map(|e| e.data_offset).min().unwrap() as usize;
    let mut bad = CUSTOM.to_vec();
    bad[first] = 9;
    let (rec, observing, _) = tee_run(&bad, 4096);
    assert!(!observing);
    assert!(rec.objects.borrow().is_empty());
}

#[test]
fn the_summary_counts_what_the_archive_holds() {
    let (h, toc) = read_header_and_toc(&mut &CUSTOM_Z0[..]).unwrap();
    let s = summarize_sized(&h, &toc, Some(CUSTOM_Z0.len() as u64));
    assert_eq!(s.format, Format::Custom);
    assert_eq!(s.archive_version, "1.14");
    assert_eq!(s.min_pg_restore_major, 12);
    assert_eq!(s.entries, 23);
    assert_eq!(s.tables, 3);
    assert_eq!(s.tables_with_data, 3);
    assert_eq!(s.large_objects, 1);
    assert_eq!(s.databases, ["archive_fixture"]);
    assert_eq!(s.schemas, ["public", "shop"]);
    assert_eq!(s.entries_by_type["TABLE DATA"], 3);
    assert_eq!(s.entries_by_type["SEQUENCE SET"], 2);
    assert_eq!(s.entries_by_section["post-data"], 2);
    assert_eq!(s.largest_data[0].name, "shop.items");
    assert_eq!(s.largest_data.len(), 4);
    let text = s.to_string();
    assert!(text.starts_with("pg_dump custom archive, format 1.14, compression none\n"), "{text}");
    assert!(text.contains("  tables:     3 (3 with data); large objects: 1\n"), "{text}");
    assert!(text.contains("  schemas:    public, shop\n"), "{text}");
    assert!(text.contains("  restore:    needs pg_restore 12 or newer\n"), "{text}");
    assert!(text.contains("TABLE DATA shop.items"), "{text}");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["tablesWithData"], 3);
    assert_eq!(json["format"], "custom");
}
