//! Compares two databases object by object and row by row.
//!
//! [`assert_same_database`] checks, in order: the schema (`pg_dump
//! --schema-only`, comments, owners and grants included), the rows of every
//! table (partitions included, partitioned parents excluded) as the exact
//! bytes of `COPY ... TO STDOUT` in a deterministic order, sequence states,
//! large objects (oid, owner, ACL, comment, md5 of the contents) and
//! materialized view contents. [`assert_same_roles`] and
//! [`assert_same_cluster`] do the same for what a pg_dumpall restore brings
//! back.

use crate::pg::{PgCluster, quote_literal};

/// Lines of pg_dump output that legitimately differ between two dumps of
/// the same content: the random `\restrict` key and the version banner.
fn normalise_dump(dump: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(dump)
        .lines()
        .filter(|l| {
            !(l.starts_with("\\restrict ")
                || l.starts_with("\\unrestrict ")
                || l.starts_with("-- Dumped from database version")
                || l.starts_with("-- Dumped by pg_dump version"))
        })
        .map(str::to_string)
        .collect()
}

/// A readable excerpt around the first difference between two line lists:
/// context, then the differing lines of each side marked `-` and `+`.
pub fn first_difference(a: &[String], b: &[String], a_name: &str, b_name: &str) -> Option<String> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if prefix == a.len() && prefix == b.len() {
        return None;
    }
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a.iter().rev().zip(b.iter().rev()).take(max_suffix).take_while(|(x, y)| x == y).count();
    let mut out = format!("--- {a_name}\n+++ {b_name}\n@@ line {} @@\n", prefix + 1);
    for l in &a[prefix.saturating_sub(4)..prefix] {
        out.push_str(&format!("  {}\n", shorten(l)));
    }
    const MAX: usize = 25;
    let a_diff = &a[prefix..a.len() - suffix];
    let b_diff = &b[prefix..b.len() - suffix];
    for l in a_diff.iter().take(MAX) {
        out.push_str(&format!("- {}\n", shorten(l)));
    }
    if a_diff.len() > MAX {
        out.push_str(&format!("- ... {} more lines\n", a_diff.len() - MAX));
    }
    for l in b_diff.iter().take(MAX) {
        out.push_str(&format!("+ {}\n", shorten(l)));
    }
    if b_diff.len() > MAX {
        out.push_str(&format!("+ ... {} more lines\n", b_diff.len() - MAX));
    }
    Some(out)
}

fn shorten(line: &str) -> String {
    let escaped = line.escape_debug().to_string();
    if escaped.chars().count() > 300 {
        format!("{}...", escaped.chars().take(300).collect::<String>())
    } else {
        escaped
    }
}

fn lines_of(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes).split('\n').map(str::to_string).collect()
}

/// The schema-only dump of a database, normalised for comparison.
pub fn schema_of(c: &PgCluster, db: &str) -> Vec<String> {
    normalise_dump(&c.pg_dump(db, &["--schema-only"]))
}

/// Ordinary tables and partitions (not partitioned parents), as `schema.table`
/// with identifiers quoted where needed.
pub fn data_tables(c: &PgCluster, db: &str) -> Vec<String> {
    relations(c, db, "'r'")
}

fn relations(c: &PgCluster, db: &str, kinds: &str) -> Vec<String> {
    c.query(
        db,
        &format!(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ({kinds}) AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY 1"
        ),
    )
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect()
}

/// The rows of one relation as `COPY` text, in a total, deterministic order:
/// by the text of the whole row (this also orders tables whose column types
/// have no ordering, such as json or point, and tables without columns). Two
/// rows that compare equal there have identical COPY lines.
pub fn rows_of(c: &PgCluster, db: &str, relation: &str) -> Vec<u8> {
    c.copy_out(db, &format!("SELECT r.* FROM ONLY {relation} AS r ORDER BY (r.*)::text COLLATE \"C\""))
}

fn rows_of_matview(c: &PgCluster, db: &str, relation: &str) -> Vec<u8> {
    c.copy_out(db, &format!("SELECT r.* FROM {relation} AS r ORDER BY (r.*)::text COLLATE \"C\""))
}

fn sequences(c: &PgCluster, db: &str) -> Vec<Vec<String>> {
    let seqs = relations(c, db, "'S'");
    if seqs.is_empty() {
        return Vec::new();
    }
    let union: Vec<String> = seqs
        .iter()
        .map(|s| format!("SELECT {} AS name, last_value::text, is_called::text FROM {s}", quote_literal(s)))
        .collect();
    c.query(db, &format!("{} ORDER BY 1", union.join(" UNION ALL ")))
}

fn large_objects(c: &PgCluster, db: &str) -> Vec<Vec<String>> {
    c.query(
        db,
        "SELECT l.oid::text, pg_get_userbyid(l.lomowner), coalesce(array_to_string(ARRAY(SELECT x::text FROM unnest(l.lomacl) x ORDER BY 1), ','), '-'), md5(lo_get(l.oid)), \
         length(lo_get(l.oid))::text, coalesce(obj_description(l.oid, 'pg_largeobject'), '-') \
         FROM pg_largeobject_metadata l ORDER BY l.oid",
    )
}

fn matviews(c: &PgCluster, db: &str) -> Vec<Vec<String>> {
    c.query(db, "SELECT format('%I.%I', schemaname, matviewname), ispopulated::text FROM pg_matviews ORDER BY 1")
}

fn describe(c: &PgCluster, db: &str) -> String {
    format!("database {db:?} on port {}", c.port())
}

/// Asserts that `a_db` on `a` and `b_db` on `b` hold the same objects and
/// the same rows. Panics with the first difference found.
pub fn assert_same_database(a: &PgCluster, a_db: &str, b: &PgCluster, b_db: &str) {
    if let Err(diff) = compare_databases(a, a_db, b, b_db) {
        panic!("databases differ: {} vs {}\n{diff}", describe(a, a_db), describe(b, b_db));
    }
}

/// Compares two databases; `Err` holds a description of the first difference.
pub fn compare_databases(a: &PgCluster, a_db: &str, b: &PgCluster, b_db: &str) -> Result<(), String> {
    let (an, bn) = (describe(a, a_db), describe(b, b_db));

    // (a) schema: every object definition, owner, grant, comment, policy.
    if let Some(diff) = first_difference(&schema_of(a, a_db), &schema_of(b, b_db), &an, &bn) {
        return Err(format!("schema (pg_dump --schema-only) differs:\n{diff}"));
    }

    // (b) rows of every table and partition.
    let tables = data_tables(a, a_db);
    let b_tables = data_tables(b, b_db);
    if let Some(diff) = first_difference(&tables, &b_tables, &an, &bn) {
        return Err(format!("the lists of tables differ:\n{diff}"));
    }
    for t in &tables {
        let (ra, rb) = (rows_of(a, a_db, t), rows_of(b, b_db, t));
        if ra != rb {
            let diff = first_difference(&lines_of(&ra), &lines_of(&rb), &an, &bn).unwrap_or_default();
            return Err(format!(
                "rows of table {t} differ ({} vs {} bytes, {} vs {} rows):\n{diff}",
                ra.len(),
                rb.len(),
                ra.iter().filter(|&&c| c == b'\n').count(),
                rb.iter().filter(|&&c| c == b'\n').count()
            ));
        }
    }

    // (c) sequences.
    let (sa, sb) = (sequences(a, a_db), sequences(b, b_db));
    if sa != sb {
        return Err(format!("sequences differ (name, last_value, is_called):\n{sa:?}\nvs\n{sb:?}"));
    }

    // (d) large objects.
    let (la, lb) = (large_objects(a, a_db), large_objects(b, b_db));
    if la != lb {
        return Err(format!("large objects differ (oid, owner, acl, md5, length, comment):\n{la:?}\nvs\n{lb:?}"));
    }

    // (e) materialized views.
    let (ma, mb) = (matviews(a, a_db), matviews(b, b_db));
    if ma != mb {
        return Err(format!("materialized views differ (name, populated):\n{ma:?}\nvs\n{mb:?}"));
    }
    for m in ma.iter().filter(|m| m[1] == "true") {
        let (ra, rb) = (rows_of_matview(a, a_db, &m[0]), rows_of_matview(b, b_db, &m[0]));
        if ra != rb {
            let diff = first_difference(&lines_of(&ra), &lines_of(&rb), &an, &bn).unwrap_or_default();
            return Err(format!("contents of materialized view {} differ:\n{diff}", m[0]));
        }
    }
    Ok(())
}

/// The non-template databases of a cluster, sorted.
pub fn list_databases(c: &PgCluster) -> Vec<String> {
    c.query("postgres", "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname COLLATE \"C\"")
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect()
}

/// Roles (not the predefined `pg_*` ones) with their attributes, password
/// verifier (except the bootstrap superuser's), settings and comment.
pub fn roles_of(c: &PgCluster) -> Vec<Vec<String>> {
    c.query(
        "postgres",
        "SELECT a.rolname, a.rolsuper::text, a.rolinherit::text, a.rolcreaterole::text, a.rolcreatedb::text, \
         a.rolcanlogin::text, a.rolreplication::text, a.rolbypassrls::text, a.rolconnlimit::text, \
         coalesce(a.rolvaliduntil::text, '-'), \
         CASE WHEN a.oid = 10 THEN '<bootstrap superuser>' ELSE coalesce(a.rolpassword, '<no password>') END, \
         coalesce(array_to_string(ARRAY(SELECT x FROM unnest(s.setconfig) x ORDER BY x), ', '), '-'), \
         coalesce(shobj_description(a.oid, 'pg_authid'), '-') \
         FROM pg_authid a LEFT JOIN pg_db_role_setting s ON s.setrole = a.oid AND s.setdatabase = 0 \
         WHERE a.rolname NOT LIKE 'pg\\_%' ORDER BY a.rolname COLLATE \"C\"",
    )
}

/// Role memberships (role, member, grantor, admin option), predefined
/// members excluded.
pub fn memberships_of(c: &PgCluster) -> Vec<Vec<String>> {
    c.query(
        "postgres",
        "SELECT r.rolname, m.rolname, coalesce(g.rolname, '-'), am.admin_option::text \
         FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member \
         LEFT JOIN pg_roles g ON g.oid = am.grantor WHERE m.rolname NOT LIKE 'pg\\_%' ORDER BY 1, 2, 3",
    )
}

/// Asserts that two clusters have the same roles, attributes and memberships.
pub fn assert_same_roles(a: &PgCluster, b: &PgCluster) {
    assert_same_roles_keeping(a, b, &[]);
}

/// [`assert_same_roles`] without comparing the password verifiers of `kept`.
pub fn assert_same_roles_keeping(a: &PgCluster, b: &PgCluster, kept: &[&str]) {
    let mask = |mut rows: Vec<Vec<String>>| {
        for row in rows.iter_mut().filter(|row| kept.contains(&row[0].as_str())) {
            row[10] = "<kept: the target's own>".to_string();
        }
        rows
    };
    let (ra, rb) = (mask(roles_of(a)), mask(roles_of(b)));
    let render = |rows: &[Vec<String>]| rows.iter().map(|r| r.join(" | ")).collect::<Vec<_>>();
    if let Some(diff) = first_difference(&render(&ra), &render(&rb), "source roles", "restored roles") {
        panic!(
            "roles differ (name | super | inherit | createrole | createdb | login | replication | bypassrls | connlimit | valid until | password | settings | comment):\n{diff}"
        );
    }
    let (ma, mb) = (memberships_of(a), memberships_of(b));
    if let Some(diff) = first_difference(&render(&ma), &render(&mb), "source memberships", "restored memberships") {
        panic!("role memberships differ (role | member | grantor | admin):\n{diff}");
    }
}

/// Per-database properties that pg_dumpall restores: owner, encoding,
/// locale, connection limit, ACL (items sorted: their order means nothing),
/// comment, and the database (and
/// role-in-database) settings.
pub fn database_properties(c: &PgCluster, db: &str) -> Vec<Vec<String>> {
    c.query(
        "postgres",
        &format!(
            "SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, \
             d.datconnlimit::text, coalesce(array_to_string(ARRAY(SELECT x::text FROM unnest(d.datacl) x ORDER BY 1), ','), '-'), coalesce(shobj_description(d.oid, 'pg_database'), '-'), \
             coalesce((SELECT string_agg(coalesce(r.rolname, '*') || ': ' || array_to_string(s.setconfig, ', '), '; ' \
                       ORDER BY coalesce(r.rolname, '*')) \
                       FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole \
                       WHERE s.setdatabase = d.oid), '-') \
             FROM pg_database d WHERE d.datname = {}",
            quote_literal(db)
        ),
    )
}

/// Asserts that a restored cluster matches its source: roles, the list of
/// databases, each database's properties and contents (template1 included).
pub fn assert_same_cluster(a: &PgCluster, b: &PgCluster) {
    assert_same_cluster_keeping(a, b, &[]);
}

/// [`assert_same_cluster`] for a restore that kept the target's own roles
/// `kept` (`--keep-role`): their password verifiers are the target's, not
/// the source's, and are not compared; all else about them is.
pub fn assert_same_cluster_keeping(a: &PgCluster, b: &PgCluster, kept: &[&str]) {
    assert_same_roles_keeping(a, b, kept);
    let (da, db) = (list_databases(a), list_databases(b));
    assert_eq!(da, db, "the clusters have different databases");
    for d in da.iter().map(String::as_str).chain(["template1"]) {
        let (pa, pb) = (database_properties(a, d), database_properties(b, d));
        assert_eq!(
            pa, pb,
            "properties of database {d:?} differ (owner, encoding, collate, ctype, connlimit, acl, comment, settings)"
        );
        assert_same_database(a, d, b, d);
    }
}
