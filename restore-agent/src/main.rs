//! `restore-agent`: see `restore-agent --help`.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use proto::ExitCode;
use restore_agent::cli::{Cli, Command, LogFormat, ProgressMode};
use restore_agent::progress::{self, ProgressSink};
use restore_agent::{Error, inspect, restore, status};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => exit_with(&Error::Internal(format!("cannot start the runtime: {e}"))),
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Restore(args) => {
                let mode = args.progress;
                let interval = Duration::from_secs_f64(args.progress_interval.clamp(0.1, 3600.0));
                let mut sinks: Vec<Box<dyn ProgressSink>> = match mode {
                    ProgressMode::Json => vec![Box::new(progress::JsonLines::new(interval))],
                    ProgressMode::Bar => vec![Box::new(progress::Bar::new())],
                    ProgressMode::Log => vec![Box::new(progress::LogLines::new(interval))],
                    ProgressMode::Auto if std::io::stderr().is_terminal() => vec![Box::new(progress::Bar::new())],
                    ProgressMode::Auto => {
                        vec![Box::new(progress::LogLines::new(interval.max(Duration::from_secs(10))))]
                    }
                    ProgressMode::None => vec![],
                };
                if let Some(resource) = &args.kubegres_restore {
                    match status::StatusSink::connect(resource, interval).await {
                        Ok(sink) => sinks.push(Box::new(sink)),
                        // The restore itself does not need the API: go on, and say so.
                        Err(e) => tracing::warn!("progress will not reach the KubegresRestore status: {e}"),
                    }
                }
                match restore::run(&args, sinks).await {
                    Ok(summary) => {
                        tracing::info!(
                            statements = summary.statements,
                            rows = summary.rows,
                            tolerated = summary.warnings,
                            databases = ?summary.databases,
                            seconds = format!("{:.1}", summary.elapsed_seconds),
                            "restore completed"
                        );
                        ExitCode::Success
                    }
                    Err(e) => {
                        if let Some(path) = &args.termination_log {
                            write_termination_log(path, &e);
                        }
                        report(&e)
                    }
                }
            }
            Command::Inspect(args) => match inspect::run(&args).await {
                Ok(()) => ExitCode::Success,
                Err(e) => report(&e),
            },
        }
    });
    // Do not wait for blocking readers still parked on a source.
    runtime.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(i32::from(code.code()));
}

/// One line that names the problem; with `--progress json` the failure was
/// also printed as the last JSON event.
fn report(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    tracing::debug!(reason = e.reason(), "failed");
    e.exit_code()
}

/// Kubernetes keeps at most 4096 bytes of a termination message.
const TERMINATION_LOG_MAX: usize = 4096;

fn write_termination_log(path: &std::path::Path, e: &Error) {
    let mut failure = e.to_failure();
    let mut json = serde_json::to_string(&failure).unwrap_or_default();
    if json.len() > TERMINATION_LOG_MAX {
        // Keep it valid JSON: shorten the message, never cut the text in the middle of a field.
        let excess = json.len() - TERMINATION_LOG_MAX + 3;
        let keep = failure.message.len().saturating_sub(excess);
        let cut = (0..=keep).rev().find(|i| failure.message.is_char_boundary(*i)).unwrap_or(0);
        failure.message.truncate(cut);
        failure.message.push_str("...");
        json = serde_json::to_string(&failure).unwrap_or_default();
    }
    if let Err(err) = std::fs::write(path, json) {
        tracing::warn!("cannot write the termination log {}: {err}", path.display());
    }
}

fn exit_with(e: &Error) -> ! {
    let code = report(e);
    std::process::exit(i32::from(code.code()))
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
