//! Proves the harness itself with the real PostgreSQL tools, without the
//! agent: fixtures load, every dump kind is produced, pg_restore/psql
//! restores compare equal, and the comparison does fail on a single changed
//! row, sequence, large object or comment.

use std::process::{Command, Stdio};

use harness::compare::{assert_same_cluster, assert_same_database, compare_databases, list_databases};
use harness::dumps::{DumpKind, Dumps, sha256_file};
use harness::fixtures::{HARD_DB, ODD_DB, PAGILA_DB, load_cluster_fixture, load_hard, load_pagila};
use harness::pg::PgCluster;

#[test]
fn pg_tools_restores_of_the_hard_fixture_compare_equal() {
    let pg = PgCluster::start();
    load_hard(&pg, "hard");
    assert!(pg.user_tables("hard").len() > 15, "the hard fixture should have many tables");
    let dumps = Dumps::new();

    let plain = dumps.dump(&pg, "hard", DumpKind::Plain, "hard");
    let text = std::fs::read_to_string(&plain).unwrap();
    assert!(text.contains("\\restrict "), "pg_dump 15.14+ writes \\restrict; the fixtures expect it");
    assert!(text.contains("-- PostgreSQL database dump complete"));
    pg.create_database("from_plain");
    pg.psql_file("from_plain", &plain);
    assert_same_database(&pg, "hard", &pg, "from_plain");

    for (kind, db, args) in [
        (DumpKind::Custom, "from_custom", vec![]),
        (DumpKind::Directory, "from_dir", vec!["-j", "2"]),
        (DumpKind::Tar, "from_tar", vec![]),
    ] {
        let path = dumps.dump(&pg, "hard", kind, "hard");
        pg.create_database(db);
        pg.pg_restore(db, &args, &path);
        assert_same_database(&pg, "hard", &pg, db);
    }

    // The compressed kinds are real files of their format.
    for (kind, check) in [
        (DumpKind::PlainGzip, ["gzip", "-t"]),
        (DumpKind::PlainZstd, ["zstd", "-t"]),
        (DumpKind::PlainLz4, ["lz4", "-t"]),
        (DumpKind::CustomZstd, ["zstd", "-t"]),
    ] {
        let path = dumps.dump(&pg, "hard", kind, "hard");
        let ok = Command::new(check[0]).args(&check[1..]).arg(&path).stderr(Stdio::null()).status().unwrap();
        assert!(ok.success(), "{kind:?} dump at {} does not test clean with {check:?}", path.display());
        assert_eq!(sha256_file(&path).len(), 64);
    }
}

#[test]
fn comparison_fails_on_one_changed_row_sequence_large_object_or_comment() {
    let pg = PgCluster::start();
    load_hard(&pg, "a");
    let dumps = Dumps::new();
    let custom = dumps.dump(&pg, "a", DumpKind::Custom, "a");
    pg.create_database("b");
    pg.pg_restore("b", &[], &custom);
    compare_databases(&pg, "a", &pg, "b").expect("a faithful restore compares equal");

    let expect_diff = |change: &str, undo: &str, needle: &str| {
        pg.psql("b", change);
        let err = compare_databases(&pg, "a", &pg, "b").expect_err(&format!("the comparison missed: {change}"));
        assert!(err.contains(needle), "the difference after `{change}` should mention {needle:?}:\n{err}");
        pg.psql("b", undo);
        compare_databases(&pg, "a", &pg, "b")
            .unwrap_or_else(|e| panic!("undoing `{change}` should compare equal:\n{e}"));
    };
    // One row of one partition, one character longer.
    expect_diff(
        "UPDATE public.events_2024_a SET body = body || 'x' WHERE id = (SELECT min(id) FROM public.events_2024_a)",
        "UPDATE public.events_2024_a SET body = left(body, -1) WHERE id = (SELECT min(id) FROM public.events_2024_a)",
        "events_2024_a",
    );
    // NULL versus empty string (user triggers off, so `touched` stays as it was).
    let t = r#""Schéma ü"."Tâble ü""#;
    let col = r#""col ""quoted""; name""#;
    let quiet =
        |sql: String| format!("ALTER TABLE {t} DISABLE TRIGGER USER; {sql}; ALTER TABLE {t} ENABLE TRIGGER USER");
    expect_diff(
        &quiet(format!("UPDATE {t} SET {col} = NULL WHERE {col} = ''")),
        &quiet(format!("UPDATE {t} SET {col} = '' WHERE qty IS NULL")),
        "Tâble ü",
    );
    // A duplicate row removed from a table without orderable columns.
    expect_diff(
        "DELETE FROM public.shapes WHERE ctid = (SELECT max(ctid) FROM public.shapes WHERE pt IS NOT NULL)",
        r#"INSERT INTO public.shapes VALUES ('(1,2)', '{"a": [1, 2]}', '<a>1</a>')"#,
        "public.shapes",
    );
    // A row of the inheritance parent (not of the child).
    expect_diff(
        "DELETE FROM ONLY public.parent_inh WHERE a = 2",
        "INSERT INTO public.parent_inh VALUES (2)",
        "parent_inh",
    );
    // A sequence's is_called.
    expect_diff("SELECT setval('public.set_seq', 42, true)", "SELECT setval('public.set_seq', 42, false)", "sequences");
    // One byte of a large object.
    let byte = pg.query_one("a", "SELECT encode(lo_get(424244, 5, 1), 'hex')");
    expect_diff(
        r"SELECT lo_put(424244, 5, '\x00')",
        &format!(r"SELECT lo_put(424244, 5, '\x{byte}')"),
        "large objects",
    );
    // A large object's owner.
    expect_diff(
        "ALTER LARGE OBJECT 424243 OWNER TO kgr_app",
        "ALTER LARGE OBJECT 424243 OWNER TO postgres",
        "large objects",
    );
    // A comment (schema).
    expect_diff("COMMENT ON TABLE public.chicken IS 'changed'", "COMMENT ON TABLE public.chicken IS NULL", "schema");
    // A materialized view's contents, its source table unchanged.
    expect_diff(
        &quiet(format!(
            r#"UPDATE {t} SET qty = 1000 WHERE "Cölumn ü" = '\N'; REFRESH MATERIALIZED VIEW public.mood_counts; UPDATE {t} SET qty = 5 WHERE "Cölumn ü" = '\N'"#
        )),
        "REFRESH MATERIALIZED VIEW public.mood_counts",
        "mood_counts",
    );
    // A materialized view left unpopulated.
    expect_diff(
        "REFRESH MATERIALIZED VIEW public.mood_counts WITH NO DATA",
        "REFRESH MATERIALIZED VIEW public.mood_counts",
        "materialized views",
    );
}

#[test]
fn a_kubegres_backup_restored_with_psql_compares_equal_cluster_wide() {
    let source = PgCluster::start();
    load_cluster_fixture(&source);
    let dumps = Dumps::new();
    let backup = dumps.kubegres_backup(&source, "mypostgres");
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("mypostgres-backup-") && name.ends_with(".gz"), "{name}");

    // What the agent must achieve: `gunzip -c | psql` into a fresh cluster
    // (psql goes on past the known harmless errors of a --clean dump).
    let target = PgCluster::start_with_password(source.password());
    let mut gunzip = Command::new("gunzip").arg("-c").arg(&backup).stdout(Stdio::piped()).spawn().unwrap();
    let out = target.command("psql").args(["-X", "-q"]).stdin(gunzip.stdout.take().unwrap()).output().unwrap();
    assert!(gunzip.wait().unwrap().success());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let dbs = list_databases(&target);
    for db in [HARD_DB, PAGILA_DB, ODD_DB, "postgres"] {
        assert!(dbs.iter().any(|d| d == db), "{db:?} missing from {dbs:?}");
    }
    assert_same_cluster(&source, &target);

    // And the comparison notices a missing role membership.
    target.psql("postgres", "REVOKE kgr_reader FROM kgr_app");
    let caught = std::panic::catch_unwind(|| harness::compare::assert_same_roles(&source, &target));
    assert!(caught.is_err(), "assert_same_roles missed a revoked membership");
}

#[test]
fn pagila_restored_with_psql_compares_equal() {
    let pg = PgCluster::start();
    load_pagila(&pg, "pagila");
    assert_eq!(pg.query_one("pagila", "SELECT count(*) FROM public.rental"), "16044");
    let dumps = Dumps::new();
    let plain = dumps.dump(&pg, "pagila", DumpKind::Plain, "pagila");
    pg.create_database("copy");
    pg.psql_file("copy", &plain);
    assert_same_database(&pg, "pagila", &pg, "copy");
}
