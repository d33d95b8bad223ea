//! What the real Kubegres's templates and the real controllers need from
//! the process kubelet: a root filesystem of the container's own (subPath
//! file mounts with their modes, nothing written to the host), read-only
//! roots, liveness and startup probes, StatefulSet and Job Pods with the
//! volumes and tokens admission gave them, and the truth about images.

use std::path::Path;

use harness::wait::until;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

use super::support::*;

/// Paths a container of these tests mounts or writes: none may appear on the host.
const HOST_PATHS: [&str; 5] = [
    "/etc/postgres.conf",
    "/docker-entrypoint-initdb.d",
    "/tmp/backup_database.sh",
    "/etc/written-by-a-pod",
    "/usr/local/written-by-a-pod",
];

/// The restart count of container `main`, once it has a status.
fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == "main"))
        .map_or(0, |c| c.restart_count)
}

fn assert_host_untouched(when: &str) {
    for path in HOST_PATHS {
        assert!(!Path::new(path).exists(), "{path} exists on the host {when}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subpath_files_have_their_modes_and_nothing_reaches_the_host() {
    assert_host_untouched("before the test");
    let world = World::new("kl-rootfs").await;
    let _: ConfigMap = world
        .create(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "base" }, "data": {
            "postgres.conf": "listen_addresses = '*'\n",
            "init.sh": "#!/bin/sh\necho init ran\n",
            "backup_database.sh": "#!/bin/bash\nset -e\necho \"backup as $(id -u) to $DEST\"\n",
        } }))
        .await;
    let script = format!(
        r#"
        echo "conf: $(cat /etc/postgres.conf) mode $(stat -c %a /etc/postgres.conf)"
        echo "init: $(/docker-entrypoint-initdb.d/init.sh) mode $(stat -c %a /docker-entrypoint-initdb.d/init.sh)"
        echo "script: $(sh -c /tmp/backup_database.sh)"
        echo x > /etc/written-by-a-pod && echo "etc: writable"
        echo x > /usr/local/written-by-a-pod && echo "usr: writable"
        echo "passwd: $(grep -c '^postgres:' /etc/passwd)"
        if [ -e {dir} ]; then echo "kubelet dir: visible"; else echo "kubelet dir: hidden"; fi
        echo "tmp: $(ls -A /tmp | tr '\n' ' ')"
        echo "shm: $(stat -c %a /dev/shm) null: $(echo gone > /dev/null && echo ok)"
        echo done
        sleep 600
    "#,
        dir = world.dir.path().display()
    );
    let mut spec = sh_spec(&script);
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["volumes"] = json!([{ "name": "base", "configMap": { "name": "base", "defaultMode": 0o777 } }]);
    spec["containers"][0]["env"] = json!([{ "name": "DEST", "value": "/var/lib/backup" }]);
    spec["containers"][0]["volumeMounts"] = json!([
        { "name": "base", "mountPath": "/etc/postgres.conf", "subPath": "postgres.conf" },
        { "name": "base", "mountPath": "/docker-entrypoint-initdb.d/init.sh", "subPath": "init.sh" },
        { "name": "base", "mountPath": "/tmp/backup_database.sh", "subPath": "backup_database.sh" },
    ]);
    world.create_pod("files", json!({}), spec).await;
    let log = until("the report", WAIT, || async {
        let path = world.kubelet().pod_log_path(&world.ns, "files", "main")?;
        let log = std::fs::read_to_string(path).unwrap_or_default();
        log.contains("\ndone").then_some(log)
    })
    .await;
    for line in [
        "conf: listen_addresses = '*' mode 777",
        "init: init ran mode 777",
        "script: backup as 0 to /var/lib/backup",
        "etc: writable",
        "usr: writable",
        "passwd: 1",
        "kubelet dir: hidden",
        "tmp: backup_database.sh ",
        "shm: 1777 null: ok",
    ] {
        assert!(log.lines().any(|l| l.trim_end() == line.trim_end()), "expected {line:?} in\n{log}");
    }
    assert!(
        log.starts_with("process-kubelet: image \"busybox:1.36\" is not pulled: this container runs /bin/sh"),
        "{log}"
    );
    assert_host_untouched("while the Pod runs");
    let pods = world.pods();
    pods.delete("files", &DeleteParams::default()).await.unwrap();
    until("the Pod gone", WAIT, || async { pods.get_opt("files").await.unwrap().is_none().then_some(()) }).await;
    assert_host_untouched("after the Pod is gone");

    // readOnlyRootFilesystem: the root, its overlays and /tmp refuse writes; volumes do not.
    let mut spec = sh_spec(
        "for p in /etc/x /usr/x /x /tmp/x /scratch/x; do if echo x > $p 2>/dev/null; then echo \"$p rw\"; else echo \"$p ro\"; fi; done",
    );
    spec["volumes"] = json!([{ "name": "scratch", "emptyDir": {} }]);
    spec["containers"][0]["volumeMounts"] = json!([{ "name": "scratch", "mountPath": "/scratch" }]);
    spec["containers"][0]["securityContext"] = json!({ "readOnlyRootFilesystem": true });
    world.create_pod("read-only", json!({}), spec).await;
    let pod = world.wait_done("read-only").await;
    assert_eq!(phase(&pod), "Succeeded");
    let log = world.log("read-only", "main");
    for line in ["/etc/x ro", "/usr/x ro", "/x ro", "/tmp/x ro", "/scratch/x rw"] {
        assert!(log.lines().any(|l| l == line), "expected {line:?} in\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_and_startup_probes_restart_the_container() {
    let world = World::new("kl-probes").await;
    // Alive for a while, then the liveness probe fails twice: killed, restarted.
    let mut spec = sh_spec("touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 600");
    spec["restartPolicy"] = json!("Always");
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"][0]["livenessProbe"] = json!({
        "exec": { "command": ["test", "-e", "/tmp/alive"] }, "periodSeconds": 1, "failureThreshold": 2,
    });
    world.create_pod("liveness", json!({}), spec).await;
    let pod = world.wait_pod("liveness", "restarted by its liveness probe", |pod| restarts(pod) >= 1).await;
    let last = container_status(&pod, "main").last_state.clone().unwrap().terminated.expect("the killed run");
    assert_eq!(last.reason.as_deref(), Some("Error"), "{last:?}");
    assert_eq!(last.exit_code, 143, "SIGTERM ended it: {last:?}");

    // A startup probe that never succeeds: not started, never ready, restarted.
    let mut spec = sh_spec("exec sleep 600");
    spec["restartPolicy"] = json!("Always");
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"][0]["startupProbe"] =
        json!({ "exec": { "command": ["false"] }, "periodSeconds": 1, "failureThreshold": 2 });
    spec["containers"][0]["readinessProbe"] = json!({ "exec": { "command": ["true"] }, "periodSeconds": 1 });
    world.create_pod("startup", json!({}), spec).await;
    let pod = world
        .wait_pod("startup", "running", |pod| {
            phase(pod) == "Running" && pod.status.as_ref().is_some_and(|s| s.container_statuses.is_some())
        })
        .await;
    let status = container_status(&pod, "main");
    assert_eq!((status.started, status.ready), (Some(false), false));
    world.wait_pod("startup", "restarted by its startup probe", |pod| restarts(pod) >= 1).await;
    let pod = world.pods().get("startup").await.unwrap();
    assert!(!is_ready(&pod), "readiness is not probed before the startup probe succeeds");

    // A startup probe that succeeds: started, then ready.
    let mut spec = sh_spec("sleep 1; touch /tmp/up; exec sleep 600");
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"][0]["startupProbe"] =
        json!({ "exec": { "command": ["test", "-e", "/tmp/up"] }, "periodSeconds": 1, "failureThreshold": 10 });
    world.create_pod("starts", json!({}), spec).await;
    let pod = world.wait_pod("starts", "Ready", is_ready).await;
    assert_eq!(container_status(&pod, "main").started, Some(true));
    assert_eq!(container_status(&pod, "main").restart_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_and_job_pods_run_with_their_claims_and_tokens() {
    let world = World::new("kl-workloads").await;
    let _: Service = world
        .create(json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web" },
                         "spec": { "clusterIP": "None", "selector": { "app": "web" }, "ports": [{ "port": 80 }] } }))
        .await;
    let _: StatefulSet = world
        .create(json!({ "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": { "name": "web" }, "spec": {
            "serviceName": "web", "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "volumeClaimTemplates": [{ "metadata": { "name": "data" }, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "10Mi" } } } }],
            "template": { "metadata": { "labels": { "app": "web" } }, "spec": {
                "nodeSelector": { "kubernetes.io/hostname": world.node },
                "automountServiceAccountToken": false,
                "terminationGracePeriodSeconds": 1,
                "containers": [{ "name": "main", "image": "busybox", "command": ["sh", "-c",
                    "hostname > /data/who; touch /tmp/ready; exec sleep 600"],
                    "readinessProbe": { "exec": { "command": ["test", "-e", "/tmp/ready"] }, "periodSeconds": 1 },
                    "volumeMounts": [{ "name": "data", "mountPath": "/data" }] }],
            } },
        } }))
        .await;
    let pod = world.wait_pod("web-0", "Ready", is_ready).await;
    assert_eq!(pod.spec.as_ref().unwrap().subdomain.as_deref(), Some("web"));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(world.admin.clone(), &world.ns);
    let claim = claims.get("data-web-0").await.unwrap();
    assert_eq!(claim.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Bound"));
    assert_eq!(claim.spec.as_ref().unwrap().storage_class_name.as_deref(), Some("standard"), "the default class");
    let volume_name = claim.spec.unwrap().volume_name.unwrap();
    let pv = Api::<PersistentVolume>::all(world.admin.clone()).get(&volume_name).await.unwrap();
    let folder = world.dir.path().join("volumes").join(&world.ns).join("data-web-0");
    assert_eq!(pv.spec.unwrap().host_path.unwrap().path, folder.display().to_string());
    assert_eq!(std::fs::read_to_string(folder.join("who")).unwrap(), "web-0\n");

    // A Job's Pod: the token volume admission added, read in-cluster style;
    // the Pod's own name through the StatefulSet's headless Service.
    let job: Job = world
        .create(json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "once" }, "spec": {
            "backoffLimit": 0,
            "template": { "spec": {
                "nodeSelector": { "kubernetes.io/hostname": world.node },
                "restartPolicy": "Never",
                "containers": [{ "name": "main", "image": "busybox", "command": ["sh", "-c", format!(
                    "set -e; test -s /var/run/secrets/kubernetes.io/serviceaccount/token; \
                     test \"$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)\" = {ns}; \
                     getent hosts web-0.web.{ns}.svc.cluster.local", ns = world.ns)] }],
            } },
        } }))
        .await;
    let jobs: Api<Job> = Api::namespaced(world.admin.clone(), &world.ns);
    until("the Job to succeed", WAIT, || async {
        let job = jobs.get("once").await.unwrap();
        job.status.and_then(|s| s.succeeded).filter(|n| *n == 1).map(|_| ())
    })
    .await;
    assert!(job.metadata.uid.is_some());
    let pods: Api<Pod> = world.pods();
    let job_pod = pods.list(&kube::api::ListParams::default().labels("job-name=once")).await.unwrap().items;
    assert_eq!(job_pod.len(), 1);
    let volumes = job_pod[0].spec.as_ref().unwrap().volumes.clone().unwrap_or_default();
    assert!(volumes.iter().any(|v| v.name.starts_with("kube-api-access-")), "{volumes:?}");

    // The postgres image: its tag is not honoured, and the log says so.
    let mut spec = sh_spec("true");
    spec["containers"][0]["image"] = json!("postgres:16.1");
    spec["containers"][0]["command"] = json!(["postgres", "--version"]);
    world.create_pod("pg-version", json!({}), spec).await;
    let pod = world.wait_done("pg-version").await;
    assert_eq!(phase(&pod), "Succeeded");
    let log = world.log("pg-version", "main");
    let major = harness::pg::bindir().parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        log.contains(&format!(
            "image \"postgres:16.1\" is not pulled: this container runs this machine's PostgreSQL {major}"
        )),
        "{log}"
    );
    assert!(log.contains(&format!("postgres (PostgreSQL) {major}.")), "{log}");
}
