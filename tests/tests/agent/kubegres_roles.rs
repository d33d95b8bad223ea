//! A Kubegres backup restored into a fresh Kubegres primary, both prepared
//! as a real Kubegres primary is at first start: `primary_create_replication_role.sh`
//! from `base-kubegres-config` runs
//! `CREATE ROLE replication WITH REPLICATION PASSWORD '...' LOGIN;
//! GRANT EXECUTE ON FUNCTION pg_promote TO replication;`. The two clusters
//! have different superuser and replication passwords, as two clusters'
//! Secrets do. Real PostgreSQL on both sides, real pg_dumpall -c | gzip.

use harness::agent::restore;
use harness::dumps::Dumps;
use harness::pg::{PgCluster, quote_literal};

const SOURCE_REPLICATION_PASSWORD: &str = "source-replication-pw";
const TARGET_REPLICATION_PASSWORD: &str = "target-replication-pw";

/// What Kubegres's init script does on a new primary.
fn prepare_like_kubegres(pg: &PgCluster, replication_password: &str) {
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE replication WITH REPLICATION PASSWORD {} LOGIN;\n\
             GRANT EXECUTE ON FUNCTION pg_promote TO replication;",
            quote_literal(replication_password)
        ),
    );
}

/// A source cluster with data, its Kubegres backup, and a fresh target.
fn source_backup_and_target() -> (PgCluster, Dumps, std::path::PathBuf, PgCluster) {
    let source = PgCluster::start_with_password("source-superuser-pw");
    prepare_like_kubegres(&source, SOURCE_REPLICATION_PASSWORD);
    source.psql("postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pw';");
    source.create_database("shop");
    source.psql(
        "shop",
        "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);\n\
         INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 5000) g;\n\
         ALTER TABLE orders OWNER TO app;",
    );
    let dumps = Dumps::new_in(&source.scratch_dir());
    let backup = dumps.kubegres_backup(&source, "orders");
    let target = PgCluster::start_with_password("target-superuser-pw");
    prepare_like_kubegres(&target, TARGET_REPLICATION_PASSWORD);
    (source, dumps, backup, target)
}

/// Whether `user` can log in to `target` with `password` over TCP (scram).
fn can_log_in(target: &PgCluster, user: &str, password: &str) -> Result<(), String> {
    let mut cfg = target.config("postgres");
    cfg.user(user).password(password);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        client.simple_query("SELECT 1").await.map(|_| ()).map_err(|e| e.to_string())
    })
}

#[test]
fn a_kubegres_backup_restores_into_a_kubegres_primary_keeping_its_passwords() {
    let (source, _dumps, backup, target) = source_backup_and_target();
    let scram_before = target.query_one(
        "postgres",
        "SELECT string_agg(rolname || '=' || rolpassword, ',' ORDER BY rolname) FROM pg_authid \
         WHERE rolname IN ('postgres', 'replication')",
    );

    let out = restore(&backup, &target, "postgres", &["--keep-role", "postgres", "--keep-role", "replication"]);
    out.assert_success();
    assert!(!out.stderr.contains("2BP01"), "no error may be reported\n{}", out.describe());

    // Every row, owned by the restored role.
    assert_eq!(target.query_one("shop", "SELECT count(*) FROM orders"), "5000");
    assert_eq!(
        target.query_one("shop", "SELECT sum(id) FROM orders"),
        source.query_one("shop", "SELECT sum(id) FROM orders")
    );
    assert_eq!(target.query_one("shop", "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'"), "app");
    // The other roles arrive with the dump's passwords.
    can_log_in(&target, "app", "app-pw").expect("app logs in with the source's password");

    // The target's Secret still opens both kept roles; the source's passwords open nothing.
    assert_eq!(
        target.query_one(
            "postgres",
            "SELECT string_agg(rolname || '=' || rolpassword, ',' ORDER BY rolname) FROM pg_authid \
             WHERE rolname IN ('postgres', 'replication')",
        ),
        scram_before,
        "the kept roles' password hashes changed"
    );
    can_log_in(&target, "postgres", "target-superuser-pw").expect("the superuser keeps the target's password");
    can_log_in(&target, "replication", TARGET_REPLICATION_PASSWORD).expect("replication keeps its password");
    assert!(can_log_in(&target, "replication", SOURCE_REPLICATION_PASSWORD).is_err());
    assert!(can_log_in(&target, "postgres", "source-superuser-pw").is_err());
    // The replication role is still one, and may still promote (Kubegres's failover needs it).
    assert_eq!(
        target.query_one(
            "postgres",
            "SELECT rolreplication AND rolcanlogin \
             AND has_function_privilege('replication', 'pg_promote(boolean, integer)', 'EXECUTE') \
             FROM pg_roles WHERE rolname = 'replication'"
        ),
        "t"
    );
}

/// Without `--keep-role`, the replay stops where the real Kubegres flow stopped:
/// the test sees the failure the operator's `--keep-role` prevents.
#[test]
fn without_keep_role_the_replay_stops_at_drop_role_replication() {
    let (_source, _dumps, backup, target) = source_backup_and_target();
    let out = restore(&backup, &target, "postgres", &[]);
    let message = out.assert_failure(4, &[&["2BP01"], &["replication"]]);
    assert!(message.contains("DROP ROLE replication"), "{message}");
}
