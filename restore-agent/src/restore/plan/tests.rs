//! Every branch of the plan, from command lines as a person types them.

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn args(extra: &[&str]) -> RestoreArgs {
    let mut argv = vec!["restore-agent", "restore", "--source", "/d"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(&argv).unwrap().command {
        Command::Restore(a) => a,
        Command::Inspect(_) => unreachable!(),
    }
}

fn target(url: &str) -> TargetConfig {
    TargetConfig::from_url_and_env(Some(url), &|_| None).unwrap()
}

const SHOP: &str = "postgres://app@db/shop";
/// No database in the URL: it defaults to the user name.
const NO_DB: &str = "postgres://app@db";

fn stream(format: Format, multi_database: bool) -> Detected {
    Detected::Stream { format, compression: Compression::Gzip, multi_database }
}

fn plain() -> Detected {
    stream(Format::Plain, false)
}

fn dumpall() -> Detected {
    stream(Format::PgDumpAll, true)
}

fn plan_of(extra: &[&str], detected: Detected, url: &str) -> Result<Plan, Error> {
    plan(&args(extra), detected, target(url))
}

fn ok(extra: &[&str], detected: Detected, url: &str) -> Plan {
    plan_of(extra, detected, url).unwrap_or_else(|e| panic!("{extra:?} {detected:?}: {e}"))
}

fn usage(extra: &[&str], detected: Detected, url: &str) -> String {
    match plan_of(extra, detected, url) {
        Err(Error::Usage(m)) => m,
        other => panic!("{extra:?} {detected:?}: expected a usage error, got {other:?}"),
    }
}

#[test]
fn a_plain_dump_runs_natively_in_one_transaction_into_an_empty_database() {
    let p = ok(&[], plain(), SHOP);
    assert_eq!(
        p,
        Plan {
            format: Format::Plain,
            compression: Compression::Gzip,
            target: target(SHOP),
            check_pg_restore: false,
            create_database: None,
            empty_check: EmptyCheck::Database,
            engine: Engine::Native,
            single_transaction: true,
            on_error: OnError::Stop,
            jobs: 1,
            sha256: None,
        }
    );
}

#[test]
fn the_engine_follows_the_format_unless_chosen() {
    for format in [Format::Plain, Format::PgDumpAll] {
        let multi = format == Format::PgDumpAll;
        assert_eq!(ok(&[], stream(format, multi), SHOP).engine, Engine::Native);
        assert_eq!(ok(&["--engine", "native"], stream(format, multi), SHOP).engine, Engine::Native);
        let p = ok(&["--engine", "pg-tools"], stream(format, multi), SHOP);
        assert_eq!((p.engine, p.check_pg_restore), (Engine::PgTools, false));
    }
    for format in [Format::Custom, Format::Tar] {
        for choice in ["auto", "pg-tools"] {
            let p = ok(&["--engine", choice], stream(format, false), SHOP);
            assert_eq!((p.engine, p.check_pg_restore), (Engine::PgTools, true), "{format} {choice}");
        }
    }
    assert_eq!(
        usage(&["--engine", "native"], stream(Format::Custom, false), SHOP),
        "the native engine restores plain SQL and pg_dumpall scripts, and the source is a custom-format archive; use --engine auto or pg-tools"
    );
    assert_eq!(
        usage(&["--engine", "native"], stream(Format::Tar, false), SHOP),
        "the native engine restores plain SQL and pg_dumpall scripts, and the source is a tar-format archive; use --engine auto or pg-tools"
    );
}

#[test]
fn a_multi_database_dump_starts_from_postgres_and_needs_an_empty_cluster() {
    let p = ok(&[], dumpall(), NO_DB);
    assert_eq!(p.target.dbname, "postgres");
    assert_eq!(p.empty_check, EmptyCheck::Cluster);
    assert!(!p.single_transaction);
    // A database the user names is where the script starts.
    assert_eq!(ok(&[], dumpall(), SHOP).target.dbname, "shop");
    // pg_dump --create: a plain script that connects.
    let p = ok(&[], stream(Format::Plain, true), NO_DB);
    assert_eq!((p.target.dbname.as_str(), p.empty_check), ("postgres", EmptyCheck::Cluster));
    // A single-database dump keeps the default database.
    assert_eq!(ok(&[], plain(), NO_DB).target.dbname, "app");
}

#[test]
fn single_transaction_follows_the_toggle_the_dump_and_on_error() {
    assert!(ok(&["--single-transaction", "auto"], plain(), SHOP).single_transaction);
    assert!(!ok(&["--single-transaction", "auto", "--on-error", "continue"], plain(), SHOP).single_transaction);
    assert!(!ok(&["--single-transaction", "off"], plain(), SHOP).single_transaction);
    assert!(ok(&["--single-transaction", "on"], plain(), SHOP).single_transaction);
    assert!(ok(&["--single-transaction", "on"], stream(Format::Custom, false), SHOP).single_transaction);
    assert!(!ok(&["--single-transaction", "auto"], dumpall(), SHOP).single_transaction);
    assert!(!ok(&["--single-transaction", "off"], dumpall(), SHOP).single_transaction);
    assert_eq!(
        usage(&["--single-transaction", "on"], dumpall(), SHOP),
        "--single-transaction on: this dump creates and connects to databases, which cannot run in one transaction"
    );
    assert_eq!(ok(&["--on-error", "continue"], plain(), SHOP).on_error, OnError::Continue);
}

#[test]
fn allow_non_empty_skips_the_emptiness_check() {
    assert_eq!(ok(&["--allow-non-empty"], plain(), SHOP).empty_check, EmptyCheck::Skip);
    assert_eq!(ok(&["--allow-non-empty"], dumpall(), SHOP).empty_check, EmptyCheck::Skip);
    assert_eq!(ok(&["--allow-non-empty"], Detected::Directory, SHOP).empty_check, EmptyCheck::Skip);
}

#[test]
fn create_database_is_a_step_of_single_database_plans_only() {
    let p = ok(&["--create-database", "--create-database-marker", "uid-1"], plain(), SHOP);
    assert_eq!(p.create_database, Some(NewDatabase { maintenance_db: "postgres".into(), marker: "uid-1".into() }));
    assert_eq!(p.empty_check, EmptyCheck::Database);
    let p = ok(&["--create-database", "--maintenance-db", "template1"], Detected::Directory, SHOP);
    assert_eq!(
        p.create_database,
        Some(NewDatabase { maintenance_db: "template1".into(), marker: "standalone".into() })
    );
    let p = ok(&["--create-database"], stream(Format::Custom, false), SHOP);
    assert!(p.create_database.is_some());
    assert_eq!(
        usage(&["--create-database"], dumpall(), SHOP),
        "--create-database needs a single-database dump; this is a pg_dumpall dump"
    );
    assert_eq!(
        usage(&["--create-database"], stream(Format::Plain, true), SHOP),
        "--create-database needs a single-database dump; this script creates and connects to its own database (pg_dump --create)"
    );
}

#[test]
fn the_checksum_is_kept_for_streams_and_refused_for_directories() {
    let sum = "ab".repeat(32);
    assert_eq!(ok(&["--sha256", &sum], plain(), SHOP).sha256, Some(sum.clone()));
    assert_eq!(
        usage(&["--sha256", &sum], Detected::Directory, SHOP),
        "--sha256 checks a single-file source; a directory-format dump is many files"
    );
}

#[test]
fn a_directory_dump_runs_pg_restore_with_its_jobs() {
    let p = ok(&[], Detected::Directory, SHOP);
    assert_eq!(
        p,
        Plan {
            format: Format::Directory,
            compression: Compression::None,
            target: target(SHOP),
            check_pg_restore: false,
            create_database: None,
            empty_check: EmptyCheck::Database,
            engine: Engine::PgTools,
            single_transaction: true,
            on_error: OnError::Stop,
            jobs: 1,
            sha256: None,
        }
    );
    let p = ok(&["--jobs", "4"], Detected::Directory, SHOP);
    assert_eq!((p.jobs, p.single_transaction), (4, false));
    assert!(!ok(&["--on-error", "continue"], Detected::Directory, SHOP).single_transaction);
    assert!(!ok(&["--single-transaction", "off"], Detected::Directory, SHOP).single_transaction);
    assert!(ok(&["--single-transaction", "on"], Detected::Directory, SHOP).single_transaction);
    assert_eq!(ok(&["--engine", "pg-tools"], Detected::Directory, SHOP).engine, Engine::PgTools);
    assert_eq!(
        usage(&["--single-transaction", "on", "--jobs", "2"], Detected::Directory, SHOP),
        "--single-transaction on cannot be combined with --jobs > 1"
    );
    assert_eq!(
        usage(&["--engine", "native"], Detected::Directory, SHOP),
        "the native engine restores plain SQL and pg_dumpall scripts, and the source is a directory-format dump; use --engine auto or pg-tools"
    );
}

#[test]
fn argument_checks_come_before_the_source_is_opened() {
    let check = |extra: &[&str], url: &str| match check_args(&args(extra), &target(url)) {
        Ok(()) => None,
        Err(Error::Usage(m)) => Some(m),
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(check(&[], SHOP), None);
    assert_eq!(check(&["--on-error", "continue", "--single-transaction", "auto"], SHOP), None);
    assert_eq!(
        check(&["--on-error", "continue", "--single-transaction", "on"], SHOP).as_deref(),
        Some("--on-error continue cannot run in a single transaction")
    );
    assert_eq!(check(&["--create-database"], SHOP), None);
    assert_eq!(
        check(&["--create-database"], NO_DB).as_deref(),
        Some("--create-database needs the name of the new database in --target (postgres://user@host:port/DATABASE)")
    );
    let long = format!("postgres://app@db/{}", "d".repeat(64));
    assert!(check(&["--create-database"], &long).unwrap().starts_with("--create-database: the database name"));
    assert_eq!(
        check(&["--create-database"], "postgres://app@db/postgres").as_deref(),
        Some("--create-database cannot create \"postgres\": it is the maintenance database (--maintenance-db)")
    );
    assert_eq!(check(&["--create-database", "--maintenance-db", "template1"], "postgres://app@db/postgres"), None);
}
