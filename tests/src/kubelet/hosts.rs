//! Each Pod's /etc/hosts: the simulated cluster DNS. localhost, the Pod's
//! own name, `kubernetes.default.svc` (all spellings) -> the apiserver host,
//! and for every Service with a selector the IPs of the Ready,
//! non-terminating Pods it selects, under `svc.ns`, `svc.ns.svc`,
//! `svc.ns.svc.cluster.local` (and the bare `svc` in the Pod's own
//! namespace); Pods with `hostname` and `subdomain` also get their
//! `hostname.subdomain.ns.svc...` names. Rewritten in place (same inode,
//! so the bind mounts see it) whenever Pods or Services change.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};

use super::runtime::{PodRuntime, Shared, lock};

/// The Pod's hosts file, `<pod dir>/etc-hosts`.
pub(crate) fn hosts_path(rt: &PodRuntime) -> PathBuf {
    rt.dir.join("etc-hosts")
}

/// Rewrites every Pod's hosts file when something changed.
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        shared.hosts_changed.notified().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        refresh(&shared);
    }
}

/// Rewrites the hosts files whose content changed.
pub(crate) fn refresh(shared: &Shared) {
    let runtimes: Vec<Arc<PodRuntime>> = lock(&shared.pods).values().cloned().collect();
    let endpoints = endpoints(shared);
    for rt in runtimes {
        write(shared, &rt, &endpoints);
    }
}

/// Writes one Pod's hosts file if it changed.
pub(crate) fn write(shared: &Shared, rt: &PodRuntime, endpoints: &[(Ipv4Addr, Vec<String>, String)]) {
    let ip = lock(&rt.state).ip_shown;
    let pod = rt.pod();
    let text = render(shared, &pod, ip, endpoints);
    let mut last = lock(&rt.hosts);
    if *last == text {
        return;
    }
    // std::fs::write truncates and writes: the inode stays, bind mounts see the new content.
    match std::fs::write(hosts_path(rt), &text) {
        Ok(()) => *last = text,
        Err(error) => {
            eprintln!("process-kubelet: cannot write /etc/hosts of Pod {}/{}: {error}", rt.namespace, rt.name)
        }
    }
}

/// (ip, names, namespace) for every Ready Pod selected by a Service.
pub(crate) fn endpoints(shared: &Shared) -> Vec<(Ipv4Addr, Vec<String>, String)> {
    let services: Vec<Service> = lock(&shared.services).values().cloned().collect();
    let pods: Vec<Pod> = lock(&shared.api_pods).values().cloned().collect();
    let mut entries = Vec::new();
    for service in &services {
        let Some(spec) = &service.spec else { continue };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else { continue };
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        for pod in &pods {
            if pod.metadata.namespace.as_deref() != Some(namespace.as_str())
                || pod.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                continue;
            }
            let Some(ip) = ready_ip(pod) else { continue };
            let base = format!("{name}.{namespace}");
            entries.push((
                ip,
                vec![base.clone(), format!("{base}.svc"), format!("{base}.svc.cluster.local")],
                namespace.clone(),
            ));
            let pod_spec = pod.spec.clone().unwrap_or_default();
            if let (Some(hostname), Some(subdomain)) = (pod_spec.hostname, pod_spec.subdomain)
                && subdomain == name
            {
                let base = format!("{hostname}.{subdomain}.{namespace}");
                entries.push((
                    ip,
                    vec![format!("{base}.svc.cluster.local"), format!("{base}.svc"), base],
                    String::new(),
                ));
            }
        }
    }
    entries
}

/// The pod IP of a Ready Pod.
fn ready_ip(pod: &Pod) -> Option<Ipv4Addr> {
    let status = pod.status.as_ref()?;
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    status.pod_ip.as_ref()?.parse().ok()
}

fn render(shared: &Shared, pod: &Pod, ip: Ipv4Addr, endpoints: &[(Ipv4Addr, Vec<String>, String)]) -> String {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let name = spec.hostname.clone().or_else(|| pod.metadata.name.clone()).unwrap_or_default();
    let mut text = String::from(
        "# Kubernetes-managed hosts file (process kubelet).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    match &spec.subdomain {
        Some(subdomain) => text.push_str(&format!("{ip}\t{name}.{subdomain}.{namespace}.svc.cluster.local\t{name}\n")),
        None => text.push_str(&format!("{ip}\t{name}\n")),
    }
    if shared.config.apiserver_host.parse::<IpAddr>().is_ok() {
        let mut names = String::from("kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local");
        if namespace == "default" {
            names.push_str(" kubernetes");
        }
        text.push_str(&format!("{}\t{names}\n", shared.config.apiserver_host));
    }
    for (address, names, service_namespace) in endpoints {
        let mut line = format!("{address}\t{}", names.join(" "));
        if *service_namespace == namespace
            && let Some(short) = names.first().and_then(|n| n.split('.').next())
        {
            line.push(' ');
            line.push_str(short);
        }
        text.push_str(&line);
        text.push('\n');
    }
    text
}
