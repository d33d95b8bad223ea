//! `kubegres-restore-operator`: the operator's process. It serves
//! `/healthz`, `/readyz` and `/metrics`, takes part in leader election, and
//! runs the controller while it leads.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use operator::controller::{self, Config};
use operator::health::{Health, Readiness};
use operator::leader::{Election, LeaseConfig};
use operator::metrics::Metrics;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// Acts on KubegresRestore resources: creates the target, runs the restore
/// agent in a Pod, retries, cleans up, and reports in the status.
#[derive(Debug, Parser)]
#[command(name = "kubegres-restore-operator", version)]
struct Args {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "OPERATOR_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// The restore agent image, for restores that do not name one.
    #[arg(long, env = "KUBEGRES_RESTORE_AGENT_IMAGE", default_value = operator::decide::DEFAULT_AGENT_IMAGE)]
    agent_image: String,
    /// Other agent images a restore's `spec.agent.image` may name, comma
    /// separated; an entry ending in `*` is a prefix (`registry.example/restore-agent:*`).
    /// Default: only --agent-image. A restore Pod gets the target's and the
    /// source's credentials: allow only images you trust with them.
    #[arg(long, env = "KUBEGRES_RESTORE_ALLOWED_AGENT_IMAGES", value_delimiter = ',')]
    allowed_agent_images: Vec<String>,
    /// Where to serve /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Take part in leader election (turn off only when one replica runs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// The Lease's name.
    #[arg(long, default_value = "kubegres-restore-operator")]
    lease_name: String,
    /// The Lease's namespace (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubegres-restore-system")]
    lease_namespace: String,
    /// This replica's identity in the election and on Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How many restores are reconciled at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "OPERATOR_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, default_value = "info", env = "OPERATOR_LOG")]
    log: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match EnvFilter::try_new(&args.log) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("error: --log {:?} is not a valid filter: {error}", args.log);
            return ExitCode::from(2);
        }
    };
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().flatten_event(true).with_current_span(true).init(),
    }
    match run(args).await {
        Ok(code) => code,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    let client =
        kube::Client::try_default().await.map_err(|e| format!("cannot configure the Kubernetes client: {e}"))?;
    let identity = args.identity.clone().unwrap_or_else(|| format!("kubegres-restore-operator-{}", std::process::id()));
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());

    // SIGTERM or Ctrl-C: stop reconciling, release the lease, exit 0.
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.http_addr))?;
    let router = operator::health::router(health.clone(), metrics.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!("the HTTP server stopped: {error}");
        }
    });
    tracing::info!(addr = %args.http_addr, "serving /healthz, /readyz and /metrics");

    let config = Config {
        namespace: args.namespace.clone(),
        agent_image: args.agent_image.clone(),
        allowed_agent_images: args
            .allowed_agent_images
            .iter()
            .map(|image| image.trim().to_string())
            .filter(|image| !image.is_empty())
            .collect(),
        instance: Some(identity.clone()),
        concurrency: args.concurrency,
    };
    if !args.leader_election {
        controller::run(client, config, metrics, health, stopped(stop)).await;
        return Ok(ExitCode::SUCCESS);
    }

    let lease = LeaseConfig { name: args.lease_name.clone(), namespace: args.lease_namespace.clone(), identity };
    let mut election = Election::start(client.clone(), &lease)
        .await
        .map_err(|e| format!("cannot take part in leader election (Lease {}/{}): {e}", lease.namespace, lease.name))?;
    health.set(Readiness::Standby);
    tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "waiting for the lease");
    let mut stop_wait = stop.clone();
    let became_leader = tokio::select! {
        leading = election.leading.wait_for(|leading| *leading) => leading.is_ok(),
        _ = stop_wait.wait_for(|stopped| *stopped) => false,
    };
    if !became_leader {
        let stopping = *stop.borrow();
        election.release().await;
        if stopping {
            return Ok(ExitCode::SUCCESS);
        }
        return Err("the lease manager stopped before this replica became the leader".to_string());
    }
    tracing::info!("leading: starting the controller");

    // Stop when asked to, or when the lease is lost (another replica may
    // lead now: exit so that the Pod restarts as a standby).
    let (lost_tx, lost) = watch::channel(false);
    let mut leading = election.leading.clone();
    let watcher = tokio::spawn(async move {
        let _ = leading.wait_for(|leading| !*leading).await;
        let _ = lost_tx.send(true);
    });
    let shutdown = {
        let (stop, lost) = (stop.clone(), lost.clone());
        async move {
            tokio::select! {
                () = stopped(stop) => {}
                () = stopped(lost) => {}
            }
        }
    };
    controller::run(client, config, metrics, health, shutdown).await;
    watcher.abort();
    let lost_lease = *lost.borrow();
    election.release().await;
    if lost_lease {
        tracing::error!("lost the lease: exiting so that this replica restarts as a standby");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
