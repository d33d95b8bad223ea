//! The kubelet's watches: the Pods bound to this node (starting a worker for
//! each new one, telling workers about deletions) and the Services (for
//! /etc/hosts).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt as _};

use super::pod;
use super::runtime::{Shared, Stop, lock};

pub(crate) async fn pods(shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.config.node_name));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut relisted: Option<HashMap<String, Pod>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => relisted = Some(HashMap::new()),
            Ok(Event::InitApply(pod)) => {
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(pod.metadata.uid.clone().unwrap_or_default(), pod.clone());
                }
                applied(&shared, pod);
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = relisted.take() {
                    let gone: Vec<Pod> = lock(&shared.api_pods)
                        .iter()
                        .filter(|(uid, _)| !seen.contains_key(*uid))
                        .map(|(_, p)| p.clone())
                        .collect();
                    for pod in gone {
                        deleted(&shared, &pod);
                    }
                }
            }
            Ok(Event::Apply(pod)) => applied(&shared, pod),
            Ok(Event::Delete(pod)) => deleted(&shared, &pod),
            Err(error) => eprintln!("process-kubelet: watching the Pods of node {}: {error}", shared.config.node_name),
        }
        shared.hosts_changed.notify_one();
    }
}

fn applied(shared: &Arc<Shared>, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    lock(&shared.api_pods).insert(uid.clone(), pod.clone());
    if lock(&shared.finished).contains(&uid) {
        return;
    }
    if let Some(runtime) = shared.runtime(&uid) {
        let deleting = pod.metadata.deletion_timestamp.is_some();
        runtime.pod.send_replace(Arc::new(pod));
        if deleting {
            runtime.stop.send_if_modified(|stop| {
                let changed = *stop == Stop::Run;
                if changed {
                    *stop = Stop::Graceful;
                }
                changed
            });
        }
        return;
    }
    pod::start(shared, pod);
}

fn deleted(shared: &Arc<Shared>, pod: &Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    lock(&shared.api_pods).remove(&uid);
    if let Some(runtime) = shared.runtime(&uid) {
        runtime.stop.send_if_modified(|stop| {
            let changed = matches!(*stop, Stop::Run | Stop::Graceful);
            if changed {
                *stop = Stop::Now;
            }
            changed
        });
    }
}

pub(crate) async fn services(shared: Arc<Shared>) {
    let api: Api<Service> = Api::all(shared.client.clone());
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut relisted: Option<Vec<String>> = None;
    while let Some(event) = stream.next().await {
        let key = |service: &Service| format!("{}/{}", service.namespace().unwrap_or_default(), service.name_any());
        match event {
            Ok(Event::Init) => relisted = Some(Vec::new()),
            Ok(Event::InitApply(service)) => {
                if let Some(seen) = relisted.as_mut() {
                    seen.push(key(&service));
                }
                lock(&shared.services).insert(key(&service), service);
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = relisted.take() {
                    lock(&shared.services).retain(|k, _| seen.contains(k));
                }
            }
            Ok(Event::Apply(service)) => {
                lock(&shared.services).insert(key(&service), service);
            }
            Ok(Event::Delete(service)) => {
                lock(&shared.services).remove(&key(&service));
            }
            Err(error) => eprintln!("process-kubelet: watching Services: {error}"),
        }
        shared.hosts_changed.notify_one();
    }
}
