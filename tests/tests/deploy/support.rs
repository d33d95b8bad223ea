//! What the suite's tests share: one control plane with deploy/ installed
//! (harness::deploy's), namespaces, YAML, API errors, and KubegresRestore
//! objects.

use std::path::{Path, PathBuf};

pub use harness::deploy::{admin, control_plane, repo_root};
use kube::api::{Api, ApiResource, DynamicObject};
use proto::crd::KubegresRestore;
use serde_json::{Value, json};

pub const API_VERSION: &str = "kubegres.reactive-tech.io/v1";

pub fn crd_path() -> PathBuf {
    repo_root().join("deploy/crds/kubegres-restore.yaml")
}

pub fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()))
}

/// The HTTP status and the apiserver's message of a kube error.
pub fn api_error(error: &kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.message.clone()),
        other => panic!("expected an answer from the apiserver, got {other}"),
    }
}

/// Creates the test's own namespace.
pub async fn namespace(client: &kube::Client, name: &str) -> String {
    harness::deploy::create_namespace(client, name).await;
    name.to_string()
}

/// KubegresRestores as untyped objects, so that tests can send specs that the
/// Rust types could not represent.
pub fn dynamic(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &ApiResource::erase::<KubegresRestore>(&()))
}

/// A KubegresRestore object with this spec.
pub fn object(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "KubegresRestore",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("a KubegresRestore object")
}

/// The fork's default flow: the newest backup on a PVC into a new cluster
/// copied from an existing one.
pub fn fork_spec() -> Value {
    json!({
        "clusterName": "restored",
        "dataSource": {
            "file": {"pvcName": "backups", "mountPath": "/var/lib/backup", "snapshot": "latest"},
            "cluster": {"clusterName": "mypostgres"}
        }
    })
}

/// `fork_spec` with `edit` applied.
pub fn fork_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut spec = fork_spec();
    edit(&mut spec);
    spec
}
