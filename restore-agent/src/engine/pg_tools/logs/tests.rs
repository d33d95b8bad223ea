use std::process::ExitStatus;

use super::*;
use crate::Error;
use crate::engine::pg_tools::PgToolsReport;
use crate::postgres::{TargetConfig, TargetError};

fn target() -> TargetConfig {
    TargetConfig::from_url_and_env(Some("postgres://app@db.example:5432/shop"), &|_| None).unwrap()
}

fn log_of<'t>(tool: Tool, on_error: OnError, text: &str, tracker: &'t Tracker) -> ToolLog<'t> {
    ToolLog::new(tool, tracker, on_error, None).collect(text.as_bytes())
}

fn exit(code: i32) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(code << 8)
}

#[test]
fn pg_restore_errors_carry_the_failed_command() {
    let t = Tracker::detached();
    let text = "pg_restore: creating TABLE \"public.notes\"\n\
        pg_restore: from TOC entry 217; 1259 16407 TABLE notes postgres\n\
        pg_restore: error: could not execute query: ERROR:  relation \"notes\" already exists\n\
        Command was: CREATE TABLE public.notes (\n    id integer,\n    body text\n);\n\n\n";
    let log = log_of(Tool::PgRestore, OnError::Stop, text, &t);
    assert_eq!(log.error_count, 1);
    assert_eq!(t.snapshot().current_object.as_deref(), Some("TABLE public.notes"));
    let err = log.outcome(exit(1), &target()).map_err(Error::from).unwrap_err();
    assert_eq!(err.reason(), "SqlError");
    assert_eq!(
        err.to_string(),
        "pg_restore failed: relation \"notes\" already exists in TOC entry 217: TABLE notes postgres"
    );
    let f = err.to_failure();
    assert_eq!(f.statement.as_deref(), Some("CREATE TABLE public.notes ( id integer, body text );"));
    assert_eq!(f.sqlstate, None);
}

#[test]
fn pg_restore_continue_fails_with_the_count() {
    let t = Tracker::detached();
    let text = "pg_restore: error: could not execute query: ERROR:  relation \"notes\" already exists\n\
        Command was: CREATE TABLE public.notes (id integer);\n\
        pg_restore: error: COPY failed for table \"notes\": ERROR:  column \"id\" of relation \"notes\" does not exist\n\
        pg_restore: warning: errors ignored on restore: 2\n";
    let log = log_of(Tool::PgRestore, OnError::Continue, text, &t);
    assert_eq!(t.snapshot().warnings, 2);
    let err = log.outcome(exit(1), &target()).map_err(Error::from).unwrap_err();
    assert_eq!(err.reason(), "SqlErrors");
    match err {
        Error::Target(TargetError::Errors { count, first }) => {
            assert_eq!(count, 2);
            assert_eq!(first.len(), 2);
            assert_eq!(
                first[1].message,
                "COPY failed for table \"notes\": column \"id\" of relation \"notes\" does not exist"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tool_connection_failures_are_classified() {
    let t = Tracker::detached();
    let text = "pg_restore: error: connection to server at \"127.0.0.1\", port 55432 failed: FATAL:  database \"nonexist\" does not exist\n";
    let err =
        log_of(Tool::PgRestore, OnError::Stop, text, &t).outcome(exit(1), &target()).map_err(Error::from).unwrap_err();
    assert_eq!(err.reason(), "DatabaseMissing");
    assert!(err.to_string().contains("database \"nonexist\" does not exist"), "{err}");
    let text = "psql: error: connection to server at \"h\" (1.2.3.4), port 5432 failed: FATAL:  password authentication failed for user \"app\"\n";
    let err = log_of(Tool::Psql, OnError::Stop, text, &t).outcome(exit(2), &target()).map_err(Error::from).unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed");
}

#[test]
fn pg_restore_archive_problems_are_dump_errors() {
    let t = Tracker::detached();
    let err =
        log_of(Tool::PgRestore, OnError::Stop, "pg_restore: error: could not read from input file: end of file\n", &t)
            .outcome(exit(1), &target())
            .map_err(Error::from)
            .unwrap_err();
    assert_eq!(err.reason(), "TruncatedDump");
    let err = log_of(
        Tool::PgRestore,
        OnError::Stop,
        "pg_restore: error: input file does not appear to be a valid archive\n",
        &t,
    )
    .outcome(exit(1), &target())
    .map_err(Error::from)
    .unwrap_err();
    assert_eq!(err.reason(), "NotADump");
}

#[test]
fn psql_errors_have_sqlstate_statement_and_start_line() {
    let t = Tracker::detached();
    let text = "psql:<stdin>:5: ERROR:  42P01: relation \"nope\" does not exist\n\
        LINE 1: INSERT INTO nope\n                    ^\n\
        LOCATION:  parserOpenTable, parse_relation.c:1392\n\
        psql:<stdin>:5: STATEMENT:  INSERT INTO nope\n  VALUES (2);\n";
    let log = log_of(Tool::Psql, OnError::Stop, text, &t);
    let err = log.outcome(exit(3), &target()).map_err(Error::from).unwrap_err();
    assert_eq!(err.reason(), "SqlError");
    let f = err.to_failure();
    assert_eq!(f.sqlstate.as_deref(), Some("42P01"));
    assert_eq!(f.line, Some(4));
    assert_eq!(f.statement.as_deref(), Some("INSERT INTO nope VALUES (2);"));
    assert_eq!(
        err.to_string(),
        "ERROR 42P01: relation \"nope\" does not exist at dump line 4 in database \"shop\"; statement: INSERT INTO nope VALUES (2);"
    );
}

#[test]
fn psql_continue_counts_errors_but_tolerates_clean_dump_noise() {
    let t = Tracker::detached();
    let text = "psql:<stdin>:3: ERROR:  3D000: database \"app\" does not exist\n\
        psql:<stdin>:3: STATEMENT:  DROP DATABASE app;\n\
        psql:<stdin>:4: WARNING:  01000: something\n\
        psql:<stdin>:9: ERROR:  22P02: invalid input syntax for type integer: \"zz\"\n\
        CONTEXT:  COPY a, line 2, column x: \"zz\"\n\
        psql:<stdin>:9: STATEMENT:  COPY a FROM stdin;\n";
    let log = log_of(Tool::Psql, OnError::Continue, text, &t);
    assert_eq!(log.error_count, 1);
    assert_eq!(log.warnings, 2);
    let err = log.outcome(exit(0), &target()).map_err(Error::from).unwrap_err();
    match &err {
        Error::Target(TargetError::Errors { count: 1, first }) => {
            assert_eq!(first[0].sqlstate.as_deref(), Some("22P02"));
            assert_eq!(first[0].line, Some(9));
        }
        other => panic!("{other:?}"),
    }
    let ok = log_of(
        Tool::Psql,
        OnError::Continue,
        "psql:<stdin>:4: WARNING:  01000: careful\npsql:<stdin>:238: WARNING:  25001: there is already a transaction in progress\n",
        &t,
    );
    assert_eq!(ok.outcome(exit(0), &target()).unwrap(), PgToolsReport { warnings: 2, errors_ignored: 0 });
}

#[test]
fn verbose_progress_lines_name_the_object() {
    let t = Tracker::detached();
    let toc = vec![TocEntry {
        dump_id: 3359,
        had_dumper: true,
        table_oid: 0,
        oid: 16398,
        tag: "items".into(),
        desc: "TABLE DATA".into(),
        section: Some(proto::Section::Data),
        namespace: Some("shop".into()),
        tablespace: None,
        tableam: None,
        relkind: None,
        owner: None,
        large_objects: 0,
        has_copy_statement: true,
        dependencies: vec![],
        filename: Some("3359.dat".into()),
        data_state: None,
        data_offset: None,
    }];
    let mut log = ToolLog::new(Tool::PgRestore, &t, OnError::Stop, Some(&toc));
    log.line("pg_restore: launching item 3359 TABLE DATA items");
    assert_eq!(t.snapshot().current_object.as_deref(), Some("TABLE DATA shop.items"));
    log.line("pg_restore: creating INDEX \"shop.items_name_idx\"");
    assert_eq!(t.snapshot().current_object.as_deref(), Some("INDEX shop.items_name_idx"));
    assert_eq!(t.snapshot().section, Some(proto::Section::PostData));
    log.line("pg_restore: restoring large object with OID 424242");
    assert_eq!(t.snapshot().current_object.as_deref(), Some("LARGE OBJECT 424242"));
}

#[test]
fn very_long_lines_are_capped() {
    let long = format!("{}\nnext\n", "x".repeat(MAX_LINE * 3));
    let mut r = BufReader::with_capacity(1000, long.as_bytes());
    let mut line = Vec::new();
    assert_eq!(read_capped_line(&mut r, &mut line).unwrap(), MAX_LINE * 3 + 1);
    assert_eq!(line.len(), MAX_LINE);
    line.clear();
    read_capped_line(&mut r, &mut line).unwrap();
    assert_eq!(line, b"next\n");
}
