//! `operator-bench`: the operator's memory and create-to-Pod latency on the
//! local control plane (`make bench-operator`).
//!
//! Starts a real kube-apiserver and etcd, installs deploy/'s CRD and RBAC,
//! runs the release operator binary as its own process under the operator's
//! ServiceAccount (leader election on, all namespaces, JSON logs), then:
//!
//! 1. reads its idle RSS 5 s after `/readyz` says it leads with synced caches;
//! 2. creates restores one after another, ~20 ms apart, and measures from each
//!    create call returning to a Pod watch seeing its Pod `<name>-restore-1`;
//! 3. creates the rest of 1,000 restores, waits until every one has its Pod,
//!    and reads the RSS again 5 s later;
//! 4. stops the operator with SIGTERM and times its shutdown.
//!
//! Prints a table with ratios to the floors of the operator issue and to the
//! Kubegres operator's own memory request (64 MiB); exits 1 when a floor is
//! missed or the operator does not shut down cleanly, 2 when the benchmark
//! itself cannot run. No kubelet runs here: the Pods stay Pending.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "operator_bench/process.rs"]
mod process;
#[path = "operator_bench/report.rs"]
mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use harness::controlplane::ControlPlane;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher};
use proto::KubegresRestore;
use serde_json::json;
use tokio::sync::watch;

use process::OperatorProcess;
use report::{Figures, Latencies};

/// The namespace of the latency run.
const LATENCY_NAMESPACE: &str = "bench-latency";
/// How many restores each bulk namespace holds.
const PER_BULK_NAMESPACE: usize = 200;
/// How many creates are in flight at once in the bulk phase.
const BULK_IN_FLIGHT: usize = 8;
/// How long the operator is left alone before its RSS is read.
const SETTLE: Duration = Duration::from_secs(5);
/// How long all Pods of a phase may take to appear.
const PODS_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the benchmark could not run (as opposed to a floor being missed).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// The local control plane did not start.
    #[error("the local control plane did not start: {0}")]
    ControlPlane(#[source] harness::controlplane::ControlPlaneError),
    /// A file operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The API server refused a request.
    #[error("cannot {what}: {source}")]
    Api {
        /// What was asked.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The operator process did not start, exited or did not become ready.
    #[error("{0}")]
    Operator(String),
    /// Something did not happen in time.
    #[error("{what} within {waited:?}")]
    Timeout {
        /// What did not happen.
        what: String,
        /// How long it was given.
        waited: Duration,
    },
}

impl BenchError {
    /// A short CamelCase category.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Usage(_) => "Usage",
            Self::ControlPlane(_) => "ControlPlane",
            Self::Io { .. } => "Io",
            Self::Api { .. } => "ApiError",
            Self::Operator(_) => "OperatorFailed",
            Self::Timeout { .. } => "Timeout",
        }
    }

    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { what: what.into(), source }
    }

    fn api(what: impl Into<String>, source: kube::Error) -> Self {
        Self::Api { what: what.into(), source }
    }
}

/// The command line.
#[derive(Debug)]
struct Args {
    /// The operator binary.
    operator: PathBuf,
    /// Restores created one by one for the latency figures.
    latency: usize,
    /// Restores in total (latency ones included) for the loaded RSS.
    total: usize,
    /// The pause between two creates of the latency run.
    spacing: Duration,
    /// Where the operator's log goes (default: a temporary directory).
    operator_log: Option<PathBuf>,
    /// The operator's `--concurrency` (default: the operator's own default).
    concurrency: Option<u16>,
}

const USAGE: &str = "usage: operator-bench [--operator PATH] [--latency N] [--total N] [--spacing-ms MS]\n\
    \x20                     [--operator-log PATH] [--operator-concurrency N]\n\
    defaults: --operator target/release/kubegres-restore-operator --latency 200 --total 1000 --spacing-ms 100";

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, BenchError> {
        let mut parsed = Args {
            operator: PathBuf::from("target/release/kubegres-restore-operator"),
            latency: 200,
            total: 1000,
            spacing: Duration::from_millis(100),
            operator_log: None,
            concurrency: None,
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| BenchError::Usage(format!("{flag} needs a value\n{USAGE}")));
            let number = |text: String| {
                text.parse::<u64>().map_err(|_| BenchError::Usage(format!("{flag} {text:?} is not a number\n{USAGE}")))
            };
            match flag.as_str() {
                "--operator" => parsed.operator = PathBuf::from(value()?),
                "--latency" => parsed.latency = number(value()?)? as usize,
                "--total" => parsed.total = number(value()?)? as usize,
                "--spacing-ms" => parsed.spacing = Duration::from_millis(number(value()?)?),
                "--operator-log" => parsed.operator_log = Some(PathBuf::from(value()?)),
                "--operator-concurrency" => {
                    let text = value()?;
                    let concurrency = text.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        BenchError::Usage(format!("--operator-concurrency {text:?} is not a number from 1 to 65535"))
                    })?;
                    parsed.concurrency = Some(concurrency);
                }
                "-h" | "--help" => return Err(BenchError::Usage(USAGE.to_string())),
                _ => return Err(BenchError::Usage(format!("unknown argument {flag:?}\n{USAGE}"))),
            }
        }
        if parsed.latency == 0 || parsed.total < parsed.latency {
            return Err(BenchError::Usage(format!("need 0 < --latency <= --total\n{USAGE}")));
        }
        Ok(parsed)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(figures) => {
            println!("{}", figures.table());
            if figures.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            eprintln!("operator-bench: {} ({})", error, error.reason());
            ExitCode::from(2)
        }
    }
}

async fn run(args: &Args) -> Result<Figures, BenchError> {
    if !args.operator.is_file() {
        return Err(BenchError::Usage(format!(
            "the operator binary {} does not exist: run `cargo build --release -p kubegres-restore-operator`",
            args.operator.display()
        )));
    }
    eprintln!("operator-bench: starting the control plane");
    let cp = ControlPlane::try_start().await.map_err(BenchError::ControlPlane)?;
    let admin = cp.client();
    harness::deploy::install_operator_rbac(&admin).await;
    harness::deploy::install_kubegres_crd(&admin).await;
    // Returns once the operator's bindings are in effect.
    drop(harness::deploy::operator_client(&cp).await);

    let dir = tempfile::Builder::new()
        .prefix("operator-bench-")
        .tempdir()
        .map_err(|source| BenchError::io("create a temporary directory", source))?;
    let kubeconfig = dir.path().join("kubeconfig");
    let token = harness::deploy::operator_token(&cp).await;
    process::write_private(&kubeconfig, &cp.kubeconfig_yaml_with_token(&token))
        .map_err(|source| BenchError::io("write the operator's kubeconfig", source))?;
    drop(token);

    let bulk_namespaces = args.total.saturating_sub(args.latency).div_ceil(PER_BULK_NAMESPACE);
    let namespaces: Vec<String> = std::iter::once(LATENCY_NAMESPACE.to_string())
        .chain((1..=bulk_namespaces).map(|i| format!("bench-bulk-{i}")))
        .collect();
    for namespace in &namespaces {
        create_namespace(&admin, namespace).await?;
    }

    // The Pod watch runs before the operator starts and before any create.
    let pods = PodWatch::start(admin.clone()).await?;

    eprintln!("operator-bench: starting {}", args.operator.display());
    let log = args.operator_log.clone().unwrap_or_else(|| dir.path().join("operator.log"));
    let mut operator = OperatorProcess::start(&args.operator, &kubeconfig, &log, args.concurrency).await?;
    let started = operator.started_in();
    tokio::time::sleep(SETTLE).await;
    let idle = operator.memory()?;
    eprintln!("operator-bench: idle RSS {:.1} MB", idle.rss_mb());

    eprintln!(
        "operator-bench: {} restores, {} ms apart, in {LATENCY_NAMESPACE}",
        args.latency,
        args.spacing.as_millis()
    );
    let restores: Api<KubegresRestore> = Api::namespaced(admin.clone(), LATENCY_NAMESPACE);
    let mut created = HashMap::new();
    let mut create_calls = Vec::new();
    let mut ticks = tokio::time::interval(args.spacing);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..args.latency {
        ticks.tick().await;
        let name = format!("lat-{i:04}");
        let call = Instant::now();
        create_restore(&restores, LATENCY_NAMESPACE, &name).await?;
        let returned = Instant::now();
        create_calls.push(returned - call);
        created.insert(pod_key(LATENCY_NAMESPACE, &name), returned);
    }
    // How long the creates took from first to last: the rate the operator was offered.
    let created_over = match (created.values().min(), created.values().max()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::ZERO,
    };
    let seen = pods.wait_for(&created, PODS_TIMEOUT, &mut operator).await?;
    let latencies = Latencies::new(created.iter().map(|(key, at)| seen[key].saturating_duration_since(*at)).collect());
    eprintln!("operator-bench: latency p50 {:?}, p99 {:?}", latencies.percentile(50.0), latencies.percentile(99.0));

    let bulk = args.total - args.latency;
    eprintln!("operator-bench: {bulk} more restores, {BULK_IN_FLIGHT} creates in flight");
    let bulk_started = Instant::now();
    let names: Vec<(String, String)> =
        (0..bulk).map(|i| (format!("bench-bulk-{}", i / PER_BULK_NAMESPACE + 1), format!("bulk-{i:04}"))).collect();
    let bulk_created: HashMap<String, Instant> = futures::stream::iter(names.iter())
        .map(|(namespace, name)| {
            let api: Api<KubegresRestore> = Api::namespaced(admin.clone(), namespace);
            async move {
                create_restore(&api, namespace, name).await?;
                Ok::<_, BenchError>((pod_key(namespace, name), Instant::now()))
            }
        })
        .buffer_unordered(BULK_IN_FLIGHT)
        .try_collect()
        .await?;
    let created_in = bulk_started.elapsed();
    pods.wait_for(&bulk_created, PODS_TIMEOUT, &mut operator).await?;
    let all_pods_in = bulk_started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let loaded = operator.memory()?;
    let phases = count_phases(&admin).await?;
    let metrics = operator.metrics().await.unwrap_or_default();

    eprintln!("operator-bench: stopping the operator with SIGTERM");
    let shutdown = operator.terminate().await?;
    Ok(Figures {
        started,
        idle,
        latencies,
        spacing: args.spacing,
        concurrency: args.concurrency,
        bulk_in_flight: BULK_IN_FLIGHT,
        created_over,
        create_calls: Latencies::new(create_calls),
        bulk,
        created_in,
        all_pods_in,
        loaded,
        phases,
        reconciles: report::metric(&metrics, "kubegres_restore_reconciles_total"),
        reconcile_errors: report::metric_sum(&metrics, "kubegres_restore_reconcile_errors_total"),
        reconcile_seconds: report::metric(&metrics, "kubegres_restore_reconcile_duration_seconds_sum"),
        shutdown,
    })
}

/// `namespace/<name>-restore-1`: the Pod of a restore's first attempt.
fn pod_key(namespace: &str, restore: &str) -> String {
    format!("{namespace}/{restore}-restore-1")
}

async fn create_namespace(admin: &kube::Client, name: &str) -> Result<(), BenchError> {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
        .map_err(|error| BenchError::Usage(format!("namespace {name}: {error}")))?;
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .map_err(|source| BenchError::api(format!("create namespace {name}"), source))?;
    Ok(())
}

/// Creates a restore from an HTTP URL into an existing PostgreSQL: the
/// operator creates its Pod at once (no Kubegres cluster to wait for).
async fn create_restore(api: &Api<KubegresRestore>, namespace: &str, name: &str) -> Result<(), BenchError> {
    let restore: KubegresRestore = serde_json::from_value(json!({
        "apiVersion": "kubegres.reactive-tech.io/v1",
        "kind": "KubegresRestore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "dataSource": {"http": {"url": "https://dumps.example/app.sql.gz"}},
            "target": {"postgres": {"host": "db.example", "database": "app", "credentialsSecret": {"name": "pg"}}}
        }
    }))
    .map_err(|error| BenchError::Usage(format!("the restore {name} does not match the CRD's types: {error}")))?;
    api.create(&PostParams::default(), &restore)
        .await
        .map_err(|source| BenchError::api(format!("create KubegresRestore {namespace}/{name}"), source))?;
    Ok(())
}

/// How many restores are in each phase (from one list of all of them).
async fn count_phases(admin: &kube::Client) -> Result<Vec<(String, usize)>, BenchError> {
    let restores: Api<KubegresRestore> = Api::all(admin.clone());
    let list =
        restores.list(&ListParams::default()).await.map_err(|source| BenchError::api("list the restores", source))?;
    let mut phases: Vec<(String, usize)> = Vec::new();
    for restore in &list.items {
        let phase = restore.status.as_ref().map(|status| status.phase().to_string()).unwrap_or_else(|| "-".into());
        match phases.iter_mut().find(|(seen, _)| *seen == phase) {
            Some((_, count)) => *count += 1,
            None => phases.push((phase, 1)),
        }
    }
    Ok(phases)
}

/// A metadata watch on Pods in every namespace that records when each Pod
/// was first seen.
struct PodWatch {
    first_seen: Arc<Mutex<HashMap<String, Instant>>>,
    count: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    /// Starts the watch and returns once its initial list is done.
    async fn start(admin: kube::Client) -> Result<PodWatch, BenchError> {
        let first_seen = Arc::new(Mutex::new(HashMap::new()));
        let (count_tx, count) = watch::channel(0);
        let (synced_tx, synced) = tokio::sync::oneshot::channel();
        let seen = first_seen.clone();
        let task = tokio::spawn(async move {
            // Metadata only: the Pod's name is all that is needed.
            let api: Api<PartialObjectMeta<Pod>> = Api::all(admin);
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            let mut synced_tx = Some(synced_tx);
            while let Some(event) = events.next().await {
                let at = Instant::now();
                match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
                        let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        seen.entry(key).or_insert(at);
                        let _ = count_tx.send(seen.len());
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(synced) = synced_tx.take() {
                            let _ = synced.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(error) => eprintln!("operator-bench: the Pod watch failed (it retries): {error}"),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), synced)
            .await
            .map_err(|_| BenchError::Timeout {
                what: "the Pod watch did not sync".into(),
                waited: Duration::from_secs(30),
            })?
            .map_err(|_| BenchError::Operator("the Pod watch stopped before it synced".into()))?;
        Ok(PodWatch { first_seen, count, task })
    }

    /// Waits until every Pod of `expected` was seen and returns when each
    /// was first seen; fails early when the operator exits.
    async fn wait_for(
        &self,
        expected: &HashMap<String, Instant>,
        timeout: Duration,
        operator: &mut OperatorProcess,
    ) -> Result<HashMap<String, Instant>, BenchError> {
        let deadline = Instant::now() + timeout;
        let mut count = self.count.clone();
        loop {
            {
                let seen = self.first_seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let missing = expected.keys().filter(|key| !seen.contains_key(*key)).count();
                if missing == 0 {
                    return Ok(expected.keys().map(|key| (key.clone(), seen[key])).collect());
                }
                if Instant::now() > deadline {
                    return Err(BenchError::Timeout {
                        what: format!("{missing} of {} restores did not get their Pod", expected.len()),
                        waited: timeout,
                    });
                }
            }
            operator.check_running()?;
            let _ = tokio::time::timeout(Duration::from_millis(500), count.changed()).await;
        }
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, BenchError> {
        Args::parse(line.split_whitespace().map(str::to_string))
    }

    #[test]
    fn arguments() {
        let parsed = args("--latency 20 --total 50 --spacing-ms 5 --operator /x --operator-concurrency 32").unwrap();
        assert_eq!(parsed.concurrency, Some(32));
        assert_eq!(args("").unwrap().concurrency, None);
        assert_eq!(args("--operator-concurrency 0").unwrap_err().reason(), "Usage");
        assert_eq!((parsed.latency, parsed.total, parsed.spacing), (20, 50, Duration::from_millis(5)));
        assert_eq!(parsed.operator, PathBuf::from("/x"));
        assert_eq!(args("--total 10 --latency 20").unwrap_err().reason(), "Usage");
        assert!(args("--latency x").unwrap_err().to_string().starts_with("--latency \"x\" is not a number"));
        assert!(args("--bogus").unwrap_err().to_string().starts_with("unknown argument \"--bogus\""));
    }

    #[test]
    fn pod_keys() {
        assert_eq!(pod_key("bench-latency", "lat-0001"), "bench-latency/lat-0001-restore-1");
    }
}
