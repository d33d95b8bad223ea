//! What a failed restore Pod says: the agent's `RestoreFailure` report, or
//! the raw termination message with the exit code's reason.

use proto::{ExitCode, RestoreFailure, RestoreProgress};

use super::observed::RestorePod;

/// The longest failure message kept from a termination message that is not
/// the agent's JSON (with `FallbackToLogsOnError`, the end of its logs).
const MAX_MESSAGE: usize = 1024;

/// Why a failed Pod failed, and whether another attempt could succeed.
/// `progress` is the attempt's last progress in status, said of an agent
/// killed before it could report.
pub(super) fn failure_of(pod: &RestorePod, progress: Option<&RestoreProgress>) -> (RestoreFailure, bool) {
    let code = pod.exit_code.and_then(ExitCode::from_code);
    // Killed by a signal or evicted (no code of ours): the node, not the dump.
    let retryable = code.is_none_or(ExitCode::is_retryable);
    let message = pod.message.as_deref().map(str::trim).unwrap_or_default();
    if let Ok(mut failure) = serde_json::from_str::<RestoreFailure>(message)
        && !failure.reason.is_empty()
    {
        if failure.exit_code.is_none() {
            failure.exit_code = pod.exit_code.and_then(|code| u8::try_from(code).ok());
        }
        // An SQL error the data causes (a corrupt dump, a bad statement)
        // comes back on every attempt: only transient classes are retried.
        let retryable = retryable && failure.sqlstate.as_deref().is_none_or(proto::is_transient_sqlstate);
        return (failure, retryable);
    }
    if let Some(killed) = killed(pod) {
        // The log tail (FallbackToLogsOnError) of a killed agent ends
        // mid-line: say what happened and how far it got instead.
        let failure = RestoreFailure {
            reason: if pod.reason.as_deref() == Some("OOMKilled") { "OOMKilled" } else { "AgentKilled" }.to_string(),
            message: format!("{killed}{}", progress.map(progress_summary).unwrap_or_default()),
            exit_code: pod.exit_code.and_then(|code| u8::try_from(code).ok()),
            ..Default::default()
        };
        return (failure, true);
    }
    let reason = match code {
        Some(code) => exit_reason(code).to_string(),
        None => pod.reason.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "AgentFailed".to_string()),
    };
    let message = if message.is_empty() {
        match (pod.exit_code, code) {
            (Some(raw), Some(code)) => format!("the restore agent exited with code {raw}: {}", code.describe()),
            (Some(raw), None) => format!("the restore agent exited with code {raw}"),
            _ => "the restore agent stopped without an exit code".to_string(),
        }
    } else {
        last_chars(message, MAX_MESSAGE)
    };
    let failure = RestoreFailure {
        reason,
        message,
        exit_code: pod.exit_code.and_then(|code| u8::try_from(code).ok()),
        ..Default::default()
    };
    (failure, retryable)
}

/// How the agent was killed, when it was (out of memory, or a signal: exit
/// code 128 + N).
fn killed(pod: &RestorePod) -> Option<String> {
    if pod.reason.as_deref() == Some("OOMKilled") {
        return Some("the restore agent was killed for using more memory than its limit (OOMKilled)".to_string());
    }
    let signal = pod.exit_code.filter(|code| (129..=192).contains(code))? - 128;
    let name = match signal {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    };
    Some(format!("the restore agent was killed by signal {signal}{name}"))
}

/// `; it had read 12.0 MiB of 40.0 MiB (30%), 1234 rows, at TABLE DATA public.film`.
fn progress_summary(progress: &RestoreProgress) -> String {
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / 1_048_576.0);
    let mut out = format!("; it had read {}", mib(progress.bytes_read));
    if let Some(total) = progress.bytes_total {
        out.push_str(&format!(" of {}", mib(total)));
    }
    if let Some(percent) = progress.percent {
        out.push_str(&format!(" ({percent}%)"));
    }
    out.push_str(&format!(", {} rows", progress.rows_copied));
    if let Some(object) = &progress.current_object {
        out.push_str(&format!(", at {object}"));
    }
    out
}

/// A CamelCase reason for an exit code.
fn exit_reason(code: ExitCode) -> &'static str {
    match code {
        ExitCode::Success => "Succeeded",
        ExitCode::Internal => "InternalError",
        ExitCode::Usage => "UsageError",
        ExitCode::Source => "SourceError",
        ExitCode::Target => "TargetError",
        ExitCode::TargetNotEmpty => "TargetNotEmpty",
        ExitCode::Tooling => "ToolingError",
    }
}

/// The end of a long message (logs end with the error).
fn last_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max { text.to_string() } else { text.chars().skip(count - max).collect() }
}
