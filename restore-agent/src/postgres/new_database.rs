//! `--create-database`: the restore writes into a database it creates itself,
//! marked with a comment (`kubegres-restore:<marker>`) so that a later attempt
//! with the same marker knows the database is its own and may drop and
//! recreate it. A database without that exact comment is never dropped.

use tokio_postgres::Client;

use super::{SqlFailure, TargetConfig, TargetError};

/// The prefix of the comment that marks a database as created by a restore.
const MARKER_PREFIX: &str = "kubegres-restore:";
/// The marker when none is given (a restore run by hand).
pub const DEFAULT_MARKER: &str = "standalone";
/// Longest marker (PostgreSQL's identifier length, which a Kubernetes UID fits).
const MARKER_MAX_CHARS: usize = 63;
/// Longest database name PostgreSQL keeps without truncating it (NAMEDATALEN - 1).
const DBNAME_MAX_BYTES: usize = 63;
/// The first server version with `DROP DATABASE ... WITH (FORCE)`.
const FORCE_DROP_VERSION: i32 = 130_000;

/// Checks a marker: 1 to 63 characters out of `A-Z a-z 0-9 . _ -`.
pub fn validate_marker(marker: &str) -> Result<(), String> {
    if marker.is_empty() {
        return Err("the marker is empty".into());
    }
    if marker.chars().count() > MARKER_MAX_CHARS {
        return Err(format!("the marker is longer than {MARKER_MAX_CHARS} characters"));
    }
    if let Some(c) = marker.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("the marker may hold only letters, digits, '.', '_' and '-', not {c:?}"));
    }
    Ok(())
}

/// The database comment that marks a database as created by the restore with `marker`.
fn marker_comment(marker: &str) -> String {
    format!("{MARKER_PREFIX}{marker}")
}

/// An SQL identifier, always double-quoted (so that case and any character survive).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal, safe whatever `standard_conforming_strings` says.
fn quote_literal(text: &str) -> String {
    let doubled = text.replace('\'', "''");
    if text.contains('\\') { format!("E'{}'", doubled.replace('\\', "\\\\")) } else { format!("'{doubled}'") }
}

/// Checks that `dbname` can be created as it is spelled: PostgreSQL silently
/// truncates longer names, and the agent must find the database again by name.
pub fn validate_dbname(dbname: &str) -> Result<(), String> {
    if dbname.is_empty() {
        return Err("the database name is empty".into());
    }
    if dbname.len() > DBNAME_MAX_BYTES {
        return Err(format!(
            "the database name \"{dbname}\" is longer than {DBNAME_MAX_BYTES} bytes, and PostgreSQL would truncate it"
        ));
    }
    if dbname.contains('\0') {
        return Err("the database name contains a NUL character".into());
    }
    Ok(())
}

/// What [`create_database`] did, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Created {
    /// The database did not exist and was created.
    New,
    /// A database left by an earlier attempt with the same marker was dropped and created again.
    Recreated,
}

/// Creates `target.dbname` on the target's server, connecting as the target's
/// user to `maintenance_db`, and marks it with `marker`'s comment. A database
/// of that name marked with the same marker is dropped first (with `FORCE` on
/// PostgreSQL 13+); any other existing database fails with
/// [`TargetError::DatabaseExists`] and is left untouched.
pub async fn create_database(target: &TargetConfig, maintenance_db: &str, marker: &str) -> Result<(), TargetError> {
    let dbname = target.dbname.as_str();
    let maintenance = target.with_dbname(maintenance_db);
    let client = maintenance.connect().await?;
    let comment = marker_comment(marker);
    let sql_err = |e: &tokio_postgres::Error, sql: &str| {
        TargetError::Sql(SqlFailure::from_pg(e, sql, None, Some(maintenance_db)))
    };

    let lookup =
        "SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database WHERE datname = $1";
    let existing = client.query_opt(lookup, &[&dbname]).await.map_err(|e| sql_err(&e, lookup))?;
    let created = match existing {
        None => Created::New,
        Some(row) => {
            let found: Option<String> = row.get(0);
            if found.as_deref() != Some(comment.as_str()) {
                return Err(TargetError::DatabaseExists { dbname: dbname.to_string() });
            }
            tracing::info!(
                database = dbname,
                marker,
                "the database was created by an earlier attempt of this restore; dropping it to start afresh"
            );
            drop_database(&client, dbname).await.map_err(|(e, sql)| sql_err(&e, &sql))?;
            Created::Recreated
        }
    };

    // template0: what pg_dump's documentation asks for, so that nothing added
    // to template1 on this server stands in the way of the dump's objects.
    let create = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(dbname));
    if let Err(e) = client.batch_execute(&create).await {
        // Someone created it between the lookup and now.
        if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
            return Err(TargetError::DatabaseExists { dbname: dbname.to_string() });
        }
        return Err(sql_err(&e, &create));
    }
    let mark = format!("COMMENT ON DATABASE {} IS {}", quote_ident(dbname), quote_literal(&comment));
    if let Err(e) = client.batch_execute(&mark).await {
        // Unmarked, a later attempt would refuse it: take it back while it is surely ours and empty.
        if let Err((drop_err, _)) = drop_database(&client, dbname).await {
            tracing::warn!(database = dbname, error = %drop_err, "cannot drop the unmarked database just created");
        }
        return Err(sql_err(&e, &mark));
    }
    tracing::info!(
        database = dbname,
        comment = comment.as_str(),
        recreated = created == Created::Recreated,
        "created the target database"
    );
    Ok(())
}

/// `DROP DATABASE`, ending other sessions on it where the server can (13+).
async fn drop_database(client: &Client, dbname: &str) -> Result<(), (tokio_postgres::Error, String)> {
    let version_sql = "SELECT current_setting('server_version_num')::int";
    let version: i32 = client.query_one(version_sql, &[]).await.map_err(|e| (e, version_sql.to_string()))?.get(0);
    let force = if version >= FORCE_DROP_VERSION { " WITH (FORCE)" } else { "" };
    let sql = format!("DROP DATABASE {}{force}", quote_ident(dbname));
    client.batch_execute(&sql).await.map_err(|e| (e, sql))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_case_and_quotes() {
        assert_eq!(quote_ident("Restored \"db\""), "\"Restored \"\"db\"\"\"");
        assert_eq!(quote_ident("app"), "\"app\"");
        assert_eq!(quote_ident("a;b ü"), "\"a;b ü\"");
    }

    #[test]
    fn literals_are_safe() {
        assert_eq!(quote_literal("kubegres-restore:x"), "'kubegres-restore:x'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
    }

    #[test]
    fn markers() {
        for good in ["standalone", "0b6f6c1e-8f1c-4c55-a0a4-2b1f3c4d5e6f", "a", "A.b_c-9", &"x".repeat(63)] {
            assert_eq!(validate_marker(good), Ok(()), "{good}");
        }
        for bad in ["", "has space", "semi;colon", "quote'", "ünï", "a/b", &"x".repeat(64)] {
            assert!(validate_marker(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(marker_comment("uid-1"), "kubegres-restore:uid-1");
        assert_eq!(marker_comment(DEFAULT_MARKER), "kubegres-restore:standalone");
    }

    #[test]
    fn database_names() {
        assert_eq!(validate_dbname("Restored \"db\""), Ok(()));
        assert_eq!(validate_dbname(&"d".repeat(63)), Ok(()));
        assert!(validate_dbname(&"d".repeat(64)).is_err());
        // 32 two-byte letters: 64 bytes.
        assert!(validate_dbname(&"é".repeat(32)).is_err());
        assert!(validate_dbname("").is_err());
        assert!(validate_dbname("a\0b").is_err());
    }
}
