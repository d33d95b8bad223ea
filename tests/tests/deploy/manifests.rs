//! deploy/ on a real kube-apiserver: deploy/install.yaml is what
//! deploy/kustomization.yaml generates; every document of it is accepted by a
//! server-side dry run with strict field validation; the operator's Pod
//! passes Pod Security `restricted`; the Deployment is hardened; and the
//! operator's ServiceAccount may do exactly what the controller needs,
//! checked verb by verb, rule by rule and by real calls (rbac.rs).
//!
//! The examples in deploy/examples are tested in crd.rs.
//!
//! The tests share one control plane (started on first use, with deploy/'s
//! namespace, CRD and RBAC and the stand-in Kubegres CRD installed) and each
//! works in its own namespace.

use std::collections::BTreeSet;
use std::path::PathBuf;

use harness::deploy::{
    BUNDLE_COMMAND, FIELD_MANAGER, Kustomization, NAMESPACE, OPERATOR, allowed, apply, bundle, bundle_documents,
    deploy_dir, install_kubegres_crd, install_operator_rbac, install_yaml_path, operator_client, resource_documents,
    wait_for_crd,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::{admin, api_error, control_plane, read_yaml};

fn deployment_yaml() -> Value {
    read_yaml(&deploy_dir().join("operator/deployment.yaml"))
}

/// The version every image of deploy/ is tagged with.
const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------------------
// The bundle

#[test]
fn install_yaml_is_generated_from_the_kustomization() {
    let on_disk = std::fs::read_to_string(install_yaml_path()).expect("deploy/install.yaml exists");
    let generated = bundle();
    if on_disk != generated {
        let line = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()));
        panic!(
            "deploy/install.yaml differs from what deploy/kustomization.yaml generates (first at line {}): \
             run `{BUNDLE_COMMAND}`",
            line + 1
        );
    }
}

#[test]
fn the_kustomization_installs_every_manifest_of_deploy_except_the_examples() {
    let listed: BTreeSet<PathBuf> = Kustomization::read().unwrap().paths().into_iter().collect();
    let mut manifests = BTreeSet::new();
    let mut directories = vec![deploy_dir()];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != deploy_dir().join("examples") {
                    directories.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "yaml")
                && path != install_yaml_path()
                && path != deploy_dir().join("kustomization.yaml")
            {
                manifests.insert(path);
            }
        }
    }
    assert_eq!(listed, manifests, "deploy/kustomization.yaml must list every manifest of deploy/ but the examples");

    // The bundle holds the same objects, in the order kustomize applies them.
    let from_resources: Vec<Value> = resource_documents().unwrap().into_iter().map(|(_, doc)| doc).collect();
    assert!(bundle_documents().unwrap() == from_resources, "deploy/install.yaml: run `{BUNDLE_COMMAND}`");
    let kinds: Vec<&str> = from_resources.iter().map(|doc| doc["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "Role",
            "ClusterRole",
            "RoleBinding",
            "ClusterRoleBinding",
            "Service",
            "Deployment"
        ]
    );
    let cluster_scoped = ["Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"];
    for doc in &from_resources {
        let expected = if cluster_scoped.contains(&doc["kind"].as_str().unwrap()) { None } else { Some(NAMESPACE) };
        assert_eq!(doc["metadata"]["namespace"].as_str(), expected, "{}", doc["metadata"]["name"]);
    }
}

// ---------------------------------------------------------------------------
// What the apiserver accepts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_document_of_the_bundle_is_accepted_by_a_server_side_dry_run() {
    let client = admin().await;
    let documents = bundle_documents().unwrap();
    let strict = PatchParams::apply(FIELD_MANAGER).validation_strict();
    // Namespaced dry runs need the namespace, and the CRD's objects need the CRD.
    for doc in documents.iter().filter(|doc| doc["kind"] == "Namespace" || doc["kind"] == "CustomResourceDefinition") {
        apply(&client, doc, &strict).await.unwrap_or_else(|error| panic!("{error}"));
        if doc["kind"] == "CustomResourceDefinition" {
            wait_for_crd(&client, doc["metadata"]["name"].as_str().unwrap()).await.unwrap();
        }
    }
    let dry_run = strict.clone().dry_run();
    for doc in &documents {
        let stored = apply(&client, doc, &dry_run).await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(stored.metadata.name.as_deref(), doc["metadata"]["name"].as_str());
        assert_eq!(stored.types.as_ref().unwrap().kind, doc["kind"].as_str().unwrap());
    }
    // A dry run stores nothing.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    assert_eq!(api_error(&deployments.get(OPERATOR).await.unwrap_err()).0, 404);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    assert_eq!(api_error(&services.get("kubegres-restore-operator-metrics").await.unwrap_err()).0, 404);

    // The check is real: a misspelt field is refused, not dropped.
    let mut typo = documents.iter().find(|doc| doc["kind"] == "Deployment").unwrap().clone();
    typo["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = json!(true);
    let error = apply(&client, &typo, &dry_run).await.unwrap_err().to_string();
    assert!(error.contains(".securityContext.readOnlyRootFileSystem: field not declared in schema"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installing_deploy_again_and_concurrently_is_harmless() {
    // What the operator's tests do: each installs deploy/ on the shared
    // control plane, at the same time.
    let mut admins = Vec::new();
    for _ in 0..6 {
        admins.push(admin().await);
    }
    futures::future::join_all(admins.iter().map(|admin| async move {
        install_operator_rbac(admin).await;
        install_kubegres_crd(admin).await;
    }))
    .await;
    let operator = operator_client(control_plane()).await;
    assert!(allowed(&operator, "list", "kubegres.reactive-tech.io", "kubegres", None).await.unwrap());
    assert!(!allowed(&operator, "get", "", "secrets", Some(NAMESPACE)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_pod_passes_pod_security_restricted() {
    let client = admin().await;
    // deploy/namespace.yaml enforces `restricted` on the operator's namespace.
    let namespace = Api::<Namespace>::all(client.clone()).get(NAMESPACE).await.unwrap();
    let labels = namespace.metadata.labels.unwrap();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");

    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    let template = &deployment_yaml()["spec"]["template"];
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "operator-pod", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }))
    .unwrap();
    pods.create(&dry_run, &pod).await.unwrap_or_else(|error| panic!("the operator's Pod was refused: {error}"));

    // The check is real: the same Pod without its hardening is refused.
    let mut bare = pod.clone();
    bare.spec.as_mut().unwrap().security_context = None;
    bare.spec.as_mut().unwrap().containers[0].security_context = None;
    let (code, message) = api_error(&pods.create(&dry_run, &bare).await.unwrap_err());
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("violates PodSecurity \"restricted:latest\""), "{message}");
    assert!(message.contains("allowPrivilegeEscalation != false"), "{message}");
}

// ---------------------------------------------------------------------------
// The Deployment and the image

#[test]
fn the_deployment_runs_the_operator_hardened() {
    let value = deployment_yaml();
    let deployment: Deployment = serde_json::from_value(value.clone()).expect("deploy/operator/deployment.yaml");
    assert_eq!(deployment.metadata.name.as_deref(), Some(OPERATOR));
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(OPERATOR));
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    for (flag, set) in [("hostNetwork", pod.host_network), ("hostPID", pod.host_pid), ("hostIPC", pod.host_ipc)] {
        assert_ne!(set, Some(true), "{flag}");
    }
    assert!(pod.volumes.is_none(), "the operator needs no volume: {:?}", pod.volumes);

    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532));
    assert_eq!(pod_security.seccomp_profile.unwrap().type_, "RuntimeDefault");

    assert_eq!(pod.containers.len(), 1);
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some(format!("ghcr.io/kubegres-restore/operator:{VERSION}").as_str()));
    assert!(container.command.is_none(), "the image's ENTRYPOINT is the operator");
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(65532));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_ne!(security.privileged, Some(true));
    let capabilities = security.capabilities.unwrap();
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(capabilities.add.is_none());
    assert_eq!(security.seccomp_profile.unwrap().type_, "RuntimeDefault");

    // The holder identity and the Lease's namespace come from the Pod itself.
    let env = &value["spec"]["template"]["spec"]["containers"][0]["env"];
    let var = |name: &str| env.as_array().unwrap().iter().find(|v| v["name"] == name).cloned();
    assert_eq!(var("POD_NAME").unwrap()["valueFrom"], json!({"fieldRef": {"fieldPath": "metadata.name"}}));
    assert_eq!(var("POD_NAMESPACE").unwrap()["valueFrom"], json!({"fieldRef": {"fieldPath": "metadata.namespace"}}));
    assert_eq!(
        var("KUBEGRES_RESTORE_AGENT_IMAGE").unwrap()["value"],
        format!("ghcr.io/kubegres-restore/restore-agent:{VERSION}")
    );
    assert!(var("OPERATOR_WATCH_NAMESPACE").is_none(), "the operator watches every namespace");

    // /metrics, /healthz and /readyz on port 8080, named http.
    let ports = container.ports.clone().unwrap();
    assert_eq!((ports[0].name.as_deref(), ports[0].container_port), (Some("http"), 8080));
    let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = probe.as_ref().and_then(|probe| probe.http_get.clone()).expect("an HTTP probe");
        assert_eq!(serde_json::to_value(&get.port).unwrap(), "http");
        get.path.unwrap()
    };
    assert_eq!(probe_path(&container.liveness_probe), "/healthz");
    assert_eq!(probe_path(&container.readiness_probe), "/readyz");

    // Requests cpu 10m, memory 32Mi; a memory limit of 128Mi and no CPU limit
    // (the reason is in the file).
    let resources = serde_json::to_value(container.resources.clone().unwrap()).unwrap();
    assert_eq!(resources, json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}));
}

#[test]
fn the_image_runs_as_the_user_the_deployment_expects() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("../Dockerfile.operator")).unwrap();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(last_stage.starts_with("gcr.io/distroless/static-debian12:nonroot"), "{last_stage}");
    let user = last_stage.lines().filter_map(|line| line.strip_prefix("USER ")).next_back();
    assert_eq!(user, Some("65532:65532"), "runAsNonRoot needs a numeric USER");
    let entrypoint = last_stage.lines().filter_map(|line| line.strip_prefix("ENTRYPOINT ")).next_back();
    assert_eq!(entrypoint, Some(r#"["/usr/local/bin/kubegres-restore-operator"]"#));
}
