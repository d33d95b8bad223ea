//! Meta-commands: \connect in all its spellings, \restrict / \unrestrict,
//! \encoding, \. and everything that must be refused.

use super::*;
use crate::sql::Event;

fn dbname_of(line: &str) -> String {
    match events(&format!("{line}\n")).as_slice() {
        [Event::Connect { dbname, line: 1 }] => dbname.clone(),
        other => panic!("{line}: expected one Connect, got {other:?}"),
    }
}

#[test]
fn connect_spellings() {
    let cases = [
        (r"\connect foo", "foo"),
        (r"\c foo", "foo"),
        (r"  \connect MixedCase", "MixedCase"),
        (r"\connect foo;", "foo"),
        (r"\connect foo -", "foo"),
        (r"\connect foo   ", "foo"),
        ("\\connect foo\r", "foo"),
        (r#"\connect "Odd""Name""#, "Odd\"Name"),
        (r#"\connect "a b;c""#, "a b;c"),
        (r#"\connect "Ünïcode""#, "Ünïcode"),
        (r"\connect 'it''s'", "it's"),
        (r"\connect 'a\tb\\c\101\x42'", "a\tb\\cAB"),
        (r"\connect dbname=plain", "plain"),
        // pg_dump's form for names that need quoting (appendPsqlMetaConnect).
        (r#"\connect -reuse-previous=on "dbname='odd;db'""#, "odd;db"),
        (r#"\connect -reuse-previous=on "dbname='odd;db ""q""'""#, "odd;db \"q\""),
        (r#"\connect -reuse-previous=on "dbname='it\'s \\ x'""#, "it's \\ x"),
        (r#"\connect -reuse-previous=on "dbname = 'sp ace'""#, "sp ace"),
        (r#"\connect -reuse-previous=on "dbname=a\ b""#, "a b"),
        (r"\connect -reuse-previous=off foo", "foo"),
    ];
    for (line, want) in cases {
        assert_eq!(dbname_of(line), want, "{line}");
    }
}

#[test]
fn connect_events_in_context() {
    assert_eq!(
        events("SELECT 1;\n\\connect db1\nSELECT 2;\n\\c db2\n"),
        vec![stmt("SELECT 1", 1), connect("db1", 2), stmt("SELECT 2", 3), connect("db2", 4)]
    );
    // After a statement on the same line.
    assert_eq!(events("SELECT 1; \\connect db\n"), vec![stmt("SELECT 1", 1), connect("db", 1)]);
    // `\\` separates a meta-command from SQL on the same line.
    assert_eq!(events("\\connect db \\\\ SELECT 1;\n"), vec![connect("db", 1), stmt("SELECT 1", 1)]);
}

#[test]
fn connect_forms_we_refuse() {
    let cases = [
        (r"\connect", "a database name is required"),
        (r"\connect -", "a database name is required"),
        (r"\connect db bob", "changing the user, host or port (\"bob\") is not supported"),
        (r"\connect db - evil.example.com", "is not supported"),
        (r"\connect - bob", "changing the user, host or port (\"bob\") is not supported"),
        (r#"\connect "dbname=x host=evil""#, "connection option \"host\" is not supported"),
        (r"\connect postgresql://evil/db", "connection URIs are not supported"),
        (r#"\connect -reuse-previous=maybe db"#, "invalid value \"maybe\" for -reuse-previous"),
        (r#"\connect "unterminated"#, "unterminated quoted string"),
        (r"\connect 'unterminated", "unterminated quoted string"),
        (r"\connect `rm -rf /`", "backquoted shell commands are not supported"),
        (r#"\connect -reuse-previous=on "dbname='open""#, "unterminated quoted string in the connection string"),
    ];
    for (line, problem) in cases {
        let err = error(&format!("SELECT 1;\n{line}\n"));
        match &err {
            SplitError::InvalidMetaCommand { command, line: 2, problem: p } => {
                assert_eq!(command, "connect", "{line}");
                assert!(p.contains(problem), "{line}: {p}");
            }
            other => panic!("{line}: unexpected {other}"),
        }
        assert_eq!(err.reason(), "InvalidMetaCommand");
        assert!(err.to_string().starts_with("psql meta-command \\connect at line 2 is not usable: "));
    }
}

#[test]
fn encoding() {
    assert_eq!(
        events("\\encoding SQL_ASCII\n\\encoding\n\\encoding 'UTF8'\n"),
        vec![Event::Encoding { name: "SQL_ASCII".into(), line: 1 }, Event::Encoding { name: "UTF8".into(), line: 3 },]
    );
}

#[test]
fn end_of_data_outside_copy_is_ignored() {
    assert_eq!(events("\\.\nSELECT 1;\n  \\.  \n"), vec![stmt("SELECT 1", 2)]);
}

#[test]
fn restrict_and_unrestrict() {
    let script = "\\restrict AbC123\n\
                  SELECT 1;\n\
                  COPY t FROM stdin;\n\
                  \\.\n\
                  \\unrestrict AbC123\n\
                  \\connect db\n\
                  \\restrict xyz\n\
                  SELECT 2;\n\
                  \\unrestrict xyz\n";
    assert_eq!(
        events(script),
        vec![
            stmt("SELECT 1", 2),
            copy_start("COPY t FROM stdin", 3),
            Event::CopyEnd { rows: 0 },
            connect("db", 6),
            stmt("SELECT 2", 8),
        ]
    );
}

#[test]
fn meta_commands_between_restrict_and_unrestrict_are_refused() {
    for (cmd, name) in [
        ("\\connect other", "connect"),
        ("\\! rm -rf /", "!"),
        ("\\encoding LATIN1", "encoding"),
        ("\\.", "."),
        ("\\restrict K", "restrict"),
        ("\\set ON_ERROR_STOP 0", "set"),
    ] {
        let script = format!("\\restrict K\nSELECT 1;\n{cmd}\n\\unrestrict K\n");
        let (evs, err) = events_then_error(script.as_bytes());
        assert_eq!(evs, vec![stmt("SELECT 1", 2)]);
        match &err {
            SplitError::RestrictedMetaCommand { command, line: 3 } => assert_eq!(command, name),
            other => panic!("{cmd}: unexpected {other}"),
        }
        assert_eq!(err.reason(), "RestrictedMetaCommand");
        assert_eq!(err.line(), Some(3));
        assert!(err.to_string().contains(&format!("\\{name} at line 3")), "{err}");
        assert!(err.to_string().contains("tampered"), "{err}");
    }
    // A second command on the \restrict line itself is caught too.
    let err = error("\\restrict K \\! id\n");
    assert!(matches!(err, SplitError::RestrictedMetaCommand { ref command, line: 1 } if command == "!"), "{err}");
}

#[test]
fn unrestrict_must_match() {
    let err = error("\\restrict K1\n\\unrestrict K2\n");
    match &err {
        SplitError::InvalidMetaCommand { command, line: 2, problem } => {
            assert_eq!(command, "unrestrict");
            assert!(problem.contains("differs"), "{problem}");
        }
        other => panic!("unexpected {other}"),
    }
    let err = error("\\unrestrict K\n");
    assert!(matches!(err, SplitError::InvalidMetaCommand { line: 1, .. }), "{err}");
    let err = error("\\restrict\n");
    match &err {
        SplitError::InvalidMetaCommand { problem, .. } => {
            assert!(problem.contains("key"), "{problem}")
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn unknown_meta_commands_are_refused() {
    for (cmd, name) in [
        ("\\! rm -rf /", "!"),
        ("\\i /etc/passwd", "i"),
        ("\\ir x.sql", "ir"),
        ("\\set ON_ERROR_STOP 0", "set"),
        ("\\o /tmp/out", "o"),
        ("\\copy t from '/etc/passwd'", "copy"),
        ("\\gexec", "gexec"),
        ("\\cfoo", "cfoo"),
        ("\\C title", "C"),
        ("\\", ""),
    ] {
        let (evs, err) = events_then_error(format!("SELECT 1;\n\n{cmd}\nSELECT 2;\n").as_bytes());
        assert_eq!(evs, vec![stmt("SELECT 1", 1)], "{cmd}");
        match &err {
            SplitError::UnknownMetaCommand { command, line: 3 } => {
                assert_eq!(command, name, "{cmd}")
            }
            other => panic!("{cmd}: unexpected {other}"),
        }
        assert_eq!(err.reason(), "UnsupportedMetaCommand");
        assert_eq!(err.to_string(), format!("unsupported psql meta-command \\{name} at line 3"));
    }
    // A second meta-command after a supported one on the same line.
    let (evs, err) = events_then_error(b"\\connect db \\! rm -rf /\n");
    assert_eq!(evs, vec![connect("db", 1)]);
    assert!(matches!(err, SplitError::UnknownMetaCommand { ref command, line: 1 } if command == "!"), "{err}");
}

#[test]
fn meta_command_inside_a_statement_is_refused() {
    let err = error("SELECT 1\n\\gexec\n");
    match &err {
        SplitError::InvalidMetaCommand { command, line: 2, problem } => {
            assert_eq!(command, "gexec");
            assert!(problem.contains("inside an SQL statement"), "{problem}");
        }
        other => panic!("unexpected {other}"),
    }
    // But a backslash inside quotes is text.
    assert_eq!(
        events("SELECT '\\connect x', \"\\!\", $$\\i$$;"),
        vec![stmt("SELECT '\\connect x', \"\\!\", $$\\i$$", 1)]
    );
}

#[test]
fn meta_command_with_non_utf8_argument() {
    let (evs, err) = events_then_error(b"\\connect caf\xe9\n");
    assert!(evs.is_empty());
    assert!(matches!(err, SplitError::UnsupportedEncoding { line: 1 }), "{err}");
}
