//! PostgreSQL Pods, blocked Pods, deletion and stop.

use std::time::Duration;

use harness::kubelet::processes_of_pod;
use harness::wait::until;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::DeleteParams;
use serde_json::json;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pods_become_ready_and_accept_scram_connections_side_by_side() {
    let world = World::new("kl-postgres").await;
    let _: Secret = world
        .create(json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "pg" },
                         "stringData": { "superUserPassword": "p4ss word!" } }))
        .await;
    for name in ["pg-a", "pg-b"] {
        world
            .create_pod(
                name,
                json!({ "app": name }),
                json!({
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 10,
                    "volumes": [{ "name": "data", "emptyDir": {} }],
                    "containers": [{
                        "name": "postgres", "image": "postgres:16",
                        "env": [
                            { "name": "POSTGRES_PASSWORD", "valueFrom": { "secretKeyRef": { "name": "pg", "key": "superUserPassword" } } },
                            { "name": "POSTGRES_DB", "value": "app" },
                            { "name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata" },
                        ],
                        "ports": [{ "name": "postgres", "containerPort": 5432 }],
                        "readinessProbe": { "tcpSocket": { "port": "postgres" }, "periodSeconds": 1 },
                        "volumeMounts": [{ "name": "data", "mountPath": "/var/lib/postgresql/data" }],
                    }],
                }),
            )
            .await;
    }
    for name in ["pg-a", "pg-b"] {
        let pod = world.wait_pod(name, "Ready", is_ready).await;
        assert_eq!(phase(&pod), "Running", "{}", world.log(name, "postgres"));
        let ip = pod_ip(&pod);
        let connect = |password: &str| {
            let mut config = tokio_postgres::Config::new();
            config.host(&ip).port(5432).user("postgres").password(password).dbname("app");
            config
        };
        let (client, connection) = connect("p4ss word!")
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {name} at {ip}:5432: {e}\n{}", world.log(name, "postgres")));
        tokio::spawn(connection);
        let row = client.query_one("SELECT current_database(), inet_server_addr()::text", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "app");
        assert_eq!(row.get::<_, String>(1), format!("{ip}/32"));
        let method = client
            .query_one("SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' AND address = 'all'", &[])
            .await
            .unwrap();
        assert_eq!(method.get::<_, String>(0), "scram-sha-256");
        let wrong = connect("wrong").connect(tokio_postgres::NoTls).await;
        let error = wrong.err().expect("a wrong password is refused");
        let message = error.as_db_error().map(|e| e.message().to_string()).unwrap_or_else(|| format!("{error:?}"));
        assert_eq!(message, "password authentication failed for user \"postgres\"");
        let log = world.log(name, "postgres");
        assert!(!log.contains("p4ss"), "the password is never logged:\n{log}");
    }

    // Deleting one stops its server (SIGTERM: a fast shutdown) and removes the Pod.
    // PostgreSQL's children call setsid: the Pod's cgroup still holds them.
    let pods = world.pods();
    let pod_a = pods.get("pg-a").await.unwrap();
    let uid = pod_a.metadata.uid.clone().unwrap();
    let server = world.kubelet().pod_processes(&uid);
    if harness::kubelet::cgroups_available() {
        assert!(server.len() >= 5, "the postmaster and its children: {server:?}");
    }
    pods.delete("pg-a", &DeleteParams::default()).await.unwrap();
    until("pg-a gone", WAIT, || async { pods.get_opt("pg-a").await.unwrap().is_none().then_some(()) }).await;
    assert_eq!(processes_of_pod(&uid), Vec::<i32>::new());
    let alive: Vec<&i32> = server
        .iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| cmdline.starts_with(b"postgres"))
        })
        .collect();
    assert_eq!(alive, Vec::<&i32>::new(), "no process of pg-a's server is left");
    assert!(is_ready(&pods.get("pg-b").await.unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_pods_say_why_and_start_once_unblocked() {
    let world = World::new("kl-blocked").await;
    let mut spec = sh_spec("echo \"token=$TOKEN\"");
    spec["containers"][0]["env"] =
        json!([{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "late", "key": "token" } } }]);
    world.create_pod("needs-secret", json!({}), spec).await;
    let mut spec = sh_spec("true");
    spec["volumes"] = json!([{ "name": "data", "persistentVolumeClaim": { "claimName": "nope" } }]);
    spec["containers"][0]["volumeMounts"] = json!([{ "name": "data", "mountPath": "/data" }]);
    world.create_pod("needs-pvc", json!({}), spec).await;
    let mut spec = sh_spec("true");
    spec["containers"][0]["image"] = json!("registry.example/unknown/thing:1.0");
    world.create_pod("unknown-image", json!({}), spec).await;
    let mut spec = sh_spec("true");
    spec["securityContext"] = json!({ "runAsNonRoot": true });
    world.create_pod("root-image", json!({}), spec).await;

    let blocked = |pod: &Pod| waiting(pod, "main").is_some_and(|(reason, _)| reason != "ContainerCreating");
    let pod = world.wait_pod("needs-secret", "blocked", blocked).await;
    assert_eq!(phase(&pod), "Pending");
    assert_eq!(
        waiting(&pod, "main").unwrap(),
        ("CreateContainerConfigError".to_string(), "secret \"late\" not found".to_string())
    );

    let pod = world.wait_pod("unknown-image", "blocked", blocked).await;
    let (reason, message) = waiting(&pod, "main").unwrap();
    assert_eq!(reason, "ErrImagePull");
    assert!(
        message.contains("registry.example/unknown/thing:1.0") && message.contains("no local program"),
        "{message}"
    );

    let pod = world.wait_pod("root-image", "blocked", blocked).await;
    let (reason, message) = waiting(&pod, "main").unwrap();
    assert_eq!(reason, "CreateContainerConfigError");
    assert!(message.starts_with("container has runAsNonRoot and image will run as root"), "{message}");

    let unschedulable = |pod: &Pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .cloned()
    };
    let pod = world
        .wait_pod("needs-pvc", "unschedulable", |pod| unschedulable(pod).is_some_and(|c| c.status == "False"))
        .await;
    let condition = unschedulable(&pod).unwrap();
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    // kube-scheduler's words (it counts every test's Node).
    let message = condition.message.unwrap();
    assert!(message.contains(" nodes are available: persistentvolumeclaim \"nope\" not found."), "{message}");
    assert!(pod.spec.unwrap().node_name.is_none());

    // The Secret's key is missing, then the Secret is complete: the Pod runs.
    let _: Secret = world
        .create(json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "late" }, "stringData": { "other": "x" } }))
        .await;
    let pod = world
        .wait_pod("needs-secret", "missing key", |pod| {
            waiting(pod, "main").is_some_and(|(_, m)| m.contains("couldn't find key"))
        })
        .await;
    assert_eq!(waiting(&pod, "main").unwrap().1, "couldn't find key token in Secret kl-blocked/late");
    let secrets: kube::Api<Secret> = kube::Api::namespaced(world.admin.clone(), &world.ns);
    let patch = json!({ "stringData": { "token": "t0k" } });
    secrets.patch("late", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let pod = world.wait_done("needs-secret").await;
    assert_eq!(phase(&pod), "Succeeded");
    assert!(world.log("needs-secret", "main").contains("token=t0k"));

    // The PVC appears: the Pod is bound and runs.
    create_pvc(&world, "nope").await;
    let pod = world.wait_done("needs-pvc").await;
    assert_eq!(phase(&pod), "Succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_stops_its_processes_and_stop_leaves_nothing_behind() {
    let mut world = World::new("kl-delete").await;
    // A child process in the group too, and one that ignores SIGTERM.
    world.sh_pod("sleeper", "sleep 600 & wait").await;
    let mut spec = sh_spec("trap '' TERM; sleep 600 & while true; do wait; done");
    spec["terminationGracePeriodSeconds"] = json!(2);
    world.create_pod("stubborn", json!({}), spec).await;
    world.sh_pod("survivor", "sleep 600 & wait").await;
    let pods = world.pods();
    let mut uids = Vec::new();
    for name in ["sleeper", "stubborn", "survivor"] {
        let pod = world.wait_pod(name, "Running", |pod| phase(pod) == "Running").await;
        let uid = pod.metadata.uid.clone().unwrap();
        until("the Pod's processes", WAIT, || async { (processes_of_pod(&uid).len() >= 2).then_some(()) }).await;
        uids.push(uid);
    }

    for (name, uid) in [("sleeper", &uids[0]), ("stubborn", &uids[1])] {
        let started = std::time::Instant::now();
        pods.delete(name, &DeleteParams::default()).await.unwrap();
        until("the Pod gone from the API", WAIT, || async {
            pods.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
        assert_eq!(processes_of_pod(uid), Vec::<i32>::new(), "{name}'s processes are gone");
        if name == "stubborn" {
            assert!(started.elapsed() >= Duration::from_secs(2), "SIGKILL only after the grace period");
        }
    }

    // A Pod removed outright (grace 0) is killed at once.
    world.sh_pod("forced", "trap '' TERM; sleep 600 & while true; do wait; done").await;
    let pod = world.wait_pod("forced", "Running", |pod| phase(pod) == "Running").await;
    let uid = pod.metadata.uid.clone().unwrap();
    until("the Pod's processes", WAIT, || async { (processes_of_pod(&uid).len() >= 2).then_some(()) }).await;
    pods.delete("forced", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    until("the forced Pod's processes gone", WAIT, || async { processes_of_pod(&uid).is_empty().then_some(()) }).await;

    // stop(): the last Pod's processes end, its object stays.
    world.kubelet.take().unwrap().stop().await;
    assert_eq!(processes_of_pod(&uids[2]), Vec::<i32>::new());
    assert!(pods.get_opt("survivor").await.unwrap().is_some());
}
