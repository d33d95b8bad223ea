//! Volumes, /etc/hosts, the private mount namespace and the ServiceAccount token.

use harness::wait::until;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::json;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_hosts_and_a_private_mount_namespace() {
    let world = World::new("kl-volumes").await;
    create_pvc(&world, "data").await;
    let folder = world.dir.path().join("volumes").join(&world.ns).join("data");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("hello.txt"), "from the PVC\n").unwrap();
    std::fs::write(folder.join("sub/inner.txt"), "in the subPath\n").unwrap();
    let _: Secret = world
        .create(json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "tls" },
                         "stringData": { "tls.key": "KEY", "tls.crt": "CERT" } }))
        .await;
    let _: ConfigMap = world
        .create(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "conf" },
                         "data": { "app.conf": "x = 1\n", "other": "y" } }))
        .await;

    // A Ready Pod behind a Service, for /etc/hosts.
    world.create_pod("backend", json!({ "app": "db" }), sh_spec("exec sleep 600")).await;
    let _: Service = world
        .create(json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "db" },
                         "spec": { "selector": { "app": "db" }, "ports": [{ "port": 5432 }] } }))
        .await;
    let backend = world.wait_pod("backend", "Ready", is_ready).await;
    let backend_ip = pod_ip(&backend);

    let script = r#"
        set -u
        echo "pvc: $(cat /data/hello.txt)"
        echo "sub: $(cat /sub/inner.txt)"
        if echo x > /data/new.txt 2>/dev/null; then echo "pvc-ro: writable"; else echo "pvc-ro: read-only"; fi
        echo "rw: $(echo written > /rw/made-by-pod.txt && echo ok)"
        echo "key: $(cat /etc/tls/tls.key) mode $(stat -c %a /etc/tls/tls.key)"
        echo "conf: $(cat /etc/app/app.conf) mode $(stat -c %a /etc/app/app.conf) other $(test -e /etc/app/other && echo yes || echo no)"
        echo "init: $(cat /scratch/from-init)"
        echo "scratch-mode: $(stat -c %a /scratch)"
        for name in db db.kl-volumes db.kl-volumes.svc db.kl-volumes.svc.cluster.local kubernetes.default.svc; do
            echo "host $name: $(getent hosts $name | awk '{print $1}' | head -n1)"
        done
        echo "self: $(getent hosts $HOSTNAME | awk '{print $1}')"
        echo "hostname: $(hostname)"
        sleep 600
    "#;
    world
        .create_pod(
            "checker",
            json!({}),
            json!({
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "terminationGracePeriodSeconds": 1,
                "volumes": [
                    { "name": "data", "persistentVolumeClaim": { "claimName": "data" } },
                    { "name": "tls", "secret": { "secretName": "tls", "defaultMode": 0o400 } },
                    { "name": "conf", "configMap": { "name": "conf", "items": [{ "key": "app.conf", "path": "app.conf", "mode": 0o640 }] } },
                    { "name": "scratch", "emptyDir": {} },
                ],
                "initContainers": [{
                    "name": "prepare", "image": "busybox", "command": ["sh", "-c", "echo hi > /scratch/from-init"],
                    "volumeMounts": [{ "name": "scratch", "mountPath": "/scratch" }],
                }],
                "containers": [{
                    "name": "main", "image": "busybox", "command": ["sh", "-c", script],
                    "volumeMounts": [
                        { "name": "data", "mountPath": "/data", "readOnly": true },
                        { "name": "data", "mountPath": "/rw" },
                        { "name": "data", "mountPath": "/sub", "subPath": "sub" },
                        { "name": "tls", "mountPath": "/etc/tls" },
                        { "name": "conf", "mountPath": "/etc/app" },
                        { "name": "scratch", "mountPath": "/scratch" },
                    ],
                }],
            }),
        )
        .await;
    let pod = world.wait_pod("checker", "Running", |pod| phase(pod) == "Running").await;
    let log = until("the checker's report", WAIT, || async {
        let log = world.log("checker", "main");
        log.contains("hostname:").then_some(log)
    })
    .await;
    let expect = |line: &str| assert!(log.lines().any(|l| l.trim() == line), "expected {line:?} in\n{log}");
    expect("pvc: from the PVC");
    expect("sub: in the subPath");
    expect("pvc-ro: read-only");
    expect("rw: ok");
    expect("key: KEY mode 400");
    expect("conf: x = 1 mode 640 other no");
    expect("init: hi");
    expect("scratch-mode: 777");
    for name in ["db", "db.kl-volumes", "db.kl-volumes.svc", "db.kl-volumes.svc.cluster.local"] {
        expect(&format!("host {name}: {backend_ip}"));
    }
    expect("host kubernetes.default.svc: 127.0.0.1");
    expect(&format!("self: {}", pod_ip(&pod)));
    expect("hostname: checker");
    assert_eq!(std::fs::read_to_string(folder.join("rw-check")).ok(), None);
    assert_eq!(std::fs::read_to_string(folder.join("made-by-pod.txt")).unwrap(), "written\n");
    let init = pod.status.as_ref().unwrap().init_container_statuses.as_ref().unwrap();
    assert_eq!(init[0].state.as_ref().unwrap().terminated.as_ref().unwrap().reason.as_deref(), Some("Completed"));

    // The mounts live in the Pod's own namespace only: the host sees none.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let test_dir = world.dir.path().to_string_lossy().to_string();
    assert!(!mountinfo.contains(&test_dir), "a Pod's bind mount leaked to the host:\n{mountinfo}");
    assert!(!std::path::Path::new("/etc/tls/tls.key").exists());
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(!host_hosts.contains("db.kl-volumes"), "the host's /etc/hosts is untouched");

    // The hosts file follows the Service: a new selected Pod appears in it.
    // (Its readiness is an exec probe, run in the container.)
    let mut spec = sh_spec("touch /tmp/ready; exec sleep 600");
    spec["containers"][0]["readinessProbe"] =
        json!({ "exec": { "command": ["sh", "-c", "test -e /tmp/ready"] }, "periodSeconds": 1 });
    world.create_pod("backend-2", json!({ "app": "db" }), spec).await;
    let second = world.wait_pod("backend-2", "Ready", is_ready).await;
    let hosts_file = world.dir.path().join("pods").join(pod.metadata.uid.as_ref().unwrap()).join("etc-hosts");
    until("the second backend in the checker's /etc/hosts", WAIT, || async {
        let text = std::fs::read_to_string(&hosts_file).unwrap_or_default();
        text.contains(&format!("{}\tdb.kl-volumes ", pod_ip(&second))).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_token_reaches_the_apiserver_in_cluster() {
    let world = World::new("kl-token").await;
    let _: ServiceAccount =
        world.create(json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "reader" } })).await;
    let _: Role = world
        .create(
            json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": { "name": "pod-reader" },
                         "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] }] }),
        )
        .await;
    let _: RoleBinding = world
        .create(json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": { "name": "reader" },
                         "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader" },
                         "subjects": [{ "kind": "ServiceAccount", "name": "reader", "namespace": "kl-token" }] }))
        .await;
    // In-cluster config as client libraries do it: the env, the token, the CA.
    let script = r#"
        sa=/var/run/secrets/kubernetes.io/serviceaccount
        echo "namespace: $(cat $sa/namespace)"
        echo "token-mode: $(stat -c %a $sa/token)"
        if echo x > $sa/token 2>/dev/null; then echo "token: writable"; else echo "token: read-only"; fi
        code=$(curl -sS -o /tmp/me.json -w '%{http_code}' --cacert $sa/ca.crt -H "Authorization: Bearer $(cat $sa/token)" \
            "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$(cat $sa/namespace)/pods/$HOSTNAME")
        echo "get own pod: $code"
        code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert $sa/ca.crt -H "Authorization: Bearer $(cat $sa/token)" \
            "https://kubernetes.default.svc:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$(cat $sa/namespace)/secrets")
        echo "list secrets by service name: $code"
    "#;
    let mut spec = sh_spec(script);
    spec["serviceAccountName"] = json!("reader");
    spec["automountServiceAccountToken"] = json!(true);
    spec["volumes"] = json!([{ "name": "tmp", "emptyDir": {} }]);
    spec["containers"][0]["volumeMounts"] = json!([{ "name": "tmp", "mountPath": "/tmp" }]);
    spec["containers"][0]["securityContext"] = json!({ "runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": true });
    world.create_pod("in-cluster", json!({}), spec).await;
    let pod = world.wait_done("in-cluster").await;
    let log = world.log("in-cluster", "main");
    assert_eq!(phase(&pod), "Succeeded", "{log}");
    for line in [
        "namespace: kl-token",
        "token-mode: 644",
        "token: read-only",
        "get own pod: 200",
        "list secrets by service name: 403",
    ] {
        assert!(log.lines().any(|l| l.trim() == line), "expected {line:?} in\n{log}");
    }

    // Without the ServiceAccount, ServiceAccount admission refuses the Pod.
    let mut spec = sh_spec("true");
    spec["serviceAccountName"] = json!("nobody");
    spec["automountServiceAccountToken"] = json!(true);
    spec["nodeSelector"] = json!({ "kubernetes.io/hostname": world.node });
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "no-account" }, "spec": spec }),
    )
    .unwrap();
    match world.pods().create(&kube::api::PostParams::default(), &pod).await {
        Err(kube::Error::Api(status)) => {
            assert!(status.message.contains("serviceaccount \"nobody\" not found"), "{}", status.message)
        }
        other => panic!("a Pod with a missing ServiceAccount was admitted: {other:?}"),
    }
}
