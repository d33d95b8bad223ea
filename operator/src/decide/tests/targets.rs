//! Targets the restore does not create: an existing server, a new database in an existing cluster.

use std::time::Duration;

use proto::Phase;
use proto::crd::CONDITION_TARGET_READY;
use serde_json::json;

use super::*;
use crate::decide::Requeue;

#[test]
fn an_existing_server_is_restored_into_directly() {
    let spec = json!({
        "dataSource": {"http": {"url": "https://dumps.example/db.sql.gz"}},
        "target": {"postgres": {"host": "pg.example", "database": "app", "credentialsSecret": {"name": "pg"}}}
    });
    let o = observed(restore(spec));
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateServiceAccount", "CreateRole", "CreateRoleBinding", "CreateRestorePod"]);
    assert_eq!(d.status.phase(), Phase::Restoring);
    assert_eq!(d.status.target.as_deref(), Some("postgres://pg.example:5432/app"));
    // A retry reruns the agent without touching the server.
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeletePod"]);
    assert_eq!(d.status.phase(), Phase::Restoring);
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateRestorePod"]);
    o.pods[0].phase = PodPhase::Succeeded;
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeleteChildren"]);
    assert_eq!(decide(&o).status.phase(), Phase::Succeeded);
}

fn database_restore() -> Observed {
    observed(restore(json!({
        "dataSource": {"s3": {"bucket": "backups", "key": "main/orders.dump"}},
        "target": {"database": {"clusterName": "main", "database": "orders_copy"}}
    })))
}

fn existing_cluster(primary_ready: bool) -> TargetCluster {
    TargetCluster { exists: true, primary_ready, spec: cluster_spec().as_object().cloned(), ..Default::default() }
}

#[test]
fn a_database_target_waits_for_its_cluster_and_the_agent_creates_the_database() {
    // The cluster does not exist yet: wait for it, create nothing.
    let (d, mut o) = step(&database_restore());
    assert_eq!(kinds(&d), Vec::<&str>::new());
    assert_eq!(d.status.phase(), Phase::CreatingTarget);
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "ClusterNotFound"));
    assert_eq!(d.requeue, Requeue::After(Duration::from_secs(10)));

    // It exists, its primary is not ready yet.
    o.target = existing_cluster(false);
    let (d, mut o) = step(&o);
    assert_eq!(d.status.phase(), Phase::WaitingForTarget);
    assert_eq!(condition(&d, CONDITION_TARGET_READY), ("False", "WaitingForPrimary"));

    o.target.primary_ready = true;
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateServiceAccount", "CreateRole", "CreateRoleBinding", "CreateRestorePod"]);
    assert_eq!(d.status.target.as_deref(), Some("cluster/main:orders_copy"));
    let pod = d.actions.iter().find_map(|a| match a {
        Action::CreateRestorePod { pod, .. } => Some(serde_json::to_value(pod).unwrap()),
        _ => None,
    });
    let pod = pod.unwrap();
    let args: Vec<&str> =
        pod["spec"]["containers"][0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let target = args.iter().position(|a| *a == "--target").unwrap();
    assert_eq!(args[target + 1], "postgres://postgres@main.db.svc:5432/orders_copy");
    let create = args.iter().position(|a| *a == "--create-database").unwrap();
    assert_eq!(args[create + 1..create + 3], ["--create-database-marker", "uid-1"]);
    // The password of the existing cluster's superuser, by reference.
    let env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
    let password = env.iter().find(|e| e["name"] == "PGPASSWORD").unwrap();
    assert_eq!(password["valueFrom"]["secretKeyRef"], json!({"name": "pg-secret", "key": "superUserPassword"}));

    // A failed attempt is retried in place: the agent recreates its own
    // database; the cluster is never deleted.
    failed_attempt(&mut o, 4, "");
    o.now = at(10_000);
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeletePod"]);
    assert_eq!(d.status.phase(), Phase::Restoring);
    let (d, mut o) = step(&o);
    assert_eq!(kinds(&d), ["CreateRestorePod"]);
    o.pods[0].phase = PodPhase::Succeeded;
    let (d, o) = step(&o);
    assert_eq!(kinds(&d), ["DeleteChildren"]);
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Succeeded);
    assert!(!d.actions.iter().any(|a| matches!(a, Action::DeleteKubegres { .. })));
}

#[test]
fn a_database_target_whose_cluster_goes_away_mid_restore_fails() {
    let mut o = database_restore();
    o.target = existing_cluster(true);
    let (_, mut o) = step(&o);
    assert_eq!(phase(&o), Phase::Restoring);
    o.target = TargetCluster::default();
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "TargetDeleted");
    assert_eq!(kinds(&d), ["DeleteChildren"]);
}

#[test]
fn a_database_target_without_a_superuser_password_secret_fails() {
    let mut o = database_restore();
    let mut cluster = existing_cluster(true);
    cluster.spec.as_mut().unwrap().remove("env");
    o.target = cluster;
    let d = decide(&o);
    assert_eq!(d.status.phase(), Phase::Failed);
    assert_eq!(d.status.failure.as_ref().unwrap().reason, "NoSuperUserPassword");
}
