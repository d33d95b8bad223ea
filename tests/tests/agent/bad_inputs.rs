//! Every bad input gets a clear failure: the documented exit code, an
//! `error: ` line on stderr that names the problem, and a target left as it
//! was (single-database plain restores run in one transaction).
//!
//! One cluster is shared by the tests of this file: it holds the source
//! database (`small`) and one fresh target database per test.

use std::path::PathBuf;
use std::sync::OnceLock;

use harness::agent::{AgentOutput, restore, restore_with_password};
use harness::compare::{assert_same_database, schema_of};
use harness::dumps::{Compressor, Dumps, compress_bytes};
use harness::fixtures::load_small;
use harness::net::free_port;
use harness::pg::{PgCluster, random_token};
use rand::RngCore as _;

const SOURCE_DB: &str = "small";

struct Fixture {
    pg: PgCluster,
    dumps: Dumps,
    plain: Vec<u8>,
    custom: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pg = PgCluster::start();
        load_small(&pg, SOURCE_DB);
        let plain = pg.pg_dump(SOURCE_DB, &["-Fp"]);
        let custom = pg.pg_dump(SOURCE_DB, &["-Fc"]);
        let dumps = Dumps::new_in(&pg.scratch_dir());
        Fixture { pg, dumps, plain, custom }
    })
}

/// A fresh, empty target database named after the test.
fn target(name: &str) -> &'static PgCluster {
    let f = fixture();
    f.pg.create_database(name);
    &f.pg
}

fn source_file(name: &str, bytes: &[u8]) -> PathBuf {
    fixture().dumps.write(name, bytes)
}

fn assert_no_tables(pg: &PgCluster, db: &str, out: &AgentOutput) {
    let tables = pg.user_tables(db);
    assert!(tables.is_empty(), "the failed restore left tables behind in {db:?}: {tables:?}\n{}", out.describe());
}

/// The plain dump's lines, with `insert` placed before line index `at`
/// (0-based); returns the text and the 1-based line number of the insert.
fn with_line_inserted(at: usize, insert: &str) -> (String, u64) {
    let text = String::from_utf8(fixture().plain.clone()).unwrap();
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.insert(at, insert);
    (lines.join("\n"), at as u64 + 1)
}

/// Index of the first line for which `pred` holds.
fn line_index(pred: impl Fn(&str) -> bool) -> usize {
    let text = std::str::from_utf8(&fixture().plain).unwrap();
    text.split('\n').position(pred).expect("the dump has no such line")
}

/// Whether `text` contains `n` as a whole number.
fn mentions_number(text: &str, n: u64) -> bool {
    text.split(|c: char| !c.is_ascii_digit()).any(|t| t == n.to_string())
}

#[test]
fn empty_file() {
    let pg = target("t_empty");
    let out = restore(&source_file("empty.sql", b""), pg, "t_empty", &[]);
    out.assert_failure(3, &[&["empty"]]);
    assert_no_tables(pg, "t_empty", &out);
}

#[test]
fn random_bytes() {
    let pg = target("t_random");
    let mut bytes = vec![0u8; 64 * 1024];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] = 0x01; // no compression magic by chance
    let out = restore(&source_file("random.bin", &bytes), pg, "t_random", &[]);
    out.assert_failure(3, &[&["not a", "unknown", "unrecogni", "format", "dump"]]);
    assert_no_tables(pg, "t_random", &out);
}

fn truncated(tool: Compressor) {
    let db = format!("t_truncated_{}", tool.extension());
    let pg = target(&db);
    let mut data = compress_bytes(tool, &fixture().plain);
    data.truncate(data.len() / 2);
    let out = restore(&source_file(&format!("truncated.sql.{}", tool.extension()), &data), pg, &db, &[]);
    out.assert_failure(3, &[&["truncat", "unexpected end", "end of file", "eof", "incomplete"]]);
    assert_no_tables(pg, &db, &out);
}

/// Flips the stream's own checksum (the trailer): every byte decompresses,
/// and only the integrity check can tell.
fn corrupt_checksum(tool: Compressor) {
    let db = format!("t_corrupt_{}", tool.extension());
    let pg = target(&db);
    let mut data = compress_bytes(tool, &fixture().plain);
    let n = data.len();
    // gzip: CRC32 then ISIZE (8 bytes); zstd and lz4: a 4-byte content checksum.
    let at = if tool == Compressor::Gzip { n - 8 } else { n - 4 };
    for b in &mut data[at..at + 4] {
        *b ^= 0x5a;
    }
    let out =
        restore(&source_file(&format!("corrupt.sql.{}", tool.extension()), &data), pg, &db, &["--progress", "json"]);
    out.assert_failure(3, &[&["corrupt", "crc", "checksum", "invalid", "mismatch"]]);
    assert_no_tables(pg, &db, &out);
    assert!(out.failure().is_some(), "the JSON progress should end with the failure\n{}", out.describe());
}

#[test]
fn truncated_gzip() {
    truncated(Compressor::Gzip);
}

#[test]
fn truncated_zstd() {
    truncated(Compressor::Zstd);
}

#[test]
fn truncated_lz4() {
    truncated(Compressor::Lz4);
}

#[test]
fn corrupt_gzip() {
    corrupt_checksum(Compressor::Gzip);
}

#[test]
fn corrupt_zstd() {
    corrupt_checksum(Compressor::Zstd);
}

#[test]
fn corrupt_lz4() {
    corrupt_checksum(Compressor::Lz4);
}

#[test]
fn truncated_plain_sql() {
    let pg = target("t_truncated_plain");
    // Cut in the middle of a line of the orders' COPY data.
    let plain = &fixture().plain;
    let text = std::str::from_utf8(plain).unwrap();
    let start = text.find("COPY public.orders ").expect("the dump has the orders' COPY");
    let end = start + text[start..].find("\n\\.\n").expect("the COPY block ends");
    let mut cut = (start + end) / 2;
    if plain[cut] == b'\n' {
        cut += 1;
    }
    let out = restore(&source_file("truncated.sql", &plain[..cut]), pg, "t_truncated_plain", &[]);
    out.assert_failure(3, &[&["truncat"]]);
    assert_no_tables(pg, "t_truncated_plain", &out);
}

#[test]
fn truncated_plain_sql_at_a_statement_boundary() {
    // Every statement is complete, but pg_dump's closing comment is missing.
    let pg = target("t_truncated_boundary");
    let plain = &fixture().plain;
    let text = std::str::from_utf8(plain).unwrap();
    let cut = text.find("\n\\.\n").expect("the dump has a COPY block") + 4;
    let out = restore(&source_file("truncated_boundary.sql", &plain[..cut]), pg, "t_truncated_boundary", &[]);
    out.assert_failure(3, &[&["truncat"]]);
    assert_no_tables(pg, "t_truncated_boundary", &out);
}

#[test]
fn truncated_custom_archive() {
    let pg = target("t_truncated_custom");
    let custom = &fixture().custom;
    let out = restore(&source_file("truncated.dump", &custom[..custom.len() / 2]), pg, "t_truncated_custom", &[]);
    out.assert_failure(3, &[&["truncat", "unexpected end", "end of file", "eof", "incomplete"]]);
}

#[test]
fn unknown_meta_command() {
    let pg = target("t_meta");
    let (text, line) = with_line_inserted(line_index(|l| l.starts_with("CREATE TABLE")), "\\! echo hi");
    let out = restore(&source_file("meta.sql", text.as_bytes()), pg, "t_meta", &["--progress", "json"]);
    let msg = out.assert_failure(3, &[&["\\!"]]);
    assert!(mentions_number(&msg, line), "the message should name line {line}: {msg:?}");
    let failure = out.failure().unwrap_or_else(|| panic!("no JSON failure\n{}", out.describe()));
    assert_eq!(failure["line"], line, "{failure}");
    assert_no_tables(pg, "t_meta", &out);
}

#[test]
fn checksum_mismatch_rolls_back() {
    let pg = target("t_sha");
    let wrong = "0".repeat(64);
    let out =
        restore(&source_file("sha.sql", &fixture().plain), pg, "t_sha", &["--sha256", &wrong, "--progress", "json"]);
    out.assert_failure(3, &[&["sha256", "sha-256", "checksum", "digest"]]);
    let failure = out.failure().unwrap_or_else(|| panic!("the restore must not end in success\n{}", out.describe()));
    assert!(failure["reason"].as_str().is_some_and(|r| !r.is_empty()), "{failure}");
    assert_no_tables(pg, "t_sha", &out);
}

/// A loopback port where nothing listens: port 1 (never handed out as an
/// ephemeral port, so no test cluster can take it), checked to refuse.
fn closed_port() -> u16 {
    match std::net::TcpStream::connect(("127.0.0.1", 1)) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => 1,
        _ => free_port().expect("a free port on 127.0.0.1"),
    }
}

#[test]
fn unreachable_target() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());
    let out = restore_with_password(&source_file("unreachable.sql", &fixture().plain), &url, "whatever", &[]);
    out.assert_failure(4, &[&["connect", "refused", "unreachable"]]);
}

#[test]
fn wrong_password() {
    let pg = target("t_password");
    let wrong = format!("Wr0ng-{}", random_token(16));
    let url = pg.url_without_password("t_password");
    let out = restore_with_password(&source_file("password.sql", &fixture().plain), &url, &wrong, &[]);
    out.assert_failure(4, &[&["authentication", "password"]]);
    for secret in [wrong.as_str(), pg.password()] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "a password appears in the agent's output\n{}",
            out.describe()
        );
    }
    assert_no_tables(pg, "t_password", &out);
}

#[test]
fn missing_target_database() {
    let pg = &fixture().pg;
    let out = restore(&source_file("missing.sql", &fixture().plain), pg, "no_such_database_kgr", &[]);
    out.assert_failure(4, &[&["no_such_database_kgr"]]);
}

#[test]
fn non_empty_target_is_left_alone() {
    let pg = target("t_non_empty");
    pg.psql(
        "t_non_empty",
        "CREATE TABLE public.keep_me (id integer, v text); INSERT INTO public.keep_me VALUES (1, 'precious')",
    );
    let before = schema_of(pg, "t_non_empty");
    let out = restore(&source_file("non_empty.sql", &fixture().plain), pg, "t_non_empty", &[]);
    out.assert_failure(5, &[&["not empty", "non-empty", "--allow-non-empty"]]);
    assert_eq!(pg.user_tables("t_non_empty"), vec!["public.keep_me".to_string()]);
    assert_eq!(schema_of(pg, "t_non_empty"), before, "nothing may be written into a non-empty target");
    assert_eq!(
        pg.query("t_non_empty", "SELECT id, v FROM public.keep_me"),
        vec![vec!["1".to_string(), "precious".to_string()]]
    );
}

#[test]
fn sql_error_in_the_middle_rolls_back() {
    let pg = target("t_sql_error");
    // After the first COPY block: schema created, some data loaded.
    let at = line_index(|l| l == "\\.") + 1;
    let (text, line) = with_line_inserted(at, "INSERT INTO public.does_not_exist VALUES (1);");
    let out = restore(&source_file("sql_error.sql", text.as_bytes()), pg, "t_sql_error", &["--progress", "json"]);
    out.assert_failure(4, &[&["does_not_exist"]]);
    let failure = out.failure().unwrap_or_else(|| panic!("no JSON failure\n{}", out.describe()));
    assert_eq!(failure["sqlstate"], "42P01", "{failure}");
    assert_eq!(failure["line"], line, "{failure}");
    let statement = failure["statement"].as_str().unwrap_or_default();
    assert!(statement.starts_with("INSERT INTO public.does_not_exist"), "{failure}");
    assert_no_tables(pg, "t_sql_error", &out);
}

#[test]
fn on_error_continue_counts_errors_and_applies_the_rest() {
    let pg = target("t_continue");
    let text = String::from_utf8(fixture().plain.clone()).unwrap();
    let mut lines: Vec<&str> = text.split('\n').collect();
    let first = lines.iter().position(|l| l.starts_with("CREATE TABLE")).unwrap();
    lines.insert(first, "SELECT 1/0;");
    let second = lines.iter().position(|&l| l == "\\.").unwrap() + 1;
    lines.insert(second, "INSERT INTO public.does_not_exist VALUES (1);");
    let path = source_file("continue.sql", lines.join("\n").as_bytes());
    let out = restore(&path, pg, "t_continue", &["--on-error", "continue"]);
    let msg = out.assert_failure(4, &[&["error"]]);
    assert!(mentions_number(&msg, 2), "the message should count 2 errors: {msg:?}");
    // Everything else was applied.
    assert_same_database(pg, SOURCE_DB, pg, "t_continue");
}
