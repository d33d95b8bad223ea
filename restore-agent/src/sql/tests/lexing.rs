//! Statement boundaries: quotes, comments, dollar quotes, parentheses,
//! BEGIN ATOMIC, standard_conforming_strings, headers, truncation, UTF-8.

use super::*;
use crate::sql::Event;

#[test]
fn statements_and_lines() {
    assert_eq!(events("SET a = 1;\nSELECT 2;\n"), vec![stmt("SET a = 1", 1), stmt("SELECT 2", 2)]);
    // Several on one line; the last without a newline at the end.
    assert_eq!(
        events("SELECT 1; SELECT 2 ;SELECT 3;"),
        vec![stmt("SELECT 1", 1), stmt("SELECT 2", 1), stmt("SELECT 3", 1)]
    );
    // Spanning lines; the line is the one of the first token.
    assert_eq!(events("\n\nCREATE TABLE t (\n    a int\n);\n"), vec![stmt("CREATE TABLE t (\n    a int\n)", 3)]);
    // CRLF line ends.
    assert_eq!(events("SELECT 1;\r\nSELECT\r\n 2;\r\n"), vec![stmt("SELECT 1", 1), stmt("SELECT\r\n 2", 2)]);
    assert_eq!(events(""), vec![]);
    assert_eq!(events("\n  \n\t\n"), vec![]);
}

#[test]
fn leading_whitespace_and_comments_are_dropped() {
    assert_eq!(events("\n-- a comment; with a semicolon\n  /* block\n */  SELECT 1 ;\n"), vec![stmt("SELECT 1", 4)]);
    assert_eq!(events("/* a */ /* b /* nested; */ c */ SELECT 1;"), vec![stmt("SELECT 1", 1)]);
}

#[test]
fn empty_statements_are_skipped() {
    assert_eq!(events(";;\n ; SELECT 1;;\n;"), vec![stmt("SELECT 1", 2)]);
    assert_eq!(events("/* only a comment */;\n"), vec![]);
}

#[test]
fn comments_inside_statements_stay() {
    assert_eq!(
        events("SELECT 1 -- not the end; really\n, 2;\n"),
        vec![stmt("SELECT 1 -- not the end; really\n, 2", 1)]
    );
    assert_eq!(events("SELECT /* a /* b; */ c; */ 1;"), vec![stmt("SELECT /* a /* b; */ c; */ 1", 1)]);
    // `--` glued to an operator still starts a comment.
    assert_eq!(events("SELECT 1+--c;\n2;"), vec![stmt("SELECT 1+--c;\n2", 1)]);
    // `*/` inside a comment ends one level only; `/*/` opens a level.
    assert_eq!(events("SELECT /*/ x; */ 1;"), vec![stmt("SELECT /*/ x; */ 1", 1)]);
    // A quote inside a comment does not open a string.
    assert_eq!(
        events("SELECT 1 /* it's */;\nSELECT 2 -- it's\n;"),
        vec![stmt("SELECT 1 /* it's */", 1), stmt("SELECT 2 -- it's", 2)]
    );
}

#[test]
fn single_quoted_strings() {
    assert_eq!(
        events("SELECT 'a;b''c;', 'x';\nSELECT '';"),
        vec![stmt("SELECT 'a;b''c;', 'x'", 1), stmt("SELECT ''", 2)]
    );
    // Comment starts inside strings are text.
    assert_eq!(events("SELECT '-- x;', '/* y;';"), vec![stmt("SELECT '-- x;', '/* y;'", 1)]);
    // Multi-line strings.
    assert_eq!(
        events("INSERT INTO t VALUES ('line1;\nline2;\n');\nSELECT 1;"),
        vec![stmt("INSERT INTO t VALUES ('line1;\nline2;\n')", 1), stmt("SELECT 1", 4)]
    );
    // With standard_conforming_strings on (the default) a backslash is text.
    assert_eq!(events("SELECT 'a\\';SELECT 2;"), vec![stmt("SELECT 'a\\'", 1), stmt("SELECT 2", 1)]);
}

#[test]
fn escape_strings() {
    assert_eq!(events("SELECT E'a\\';b';"), vec![stmt("SELECT E'a\\';b'", 1)]);
    assert_eq!(events("SELECT e'\\\\';"), vec![stmt("SELECT e'\\\\'", 1)]);
    assert_eq!(events("SELECT E'it''s\\';';"), vec![stmt("SELECT E'it''s\\';'", 1)]);
    // An E that ends an identifier is not a prefix: 'x\' is a standard string.
    assert_eq!(events("SELECT type'x\\';SELECT 2;"), vec![stmt("SELECT type'x\\'", 1), stmt("SELECT 2", 1)]);
    // N'' is an ordinary string; U&'' has no backslash escapes.
    assert_eq!(
        events("SELECT N'a\\';SELECT U&'b\\';SELECT 3;"),
        vec![stmt("SELECT N'a\\'", 1), stmt("SELECT U&'b\\'", 1), stmt("SELECT 3", 1)]
    );
    // B'' and X'' end at the next quote.
    assert_eq!(events("SELECT B'01', X'1F';SELECT 2;"), vec![stmt("SELECT B'01', X'1F'", 1), stmt("SELECT 2", 1)]);
}

#[test]
fn standard_conforming_strings_off_makes_backslash_escape() {
    let script = "SET standard_conforming_strings = off;\n\
                  SELECT 'a\\';b';\n\
                  SET standard_conforming_strings = on;\n\
                  SELECT 'c\\';\n";
    assert_eq!(
        events(script),
        vec![
            stmt("SET standard_conforming_strings = off", 1),
            stmt("SELECT 'a\\';b'", 2),
            stmt("SET standard_conforming_strings = on", 3),
            stmt("SELECT 'c\\'", 4),
        ]
    );
    // Other spellings.
    for off in [
        "set standard_conforming_strings to 'off'",
        "SET SESSION standard_conforming_strings=off",
        "SET standard_conforming_strings = false",
    ] {
        let script = format!("{off};\nSELECT 'a\\';b';\n");
        assert_eq!(events(&script), vec![stmt(off, 1), stmt("SELECT 'a\\';b'", 2)], "{off}");
    }
    for on in ["RESET standard_conforming_strings", "RESET ALL", "SET standard_conforming_strings TO DEFAULT"] {
        let script = format!("SET standard_conforming_strings = off;\n{on};\nSELECT 'a\\';\n");
        assert_eq!(events(&script)[2], stmt("SELECT 'a\\'", 3), "{on}");
    }
    // A new connection starts with the server default (on).
    assert_eq!(
        events("SET standard_conforming_strings = off;\n\\connect db\nSELECT 'a\\';\n")[2],
        stmt("SELECT 'a\\'", 3)
    );
    // Other settings leave it alone.
    assert_eq!(
        events("SET standard_conforming_strings = off;\nSET client_encoding = 'off';\nSELECT 'a\\';';\n")[2],
        stmt("SELECT 'a\\';'", 3)
    );
}

#[test]
fn double_quoted_identifiers() {
    assert_eq!(
        events("CREATE TABLE \"a;b\"\"c\" (\"x;\" int);\nSELECT 1;"),
        vec![stmt("CREATE TABLE \"a;b\"\"c\" (\"x;\" int)", 1), stmt("SELECT 1", 2)]
    );
    assert_eq!(events("SELECT U&\"d;\";"), vec![stmt("SELECT U&\"d;\"", 1)]);
    // A quote inside an identifier does not open a string.
    assert_eq!(events("SELECT \"it's\";SELECT 2;"), vec![stmt("SELECT \"it's\"", 1), stmt("SELECT 2", 1)]);
}

#[test]
fn dollar_quotes() {
    let f = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql";
    assert_eq!(events(&format!("{f};\nSELECT 2;")), vec![stmt(f, 1), stmt("SELECT 2", 2)]);
    let tagged = "SELECT $body$ a $$ ; $b$ ' \" -- /* $body$";
    assert_eq!(events(&format!("{tagged};")), vec![stmt(tagged, 1)]);
    // Tags: $_$, unicode, and a near-miss tag that ends inside the real one.
    for s in ["SELECT $_$;$_$", "SELECT $été$;$été$", "SELECT $a$ $ab$; $a$", "SELECT $x$ $$;$x$"] {
        assert_eq!(events(&format!("{s};SELECT 2;")), vec![stmt(s, 1), stmt("SELECT 2", 1)], "{s}");
    }
    // Multi-line body with `;` and `\.` lines.
    let body = "CREATE FUNCTION f() RETURNS text AS $_$\nBEGIN\n  RETURN '\\.';\nEND;\n$_$ LANGUAGE plpgsql";
    assert_eq!(events(&format!("{body};\nSELECT 2;\n")), vec![stmt(body, 1), stmt("SELECT 2", 6)]);
}

#[test]
fn dollar_signs_that_are_not_quotes() {
    // Parameters.
    assert_eq!(
        events("PREPARE p AS SELECT $1, $2;\nSELECT 2;"),
        vec![stmt("PREPARE p AS SELECT $1, $2", 1), stmt("SELECT 2", 2)]
    );
    // `$` inside an identifier.
    assert_eq!(
        events("SELECT a$b$c, d$$ FROM t;\nSELECT 2;"),
        vec![stmt("SELECT a$b$c, d$$ FROM t", 1), stmt("SELECT 2", 2)]
    );
    // A tag cannot start with a digit; a lone `$`.
    assert_eq!(events("SELECT $1$;SELECT $ ;"), vec![stmt("SELECT $1$", 1), stmt("SELECT $", 1)]);
}

#[test]
fn parentheses_protect_semicolons() {
    let rule = "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))";
    assert_eq!(events(&format!("{rule};\nSELECT 1;")), vec![stmt(rule, 1), stmt("SELECT 1", 2)]);
    // A stray `)` does not make the depth negative.
    assert_eq!(events("SELECT 1);SELECT 2;"), vec![stmt("SELECT 1)", 1), stmt("SELECT 2", 1)]);
}

#[test]
fn begin_atomic_bodies() {
    let f = "CREATE FUNCTION public.f(a integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT\n         CASE\n             WHEN (a IS NULL) THEN 0\n             ELSE a\n         END AS \"case\";\n SELECT 2;\nEND";
    assert_eq!(events(&format!("{f};\nSELECT 3;\n")), vec![stmt(f, 1), stmt("SELECT 3", 11)]);
    let p = "create or replace procedure p() language sql begin atomic insert into t values (1); end";
    assert_eq!(events(&format!("{p};select 2;")), vec![stmt(p, 1), stmt("select 2", 1)]);
    // Transactions are not bodies.
    assert_eq!(events("BEGIN;\nSELECT 1;\nEND;\n"), vec![stmt("BEGIN", 1), stmt("SELECT 1", 2), stmt("END", 3)]);
    // BEGIN inside parentheses or in other statements is not counted.
    assert_eq!(
        events("CREATE TABLE begin (a int);SELECT 1;"),
        vec![stmt("CREATE TABLE begin (a int)", 1), stmt("SELECT 1", 1)]
    );
}

#[test]
fn escaped_semicolon_and_colon() {
    // psql's `\;` and `\:` put the bare character into the statement.
    assert_eq!(
        events("SELECT 1\\; SELECT 2;\nSELECT '\\;', 3\\:\\:text;"),
        vec![stmt("SELECT 1; SELECT 2", 1), stmt("SELECT '\\;', 3::text", 2)]
    );
    assert_eq!(events("\\; SELECT 1;\nSELECT\n 2 \\;\n;"), vec![stmt("; SELECT 1", 1), stmt("SELECT\n 2 ;", 2)]);
}

#[test]
fn object_headers_and_trailers() {
    let script = "--\n\
        -- Name: film; Type: TABLE; Schema: public; Owner: postgres\n\
        --\n\
        \n\
        CREATE TABLE public.film (id int);\n\
        -- Data for Name: film; Type: TABLE DATA; Schema: public; Owner: postgres\n\
        -- Name: odd;db; Type: DATABASE; Schema: -; Owner: postgres\n\
        -- Name: x; Type: y; Type: TABLE; Schema: s\n\
        -- Name: t; Type: TABLE; Schema: public; Owner: o; Tablespace: fast\r\n\
        -- Name: t2; Type: TABLE; Schema: we; ird; Tablespace: fast\n\
        -- Name: nothing here\n\
        -- PostgreSQL database dump complete\n\
        -- PostgreSQL database cluster dump complete\n";
    assert_eq!(
        events(script),
        vec![
            object("film", "TABLE", Some("public")),
            stmt("CREATE TABLE public.film (id int)", 5),
            object("film", "TABLE DATA", Some("public")),
            object("odd;db", "DATABASE", None),
            object("x; Type: y", "TABLE", Some("s")),
            object("t", "TABLE", Some("public")),
            object("t2", "TABLE", Some("we; ird")),
            Event::DumpComplete { cluster: false },
            Event::DumpComplete { cluster: true },
        ]
    );
    // Inside a statement a comment is part of it, not a header.
    assert_eq!(
        events("SELECT 1\n-- Name: a; Type: TABLE; Schema: s; Owner: o\n;"),
        vec![stmt("SELECT 1\n-- Name: a; Type: TABLE; Schema: s; Owner: o", 1)]
    );
    // After a statement on the same line, it is between statements.
    assert_eq!(
        events("SELECT 1; -- PostgreSQL database dump complete\n"),
        vec![stmt("SELECT 1", 1), Event::DumpComplete { cluster: false }]
    );
}

#[test]
fn end_inside_a_statement_is_truncation() {
    let cases: &[(&str, u64)] = &[
        ("SELECT 1", 1),
        ("SELECT 1;\n\nSELECT 2\n", 3),
        ("SELECT 1;\nSELECT 'abc;\n", 2),
        ("SELECT 1;\n\n\nCREATE FUNCTION f() AS $$ x;\n y;\n", 4),
        ("SELECT \"abc\n", 1),
        ("SELECT 1 /* comment\n*/ ;\nSELECT /* open\n", 3),
        ("SELECT 1;\n\n/* unterminated\ncomment\n", 3),
        ("CREATE TABLE t (a int;\n", 1),
        ("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;\n", 1),
        ("SELECT E'abc\\", 1),
    ];
    for &(script, line) in cases {
        let (evs, err) = events_then_error(script.as_bytes());
        assert!(evs.iter().all(|e| matches!(e, Event::Statement { .. })), "{script:?}");
        assert!(matches!(err, SplitError::TruncatedStatement { .. }), "{script:?}: {err}");
        assert_eq!(err.line(), Some(line), "{script:?}");
        assert_eq!(err.reason(), "TruncatedDump");
        assert_eq!(
            err.to_string(),
            format!("the dump is truncated: it ends inside a statement that starts at line {line}")
        );
    }
    // Trailing whitespace and complete comments are fine.
    assert_eq!(events("SELECT 1;\n-- trailer\n  \n/* done */\n"), vec![stmt("SELECT 1", 1)]);
}

#[test]
fn non_utf8_statement_is_an_error() {
    let (evs, err) = events_then_error(b"SELECT 1;\nSELECT '\xe9t\xe9';\n");
    assert_eq!(evs, vec![stmt("SELECT 1", 1)]);
    assert!(matches!(err, SplitError::UnsupportedEncoding { line: 2 }), "{err}");
    assert_eq!(err.reason(), "UnsupportedEncoding");
    assert_eq!(err.line(), Some(2));
    let msg = err.to_string();
    assert!(msg.contains("line 2") && msg.contains("UTF-8") && msg.contains("--engine pg-tools"), "{msg}");
    // Latin-1 bytes in a comment between statements are harmless.
    assert_eq!(events_bytes(b"-- caf\xe9\nSELECT 1;\n"), vec![stmt("SELECT 1", 2)]);
}

fn events_bytes(input: &[u8]) -> Vec<Event> {
    split(input).unwrap()
}

#[test]
fn statements_keep_unicode() {
    assert_eq!(
        events("CREATE DOMAIN public.\"bıgınt\" AS bigint;\nCOMMENT ON TABLE t IS 'Ünïcode; ✓';"),
        vec![stmt("CREATE DOMAIN public.\"bıgınt\" AS bigint", 1), stmt("COMMENT ON TABLE t IS 'Ünïcode; ✓'", 2)]
    );
}
