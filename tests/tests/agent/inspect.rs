//! `restore-agent inspect` tells what a dump is, from real pg_dump and
//! pg_dumpall output, without restoring it.

use std::ffi::OsStr;
use std::sync::OnceLock;

use harness::agent::run_agent;
use harness::dumps::{DumpKind, Dumps, sha256_file};
use harness::fixtures::load_small;
use harness::pg::PgCluster;
use serde_json::Value;

struct Shared {
    source: PgCluster,
    dumps: Dumps,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let source = PgCluster::start();
        source.create_database("shop");
        source.create_database("crm");
        load_small(&source, "shop");
        load_small(&source, "crm");
        let dumps = Dumps::new_in(&source.scratch_dir());
        Shared { source, dumps }
    })
}

fn inspect_json(source: &std::path::Path) -> Value {
    let out =
        run_agent(&[OsStr::new("inspect"), OsStr::new("--json"), OsStr::new("--source"), source.as_os_str()], &[]);
    out.assert_success();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("inspect --json printed no JSON ({e})\n{}", out.describe()))
}

#[test]
fn kubegres_backup_lists_databases_and_is_complete() {
    let s = shared();
    let backup = s.dumps.kubegres_backup(&s.source, "mycluster");
    let report = inspect_json(&backup);
    assert_eq!(report["compression"], "gzip");
    assert_eq!(report["format"], "pg_dumpall script");
    assert_eq!(report["sha256"], sha256_file(&backup));
    assert_eq!(report["size"], std::fs::metadata(&backup).unwrap().len());
    let script = &report["script"];
    assert_eq!(script["complete"], true);
    let dbs: Vec<&str> = script["databases"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    for db in ["crm", "shop", "postgres"] {
        assert!(dbs.contains(&db), "{db} missing from {dbs:?}");
    }
    // small.sql: 200 customers, 5000 orders, 2 settings, in each of two databases.
    assert_eq!(script["rows"], 2 * (200 + 5000 + 2));
    assert_eq!(script["objects"]["TABLE DATA"], 6);
}

#[test]
fn custom_archive_shows_its_table_of_contents() {
    let s = shared();
    let dump = s.dumps.dump(&s.source, "shop", DumpKind::CustomZstd, "inspect");
    let report = inspect_json(&dump);
    assert_eq!(report["compression"], "zstd", "the zstd wrapper around the archive");
    assert_eq!(report["format"], "custom-format archive");
    let archive = &report["archive"];
    assert_eq!(archive["database"], "shop");
    assert_eq!(archive["entriesByType"]["TABLE"], 3);
    assert_eq!(archive["entriesByType"]["TABLE DATA"], 3);
    assert_eq!(archive["entriesByType"]["INDEX"], 1);
    assert_eq!(archive["entriesByType"]["SEQUENCE SET"], 1);
}

#[test]
fn directory_dump_is_recognised_as_such() {
    let s = shared();
    let dir = s.dumps.dump(&s.source, "crm", DumpKind::Directory, "inspect");
    let report = inspect_json(&dir);
    assert_eq!(report["format"], "directory");
    assert_eq!(report["archive"]["format"], "directory");
    assert_eq!(report["archive"]["tables"], 3);
}

#[test]
fn a_truncated_script_is_reported_as_truncated() {
    let s = shared();
    let plain = std::fs::read(s.dumps.dump(&s.source, "shop", DumpKind::Plain, "inspect")).unwrap();
    let cut = s.dumps.write("cut.sql", &plain[..plain.len() / 2]);
    let out = run_agent(&[OsStr::new("inspect"), OsStr::new("--source"), cut.as_os_str()], &[]);
    out.assert_failure(3, &[&["truncated"]]);
}
