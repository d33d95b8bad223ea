//! The operator's controller on a real kube-apiserver, running in-process
//! under the ServiceAccount identity that deploy/ grants (so missing RBAC
//! fails these tests). Nothing runs Pods here: the tests play the kubelet
//! (they set the restore Pod's status and exit code) and the Kubegres
//! operator (they create the cluster's primary Pod). Each test has its own
//! namespace and its own operator watching it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use proto::Phase;
use proto::crd::{CONDITION_FAILED, CONDITION_READY, CONDITION_SPEC_CHANGED, CONDITION_TARGET_READY};
use serde_json::{Value, json};

use crate::support::*;

const PASSWORD_REF: &str = "pg-secret";

fn cluster_spec(replicas: i64) -> Value {
    json!({
        "replicas": replicas,
        "image": "postgres:17",
        "database": {"size": "1Gi"},
        "resources": {"requests": {"memory": "1Gi"}},
        "env": [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": PASSWORD_REF, "key": "superUserPassword"}}}]
    })
}

fn new_cluster_spec(cluster: &str) -> Value {
    json!({
        "clusterName": cluster,
        "dataSource": {
            "file": {"pvcName": "backups", "snapshot": "latest"},
            "cluster": {"clusterSpec": cluster_spec(3)}
        }
    })
}

fn postgres_spec(backoff_limit: i32) -> Value {
    json!({
        "dataSource": {"http": {"url": "https://dumps.example/app.sql.gz"}},
        "target": {"postgres": {"host": "db.example", "database": "app", "credentialsSecret": {"name": "pg"}}},
        "backoffLimit": backoff_limit,
    })
}

fn agent_failure(reason: &str, message: &str, exit_code: u8) -> String {
    json!({"reason": reason, "message": message, "exitCode": exit_code}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_flow_creates_the_cluster_runs_the_agent_and_leaves_only_the_database() {
    let world = World::new("op-default").await;
    world.create_restore("orders", new_cluster_spec("restored")).await;

    // The Kubegres cluster: one replica, labelled as managed by the restore.
    let kubegres = world.kubegres();
    let cluster = wait("the Kubegres cluster", || async { kubegres.get_opt("restored").await.unwrap() }).await;
    assert_eq!(cluster.data["spec"]["replicas"], 1);
    assert_eq!(cluster.labels()[operator::decide::MANAGED_BY_RESTORE_LABEL], "orders");
    let restore = world.wait_phase("orders", Phase::WaitingForTarget).await;
    assert_eq!(condition(&restore, CONDITION_TARGET_READY).unwrap().1, "WaitingForPrimary");
    assert!(restore.finalizers().iter().any(|f| f == operator::decide::FINALIZER));

    // Kubegres's primary comes up: the restore Pod runs, with its own
    // ServiceAccount and a Role for this one restore's status.
    world.start_primary("restored").await;
    let pod = world.wait_pod("orders-restore-1").await;
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("orders-restore"));
    let container = &spec.containers[0];
    assert_eq!(container.image.as_deref(), Some("registry.test/restore-agent:test"));
    let env = container.env.as_ref().unwrap();
    let password = env.iter().find(|var| var.name == "PGPASSWORD").unwrap();
    assert!(password.value.is_none(), "the password is only referenced");
    assert_eq!(password.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name, PASSWORD_REF);
    let args = container.args.as_ref().unwrap().join(" ");
    assert!(args.contains("--target postgres://postgres@restored.op-default.svc:5432/postgres"), "{args}");
    assert!(args.contains("--kubegres-restore op-default/orders"), "{args}");
    let role = world.api::<Role>().get("orders-restore").await.unwrap();
    let rule = &role.rules.unwrap()[0];
    assert_eq!(rule.resources.as_deref(), Some(&["kubegresrestores/status".to_string()][..]));
    assert_eq!(rule.resource_names.as_deref(), Some(&["orders".to_string()][..]));
    assert_eq!(world.wait_phase("orders", Phase::Restoring).await.status.unwrap().attempts, Some(1));

    // The agent succeeds: the cluster gets its desired spec, the label goes,
    // and every object the restore created is deleted.
    world.run_pod("orders-restore-1").await;
    world.finish_pod("orders-restore-1", 0, "").await;
    let restore = world.wait_phase("orders", Phase::Succeeded).await;
    let status = restore.status.as_ref().unwrap();
    assert_eq!(condition(&restore, CONDITION_READY).unwrap().0, "True");
    assert!(status.completion_time.is_some());
    assert_eq!(status.is_completed, Some(true));
    let cluster = kubegres.get("restored").await.unwrap();
    assert_eq!(cluster.data["spec"]["replicas"], 3);
    assert_eq!(cluster.data["spec"]["resources"], json!({"requests": {"memory": "1Gi"}}));
    assert!(!cluster.labels().contains_key(operator::decide::MANAGED_BY_RESTORE_LABEL));
    world.wait_gone(&world.pods(), "orders-restore-1").await;
    for (kind, gone) in [
        ("ServiceAccount", world.api::<ServiceAccount>().get_opt("orders-restore").await.unwrap().is_none()),
        ("Role", world.api::<Role>().get_opt("orders-restore").await.unwrap().is_none()),
        ("RoleBinding", world.api::<RoleBinding>().get_opt("orders-restore").await.unwrap().is_none()),
    ] {
        assert!(gone, "the restore's {kind} is left");
    }

    // Events on every phase change.
    world
        .wait_events(
            "orders",
            &[
                ("Normal", "Started"),
                ("Normal", "CreatingTarget"),
                ("Normal", "WaitingForTarget"),
                ("Normal", "Restoring"),
                ("Normal", "Finalizing"),
                ("Normal", "Succeeded"),
            ],
        )
        .await;
    // The metrics are updated when the reconcile that wrote the status ends.
    let metrics = wait("the Succeeded restore in the metrics", || async {
        let metrics = world.operator.metrics.encode();
        metrics.contains("kubegres_restore_restores{phase=\"Succeeded\"} 1").then_some(metrics)
    })
    .await;
    assert!(metrics.contains("kubegres_restore_restore_duration_seconds_count{result=\"succeeded\"} 1"), "{metrics}");
    world.operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried_after_a_backoff_then_fails_with_the_agents_reason() {
    let world = World::new("op-retry").await;
    world.create_restore("app", postgres_spec(1)).await;
    world.wait_pod("app-restore-1").await;
    world.finish_pod("app-restore-1", 4, &agent_failure("TargetConnection", "connection refused", 4)).await;

    // Waits out the backoff, then attempt 2 in a new Pod.
    let restore = world
        .wait_restore("app", "the backoff condition", |restore| {
            let (_, reason, message) = condition(restore, "Progressing")?;
            (reason == "BackoffWaiting").then_some(message)
        })
        .await;
    assert!(restore.contains("attempt 1 failed (TargetConnection)"), "{restore}");
    world.wait_gone(&world.pods(), "app-restore-1").await;
    world.wait_pod("app-restore-2").await;
    assert_eq!(world.restores().get("app").await.unwrap().status.unwrap().attempts, Some(2));

    // backoffLimit 1: the second failure is the last.
    world.finish_pod("app-restore-2", 4, &agent_failure("TargetSql", "relation \"x\" already exists", 4)).await;
    let restore = world.wait_phase("app", Phase::Failed).await;
    let failure = restore.status.as_ref().unwrap().failure.clone().unwrap();
    assert_eq!(failure.reason, "TargetSql");
    assert_eq!(failure.message, "relation \"x\" already exists");
    assert_eq!(condition(&restore, CONDITION_FAILED).unwrap().1, "TargetSql");
    world.wait_gone(&world.pods(), "app-restore-2").await;
    world.wait_gone(&world.api::<ServiceAccount>(), "app-restore").await;
    world.wait_events("app", &[("Warning", "AttemptFailed"), ("Warning", "TargetSql")]).await;
    world.operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_exit_fails_at_once() {
    let world = World::new("op-fatal").await;
    world.create_restore("app", postgres_spec(3)).await;
    world.wait_pod("app-restore-1").await;
    let message = "the target database is not empty: 3 tables in schema public";
    world.finish_pod("app-restore-1", 5, &agent_failure("TargetNotEmpty", message, 5)).await;
    let restore = world.wait_phase("app", Phase::Failed).await;
    let status = restore.status.unwrap();
    assert_eq!(status.attempts, Some(1));
    assert_eq!(status.failure.unwrap().message, message);
    world.operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_restore_pod_is_a_failed_attempt_and_a_restarted_operator_carries_on() {
    let mut world = World::new("op-heal").await;
    world.create_restore("app", postgres_spec(1)).await;
    world.wait_pod("app-restore-1").await;
    world.run_pod("app-restore-1").await;
    // Once the operator has seen the running Pod, its deletion (an eviction,
    // a drain) fails the attempt: what it wrote is in the target.
    world.wait_restore("app", "the attempt's Pod recorded", |r| r.status.as_ref()?.attempt_pod_uid.clone()).await;
    world.pods().delete("app-restore-1", &DeleteParams::default()).await.unwrap();
    world
        .wait_restore("app", "the PodDeleted failure of attempt 1", |r| {
            let status = r.status.as_ref()?;
            (status.attempts == Some(2) || status.failure.as_ref().is_some_and(|f| f.reason == "PodDeleted"))
                .then_some(())
        })
        .await;

    // A new operator process picks up from the status and the objects: the
    // retry comes after the backoff, as the next attempt.
    let old = std::mem::replace(&mut world.operator, Operator::start("op-heal").await);
    old.stop().await;
    world.operator.stop().await;
    world.operator = Operator::start("op-heal").await;
    world.wait_pod("app-restore-2").await;
    world.run_pod("app-restore-2").await;
    world.finish_pod("app-restore-2", 0, "").await;
    let restore = world.wait_phase("app", Phase::Succeeded).await;
    assert_eq!(restore.status.unwrap().attempts, Some(2));
    let pods = world.pods().list(&Default::default()).await.unwrap();
    assert!(pods.items.is_empty(), "left: {:?}", pods.items.iter().map(|p| p.name_any()).collect::<Vec<_>>());
    world.operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_restore_mid_restore_removes_its_children_first() {
    let world = World::new("op-finalizer").await;
    world.create_restore("app", postgres_spec(0)).await;
    world.wait_pod("app-restore-1").await;
    world.restores().delete("app", &DeleteParams::default()).await.unwrap();
    world.wait_gone(&world.restores(), "app").await;
    world.wait_gone(&world.pods(), "app-restore-1").await;
    assert!(world.api::<ServiceAccount>().get_opt("app-restore").await.unwrap().is_none());
    assert!(world.api::<Role>().get_opt("app-restore").await.unwrap().is_none());
    assert!(world.api::<RoleBinding>().get_opt("app-restore").await.unwrap().is_none());
    world.operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_deleted_mid_restore_is_reported_without_a_hot_loop() {
    let world = World::new("op-target-lost").await;
    world.create_restore("orders", new_cluster_spec("restored")).await;
    let kubegres = world.kubegres();
    wait("the Kubegres cluster", || async { kubegres.get_opt("restored").await.unwrap() }).await;
    world.start_primary("restored").await;
    world.wait_pod("orders-restore-1").await;

    kubegres.delete("restored", &DeleteParams::default()).await.unwrap();
    let restore = world
        .wait_restore("orders", "the TargetDeleted condition", |restore| {
            let found = condition(restore, CONDITION_TARGET_READY)?;
            (found.1 == "TargetDeleted").then(|| restore.clone())
        })
        .await;
    let (status, _, message) = condition(&restore, CONDITION_TARGET_READY).unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("restored was deleted mid-restore"), "{message}");
    assert_eq!(restore.status.unwrap().phase(), Phase::CreatingTarget);
    world.wait_gone(&world.pods(), "orders-restore-1").await;

    // Waiting for the backoff is quiet: a few reconciles, not hundreds. What
    // must NOT happen has no condition to wait on, so this watches a fixed
    // window (the one deliberate sleep of this suite).
    const QUIET_WINDOW: Duration = Duration::from_secs(3);
    let before = world.operator.reconciles();
    tokio::time::sleep(QUIET_WINDOW).await;
    let during = world.operator.reconciles() - before;
    assert!(during <= 5, "{during} reconciles in {QUIET_WINDOW:?} while waiting for the backoff");
    world.operator.stop().await;
}

/// Touches the restore Pod (an event the operator reconciles on, with nothing
/// for it to act on) and waits until a reconcile has ended since.
async fn touch_and_reconcile(world: &World, touch: &str) {
    let before = world.operator.reconciles();
    let patch = json!({"metadata": {"annotations": {"touch": touch}}});
    world.pods().patch("app-restore-1", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait("a reconcile after touching the Pod", || async { (world.operator.reconciles() > before).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_written_only_when_it_changes_and_spec_changes_are_not_acted_on() {
    let world = World::new("op-quiet").await;
    world.create_restore("app", postgres_spec(0)).await;
    let pod_uid = world.wait_pod("app-restore-1").await.uid();
    world.run_pod("app-restore-1").await;
    // The last write of this stage records the Pod's UID. Only after it can a
    // quiet reconcile mean "settled": a reconcile that began before the Pod
    // was seen may end after a touch without having written yet.
    let settled = world
        .wait_restore("app", "the restore Pod's UID in the status", |restore| {
            let status = restore.status.as_ref()?;
            (status.phase() == Phase::Restoring && status.attempt_pod_uid == pod_uid).then(|| restore.clone())
        })
        .await;
    // Settled: a whole reconcile ran (after a touch of the Pod) without a write.
    let tries = AtomicU32::new(0);
    let version = wait("the status to settle", || async {
        let version = world.restores().get("app").await.unwrap().resource_version();
        touch_and_reconcile(&world, &format!("settle-{}", tries.fetch_add(1, Ordering::Relaxed))).await;
        (world.restores().get("app").await.unwrap().resource_version() == version).then_some(version)
    })
    .await;

    // Pod events make the operator reconcile; nothing changed, so no write.
    let before = world.operator.reconciles();
    for n in 0..3 {
        touch_and_reconcile(&world, &n.to_string()).await;
    }
    assert!(world.operator.reconciles() > before, "the Pod updates triggered reconciles");
    let after = world.restores().get("app").await.unwrap();
    assert_eq!(after.resource_version(), version, "the status was rewritten: {:#?}", after.status);
    assert_eq!(settled.status.as_ref().unwrap().observed_generation, Some(1));

    // A spec change after the start: said, not acted on.
    let patch = json!({"spec": {"backoffLimit": 5}});
    world.restores().patch("app", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let restore = world
        .wait_restore("app", "the SpecChanged condition", |restore| {
            condition(restore, CONDITION_SPEC_CHANGED).map(|_| restore.clone())
        })
        .await;
    assert_eq!(condition(&restore, CONDITION_SPEC_CHANGED).unwrap().1, "SpecChangedAfterStart");
    let pod = world.pods().get("app-restore-1").await.unwrap();
    assert_eq!(pod.uid(), world.wait_pod("app-restore-1").await.uid(), "the running Pod is left alone");
    world.operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_the_operator_cannot_act_on_fails_with_a_warning_event() {
    let world = World::new("op-invalid").await;
    // Valid for the CRD, but the cluster spec gives no superuser password
    // Secret for the agent to connect with.
    let mut spec = new_cluster_spec("restored");
    spec["dataSource"]["cluster"]["clusterSpec"]["env"] = json!([]);
    world.create_restore("orders", spec).await;
    let restore = world.wait_phase("orders", Phase::Failed).await;
    let failure = restore.status.unwrap().failure.unwrap();
    assert_eq!(failure.reason, "NoSuperUserPassword");
    assert!(failure.message.contains("POSTGRES_PASSWORD"), "{}", failure.message);
    world.wait_events("orders", &[("Warning", "NoSuperUserPassword")]).await;
    assert!(world.kubegres().get_opt("restored").await.unwrap().is_none(), "nothing was created");
    world.operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_target_runs_the_agent_against_the_existing_cluster() {
    let world = World::new("op-database").await;
    let cluster: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubegres.reactive-tech.io/v1", "kind": "Kubegres",
        "metadata": {"name": "main"}, "spec": cluster_spec(2),
    }))
    .unwrap();
    world.kubegres().create(&Default::default(), &cluster).await.unwrap();
    world.start_primary("main").await;
    let restore = world
        .create_restore(
            "copy",
            json!({
                "dataSource": {"s3": {"bucket": "backups", "key": "main/orders.dump"}},
                "target": {"database": {"clusterName": "main", "database": "orders_copy"}}
            }),
        )
        .await;
    let pod = world.wait_pod("copy-restore-1").await;
    let args = pod.spec.unwrap().containers[0].args.clone().unwrap().join(" ");
    assert!(args.contains("--target postgres://postgres@main.op-database.svc:5432/orders_copy"), "{args}");
    let marker = format!("--create-database --create-database-marker {}", restore.uid().unwrap());
    assert!(args.contains(&marker), "{args}");
    world.finish_pod("copy-restore-1", 0, "").await;
    world.wait_phase("copy", Phase::Succeeded).await;
    // The existing cluster is untouched.
    let cluster = world.kubegres().get("main").await.unwrap();
    assert_eq!(cluster.data["spec"]["replicas"], 2);
    world.operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_is_ready_once_its_cache_synced() {
    let world = World::new("op-ready").await;
    wait("readiness", || async { (world.operator.health.get() == operator::health::Readiness::Ready).then_some(()) })
        .await;
    world.operator.stop().await;
}
