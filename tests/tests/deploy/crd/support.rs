//! What the CRD tests share: one control plane with the CRD from deploy/
//! installed, clients, namespaces, and KubegresRestore objects.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use harness::controlplane::{ADMIN_GROUP, ADMIN_USER, ControlPlane};
use kube::api::{Api, ApiResource, DynamicObject};
use proto::crd::KubegresRestore;
use serde_json::{Value, json};

pub const API_VERSION: &str = "kubegres.reactive-tech.io/v1";

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository")
}

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

// ---------------------------------------------------------------------------
// The shared control plane

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// The control plane of this file's tests, with the CRD from deploy/crds
/// installed, Established and served. Started on a thread of its own so that
/// any test's runtime can share it: the processes outlive that thread, and
/// each test makes its own client with [`admin`].
pub fn control_plane() -> &'static ControlPlane {
    CONTROL_PLANE.get_or_init(|| {
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to start the control plane");
            runtime.block_on(async {
                let control_plane = ControlPlane::start().await;
                harness::deploy::install_restore_crd(&control_plane.client()).await;
                control_plane
            })
        })
        .join()
        .unwrap_or_else(|_| panic!("the control plane with the KubegresRestore CRD did not start (see above)"))
    })
}

/// A fresh admin client for the calling test's runtime.
pub async fn admin() -> kube::Client {
    control_plane().client_for_user(ADMIN_USER, &[ADMIN_GROUP]).await.expect("an admin client")
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
