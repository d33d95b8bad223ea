//! The agent restores every dump format and compression, from real pg_dump
//! and pg_dumpall output, into PostgreSQL; source and restored databases are
//! compared object by object and row by row.
//!
//! One source cluster (roles, the hard fixture, Pagila, the database whose
//! name needs quoting) and one target cluster are shared by the tests of this
//! file; each test restores into its own fresh database, and the Kubegres
//! backup test into its own fresh cluster.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use harness::agent::{AgentOutput, restore};
use harness::compare::{assert_same_cluster, assert_same_database, list_databases};
use harness::dumps::{DumpKind, Dumps, sha256_file};
use harness::fixtures::{HARD_DB, ODD_DB, PAGILA_DB, create_fixture_roles, load_cluster_fixture};
use harness::pg::PgCluster;

struct Shared {
    source: PgCluster,
    target: PgCluster,
    dumps: Dumps,
    made: Mutex<HashMap<(String, DumpKind), PathBuf>>,
}

impl Shared {
    /// The dump of `db` as `kind`, made once.
    fn dump(&self, db: &str, kind: DumpKind) -> PathBuf {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        made.entry((db.to_string(), kind)).or_insert_with(|| self.dumps.dump(&self.source, db, kind, db)).clone()
    }
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let source = PgCluster::start();
        load_cluster_fixture(&source);
        let target = PgCluster::start();
        // Roles are cluster-wide: a single-database dump expects them.
        create_fixture_roles(&target);
        let dumps = Dumps::new_in(&source.scratch_dir());
        Shared { source, target, dumps, made: Mutex::new(HashMap::new()) }
    })
}

/// Success, and nothing on stderr that looks like an error.
fn assert_clean_success(out: &AgentOutput) {
    out.assert_success();
    assert!(!out.stderr.to_lowercase().contains("error"), "a successful restore printed an error\n{}", out.describe());
}

/// Restores the dump of `db` as `kind` into the fresh database `into` of the
/// shared target with `extra` flags, and compares it with the source.
fn restore_and_compare(db: &str, kind: DumpKind, into: &str, extra: &[&str]) -> AgentOutput {
    let s = shared();
    let path = s.dump(db, kind);
    s.target.create_database(into);
    let out = restore(&path, &s.target, into, extra);
    assert_clean_success(&out);
    assert_same_database(&s.source, db, &s.target, into);
    out
}

#[test]
fn hard_plain_native() {
    let out = restore_and_compare(
        HARD_DB,
        DumpKind::Plain,
        "hard_plain_native",
        &["--engine", "native", "--progress", "json"],
    );
    let last = out.last_event().unwrap_or_else(|| panic!("no JSON progress on stdout\n{}", out.describe()));
    assert_eq!(last["event"], "completed", "the last JSON line should be the completion\n{}", out.describe());
}

#[test]
fn hard_plain_pg_tools() {
    restore_and_compare(HARD_DB, DumpKind::Plain, "hard_plain_pg_tools", &["--engine", "pg-tools"]);
}

#[test]
fn hard_plain_gzip() {
    restore_and_compare(HARD_DB, DumpKind::PlainGzip, "hard_plain_gzip", &[]);
}

#[test]
fn hard_plain_zstd() {
    restore_and_compare(HARD_DB, DumpKind::PlainZstd, "hard_plain_zstd", &[]);
}

#[test]
fn hard_plain_lz4() {
    restore_and_compare(HARD_DB, DumpKind::PlainLz4, "hard_plain_lz4", &[]);
}

#[test]
fn hard_plain_lz4_with_explicit_format_and_compression() {
    restore_and_compare(
        HARD_DB,
        DumpKind::PlainLz4,
        "hard_plain_lz4_explicit",
        &["--format", "plain", "--compression", "lz4", "--engine", "native"],
    );
}

#[test]
fn hard_custom() {
    restore_and_compare(HARD_DB, DumpKind::Custom, "hard_custom", &[]);
}

#[test]
fn hard_custom_zstd() {
    restore_and_compare(HARD_DB, DumpKind::CustomZstd, "hard_custom_zstd", &[]);
}

#[test]
fn hard_custom_with_explicit_format_and_jobs() {
    restore_and_compare(
        HARD_DB,
        DumpKind::Custom,
        "hard_custom_explicit",
        &["--format", "custom", "--engine", "pg-tools", "--jobs", "2"],
    );
}

#[test]
fn hard_directory() {
    restore_and_compare(HARD_DB, DumpKind::Directory, "hard_directory", &[]);
}

#[test]
fn hard_tar() {
    restore_and_compare(HARD_DB, DumpKind::Tar, "hard_tar", &[]);
}

#[test]
fn hard_plain_gzip_with_the_right_sha256() {
    let s = shared();
    let digest = sha256_file(&s.dump(HARD_DB, DumpKind::PlainGzip));
    restore_and_compare(HARD_DB, DumpKind::PlainGzip, "hard_sha256", &["--sha256", &digest]);
}

#[test]
fn hard_custom_with_the_right_sha256_in_upper_case() {
    let s = shared();
    let digest = sha256_file(&s.dump(HARD_DB, DumpKind::Custom)).to_uppercase();
    restore_and_compare(HARD_DB, DumpKind::Custom, "hard_sha256_custom", &["--sha256", &digest]);
}

#[test]
fn pagila_plain_gzip_native() {
    restore_and_compare(PAGILA_DB, DumpKind::PlainGzip, "pagila_plain_gzip", &["--engine", "native"]);
}

#[test]
fn pagila_custom() {
    restore_and_compare(PAGILA_DB, DumpKind::Custom, "pagila_custom", &[]);
}

#[test]
fn pagila_directory_with_two_jobs() {
    restore_and_compare(PAGILA_DB, DumpKind::Directory, "pagila_directory", &["--jobs", "2"]);
}

#[test]
fn pagila_tar() {
    restore_and_compare(PAGILA_DB, DumpKind::Tar, "pagila_tar", &[]);
}

#[test]
fn pagila_plain_zstd_pg_tools() {
    restore_and_compare(PAGILA_DB, DumpKind::PlainZstd, "pagila_plain_zstd_pg_tools", &["--engine", "pg-tools"]);
}

#[test]
fn odd_database_name_as_target() {
    // The target database itself has the name that needs quoting.
    let s = shared();
    let path = s.dump(HARD_DB, DumpKind::Plain);
    let into = "Target \"db\"; ü ?&=/#%";
    s.target.create_database(into);
    let out = restore(&path, &s.target, into, &[]);
    assert_clean_success(&out);
    assert_same_database(&s.source, HARD_DB, &s.target, into);
}

#[test]
fn kubegres_backup_into_a_fresh_cluster() {
    let s = shared();
    let backup = s.dumps.kubegres_backup(&s.source, "mypostgres");
    // A pg_dumpall dump carries the source superuser's password verifier:
    // give the fresh cluster the same password so the harness can still
    // connect whatever the agent does with it.
    let target = PgCluster::start_with_password(s.source.password());
    let out = restore(&backup, &target, "postgres", &["--progress", "json"]);
    assert_clean_success(&out);
    let last = out.last_event().unwrap_or_else(|| panic!("no JSON progress on stdout\n{}", out.describe()));
    assert_eq!(last["event"], "completed", "{}", out.describe());

    let dbs = list_databases(&target);
    for db in [HARD_DB, PAGILA_DB, ODD_DB, "postgres"] {
        assert!(dbs.iter().any(|d| d == db), "database {db:?} did not come back: {dbs:?}\n{}", out.describe());
    }
    // Roles (attributes, passwords, memberships, settings), every database's
    // properties and contents.
    assert_same_cluster(&s.source, &target);
}

#[test]
fn kubegres_backup_with_the_right_sha256() {
    let s = shared();
    let dumps = Dumps::new();
    let backup = dumps.kubegres_backup(&s.source, "sha");
    let digest = sha256_file(&backup);
    let target = PgCluster::start_with_password(s.source.password());
    let out = restore(&backup, &target, "postgres", &["--sha256", &digest]);
    assert_clean_success(&out);
    assert_eq!(list_databases(&target), list_databases(&s.source));
    assert_same_database(&s.source, ODD_DB, &target, ODD_DB);
}
