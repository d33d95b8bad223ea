//! The restore Pod built from the spec.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;

/// The Pod the first attempt of this spec creates.
fn first_pod(spec: Value) -> Pod {
    let mut o = observed(restore(spec));
    o.target = ready_cluster(1);
    o.allowed_images = vec!["registry.example/*".to_string()];
    o.copy_from_spec = cluster_spec().as_object().cloned();
    let mut d = decide(&o);
    for _ in 0..10 {
        if d.actions.iter().any(|a| matches!(a, Action::CreateRestorePod { .. })) {
            break;
        }
        o = apply(&o, &d);
        d = decide(&o);
    }
    d.actions
        .into_iter()
        .find_map(|action| match action {
            Action::CreateRestorePod { pod, .. } => Some(*pod),
            _ => None,
        })
        .unwrap()
}

fn args(pod: &Pod) -> Vec<String> {
    pod.spec.as_ref().unwrap().containers[0].args.clone().unwrap()
}

fn env(pod: &Pod) -> Value {
    let env = pod.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
    Value::Object(env.into_iter().map(|var| (var.name.clone(), serde_json::to_value(var).unwrap())).collect())
}

#[test]
fn a_file_source_mounts_the_claim_read_only_and_picks_the_latest() {
    let pod = first_pod(default_spec());
    assert_eq!(
        args(&pod),
        [
            "restore",
            "--source",
            "/var/lib/backup",
            "--pick",
            "latest",
            "--target",
            "postgres://postgres@restored.db.svc:5432/postgres",
            "--format",
            "auto",
            "--compression",
            "auto",
            "--engine",
            "auto",
            "--jobs",
            "1",
            "--on-error",
            "stop",
            // A new Kubegres cluster's own roles keep the passwords of its Secret.
            "--keep-role",
            "postgres",
            "--keep-role",
            "replication",
            "--progress",
            "log",
            "--termination-log",
            "/dev/termination-log",
            "--log-format",
            "json",
            "--kubegres-restore",
            "db/orders",
        ]
    );
    let value = serde_json::to_value(&pod).unwrap();
    let spec = &value["spec"];
    assert_eq!(
        spec["volumes"][1],
        json!({"name": "source", "persistentVolumeClaim": {"claimName": "backups", "readOnly": true}})
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"][1],
        json!({"name": "source", "mountPath": "/var/lib/backup", "readOnly": true})
    );
    assert_eq!(
        env(&pod)["PGPASSWORD"],
        json!({"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg-secret", "key": "superUserPassword"}}})
    );
}

#[test]
fn the_pod_is_hardened_owned_labelled_and_named() {
    let pod = first_pod(default_spec());
    let value = serde_json::to_value(&pod).unwrap();
    assert_eq!(value["metadata"]["name"], "orders-restore-1");
    assert_eq!(value["metadata"]["namespace"], "db");
    assert_eq!(
        value["metadata"]["labels"],
        json!({
            "app.kubernetes.io/managed-by": "kubegres-restore-operator",
            "kubegres.reactive-tech.io/restore": "orders",
            "kubegres.reactive-tech.io/restore-attempt": "1",
            "kubegres.reactive-tech.io/restore-uid": "uid-1",
        })
    );
    assert_eq!(
        value["metadata"]["ownerReferences"],
        json!([{"apiVersion": "kubegres.reactive-tech.io/v1", "kind": "KubegresRestore", "name": "orders",
                "uid": "uid-1", "controller": true, "blockOwnerDeletion": true}])
    );
    let spec = &value["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["serviceAccountName"], "orders-restore");
    assert_eq!(spec["securityContext"], json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}));
    let container = &spec["containers"][0];
    assert_eq!(container["image"], crate::decide::DEFAULT_AGENT_IMAGE);
    assert_eq!(container["terminationMessagePolicy"], "FallbackToLogsOnError");
    assert_eq!(
        container["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
               "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    );
}

#[test]
fn the_agent_knobs_come_from_the_spec() {
    let mut spec = default_spec();
    spec["format"] = json!("custom");
    spec["compression"] = json!("zstd");
    spec["engine"] = json!("pg-tools");
    spec["jobs"] = json!(4);
    spec["onError"] = json!("continue");
    spec["sha256"] = json!("ab".repeat(32));
    spec["databaseName"] = json!("orders");
    spec["env"] = json!([{"name": "TZ", "value": "UTC"}, {"name": "PGPASSWORD", "value": "overridden"}]);
    spec["dataSource"]["file"]["snapshot"] = json!("daily/orders.dump");
    spec["agent"] = json!({
        "image": "registry.example/agent:1",
        "imagePullPolicy": "Always",
        "imagePullSecrets": [{"name": "pull"}],
        "resources": {"limits": {"memory": "512Mi"}},
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "restore", "operator": "Exists"}]
    });
    let pod = first_pod(spec);
    let args = args(&pod).join(" ");
    assert!(args.starts_with("restore --source /var/lib/backup/daily/orders.dump --target"), "{args}");
    assert!(!args.contains("--pick"), "{args}");
    assert!(args.contains("postgres://postgres@restored.db.svc:5432/orders"), "{args}");
    for expected in [
        "--format custom",
        "--compression zstd",
        "--engine pg-tools",
        "--jobs 4",
        "--on-error continue",
        &format!("--sha256 {}", "ab".repeat(32)),
    ] {
        assert!(args.contains(expected), "{expected} not in {args}");
    }
    let value = serde_json::to_value(&pod).unwrap();
    let spec = &value["spec"];
    assert_eq!(spec["containers"][0]["image"], "registry.example/agent:1");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(spec["containers"][0]["resources"], json!({"limits": {"memory": "512Mi"}}));
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "pull"}]));
    assert_eq!(spec["nodeSelector"], json!({"disk": "ssd"}));
    assert_eq!(spec["tolerations"], json!([{"key": "restore", "operator": "Exists"}]));
    let env = env(&pod);
    assert_eq!(env["TZ"]["value"], "UTC");
    // The operator's PGPASSWORD wins over the user's.
    assert!(env["PGPASSWORD"]["value"].is_null());
    assert!(!value.to_string().contains("overridden"));
}

#[test]
fn s3_credentials_come_from_the_secret() {
    let mut spec = default_spec();
    spec["dataSource"]["file"] = Value::Null;
    spec["dataSource"]["s3"] = json!({
        "bucket": "backups", "prefix": "main/", "endpoint": "https://minio.example:9000", "region": "eu-west-1",
        "pathStyle": true,
        "credentialsSecret": {"name": "s3", "sessionTokenKey": "token"}
    });
    let pod = first_pod(spec);
    let args = args(&pod).join(" ");
    assert!(
        args.contains(
            "--source s3://backups/main/ --pick latest --s3-endpoint https://minio.example:9000 --s3-region eu-west-1 \
             --s3-path-style"
        ),
        "{args}"
    );
    let env = env(&pod);
    for (name, key) in [
        ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ("AWS_SESSION_TOKEN", "token"),
    ] {
        assert_eq!(env[name]["valueFrom"], json!({"secretKeyRef": {"name": "s3", "key": key}}), "{name}");
    }
}

#[test]
fn http_headers_and_ca_come_from_secrets() {
    let mut spec = default_spec();
    spec["dataSource"]["file"] = Value::Null;
    spec["dataSource"]["http"] = json!({
        "url": "https://dumps.example/db.sql.gz",
        "headersSecret": {"name": "token"},
        "caSecret": {"name": "ca", "key": "root.pem"}
    });
    let pod = first_pod(spec);
    let args = args(&pod).join(" ");
    assert!(
        args.contains("--source https://dumps.example/db.sql.gz --http-ca-file /etc/restore-agent/ca/ca.crt"),
        "{args}"
    );
    let env = env(&pod);
    assert_eq!(
        env["RESTORE_AGENT_HTTP_HEADERS"]["valueFrom"],
        json!({"secretKeyRef": {"name": "token", "key": "headers"}})
    );
    let value = serde_json::to_value(&pod).unwrap();
    assert_eq!(
        value["spec"]["volumes"][1],
        json!({"name": "http-ca", "secret": {"secretName": "ca", "items": [{"key": "root.pem", "path": "ca.crt"}]}})
    );
}

#[test]
fn an_existing_server_gets_user_password_and_ssl_mode_from_the_spec() {
    let pod = first_pod(json!({
        "dataSource": {"s3": {"bucket": "b", "key": "dump.gz"}},
        "target": {"postgres": {"host": "pg.example", "port": 6432, "database": "app", "sslMode": "verify-full",
                                "allowNonEmpty": true, "credentialsSecret": {"name": "pg", "usernameKey": "user"}}}
    }));
    let args = args(&pod).join(" ");
    assert!(args.contains("--target postgres://pg.example:6432/app"), "{args}");
    assert!(args.contains("--allow-non-empty"), "{args}");
    let env = env(&pod);
    assert_eq!(env["PGUSER"]["valueFrom"], json!({"secretKeyRef": {"name": "pg", "key": "user"}}));
    assert_eq!(env["PGPASSWORD"]["valueFrom"], json!({"secretKeyRef": {"name": "pg", "key": "password"}}));
    assert_eq!(env["PGSSLMODE"]["value"], "verify-full");
}

/// Whatever the spec, every credential the Pod gets is a Secret reference:
/// no env var holding one has a literal value, and nothing secret-looking is
/// on the command line.
#[test]
fn no_secret_value_anywhere_in_the_pod() {
    let sources = [
        json!({"file": {"pvcName": "backups"}}),
        json!({"s3": {"bucket": "b", "key": "k", "credentialsSecret": {"name": "s3", "sessionTokenKey": "t"}}}),
        json!({"http": {"url": "https://dumps.example/x.gz", "headersSecret": {"name": "h"}, "caSecret": {"name": "c"}}}),
    ];
    for source in sources {
        let mut spec = default_spec();
        spec["dataSource"] = source;
        spec["dataSource"]["cluster"] = json!({"clusterSpec": cluster_spec()});
        let pod = first_pod(spec);
        let serialised = serde_json::to_string(&pod).unwrap();
        for var in pod.spec.as_ref().unwrap().containers[0].env.iter().flatten() {
            let secret = var.name.contains("PASSWORD")
                || var.name.starts_with("AWS_")
                || var.name == "PGUSER"
                || var.name == crate::decide::HTTP_HEADERS_ENV;
            if secret {
                assert!(var.value.is_none(), "{} has a literal value", var.name);
                assert!(var.value_from.as_ref().unwrap().secret_key_ref.is_some(), "{}", var.name);
            }
        }
        let args = args(&pod).join(" ");
        for word in ["password", "PGPASSWORD", "AWS_SECRET", "Authorization", "superUserPassword"] {
            assert!(!args.contains(word), "{word} on the command line: {args}");
        }
        assert!(!serialised.contains("\"value\":\"hunter2\""));
    }
}
