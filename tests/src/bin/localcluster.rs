//! `localcluster up --dir DIR`: the whole system on this machine (the real
//! control plane, the operator as its own process, the process kubelet and
//! the simulated Kubegres), in the foreground until SIGTERM or Ctrl-C, which
//! stop every process it started.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::localcluster::{LocalCluster, Options};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(name = "localcluster", about = "A local Kubernetes cluster for kubegres-restore (see README)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the cluster, write DIR/kubeconfig once ready, run until SIGTERM or Ctrl-C.
    Up {
        /// Where the kubeconfig, PVC folders (DIR/volumes/<namespace>/<claim>), Pods and logs go.
        #[arg(long)]
        dir: PathBuf,
        /// The operator binary (default: next to this program).
        #[arg(long)]
        operator_bin: Option<PathBuf>,
        /// The restore-agent binary, what the restore-agent image runs (default: next to this program).
        #[arg(long)]
        agent_bin: Option<PathBuf>,
        /// Also stop when stdin reaches end of file (for a parent process that may die).
        #[arg(long)]
        stop_on_stdin_eof: bool,
        /// Remove DIR, PVC folders included, once stopped (for tests).
        #[arg(long)]
        remove_dir_on_stop: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCALCLUSTER_LOG")
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Up { dir, operator_bin, agent_bin, stop_on_stdin_eof, remove_dir_on_stop } = Cli::parse().command;
    let remove = remove_dir_on_stop.then(|| dir.clone());
    let mut options = Options::beside_current_exe(dir);
    if let Some(bin) = operator_bin {
        options.operator_bin = bin;
    }
    if let Some(bin) = agent_bin {
        options.agent_bin = bin;
    }
    let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        eprintln!("error: cannot listen for SIGTERM and SIGINT");
        return ExitCode::FAILURE;
    };
    let cluster = tokio::select! {
        started = LocalCluster::start(options) => match started {
            Ok(cluster) => cluster,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
        _ = terminate.recv() => return ExitCode::from(143),
        _ = interrupt.recv() => return ExitCode::from(130),
    };
    println!("{}", cluster.usage());
    let stdin_closed = async {
        if !stop_on_stdin_eof {
            return std::future::pending().await;
        }
        // A blocking read on a thread of its own: it returns at end of file.
        let _ = tokio::task::spawn_blocking(|| {
            use std::io::Read as _;
            let mut buffer = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {}
        })
        .await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        _ = stdin_closed => {}
    }
    eprintln!("stopping the local cluster...");
    cluster.stop().await;
    if let Some(dir) = remove
        && let Err(error) = std::fs::remove_dir_all(&dir)
    {
        eprintln!("cannot remove {}: {error}", dir.display());
    }
    eprintln!("stopped");
    ExitCode::SUCCESS
}
