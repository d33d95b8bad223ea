//! SIMULATED storage controllers for PVCs, the parts of kube-controller-manager
//! and a volume provisioner the local cluster needs:
//! - the pvc-protection controller: a PVC being deleted keeps its
//!   `kubernetes.io/pvc-protection` finalizer (added by the apiserver's
//!   admission) while a Pod that is not finished uses it, and loses it then;
//! - `reclaimPolicy: Delete`: the claim's folder `DIR/volumes/<ns>/<claim>`
//!   is removed with it, so a claim recreated under the same name starts empty.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::task::JoinHandle;

/// The finalizer the apiserver's StorageObjectInUseProtection admission adds.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

/// How often claims being deleted are looked at.
const POLL: Duration = Duration::from_millis(500);

/// The running controllers.
pub struct Storage {
    task: JoinHandle<()>,
}

impl Storage {
    /// Starts them; `volumes` is `DIR/volumes`.
    pub fn start(client: kube::Client, volumes: PathBuf) -> Storage {
        Storage {
            task: tokio::spawn(async move {
                loop {
                    if let Err(error) = sync(&client, &volumes).await {
                        tracing::warn!("simulated storage controllers: {error}");
                    }
                    tokio::time::sleep(POLL).await;
                }
            }),
        }
    }

    /// Stops them.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sync(client: &kube::Client, volumes: &std::path::Path) -> Result<(), kube::Error> {
    let claims = Api::<PersistentVolumeClaim>::all(client.clone()).list(&ListParams::default()).await?.items;
    for claim in claims.iter().filter(|c| c.metadata.deletion_timestamp.is_some()) {
        let finalizers = claim.finalizers();
        if !finalizers.iter().any(|f| f == PVC_PROTECTION) {
            continue;
        }
        let namespace = claim.namespace().unwrap_or_default();
        let name = claim.name_any();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let in_use = pods.list(&ListParams::default()).await?.items.iter().any(|pod| {
            let finished =
                pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
            !finished
                && pod.spec.iter().flat_map(|spec| spec.volumes.iter().flatten()).any(|volume| {
                    volume.persistent_volume_claim.as_ref().is_some_and(|source| source.claim_name == name)
                })
        });
        if in_use {
            continue;
        }
        // The volume goes first, so that a claim recreated under this name
        // never sees the old data.
        let folder = volumes.join(&namespace).join(&name);
        if let Err(error) = std::fs::remove_dir_all(&folder)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove the volume {}: {error}", folder.display());
            continue;
        }
        let remaining: Vec<&String> = finalizers.iter().filter(|f| *f != PVC_PROTECTION).collect();
        let patch = json!({"metadata": {"finalizers": remaining, "resourceVersion": claim.resource_version()}});
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
