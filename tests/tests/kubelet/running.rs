//! A restore-agent Pod, the environment, exit codes and termination messages.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use serde_json::json;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_agent_pod_runs_and_succeeds_with_its_output_in_the_log() {
    let agent = harness::kubelet::Program::restore_agent(harness::agent::agent_bin().to_path_buf());
    let world = World::with_images("kl-agent", images().with("restore-agent", agent)).await;
    create_pvc(&world, "backups").await;
    let folder = world.dir.path().join("volumes").join(&world.ns).join("backups");
    std::fs::create_dir_all(&folder).unwrap();
    let dump = b"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n";
    std::fs::write(folder.join("dump.sql"), dump).unwrap();

    // Hardened as the operator's restore Pod: non-root, read-only root.
    world
        .create_pod(
            "inspect",
            json!({}),
            json!({
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "securityContext": { "runAsNonRoot": true },
                "volumes": [
                    { "name": "source", "persistentVolumeClaim": { "claimName": "backups", "readOnly": true } },
                    { "name": "tmp", "emptyDir": {} },
                ],
                "containers": [{
                    "name": "restore-agent",
                    "image": "ghcr.io/kubegres-restore/restore-agent:0.1.0",
                    "args": ["inspect", "--source", "/backups/dump.sql"],
                    "securityContext": { "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false },
                    "volumeMounts": [
                        { "name": "source", "mountPath": "/backups", "readOnly": true },
                        { "name": "tmp", "mountPath": "/tmp" },
                    ],
                }],
            }),
        )
        .await;
    let pod = world.wait_done("inspect").await;
    let log = world.log("inspect", "restore-agent");
    assert_eq!(phase(&pod), "Succeeded", "{:?}\n{log}", pod.status);
    let status = container_status(&pod, "restore-agent");
    let terminated = status.state.as_ref().unwrap().terminated.as_ref().expect("terminated");
    assert_eq!(terminated.exit_code, 0);
    assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    assert!(terminated.started_at.is_some() && terminated.finished_at.is_some());
    assert_eq!(status.image, "ghcr.io/kubegres-restore/restore-agent:0.1.0");
    assert!(!status.ready);
    assert!(log.contains("plain SQL dump"), "the agent's stdout is in the log:\n{log}");
    assert!(log.contains("/backups/dump.sql"), "{log}");

    // Scheduled by the kubelet's scheduler, on its node, with an IP of its own.
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(world.node.as_str()));
    let conditions = pod.status.as_ref().unwrap().conditions.clone().unwrap();
    let condition = |t: &str| conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(condition("PodScheduled"), Some(("True".to_string(), None)));
    assert_eq!(condition("Initialized"), Some(("True".to_string(), None)));
    assert_eq!(condition("Ready"), Some(("False".to_string(), Some("PodCompleted".to_string()))));
    assert!(pod_ip(&pod).starts_with("127."));
    assert_eq!(pod.status.as_ref().unwrap().host_ip.as_deref(), Some("127.0.0.1"));

    // The Node is registered and Ready.
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(world.admin.clone());
    let node = nodes.get(&world.node).await.unwrap();
    assert_eq!(node.metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"], world.node);
    let ready = node.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_comes_from_values_secrets_config_maps_and_fields_never_from_the_host() {
    let world = World::new("kl-env").await;
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some(), "cargo sets CARGO_PKG_NAME for tests");
    let _: Secret = world
        .create(json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "creds" },
                         "stringData": { "password": "s3cr3t", "user": "alice" } }))
        .await;
    let _: ConfigMap = world
        .create(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "settings" },
                         "data": { "mode": "fast", "level": "3" } }))
        .await;
    let _: ServiceAccount =
        world.create(json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "robot" } })).await;
    let mut spec = sh_spec("env | sort; echo \"args: $0 $1\"");
    spec["serviceAccountName"] = json!("robot");
    spec["containers"][0]["command"] =
        json!(["sh", "-c", "env | sort; echo \"argv: $0 $1\"", "$(GREETING)", "$$(GREETING)"]);
    spec["containers"][0]["env"] = json!([
        { "name": "GREETING", "value": "hello" },
        { "name": "COMPOSED", "value": "$(GREETING)-world" },
        { "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "password" } } },
        { "name": "MODE", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "mode" } } },
        { "name": "OPTIONAL", "valueFrom": { "secretKeyRef": { "name": "absent", "key": "x", "optional": true } } },
        { "name": "MY_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
        { "name": "MY_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
        { "name": "MY_UID", "valueFrom": { "fieldRef": { "fieldPath": "metadata.uid" } } },
        { "name": "MY_NODE", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } },
        { "name": "MY_ACCOUNT", "valueFrom": { "fieldRef": { "fieldPath": "spec.serviceAccountName" } } },
        { "name": "MY_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
        { "name": "HOST_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.hostIP" } } },
    ]);
    spec["containers"][0]["envFrom"] = json!([
        { "prefix": "CFG_", "configMapRef": { "name": "settings" } },
        { "secretRef": { "name": "creds" } },
    ]);
    let created = world.create_pod("env", json!({}), spec).await;
    let pod = world.wait_done("env").await;
    let log = world.log("env", "main");
    assert_eq!(phase(&pod), "Succeeded", "{log}");

    let vars: Vec<(&str, &str)> = log.lines().filter_map(|line| line.split_once('=')).collect();
    let get = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let uid = created.metadata.uid.clone().unwrap();
    let ip = pod_ip(&pod);
    let port = control_plane().server_url().rsplit(':').next().unwrap().to_string();
    let expected = [
        ("GREETING", "hello"),
        ("COMPOSED", "hello-world"),
        ("PASSWORD", "s3cr3t"),
        ("MODE", "fast"),
        ("MY_NAME", "env"),
        ("MY_NAMESPACE", "kl-env"),
        ("MY_UID", uid.as_str()),
        ("MY_NODE", world.node.as_str()),
        ("MY_ACCOUNT", "robot"),
        ("MY_IP", ip.as_str()),
        ("HOST_IP", "127.0.0.1"),
        ("CFG_mode", "fast"),
        ("CFG_level", "3"),
        ("password", "s3cr3t"),
        ("user", "alice"),
        ("HOSTNAME", "env"),
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", port.as_str()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", port.as_str()),
        ("PATH", harness::kubelet::DEFAULT_PATH),
        ("PROCESS_KUBELET_POD_IP", ip.as_str()),
        ("PROCESS_KUBELET_POD_UID", uid.as_str()),
    ];
    for (name, value) in expected {
        assert_eq!(get(name), Some(value), "{name} in\n{log}");
    }
    assert!(log.contains("argv: hello $(GREETING)"), "$(VAR) expansion in command: {log}");
    // Exactly these variables (sh adds PWD, SHLVL and _): nothing from the host.
    let names: BTreeSet<&str> =
        vars.iter().map(|(n, _)| *n).filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).collect();
    let allowed: BTreeSet<&str> = expected.iter().map(|(n, _)| *n).chain(["PWD", "SHLVL", "_"]).collect();
    assert_eq!(names.difference(&allowed).collect::<Vec<_>>(), Vec::<&&str>::new(), "unexpected variables:\n{log}");
    assert_eq!(get("CARGO_PKG_NAME"), None);
    assert_eq!(get("OPTIONAL"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_container_reports_exit_code_reason_and_termination_message() {
    let world = World::new("kl-fail").await;
    world.sh_pod("from-file", "echo 'the reason is in the file' > /dev/termination-log; echo noise; exit 3").await;
    let mut spec = sh_spec("for i in $(seq 1 100); do echo line $i; done; exit 2");
    spec["containers"][0]["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
    world.create_pod("from-logs", json!({}), spec).await;
    let mut spec = sh_spec("echo custom > /var/log/why; exit 1");
    spec["containers"][0]["terminationMessagePath"] = json!("/var/log/why");
    world.create_pod("custom-path", json!({}), spec).await;
    let mut spec = sh_spec("true");
    spec["containers"][0]["command"] = json!(["no-such-program"]);
    world.create_pod("no-program", json!({}), spec).await;

    let terminated =
        |pod: &Pod| container_status(pod, "main").state.as_ref().unwrap().terminated.clone().expect("terminated");
    let pod = world.wait_done("from-file").await;
    assert_eq!(phase(&pod), "Failed");
    let t = terminated(&pod);
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert_eq!(t.message.as_deref(), Some("the reason is in the file\n"));

    let pod = world.wait_done("from-logs").await;
    let t = terminated(&pod);
    assert_eq!((t.exit_code, t.reason.as_deref()), (2, Some("Error")));
    let message = t.message.unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 80, "the last 80 lines: {message}");
    assert_eq!((lines[0], lines[79]), ("line 21", "line 100"));

    let pod = world.wait_done("custom-path").await;
    assert_eq!(terminated(&pod).message.as_deref(), Some("custom\n"));

    let pod = world.wait_done("no-program").await;
    let t = terminated(&pod);
    assert_eq!((t.exit_code, t.reason.as_deref()), (128, Some("StartError")));
    assert!(t.message.unwrap().contains("\"no-such-program\": executable file not found in $PATH"));

    // restartPolicy OnFailure: restarted with a backoff until it succeeds.
    let mut spec = sh_spec("if [ -e /state/second ]; then exit 0; fi; touch /state/second; exit 1");
    spec["restartPolicy"] = json!("OnFailure");
    spec["volumes"] = json!([{ "name": "state", "emptyDir": {} }]);
    spec["containers"][0]["volumeMounts"] = json!([{ "name": "state", "mountPath": "/state" }]);
    world.create_pod("retry", json!({}), spec).await;
    let pod = world.wait_done("retry").await;
    assert_eq!(phase(&pod), "Succeeded");
    let status = container_status(&pod, "main");
    assert_eq!(status.restart_count, 1);
    let last = status.last_state.as_ref().unwrap().terminated.as_ref().expect("the first run");
    assert_eq!(last.exit_code, 1);
}
