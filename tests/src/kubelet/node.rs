//! Registers the Node, Ready, as kubelet does; and removes the
//! `node.kubernetes.io/not-ready` taint that the TaintNodesByCondition
//! admission plugin puts on a new Node (the node lifecycle controller would,
//! and there is no controller-manager).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use super::KubeletError;
use super::runtime::Shared;

/// The field manager of everything the kubelet writes.
pub(crate) const FIELD_MANAGER: &str = "process-kubelet";

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

    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let quantity = |q: &str| Quantity(q.to_string());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
    let resources = json!({ "cpu": quantity(&cpus), "memory": quantity("16Gi"), "pods": quantity("250"), "ephemeral-storage": quantity("100Gi") });
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({ "type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now })
    };
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
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&status))
        .await
        .map_err(api_err("set the status of"))?;

    // Without a node lifecycle controller, the not-ready taint would stay.
    let node = api.get(name).await.map_err(api_err("read"))?;
    let taints = node.spec.as_ref().and_then(|spec| spec.taints.clone()).unwrap_or_default();
    if taints.iter().any(|taint| taint.key == "node.kubernetes.io/not-ready") {
        let kept: Vec<_> = taints.into_iter().filter(|taint| taint.key != "node.kubernetes.io/not-ready").collect();
        let patch = json!({ "metadata": { "resourceVersion": node.resource_version() }, "spec": { "taints": kept } });
        if let Err(error) = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            eprintln!("process-kubelet: cannot remove the not-ready taint from the Node {name}: {error}");
        }
    }
    Ok(())
}
