//! Registers the Node as kubelet does: its labels, the machine's capacity
//! (CPUs, memory, the kubelet folder's disk), Ready; then keeps it alive:
//! the Lease `kube-node-lease/<node>` renewed every [`LEASE_RENEW`] (what
//! the node lifecycle controller watches) and the conditions' heartbeat
//! every [`STATUS_REPORT`]. The not-ready taint that the TaintNodesByCondition
//! admission plugin puts on a new Node is the node lifecycle controller's to lift.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::KubeletError;
use super::runtime::Shared;

/// The field manager of everything the kubelet writes.
pub(crate) const FIELD_MANAGER: &str = "process-kubelet";

/// How often the Lease is renewed (kubelet: a quarter of its 40 s duration).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The Lease's duration (kubelet's `nodeLeaseDurationSeconds`).
const LEASE_SECONDS: i32 = 40;
/// How often the conditions' heartbeat is written without a change.
const STATUS_REPORT: Duration = Duration::from_secs(60);
/// The namespace of node Leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The Node's labels.
pub(crate) fn labels(node_name: &str) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), node_name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch.to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch.to_string()),
    ])
}

pub(crate) async fn register(shared: &Shared) -> Result<(), KubeletError> {
    let name = &shared.config.node_name;
    let api: Api<Node> = Api::all(shared.client.clone());
    let api_err = |what: &str| {
        let what = format!("{what} the Node {name}");
        move |source| KubeletError::Api { what, source }
    };
    let existing = api.get_opt(name).await.map_err(api_err("read"))?;
    if existing.is_none() {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": name, "labels": labels(name) },
            "spec": {},
        }))
        .map_err(|e| KubeletError::InvalidConfig(format!("cannot build the Node object: {e}")))?;
        match api
            .create(&PostParams { field_manager: Some(FIELD_MANAGER.to_string()), ..Default::default() }, &node)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(api_err("create")(error)),
        }
    } else {
        let patch = json!({ "metadata": { "labels": labels(name) } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(api_err("label"))?;
    }

    write_status(shared).await.map_err(api_err("set the status of"))?;
    renew_lease(shared)
        .await
        .map_err(|source| KubeletError::Api { what: format!("renew the Lease of {name}"), source })?;
    Ok(())
}

/// Renews the Lease and writes the status heartbeat, until aborted.
pub(crate) async fn heartbeat(shared: Arc<Shared>) {
    let mut last_status = Instant::now();
    loop {
        tokio::time::sleep(LEASE_RENEW).await;
        if let Err(error) = renew_lease(&shared).await {
            eprintln!("process-kubelet: cannot renew the Lease of node {}: {error}", shared.config.node_name);
        }
        if last_status.elapsed() >= STATUS_REPORT {
            match write_status(&shared).await {
                Ok(()) => last_status = Instant::now(),
                Err(error) => {
                    eprintln!("process-kubelet: cannot write the status of node {}: {error}", shared.config.node_name)
                }
            }
        }
    }
}

/// Creates or renews `kube-node-lease/<node>`, owned by the Node.
async fn renew_lease(shared: &Shared) -> Result<(), kube::Error> {
    let name = &shared.config.node_name;
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let uid = nodes.get(name).await?.metadata.uid.unwrap_or_default();
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [{
            "apiVersion": "v1", "kind": "Node", "name": name, "uid": uid,
        }]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now},
    });
    let leases: Api<Lease> = Api::namespaced(shared.client.clone(), LEASE_NAMESPACE);
    leases.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&lease)).await?;
    Ok(())
}

/// The machine's capacity: its CPUs, its memory, the disk of the kubelet's folder.
fn capacity(shared: &Shared) -> Value {
    let quantity = |q: String| Quantity(q);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(4 << 20);
    let disk = nix::sys::statvfs::statvfs(&shared.config.dir)
        .map(|stat| stat.blocks() * stat.fragment_size())
        .unwrap_or(100 << 30);
    json!({
        "cpu": quantity(cpus.to_string()),
        "memory": quantity(format!("{memory_kib}Ki")),
        "pods": quantity("110".to_string()),
        "ephemeral-storage": quantity(disk.to_string()),
    })
}

/// The Node's status: conditions (heartbeat now), addresses, capacity, node info.
async fn write_status(shared: &Shared) -> Result<(), kube::Error> {
    let name = &shared.config.node_name;
    let api: Api<Node> = Api::all(shared.client.clone());
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let existing = api.get(name).await?;
    let transition = |type_: &str, status: &str| {
        existing
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == type_ && c.status == status))
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone())
    };
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({ "type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": transition(type_, status) })
    };
    let resources = capacity(shared);
    let status = json!({ "status": {
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "process kubelet is posting ready status"),
        ],
        "addresses": [
            { "type": "InternalIP", "address": "127.0.0.1" },
            { "type": "Hostname", "address": name },
        ],
        "capacity": resources,
        "allocatable": resources,
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "process kubelet (kubegres-restore tests)",
            "containerRuntimeVersion": "process://0.1.0", "kubeletVersion": crate::controlplane::kube_version(),
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": labels(name)["kubernetes.io/arch"],
        },
        "daemonEndpoints": { "kubeletEndpoint": { "Port": 0 } },
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&status)).await?;
    Ok(())
}
