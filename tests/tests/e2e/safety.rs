//! Operator safety end to end, on the local cluster with the simulated
//! Kubegres (its init scripts, StatefulSets, retained claims, Services
//! created after the primary is Ready, backup CronJob): a Kubegres backup
//! restored into a new cluster with passwords of its own; a retained data
//! volume and a cluster the restore did not create are refused and left as
//! they were, the user's rows still on them; two restores racing for one
//! cluster name.

use std::time::{Duration, SystemTime};

use harness::compare;
use harness::dumps::kubegres_file_name;
use harness::localcluster::world;
use harness::wait::until_ok;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

use super::support::*;

const WAIT: Duration = Duration::from_secs(180);

/// A restore of the newest backup of `source_cluster` on the PVC `backups`
/// into a new cluster `cluster` whose spec (3 replicas, a backup schedule)
/// takes its passwords from the Secret `<cluster>-secret`.
fn restore_yaml(name: &str, cluster: &str, source_cluster: &str) -> String {
    let cluster_spec = "        database:
          size: 200Mi
        backup:
          schedule: '0 */1 * * *'
          pvcName: backups
          volumeMount: /var/lib/backup
";
    let file_extra = format!("      clusterName: {source_cluster}\n");
    new_cluster_restore_with(name, cluster, "backups", "latest", &file_extra, cluster_spec, "")
}

/// The source of every test: a Kubegres cluster `mypostgres` (simulated
/// Kubegres: its primary ran Kubegres's init scripts, so it has the
/// `replication` role with its pg_promote grant) with Pagila, and one
/// backup taken by its own backup CronJob's script into the PVC `backups`.
async fn kubegres_source_with_a_backup(client: &kube::Client, ns: &str) -> harness::pg::PgCluster {
    world::create_pvc(client, ns, "backups").await;
    world::create_kubegres(client, ns, "mypostgres", 1, "source-superuser-pw", Some("backups")).await;
    let source = world::primary(client, ns, "mypostgres", "source-superuser-pw").await;
    harness::fixtures::load_pagila(&source, "pagila");
    world::start_backup_job(client, ns, "mypostgres", "backup-now").await;
    world::wait_job(client, ns, "backup-now", WAIT).await.unwrap();
    source
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubegres_backup_restores_into_a_new_cluster_that_keeps_its_own_passwords() {
    let client = cluster().client().await;
    let ns = namespace(&client, "kg-to-kg").await;
    let source = kubegres_source_with_a_backup(&client, &ns).await;
    // A newer backup of another cluster in the same PVC (a restored
    // cluster's CronJob writes there too): never the one to restore.
    let backups = cluster().pvc_dir(&ns, "backups");
    let other = harness::pg::PgCluster::start();
    other.create_database("intruder");
    let newer = backups.join(kubegres_file_name("restored-earlier", SystemTime::now() + Duration::from_secs(86_400)));
    kubegres_backup_to(&other, &newer);

    // The new cluster's Secret: passwords unlike the source's.
    world::create_secret(
        &client,
        &ns,
        "restored-secret",
        &[("superUserPassword", "target-superuser-pw"), ("replicationUserPassword", "target-replication-pw")],
    )
    .await;
    world::create_restore(&client, &ns, &restore_yaml("kg-to-kg", "restored", "mypostgres")).await;
    let restore = wait_succeeded(&client, &ns, "kg-to-kg").await;
    let status = restore.status.clone().unwrap();
    assert_eq!(status.attempts, Some(1), "{}", status_of(&restore));
    let picked = status.progress.as_ref().and_then(|p| p.source.clone()).unwrap_or_default();
    assert!(picked.contains("/mypostgres-backup-"), "restored {picked}, not mypostgres's backup");

    // The rows, with the target's own superuser password.
    let restored = world::primary(&client, &ns, "restored", "target-superuser-pw").await;
    compare::assert_same_database(&source, "pagila", &restored, "pagila");
    assert_eq!(restored.query("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'intruder'"), [["0"]]);
    // The replication role is there with its grant and the target's
    // password: both replicas clone and stream with it.
    let role = restored.query(
        "postgres",
        "SELECT rolreplication, has_function_privilege('replication', 'pg_promote(boolean, integer)', 'EXECUTE') \
         FROM pg_roles WHERE rolname = 'replication'",
    );
    assert_eq!(role, [["t", "t"]]);
    let replicas = world::wait_for_replicas(&client, &ns, "restored", "target-superuser-pw", WAIT).await;
    assert_eq!(replicas.len(), 2);
    // A replica holds the restored rows.
    let replica = harness::pg::PgCluster::connect_to(&replicas[0], 5432, "target-superuser-pw");
    let count = "SELECT count(*) FROM rental";
    assert_eq!(replica.query("pagila", count), source.query("pagila", count));
    assert_eq!(replica.query("postgres", "SELECT pg_is_in_recovery()"), [["t"]]);
    // Handed over with the desired spec, the backup schedule only now.
    let kubegres = world::get_kubegres(&client, &ns, "restored").await.unwrap();
    assert_eq!(kubegres.data["spec"]["replicas"], json!(3));
    assert_eq!(kubegres.data["spec"]["backup"]["pvcName"], json!("backups"));
    assert!(!kubegres.labels().keys().any(|key| key.contains("restore")), "{:?}", kubegres.labels());
}

/// The claims named like data volumes of `cluster`, with their uids.
async fn data_volumes(client: &kube::Client, ns: &str, cluster: &str) -> Vec<(String, String)> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let mut found: Vec<(String, String)> = claims
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|claim| claim.name_any().starts_with(&format!("postgres-db-{cluster}-")))
        .map(|claim| (claim.name_any(), claim.uid().unwrap_or_default()))
        .collect();
    found.sort();
    found
}

/// Deletes the restore and waits until it is gone (its finalizer removed).
async fn delete_restore(client: &kube::Client, ns: &str, name: &str) {
    let restores: Api<proto::KubegresRestore> = Api::namespaced(client.clone(), ns);
    restores.delete(name, &DeleteParams::default()).await.unwrap();
    until_ok(&format!("restore {name} gone"), WAIT, || async {
        match restores.get_opt(name).await.unwrap() {
            None => Ok(()),
            Some(restore) => Err(status_of(&restore)),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_volume_of_a_deleted_cluster_is_refused_and_its_data_kept() {
    let client = cluster().client().await;
    let ns = namespace(&client, "retained").await;
    kubegres_source_with_a_backup(&client, &ns).await;
    // The user's cluster `orders`, with rows, deleted: Kubegres keeps its claim.
    world::create_kubegres(&client, &ns, "orders", 1, "orders-pw", None).await;
    let orders = world::primary(&client, &ns, "orders", "orders-pw").await;
    orders.psql("postgres", "CREATE TABLE precious (id int); INSERT INTO precious SELECT generate_series(1, 42);");
    orders.psql("postgres", "CHECKPOINT");
    let kubegres: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &harness::kubegres_sim::api_resource());
    kubegres.delete("orders", &DeleteParams::foreground()).await.unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    until_ok("the StatefulSet of orders gone", WAIT, || async {
        match sets.get_opt("orders-1").await.unwrap() {
            None => Ok(()),
            Some(_) => Err("still there"),
        }
    })
    .await;
    let retained = data_volumes(&client, &ns, "orders").await;
    assert_eq!(retained.len(), 1, "{retained:?}");

    // A restore into the name `orders`: refused, nothing created or deleted.
    world::create_secret(
        &client,
        &ns,
        "orders-secret",
        &[("superUserPassword", "orders-pw"), ("replicationUserPassword", "orders-pw")],
    )
    .await;
    world::create_restore(&client, &ns, &restore_yaml("into-orders", "orders", "mypostgres")).await;
    let restore = wait_finished(&client, &ns, "into-orders").await;
    assert_eq!(world::phase(&restore), "Failed", "{}", status_of(&restore));
    let failure = restore.status.as_ref().and_then(|s| s.failure.clone()).unwrap();
    assert_eq!(failure.reason, "VolumeInUse", "{failure:?}");
    assert!(failure.message.contains(&retained[0].0), "{}", failure.message);
    assert!(world::get_kubegres(&client, &ns, "orders").await.is_none(), "a cluster was created onto the volume");
    delete_restore(&client, &ns, "into-orders").await;
    assert_eq!(data_volumes(&client, &ns, "orders").await, retained, "the retained volume was touched");

    // The user's data is still on it: their cluster comes back on it.
    world::create_kubegres(&client, &ns, "orders", 1, "orders-pw", None).await;
    let back = world::primary(&client, &ns, "orders", "orders-pw").await;
    assert_eq!(back.query("postgres", "SELECT count(*) FROM precious"), [["42"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_the_restore_did_not_create_is_left_untouched_and_racing_restores_have_one_winner() {
    let client = cluster().client().await;
    let ns = namespace(&client, "name-in-use").await;
    let source = kubegres_source_with_a_backup(&client, &ns).await;

    // A user's cluster holds the name: NameInUse, the cluster as it was.
    world::create_kubegres(&client, &ns, "orders", 1, "orders-pw", None).await;
    let orders = world::primary(&client, &ns, "orders", "orders-pw").await;
    orders.psql("postgres", "CREATE TABLE precious (id int); INSERT INTO precious SELECT generate_series(1, 42);");
    let before = world::get_kubegres(&client, &ns, "orders").await.unwrap();
    world::create_restore(&client, &ns, &restore_yaml("into-orders", "orders", "mypostgres")).await;
    let restore = wait_finished(&client, &ns, "into-orders").await;
    assert_eq!(world::phase(&restore), "Failed", "{}", status_of(&restore));
    assert_eq!(restore.status.as_ref().and_then(|s| s.failure.clone()).unwrap().reason, "NameInUse");
    delete_restore(&client, &ns, "into-orders").await;
    let after = world::get_kubegres(&client, &ns, "orders").await.expect("the user's cluster");
    assert_eq!(after.uid(), before.uid());
    assert_eq!(after.data["spec"], before.data["spec"], "the user's cluster spec was changed");
    assert_eq!(after.labels(), before.labels());
    let orders = world::primary(&client, &ns, "orders", "orders-pw").await;
    assert_eq!(orders.query("postgres", "SELECT count(*) FROM precious"), [["42"]]);

    // Two restores into one new name at once: one restores, the other fails
    // cleanly and touches nothing of the winner's.
    world::create_secret(
        &client,
        &ns,
        "shared-secret",
        &[("superUserPassword", "shared-pw"), ("replicationUserPassword", "shared-replication-pw")],
    )
    .await;
    let (yaml_a, yaml_b) =
        (restore_yaml("racer-a", "shared", "mypostgres"), restore_yaml("racer-b", "shared", "mypostgres"));
    tokio::join!(world::create_restore(&client, &ns, &yaml_a), world::create_restore(&client, &ns, &yaml_b));
    let (a, b) = tokio::join!(wait_finished(&client, &ns, "racer-a"), wait_finished(&client, &ns, "racer-b"));
    let mut outcomes = [
        (world::phase(&a), a.status.as_ref().and_then(|s| s.failure.clone()).map(|f| f.reason)),
        (world::phase(&b), b.status.as_ref().and_then(|s| s.failure.clone()).map(|f| f.reason)),
    ];
    outcomes.sort();
    assert_eq!(
        outcomes,
        [("Failed".to_string(), Some("NameInUse".to_string())), ("Succeeded".to_string(), None)],
        "{}\n{}",
        status_of(&a),
        status_of(&b)
    );
    let shared = world::primary(&client, &ns, "shared", "shared-pw").await;
    compare::assert_same_database(&source, "pagila", &shared, "pagila");
}
