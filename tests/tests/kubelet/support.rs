//! Shared set-up of the process kubelet's tests: one full control plane per
//! test binary (kube-apiserver, kube-controller-manager, kube-scheduler),
//! the default StorageClass and the simulated local-path provisioner; each
//! test gets its own namespace and its own kubelet (its own Node, directory
//! and pod CIDR) acting as `system:node:<node>`, so the Node authorizer and
//! NodeRestriction limit it as in a real cluster. The tests' Pods select
//! their node; kube-scheduler binds them.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use harness::controlplane::{ADMIN_GROUP, ADMIN_USER, ControlPlane};
use harness::kubelet::{ImageMap, Kubelet, KubeletConfig, Program, pod_init_bin};
use harness::localcluster::storage::{NodePaths, Provisioner, install_storage_class};
use harness::wait::until;
use k8s_openapi::api::core::v1::{ContainerStatus, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

/// How long a test waits for a Pod to get somewhere.
pub const WAIT: Duration = Duration::from_secs(60);

/// The control plane of this binary, with the storage every test shares.
struct Shared {
    control_plane: ControlPlane,
    nodes: NodePaths,
    _runtime: tokio::runtime::Runtime,
    _provisioner: Provisioner,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        std::thread::spawn(|| {
            // The provisioner's task lives on this runtime, not a test's.
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
            let (control_plane, nodes, provisioner) = runtime.block_on(async {
                let control_plane = ControlPlane::start_cluster().await;
                install_storage_class(&control_plane.client()).await;
                let nodes = NodePaths::default();
                let provisioner = Provisioner::start(control_plane.client(), nodes.clone());
                (control_plane, nodes, provisioner)
            });
            Shared { control_plane, nodes, _runtime: runtime, _provisioner: provisioner }
        })
        .join()
        .unwrap_or_else(|_| panic!("the control plane did not start (see above)"))
    })
}

/// The control plane shared by the tests of this binary. Not
/// `harness::deploy::control_plane`: the kubelet needs the full cluster
/// (controller manager, scheduler, the default StorageClass and the
/// provisioner), not deploy/'s objects.
pub fn control_plane() -> &'static ControlPlane {
    &shared().control_plane
}

/// The images the tests use: `busybox` is /bin/sh (generic checks), and
/// the postgres image (the restore-agent image is added by the test that
/// runs it, as it needs the built agent).
pub fn images() -> ImageMap {
    ImageMap::new().with("busybox", Program::new("/bin/sh")).with("postgres", Program::postgres())
}

/// A test's world: its namespace, an admin client and its kubelet.
pub struct World {
    pub admin: kube::Client,
    pub ns: String,
    pub node: String,
    pub kubelet: Option<Kubelet>,
    pub dir: tempfile::TempDir,
}

impl World {
    /// A namespace `name` and a kubelet for it, with [`images`].
    pub async fn new(name: &str) -> World {
        Self::with_images(name, images()).await
    }

    /// A namespace `name` and a kubelet for it running `images`.
    pub async fn with_images(name: &str, images: ImageMap) -> World {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let cp = control_plane();
        let admin = cp.client_for_user(ADMIN_USER, &[ADMIN_GROUP]).await.expect("an admin client");
        harness::deploy::create_namespace(&admin, name).await;

        let node = format!("node-{name}");
        let dir = tempfile::Builder::new().prefix("kubelet-test-").tempdir().expect("a temporary directory");
        // A /24 per test kubelet, different for concurrent tests and test runs.
        let second = 100 + (std::process::id() % 100) as u8;
        let third = NEXT.fetch_add(1, Ordering::SeqCst);
        let config = KubeletConfig {
            node_name: node.clone(),
            dir: dir.path().to_path_buf(),
            images,
            pod_cidr: std::net::Ipv4Addr::new(127, second, third, 0),
            apiserver_host: "127.0.0.1".to_string(),
            apiserver_port: cp.server_url().rsplit(':').next().unwrap().parse().unwrap(),
            ca_pem: cp.ca_pem().to_string(),
            pod_init: pod_init_bin(),
        };
        shared().nodes.set(&node, dir.path().join("volumes"));
        let node_client = cp.client_for_user(&format!("system:node:{node}"), &["system:nodes"]).await.unwrap();
        let kubelet = Kubelet::start(node_client, config).await.expect("the kubelet starts");
        World { admin, ns: name.to_string(), node, kubelet: Some(kubelet), dir }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    pub fn kubelet(&self) -> &Kubelet {
        self.kubelet.as_ref().expect("the kubelet runs")
    }

    /// Creates any namespaced object from JSON in the test's namespace.
    pub async fn create<K>(&self, object: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.admin.clone(), &self.ns);
        let object: K = serde_json::from_value(object).expect("a valid object");
        api.create(&PostParams::default(), &object).await.expect("create the object")
    }

    /// Creates a Pod on this test's node from its spec (nodeSelector added).
    pub async fn create_pod(&self, name: &str, labels: Value, mut spec: Value) -> Pod {
        spec["nodeSelector"] = json!({ "kubernetes.io/hostname": self.node });
        self.create(
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "labels": labels }, "spec": spec }),
        )
        .await
    }

    /// A Pod running `script` with `sh -c`, restartPolicy Never, no token.
    pub async fn sh_pod(&self, name: &str, script: &str) -> Pod {
        self.create_pod(name, json!({}), sh_spec(script)).await
    }

    /// Waits until `check` says yes about the Pod.
    pub async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        let pods = self.pods();
        until(&format!("Pod {name}: {what}"), WAIT, || async {
            pods.get_opt(name).await.unwrap().filter(|pod| check(pod))
        })
        .await
    }

    /// Waits for a terminal phase and returns the Pod.
    pub async fn wait_done(&self, name: &str) -> Pod {
        self.wait_pod(name, "Succeeded or Failed", |pod| matches!(phase(pod), "Succeeded" | "Failed")).await
    }

    /// The container's log.
    pub fn log(&self, pod: &str, container: &str) -> String {
        let path: PathBuf = self.kubelet().pod_log_path(&self.ns, pod, container).expect("the Pod runs here");
        std::fs::read_to_string(&path).unwrap_or_default()
    }
}

/// A Pod spec running `script` with `sh -c` in the `busybox` image.
pub fn sh_spec(script: &str) -> Value {
    json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 5,
        "containers": [{ "name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script] }],
    })
}

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

pub fn container_status<'a>(pod: &'a Pod, name: &str) -> &'a ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == name))
        .unwrap_or_else(|| panic!("no status for container {name}: {:?}", pod.status))
}

/// The waiting (reason, message) of a container.
pub fn waiting(pod: &Pod, name: &str) -> Option<(String, String)> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == name)?;
    let waiting = status.state.as_ref()?.waiting.as_ref()?;
    Some((waiting.reason.clone().unwrap_or_default(), waiting.message.clone().unwrap_or_default()))
}

pub fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).expect("a pod IP")
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A PersistentVolumeClaim (its folder is DIR/volumes/<ns>/<name>).
pub async fn create_pvc(world: &World, name: &str) -> PersistentVolumeClaim {
    world
        .create(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": { "name": name },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
        }))
        .await
}
