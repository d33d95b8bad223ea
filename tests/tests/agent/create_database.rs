//! `restore --create-database`: the agent creates the database named in
//! `--target`, marks it as its own with a comment, restores into it, drops
//! and recreates it on a later attempt with the same marker, and never drops
//! a database it did not create.
//!
//! One cluster is shared by the tests of this file: it holds the source
//! database (the hard fixture) and the databases each test creates or expects
//! the agent to create.

use std::path::PathBuf;
use std::sync::OnceLock;

use harness::agent::{AgentOutput, restore, restore_with_password, run_agent};
use harness::compare::{assert_same_database, list_databases};
use harness::dumps::{DumpKind, Dumps};
use harness::fixtures::{HARD_DB, load_hard};
use harness::pg::{PgCluster, quote_ident, quote_literal};

struct Fixture {
    pg: PgCluster,
    dumps: Dumps,
    /// `pg_dump -Fc` of [`HARD_DB`].
    custom: PathBuf,
    /// `pg_dump -Fp` of [`HARD_DB`] with a failing statement before its trailer.
    failing_plain: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pg = PgCluster::start();
        load_hard(&pg, HARD_DB);
        let dumps = Dumps::new_in(&pg.scratch_dir());
        let custom = dumps.dump(&pg, HARD_DB, DumpKind::Custom, "hard");
        let plain = String::from_utf8(pg.pg_dump(HARD_DB, &["-Fp"])).expect("the plain dump is UTF-8");
        let trailer = "\n-- PostgreSQL database dump complete";
        assert!(plain.contains(trailer), "the plain dump has no trailer");
        let failing = plain.replacen(trailer, "\nSELECT 1/0;\n\n-- PostgreSQL database dump complete", 1);
        let failing_plain = dumps.write("hard-failing.sql", failing.as_bytes());
        Fixture { pg, dumps, custom, failing_plain }
    })
}

/// The comment of database `db`, or `None` when it has none; panics when the database is missing.
fn comment_of(pg: &PgCluster, db: &str) -> Option<String> {
    let rows = pg.query(
        "postgres",
        &format!(
            "SELECT coalesce(shobj_description(oid, 'pg_database'), '<none>') FROM pg_database WHERE datname = {}",
            quote_literal(db)
        ),
    );
    assert_eq!(rows.len(), 1, "database {db:?} should exist; databases: {:?}", list_databases(pg));
    let c = rows[0][0].clone();
    (c != "<none>").then_some(c)
}

fn database_exists(pg: &PgCluster, db: &str) -> bool {
    pg.query_one("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = {}", quote_literal(db))) == "1"
}

/// `restore --create-database --create-database-marker MARKER` of `source` into `db`.
fn restore_creating(source: &std::path::Path, db: &str, marker: &str, extra: &[&str]) -> AgentOutput {
    let mut args = vec!["--create-database", "--create-database-marker", marker];
    args.extend_from_slice(extra);
    restore(source, &fixture().pg, db, &args)
}

/// The password never shows, whatever the outcome.
fn assert_no_password(out: &AgentOutput) {
    let pw = fixture().pg.password();
    assert!(
        !out.stderr.contains(pw) && !out.stdout.contains(pw),
        "the password appeared in the agent's output\n{}",
        out.describe()
    );
}

#[test]
fn creates_marks_and_restores_a_new_database() {
    let f = fixture();
    // Upper case and a double quote: the name must be quoted everywhere.
    let db = "Restored \"Hard\"";
    assert!(!database_exists(&f.pg, db));
    let out = restore_creating(&f.custom, db, "uid-1", &["--progress", "json"]);
    out.assert_success();
    assert_no_password(&out);
    assert!(out.stderr.contains("created the target database"), "no log line for the creation\n{}", out.describe());
    assert_eq!(out.last_event().map(|e| e["event"].clone()), Some("completed".into()), "{}", out.describe());
    assert_same_database(&f.pg, HARD_DB, &f.pg, db);
    assert_eq!(comment_of(&f.pg, db).as_deref(), Some("kubegres-restore:uid-1"));
}

#[test]
fn the_same_marker_drops_and_recreates_an_earlier_attempt() {
    let f = fixture();
    let db = "retry_after_attempt";
    // What a failed earlier attempt with this marker leaves: the marked database, some tables.
    f.pg.create_database(db);
    f.pg.psql("postgres", &format!("COMMENT ON DATABASE {} IS 'kubegres-restore:uid-2'", quote_ident(db)));
    f.pg.psql(db, "CREATE TABLE junk (x int); INSERT INTO junk VALUES (1)");
    // A session still open on it (a client of the earlier attempt): FORCE ends it.
    let rt = tokio::runtime::Runtime::new().expect("cannot start a tokio runtime");
    let lingering = rt.block_on(f.pg.client(db));

    let out = restore_creating(&f.custom, db, "uid-2", &[]);
    out.assert_success();
    assert_no_password(&out);
    assert!(
        out.stderr.contains("created by an earlier attempt"),
        "the drop of the earlier attempt's database should be logged\n{}",
        out.describe()
    );
    assert!(!f.pg.user_tables(db).iter().any(|t| t.contains("junk")), "the junk table survived");
    assert_same_database(&f.pg, HARD_DB, &f.pg, db);
    assert_eq!(comment_of(&f.pg, db).as_deref(), Some("kubegres-restore:uid-2"));
    assert!(
        rt.block_on(lingering.simple_query("SELECT 1")).is_err(),
        "the session on the dropped database should have been ended"
    );
}

#[test]
fn a_failed_restore_leaves_its_database_for_the_next_attempt() {
    let f = fixture();
    let db = "failed_then_retried";
    let out = restore_creating(&f.failing_plain, db, "uid-3", &[]);
    out.assert_failure(4, &[&["division by zero"]]);
    assert_no_password(&out);
    assert!(
        out.stderr.contains("left in place") && out.stderr.contains("drops and recreates it"),
        "the log should say that the created database is left for the next attempt\n{}",
        out.describe()
    );
    assert_eq!(comment_of(&f.pg, db).as_deref(), Some("kubegres-restore:uid-3"));

    let out = restore_creating(&f.custom, db, "uid-3", &[]);
    out.assert_success();
    assert_same_database(&f.pg, HARD_DB, &f.pg, db);
}

/// An existing database named `db`, commented `comment`, holding a table with one row.
fn existing_database(db: &str, comment: Option<&str>) {
    let pg = &fixture().pg;
    pg.create_database(db);
    if let Some(c) = comment {
        pg.psql("postgres", &format!("COMMENT ON DATABASE {} IS {}", quote_ident(db), quote_literal(c)));
    }
    pg.psql(db, "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42)");
}

fn assert_refused_and_untouched(db: &str, marker: &str, comment: Option<&str>) {
    let f = fixture();
    let out = restore_creating(&f.custom, db, marker, &["--progress", "json"]);
    let msg = out.assert_failure(5, &[&["already exists and was not created by this restore"], &["new database name"]]);
    assert!(msg.contains(&format!("\"{db}\"")), "the message should name the database: {msg}");
    assert_no_password(&out);
    let failure = out.failure().unwrap_or_else(|| panic!("no JSON failure event\n{}", out.describe()));
    assert_eq!(failure["reason"], "TargetNotEmpty", "{failure}");
    assert_eq!(f.pg.query_one(db, "SELECT x FROM precious"), "42", "the existing database was changed");
    assert_eq!(comment_of(&f.pg, db).as_deref(), comment);
}

#[test]
fn an_existing_database_without_a_marker_is_refused_and_kept() {
    existing_database("taken_unmarked", None);
    assert_refused_and_untouched("taken_unmarked", "uid-4", None);
    // A comment of someone else's is no marker either.
    existing_database("taken_commented", Some("the shop's data"));
    assert_refused_and_untouched("taken_commented", "uid-4", Some("the shop's data"));
}

#[test]
fn another_restores_marker_is_refused_and_kept() {
    existing_database("taken_by_other_restore", Some("kubegres-restore:other-uid"));
    assert_refused_and_untouched("taken_by_other_restore", "uid-5", Some("kubegres-restore:other-uid"));
    // The marker is compared exactly: a prefix of it is another marker.
    existing_database("taken_by_prefix", Some("kubegres-restore:uid-5-and-more"));
    assert_refused_and_untouched("taken_by_prefix", "uid-5", Some("kubegres-restore:uid-5-and-more"));
}

#[test]
fn multi_database_dumps_are_refused_before_anything_is_created() {
    let f = fixture();
    let dumpall = f.dumps.dumpall(&f.pg, &[], "all.sql");
    let out = restore_creating(&dumpall, "from_dumpall", "uid-6", &[]);
    let msg = out.assert_failure(2, &[&["--create-database needs a single-database dump"]]);
    assert!(msg.contains("this is a pg_dumpall dump"), "{msg}");
    assert!(!database_exists(&f.pg, "from_dumpall"), "a database was created for a refused dump");

    let with_create = f.dumps.write("hard-create.sql", &f.pg.pg_dump(HARD_DB, &["-Fp", "--create"]));
    let out = restore_creating(&with_create, "from_create_script", "uid-6", &[]);
    let msg = out.assert_failure(2, &[&["--create-database needs a single-database dump"]]);
    assert!(msg.contains("pg_dump --create"), "{msg}");
    assert!(!database_exists(&f.pg, "from_create_script"), "a database was created for a refused dump");
}

#[test]
fn bad_markers_and_targets_are_usage_errors() {
    let f = fixture();
    let long = "x".repeat(64);
    for (marker, needle) in [("has space", "marker"), ("quote'", "marker"), ("", "marker"), (long.as_str(), "63")] {
        let out = restore_creating(&f.custom, "bad_marker", marker, &[]);
        assert_eq!(out.code, Some(2), "marker {marker:?}\n{}", out.describe());
        assert!(
            out.stderr.contains(needle),
            "marker {marker:?}: the error should mention {needle:?}\n{}",
            out.describe()
        );
    }
    // The same check for the environment variable the operator may use.
    let url = f.pg.url_without_password("bad_marker");
    let source = f.custom.to_string_lossy().into_owned();
    let out = run_agent(
        &["restore", "--source", &source, "--target", &url, "--create-database"],
        &[
            ("PGPASSWORD".to_string(), f.pg.password().to_string()),
            ("RESTORE_AGENT_CREATE_DATABASE_MARKER".to_string(), "semi;colon".to_string()),
        ],
    );
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(!database_exists(&f.pg, "bad_marker"), "a database was created despite a bad marker");

    // No database name, or the maintenance database itself.
    let no_db = format!("postgres://postgres@127.0.0.1:{}", f.pg.port());
    let out = restore_with_password(&f.custom, &no_db, f.pg.password(), &["--create-database"]);
    out.assert_failure(2, &[&["needs the name of the new database"]]);
    let out = restore(&f.custom, &f.pg, "postgres", &["--create-database"]);
    out.assert_failure(2, &[&["maintenance database"]]);
    let out = restore(&f.custom, &f.pg, &"d".repeat(64), &["--create-database"]);
    out.assert_failure(2, &[&["longer than 63 bytes"]]);
}
