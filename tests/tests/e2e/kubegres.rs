//! The simulated Kubegres on the local cluster behaves as Kubegres v1.19
//! publishes it: StatefulSets per instance with their claims, the base
//! ConfigMap and its scripts (the replication role), real streaming
//! replicas, the backup CronJob's script, scaling by index, the spec check.

use std::time::Duration;

use harness::localcluster::world;
use harness::pg::PgCluster;
use harness::wait::until;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

use super::support::*;

const WAIT: Duration = Duration::from_secs(180);

async fn ready_ip(pods: &Api<Pod>, name: &str) -> Option<String> {
    let pod = pods.get_opt(name).await.ok()??;
    let status = pod.status?;
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then_some(status.pod_ip).flatten()
}

async fn set_names(client: &kube::Client, ns: &str) -> Vec<String> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let mut names: Vec<String> =
        sets.list(&ListParams::default()).await.unwrap().items.iter().map(ResourceExt::name_any).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubegres_cluster_replicates_backs_up_and_scales_by_index() {
    let client = cluster().client().await;
    let ns = namespace(&client, "kubegres").await;
    let password = "pg-superuser-pw";
    world::create_pvc(&client, &ns, "backups").await;
    world::create_kubegres(&client, &ns, "pg", 2, password, Some("backups")).await;
    let primary = world::primary(&client, &ns, "pg", password).await;

    // The primary ran Kubegres's init script: the replication role with its grant.
    let role = primary.query(
        "postgres",
        "SELECT rolreplication, has_function_privilege('replication', 'pg_promote(boolean, integer)', 'EXECUTE') \
         FROM pg_roles WHERE rolname = 'replication'",
    );
    assert_eq!(role, vec![vec!["t".to_string(), "t".to_string()]]);
    primary.psql("postgres", "CREATE TABLE rows_here (id int); INSERT INTO rows_here SELECT generate_series(1, 500);");

    // A replica, cloned by pg_basebackup, streams from the primary.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let replica_ip = until("the replica pg-2-0 Ready", WAIT, || ready_ip(&pods, "pg-2-0")).await;
    let replica = PgCluster::connect_to(&replica_ip, 5432, password);
    until("the rows on the replica", WAIT, || async {
        let rows = replica.query("postgres", "SELECT count(*) FROM rows_here");
        (rows == vec![vec!["500".to_string()]]).then_some(())
    })
    .await;
    assert_eq!(replica.query("postgres", "SELECT pg_is_in_recovery()"), vec![vec!["t".to_string()]]);

    // Kubegres's objects, names and labels.
    assert_eq!(set_names(&client, &ns).await, ["pg-1", "pg-2"]);
    let primary_pod = pods.get("pg-1-0").await.unwrap();
    for (key, value) in [("app", "pg"), ("index", "1"), ("replicationRole", "primary")] {
        assert_eq!(primary_pod.labels().get(key).map(String::as_str), Some(value), "{:?}", primary_pod.labels());
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim = claims.get("postgres-db-pg-1-0").await.unwrap();
    assert_eq!(claim.spec.unwrap().storage_class_name.as_deref(), Some("standard"));
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    for name in ["pg", "pg-replica"] {
        // Kubegres creates each Service on a later pass than its Pods.
        let service = harness::wait::until_ok(&format!("the Service {name}"), WAIT, || async {
            services.get_opt(name).await.map_err(|e| e.to_string())?.ok_or("not yet".to_string())
        })
        .await;
        assert_eq!(service.spec.unwrap().cluster_ip.as_deref(), Some("None"), "{name} is headless");
    }
    let base: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let base = base.get("base-kubegres-config").await.unwrap().data.unwrap_or_default();
    assert!(base["pg_hba.conf"].contains("host    replication     replication     all                     md5"));
    assert!(base["backup_database.sh"].contains("pg_dumpall -h $BACKUP_SOURCE_DB_HOST_NAME -U postgres -c | gzip"));
    assert!(!base["backup_database.sh"].contains("pipefail"));
    let kubegres = world::get_kubegres(&client, &ns, "pg").await.unwrap();
    assert_eq!(kubegres.data["status"]["enforcedReplicas"], json!(2));
    assert_eq!(kubegres.data["status"]["lastCreatedInstanceIndex"], json!(2));
    assert_eq!(kubegres.data["spec"]["database"]["storageClassName"], json!("standard"), "a default written back");
    assert_eq!(kubegres.data["spec"]["customConfig"], json!("base-kubegres-config"));

    // A backup from the CronJob: Kubegres's script, from the replica Service.
    world::start_backup_job(&client, &ns, "pg", "backup-now").await;
    world::wait_job(&client, &ns, "backup-now", WAIT).await.unwrap();
    let backups: Vec<_> = std::fs::read_dir(cluster().pvc_dir(&ns, "backups")).unwrap().flatten().collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let file = backups[0].path();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("pg-backup-") && name.ends_with(".gz"), "{name}");
    let mut dump = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap()), &mut dump)
        .unwrap();
    assert!(
        dump.contains("DROP ROLE IF EXISTS replication;") || dump.contains("DROP ROLE replication;"),
        "{dump:.300}"
    );
    assert!(dump.contains("COPY public.rows_here (id) FROM stdin;"));

    // Scaling down deletes the highest index (its claim stays); scaling up
    // takes the next index, never an old one.
    let kubegres_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &harness::kubegres_sim::api_resource());
    let scale = |replicas: i64| json!({"spec": {"replicas": replicas}});
    kubegres_api.patch("pg", &PatchParams::default(), &Patch::Merge(&scale(1))).await.unwrap();
    until("pg-2 deleted", WAIT, || async { (set_names(&client, &ns).await == ["pg-1"]).then_some(()) }).await;
    assert!(claims.get_opt("postgres-db-pg-2-0").await.unwrap().is_some(), "the replica's claim is kept");
    kubegres_api.patch("pg", &PatchParams::default(), &Patch::Merge(&scale(2))).await.unwrap();
    until("pg-3 created", WAIT, || async { (set_names(&client, &ns).await == ["pg-1", "pg-3"]).then_some(()) }).await;

    for path in ["/etc/postgres.conf", "/etc/pg_hba.conf", "/docker-entrypoint-initdb.d", "/tmp/backup_database.sh"] {
        assert!(!std::path::Path::new(path).exists(), "{path} was created on the machine's root");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubegres_spec_without_the_replication_password_is_refused_as_kubegres_does() {
    let client = cluster().client().await;
    let ns = namespace(&client, "kgspec").await;
    let kubegres = json!({
        "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "Kubegres",
        "metadata": {"name": "half", "namespace": ns},
        "spec": {"replicas": 1, "image": "postgres:16.1", "database": {"size": "200Mi"},
                 "env": [{"name": "POSTGRES_PASSWORD", "value": "x"}]},
    });
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &harness::kubegres_sim::api_resource());
    api.patch("half", &PatchParams::apply(world::FIELD_MANAGER), &Patch::Apply(&kubegres)).await.unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let message = until("the SpecCheckErr Event", WAIT, || async {
        let listed = events.list(&ListParams::default()).await.ok()?;
        listed.items.into_iter().find(|e| e.reason.as_deref() == Some("SpecCheckErr")).and_then(|e| e.message)
    })
    .await;
    assert!(message.contains("'spec.env.POSTGRES_REPLICATION_PASSWORD' is undefined"), "{message}");
    assert!(set_names(&client, &ns).await.is_empty(), "no StatefulSet for a refused spec");
}
