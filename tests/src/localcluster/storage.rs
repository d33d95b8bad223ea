//! SIMULATED storage: a stand-in for a local-path provisioner (what kind
//! and k3s clusters ship: rancher's local-path-provisioner), the part of a
//! cluster's storage that no real program here can play.
//!
//! - [`install_storage_class`] creates the default StorageClass
//!   [`STORAGE_CLASS`] (`volumeBindingMode: WaitForFirstConsumer`,
//!   `reclaimPolicy: Delete`, provisioner [`PROVISIONER`]);
//! - [`Provisioner`] watches claims of that class which the real
//!   PersistentVolume binder (kube-controller-manager) marked for it
//!   (`volume.kubernetes.io/storage-provisioner`) and for which kube-scheduler
//!   chose a node (`volume.kubernetes.io/selected-node`), and creates a
//!   `hostPath` PersistentVolume on the folder `<node's path>/<namespace>/<claim>`
//!   pinned to that node; the binder binds them. Content already in the
//!   folder is kept (tests put backups there before a Pod mounts the claim).
//!   A folder is given to one volume at a time: a claim recreated under the
//!   same name waits until the old volume is reclaimed.
//! - Reclaim: a Released volume of this provisioner whose policy is Delete
//!   has its folder removed, then the PersistentVolume deleted.
//!
//! Everything else about volumes is the real thing: the binder, the
//! scheduler's volume binding, the pvc-protection and pv-protection
//! controllers, the DefaultStorageClass admission plugin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The default StorageClass's name (kind's is `standard` too).
pub const STORAGE_CLASS: &str = "standard";

/// The provisioner's name, which says it is simulated.
pub const PROVISIONER: &str = "simulated.kubegres-restore.tests/local-path";

/// The claim annotation the PersistentVolume binder sets for dynamic provisioning.
const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The claim annotation kube-scheduler sets for WaitForFirstConsumer classes.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The PersistentVolume annotation that names its provisioner.
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// How often everything is looked at again without a watch event.
const RESYNC: Duration = Duration::from_secs(5);

/// The field manager of the provisioner.
const FIELD_MANAGER: &str = "simulated-local-path-provisioner";

/// Creates (or updates) the default StorageClass [`STORAGE_CLASS`].
///
/// # Panics
/// When the apiserver refuses it.
pub async fn install_storage_class(admin: &kube::Client) {
    let class = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    });
    Api::<StorageClass>::all(admin.clone())
        .patch(STORAGE_CLASS, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&class))
        .await
        .unwrap_or_else(|e| panic!("cannot create the StorageClass {STORAGE_CLASS}: {e}"));
}

/// Where each node's volumes go (local-path-provisioner's `nodePathMap`).
#[derive(Debug, Clone, Default)]
pub struct NodePaths {
    paths: Arc<Mutex<BTreeMap<String, PathBuf>>>,
}

impl NodePaths {
    /// Volumes for `node` go under `dir` (`<dir>/<namespace>/<claim>`).
    pub fn set(&self, node: &str, dir: PathBuf) {
        self.paths.lock().unwrap_or_else(|p| p.into_inner()).insert(node.to_string(), dir);
    }

    /// The folder for volumes on `node`.
    pub fn get(&self, node: &str) -> Option<PathBuf> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner()).get(node).cloned()
    }
}

/// The volume folder of a claim on a node whose volumes go under `dir`.
pub fn claim_folder(dir: &Path, namespace: &str, claim: &str) -> PathBuf {
    dir.join(namespace).join(claim)
}

/// The running provisioner.
pub struct Provisioner {
    task: JoinHandle<()>,
}

impl Provisioner {
    /// Starts it with `client` (the real one runs under its own ServiceAccount).
    pub fn start(client: kube::Client, nodes: NodePaths) -> Provisioner {
        Provisioner { task: tokio::spawn(run(client, nodes)) }
    }

    /// Stops it.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Provisioner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(client: kube::Client, nodes: NodePaths) {
    let wake = Arc::new(Notify::new());
    let claims = watcher(Api::<PersistentVolumeClaim>::all(client.clone()), watcher::Config::default());
    let volumes = watcher(Api::<PersistentVolume>::all(client.clone()), watcher::Config::default());
    let (claim_wake, volume_wake) = (wake.clone(), wake.clone());
    let claim_events = claims.for_each(move |_| {
        claim_wake.notify_one();
        futures::future::ready(())
    });
    let volume_events = volumes.for_each(move |_| {
        volume_wake.notify_one();
        futures::future::ready(())
    });
    let passes = async {
        loop {
            if let Err(error) = sync(&client, &nodes).await {
                tracing::warn!("simulated local-path provisioner: {error}");
            }
            let _ = tokio::time::timeout(RESYNC, wake.notified()).await;
        }
    };
    tokio::select! {
        _ = claim_events => {}
        _ = volume_events => {}
        _ = passes => {}
    }
}

/// One pass: reclaim released volumes, then provision waiting claims.
async fn sync(client: &kube::Client, nodes: &NodePaths) -> Result<(), kube::Error> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let volumes = pvs.list(&ListParams::default()).await?.items;
    for pv in volumes.iter().filter(|pv| ours(pv) && released(pv)) {
        reclaim(&pvs, pv).await?;
    }
    let claims = Api::<PersistentVolumeClaim>::all(client.clone()).list(&ListParams::default()).await?.items;
    for claim in &claims {
        if let Err(error) = provision(client, nodes, &volumes, claim).await {
            tracing::warn!(
                "simulated local-path provisioner: cannot provision {}/{}: {error}",
                claim.namespace().unwrap_or_default(),
                claim.name_any()
            );
        }
    }
    Ok(())
}

fn ours(pv: &PersistentVolume) -> bool {
    pv.annotations().get(PROVISIONED_BY).is_some_and(|p| p == PROVISIONER)
}

fn released(pv: &PersistentVolume) -> bool {
    pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released")
}

fn folder_of(pv: &PersistentVolume) -> Option<PathBuf> {
    pv.spec.as_ref()?.host_path.as_ref().map(|h| PathBuf::from(&h.path))
}

/// `reclaimPolicy: Delete`: the folder first, so that a claim recreated
/// under the same name never sees the old data, then the volume.
async fn reclaim(pvs: &Api<PersistentVolume>, pv: &PersistentVolume) -> Result<(), kube::Error> {
    let policy = pv.spec.as_ref().and_then(|s| s.persistent_volume_reclaim_policy.as_deref()).unwrap_or("Delete");
    if policy != "Delete" {
        return Ok(());
    }
    if let Some(folder) = folder_of(pv)
        && let Err(error) = std::fs::remove_dir_all(&folder)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("simulated local-path provisioner: cannot remove {}: {error}", folder.display());
        return Ok(());
    }
    match pvs.delete(&pv.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Creates the volume of a claim that waits for this provisioner.
async fn provision(
    client: &kube::Client,
    nodes: &NodePaths,
    volumes: &[PersistentVolume],
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    let annotations = claim.annotations();
    let spec = claim.spec.clone().unwrap_or_default();
    let waiting = annotations.get(STORAGE_PROVISIONER).is_some_and(|p| p == PROVISIONER)
        && spec.volume_name.as_deref().is_none_or(str::is_empty)
        && claim.metadata.deletion_timestamp.is_none();
    if !waiting {
        return Ok(());
    }
    let Some(node) = annotations.get(SELECTED_NODE) else { return Ok(()) };
    let uid = claim.uid().unwrap_or_default();
    let name = format!("pvc-{uid}");
    if volumes.iter().any(|pv| pv.name_any() == name) {
        return Ok(());
    }
    let Some(dir) = nodes.get(node) else {
        return Err(format!("no volume folder is configured for node {node}"));
    };
    let namespace = claim.namespace().unwrap_or_default();
    let folder = claim_folder(&dir, &namespace, &claim.name_any());
    // One volume per folder: wait until an older one is reclaimed.
    if volumes.iter().any(|pv| folder_of(pv).as_ref() == Some(&folder)) {
        return Ok(());
    }
    create_folder(&folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "1Gi".to_string());
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".to_string()]),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.storage_class_name.clone().unwrap_or_default(),
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace,
                         "name": claim.name_any(), "uid": uid},
            "hostPath": {"path": folder, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]},
            ]}]}},
        },
    });
    let pv: PersistentVolume = serde_json::from_value(pv).map_err(|e| e.to_string())?;
    let api: Api<PersistentVolume> = Api::all(client.clone());
    let params = PostParams { field_manager: Some(FIELD_MANAGER.to_string()), ..Default::default() };
    match api.create(&params, &pv).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// The folder, world-writable as local-path-provisioner makes it (an
/// existing one is kept as it is).
fn create_folder(folder: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if folder.is_dir() {
        return Ok(());
    }
    if let Some(parent) = folder.parent() {
        std::fs::create_dir_all(parent)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::create_dir(folder)?;
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o777))
}
