//! The kubelet's shared state: the Pods it runs, their containers' states,
//! the pod IPs, the process groups it started.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{Notify, watch};

use super::KubeletConfig;

/// Everything the kubelet's tasks share.
pub(crate) struct Shared {
    pub config: KubeletConfig,
    /// Where the images' programs were installed (removed on stop).
    pub store: std::path::PathBuf,
    /// Acts as the kubelet (ideally `system:node:<name>`).
    pub client: kube::Client,
    /// The Pods this kubelet runs, by uid.
    pub pods: Mutex<HashMap<String, Arc<PodRuntime>>>,
    /// Pods whose worker has finished (deleted), so late events are ignored.
    pub finished: Mutex<HashSet<String>>,
    /// The Pods bound to this node as last seen in the API, by uid.
    pub api_pods: Mutex<HashMap<String, Pod>>,
    /// Services, by namespace/name.
    pub services: Mutex<BTreeMap<String, Service>>,
    /// Pod IPs in use.
    pub ips: Mutex<IpPool>,
    /// The process groups started and not yet reaped: pgid -> pod uid.
    pub processes: Mutex<HashMap<i32, String>>,
    /// Pods or Services changed: rewrite the /etc/hosts files.
    pub hosts_changed: Notify,
    /// This kubelet's cgroup v2 directory, when there is one.
    pub cgroup: Option<PathBuf>,
    /// `true` once [`super::Kubelet::stop`] started.
    pub stopping: watch::Sender<bool>,
}

/// Locks a std mutex, ignoring poisoning (a panicking task must not stop the others).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    pub fn runtime(&self, uid: &str) -> Option<Arc<PodRuntime>> {
        lock(&self.pods).get(uid).cloned()
    }
}

/// Why a Pod's containers must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Keep running.
    Run,
    /// The Pod has a deletionTimestamp: SIGTERM, SIGKILL after the grace period.
    Graceful,
    /// The Pod is gone from the API: SIGKILL at once.
    Now,
    /// The kubelet stops.
    Shutdown,
}

/// One Pod run by this kubelet.
pub(crate) struct PodRuntime {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// `DIR/pods/<uid>`.
    pub dir: PathBuf,
    /// The latest Pod object seen.
    pub pod: watch::Sender<Arc<Pod>>,
    pub state: Mutex<PodState>,
    /// The status changed: patch it.
    pub dirty: Notify,
    pub stop: watch::Sender<Stop>,
    /// The last /etc/hosts written.
    pub hosts: Mutex<String>,
}

impl PodRuntime {
    pub fn new(pod: Pod, dir: PathBuf, ip: Ipv4Addr) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let record = |c: &k8s_openapi::api::core::v1::Container| ContainerRecord::new(&c.name, c.image.as_deref());
        let state = PodState {
            init: spec.init_containers.iter().flatten().map(record).collect(),
            main: spec.containers.iter().map(record).collect(),
            start_time: Timestamp::now(),
            ip: Some(ip),
            ip_shown: ip,
            transitions: BTreeMap::new(),
            init_failed: false,
        };
        Self {
            uid,
            namespace,
            name,
            dir,
            pod: watch::Sender::new(Arc::new(pod)),
            state: Mutex::new(state),
            dirty: Notify::new(),
            stop: watch::Sender::new(Stop::Run),
            hosts: Mutex::new(String::new()),
        }
    }

    pub fn pod(&self) -> Arc<Pod> {
        self.pod.borrow().clone()
    }

    pub fn stop_requested(&self) -> Stop {
        *self.stop.borrow()
    }

    /// Changes a container's record and marks the status dirty.
    pub fn update(&self, which: Which, change: impl FnOnce(&mut ContainerRecord)) {
        {
            let mut state = lock(&self.state);
            let record = match which {
                Which::Init(i) => state.init.get_mut(i),
                Which::Main(i) => state.main.get_mut(i),
            };
            if let Some(record) = record {
                change(record);
            }
        }
        self.dirty.notify_one();
    }

    /// "name_namespace(uid)", as kubelet names a Pod in messages.
    pub fn describe(&self) -> String {
        format!("{}_{}({})", self.name, self.namespace, self.uid)
    }
}

/// A container of the Pod: an init container or a regular one, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Init(usize),
    Main(usize),
}

/// What the kubelet knows about a Pod beyond the API object.
pub(crate) struct PodState {
    pub init: Vec<ContainerRecord>,
    pub main: Vec<ContainerRecord>,
    pub start_time: Timestamp,
    /// The pod IP while the Pod holds it (released when it is terminal).
    pub ip: Option<Ipv4Addr>,
    /// The pod IP shown in status (kept after release, as kubelet does).
    pub ip_shown: Ipv4Addr,
    /// Condition type -> (status, lastTransitionTime).
    pub transitions: BTreeMap<&'static str, (bool, Timestamp)>,
    /// An init container failed under restartPolicy Never.
    pub init_failed: bool,
}

/// One container's state, as its status shows it.
#[derive(Debug, Clone)]
pub(crate) struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: ContainerState,
    pub last: Option<Terminated>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
}

impl ContainerRecord {
    fn new(name: &str, image: Option<&str>) -> Self {
        Self {
            name: name.to_string(),
            image: image.unwrap_or_default().to_string(),
            image_id: String::new(),
            container_id: None,
            state: ContainerState::Waiting { reason: "ContainerCreating".to_string(), message: None },
            last: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }
}

/// A container's state.
#[derive(Debug, Clone)]
pub(crate) enum ContainerState {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp },
    Terminated(Terminated),
}

/// How a container ended.
#[derive(Debug, Clone)]
pub(crate) struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

/// Loopback pod IPs: `.2` to `.254` of the configured /24, never one still held.
#[derive(Debug)]
pub(crate) struct IpPool {
    network: [u8; 4],
    used: HashSet<u8>,
    next: u8,
}

impl IpPool {
    pub fn new(network: Ipv4Addr) -> Self {
        Self { network: network.octets(), used: HashSet::new(), next: 2 }
    }

    /// The next free IP, round robin (a freed IP is reused as late as possible).
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        for _ in 0..253 {
            let host = self.next;
            self.next = if self.next >= 254 { 2 } else { self.next + 1 };
            if self.used.insert(host) {
                let [a, b, c, _] = self.network;
                return Some(Ipv4Addr::new(a, b, c, host));
            }
        }
        None
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip.octets()[3]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_pool_skips_held_ips() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 23, 45, 0));
        let first = pool.allocate().unwrap();
        assert_eq!(first, Ipv4Addr::new(127, 23, 45, 2));
        let mut all = vec![first];
        while let Some(ip) = pool.allocate() {
            all.push(ip);
        }
        assert_eq!(all.len(), 253);
        assert_eq!(all.last(), Some(&Ipv4Addr::new(127, 23, 45, 254)));
        pool.release(Ipv4Addr::new(127, 23, 45, 7));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 23, 45, 7)));
        assert_eq!(pool.allocate(), None);
    }
}
