//! Databases with known content to dump and restore.
//!
//! - [`load_hard`]: `tests/fixtures/hard.sql`, content that trips naive
//!   restorers (see the file's comments); needs the roles of
//!   [`create_fixture_roles`], which it creates when missing.
//! - [`load_pagila`]: the Pagila sample from `shared/testdata/pagila`.
//! - [`load_odd`]: the database whose name needs quoting, [`ODD_DB`].
//! - [`load_small`]: a small database for the bad-input tests.
//! - [`load_cluster_fixture`]: all of the above in one cluster, with
//!   database-level owners, comments and settings, as the source of a
//!   pg_dumpall (Kubegres backup) restore.

use std::path::{Path, PathBuf};

use crate::pg::{PgCluster, quote_ident};

/// The database of the hard fixture in [`load_cluster_fixture`].
pub const HARD_DB: &str = "hard";
/// The database of the Pagila fixture in [`load_cluster_fixture`].
pub const PAGILA_DB: &str = "pagila";
/// A database name that needs quoting everywhere: a double quote, a
/// semicolon, spaces and a non-ASCII letter.
pub const ODD_DB: &str = "Odd \"db\"; name ü";
/// The roles that [`create_fixture_roles`] creates.
pub const FIXTURE_ROLES: [&str; 4] = ["kgr_owner", "kgr_app", "kgr_reader", "Kgr Rôle \"quoted\"; x"];

/// `tests/fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The Pagila sample's directory (`shared/testdata/pagila` beside the checkout,
/// or `$KGR_TESTDATA/pagila`).
pub fn pagila_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KGR_TESTDATA") {
        return PathBuf::from(d).join("pagila");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for candidate in [root.join("../shared/testdata/pagila"), root.join("shared/testdata/pagila")] {
        if candidate.join("pagila-schema.sql").exists() {
            return candidate;
        }
    }
    PathBuf::from("/work/shared/testdata/pagila")
}

/// Creates the fixture roles (owners, a login role with a password,
/// memberships, role settings, a comment) unless they exist.
pub fn create_fixture_roles(c: &PgCluster) {
    let exists = c.query_one("postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'kgr_owner'");
    if exists == "0" {
        c.psql_file("postgres", &fixtures_dir().join("roles.sql"));
    }
}

fn create_database_if_missing(c: &PgCluster, db: &str) {
    let n = c.query_one(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = {}", crate::pg::quote_literal(db)),
    );
    if n == "0" {
        c.create_database(db);
    }
}

/// Creates `db` (if missing) and loads the hard fixture into it, creating
/// the fixture roles first when the cluster lacks them.
pub fn load_hard(c: &PgCluster, db: &str) {
    create_fixture_roles(c);
    create_database_if_missing(c, db);
    c.psql_file(db, &fixtures_dir().join("hard.sql"));
}

/// Creates `db` (if missing) and loads Pagila's schema, then its data.
pub fn load_pagila(c: &PgCluster, db: &str) {
    let dir = pagila_dir();
    assert!(
        dir.join("pagila-schema.sql").exists(),
        "Pagila not found in {} (set KGR_TESTDATA to the folder holding pagila/)",
        dir.display()
    );
    create_database_if_missing(c, db);
    c.psql_file(db, &dir.join("pagila-schema.sql"));
    c.psql_file(db, &dir.join("pagila-data.sql"));
}

/// Creates [`ODD_DB`] (if missing) and loads a small table into it.
pub fn load_odd(c: &PgCluster) {
    create_database_if_missing(c, ODD_DB);
    c.psql_file(ODD_DB, &fixtures_dir().join("odd.sql"));
}

/// Creates `db` (if missing) and loads the small fixture: `customers` (200
/// rows), `orders` (5000 rows), `settings`, a sequence.
pub fn load_small(c: &PgCluster, db: &str) {
    create_database_if_missing(c, db);
    c.psql_file(db, &fixtures_dir().join("small.sql"));
}

/// Loads a whole cluster as the source of a pg_dumpall restore: the roles,
/// [`HARD_DB`], [`PAGILA_DB`] and [`ODD_DB`], with a database owner, a
/// database comment, database settings and a role-in-database setting.
pub fn load_cluster_fixture(c: &PgCluster) {
    create_fixture_roles(c);
    load_hard(c, HARD_DB);
    load_pagila(c, PAGILA_DB);
    load_odd(c);
    let hard = quote_ident(HARD_DB);
    let odd = quote_ident(ODD_DB);
    c.psql(
        "postgres",
        &format!(
            "ALTER DATABASE {hard} OWNER TO kgr_owner; \
             COMMENT ON DATABASE {hard} IS 'the hard one; with ''quotes'''; \
             ALTER DATABASE {hard} SET work_mem = '8MB'; \
             ALTER ROLE kgr_app IN DATABASE {hard} SET lock_timeout = '3s'; \
             ALTER DATABASE {odd} SET search_path = public; \
             GRANT CONNECT, TEMPORARY ON DATABASE {odd} TO kgr_reader; \
             REVOKE CONNECT ON DATABASE {odd} FROM PUBLIC"
        ),
    );
}
