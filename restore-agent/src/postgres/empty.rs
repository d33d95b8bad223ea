//! "Empty" as the agent understands it: a restore never writes over data
//! unless `--allow-non-empty` says so.

use tokio_postgres::Client;

use super::TargetError;

/// Objects a user created in the connected database: relations, routines,
/// types, schemas other than `public`, extensions other than plpgsql, large
/// objects. Returns at most a few names per kind.
const USER_OBJECTS_SQL: &str = r#"
WITH sys AS (
  SELECT oid FROM pg_catalog.pg_namespace
  WHERE nspname IN ('pg_catalog', 'information_schema') OR nspname LIKE 'pg\_toast%' OR nspname LIKE 'pg\_temp%'
)
SELECT kind, count(*)::bigint, (array_agg(name ORDER BY name))[1:3]
FROM (
  SELECT 'relation' AS kind, format('%I.%I', n.nspname, c.relname) AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relnamespace NOT IN (SELECT oid FROM sys)
  UNION ALL
  SELECT 'function', format('%I.%I', n.nspname, p.proname)
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE p.pronamespace NOT IN (SELECT oid FROM sys)
  UNION ALL
  SELECT 'type', format('%I.%I', n.nspname, t.typname)
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
   WHERE t.typnamespace NOT IN (SELECT oid FROM sys) AND t.typrelid = 0 AND t.typelem = 0
  UNION ALL
  SELECT 'schema', format('%I', nspname)
    FROM pg_catalog.pg_namespace
   WHERE oid NOT IN (SELECT oid FROM sys) AND nspname <> 'public'
  UNION ALL
  SELECT 'extension', format('%I', extname) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql'
  UNION ALL
  SELECT 'large object', oid::text FROM pg_catalog.pg_largeobject_metadata
) o
GROUP BY kind ORDER BY kind
"#;

/// Fails with [`TargetError::NotEmpty`] when the connected database holds
/// user objects.
pub async fn check_database_empty(client: &Client, dbname: &str) -> Result<(), TargetError> {
    let rows = client
        .query(USER_OBJECTS_SQL, &[])
        .await
        .map_err(|e| TargetError::Sql(super::SqlFailure::from_pg(&e, "(emptiness check)", None, Some(dbname))))?;
    if rows.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = rows
        .iter()
        .map(|r| {
            let kind: String = r.get(0);
            let n: i64 = r.get(1);
            let names: Vec<String> = r.get(2);
            let more = if n as usize > names.len() { ", ..." } else { "" };
            format!("{n} {kind}(s) ({}{more})", names.join(", "))
        })
        .collect();
    Err(TargetError::NotEmpty { what: format!("database \"{dbname}\" holds {}", parts.join(", ")) })
}

/// Fails with [`TargetError::NotEmpty`] when the cluster has databases other
/// than `postgres`, `template0` and `template1`, or when the connected
/// database (a pg_dumpall restore drops and recreates it) holds user objects.
pub async fn check_cluster_empty(client: &Client, connected_db: &str) -> Result<(), TargetError> {
    let rows = client
        .query(
            "SELECT datname FROM pg_catalog.pg_database \
             WHERE datname NOT IN ('postgres', 'template0', 'template1') ORDER BY datname",
            &[],
        )
        .await
        .map_err(|e| TargetError::Sql(super::SqlFailure::from_pg(&e, "(emptiness check)", None, Some(connected_db))))?;
    if !rows.is_empty() {
        let names: Vec<String> = rows.iter().map(|r| format!("\"{}\"", r.get::<_, String>(0))).collect();
        return Err(TargetError::NotEmpty {
            what: format!("the cluster already has user databases: {}", names.join(", ")),
        });
    }
    check_database_empty(client, connected_db).await
}
