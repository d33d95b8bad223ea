//! The benchmark's figures, its floors and the table it prints.

use std::fmt::Write as _;
use std::time::Duration;

use crate::process::{Memory, Shutdown, mb};

/// Idle RSS floor of the operator issue: 20 MB.
pub const IDLE_RSS_FLOOR: u64 = 20_000_000;
/// RSS floor with 1,000 restores: 40 MB.
pub const LOADED_RSS_FLOOR: u64 = 40_000_000;
/// Create-to-Pod p99 floor: 1 s.
pub const P99_FLOOR: Duration = Duration::from_secs(1);
/// The Kubegres operator's own memory request (its manifest asks 64Mi).
pub const KUBEGRES_REQUEST: u64 = 64 * 1024 * 1024;

/// Create-to-Pod latencies, sorted.
#[derive(Debug)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Sorts `samples`.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Latencies(samples)
    }

    /// The nearest-rank percentile `p` (0 < p <= 100); zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Everything the benchmark measured.
#[derive(Debug)]
pub struct Figures {
    /// From the process start to `/readyz` saying it leads.
    pub started: Duration,
    /// 5 s after readiness.
    pub idle: Memory,
    /// The latency run.
    pub latencies: Latencies,
    /// The pause between creates of the latency run.
    pub spacing: Duration,
    /// The operator's `--concurrency`, when the benchmark set it.
    pub concurrency: Option<u16>,
    /// How many bulk creates were in flight at once.
    pub bulk_in_flight: usize,
    /// From the first to the last create of the latency run.
    pub created_over: Duration,
    /// How long each create call of the latency run took.
    pub create_calls: Latencies,
    /// Restores created in the bulk phase.
    pub bulk: usize,
    /// How long the bulk creates took.
    pub created_in: Duration,
    /// From the first bulk create to the last bulk Pod seen.
    pub all_pods_in: Duration,
    /// 5 s after every restore had its Pod.
    pub loaded: Memory,
    /// Restores by phase at the end.
    pub phases: Vec<(String, usize)>,
    /// `kubegres_restore_reconciles_total` at the end.
    pub reconciles: f64,
    /// Sum of `kubegres_restore_reconcile_errors_total` at the end.
    pub reconcile_errors: f64,
    /// `kubegres_restore_reconcile_duration_seconds_sum` at the end.
    pub reconcile_seconds: f64,
    /// How the operator stopped.
    pub shutdown: Shutdown,
}

impl Figures {
    /// Every restore, latency run and bulk.
    pub fn total(&self) -> usize {
        self.latencies.len() + self.bulk
    }

    /// Whether every floor held and the operator exited 0 on SIGTERM.
    pub fn passed(&self) -> bool {
        self.idle.rss <= IDLE_RSS_FLOOR
            && self.loaded.rss <= LOADED_RSS_FLOOR
            && self.latencies.percentile(99.0) <= P99_FLOOR
            && self.shutdown.code == Some(0)
    }

    /// The table, the ratios and the verdict.
    pub fn table(&self) -> String {
        let total = self.total();
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nkubegres-restore-operator (release) on the local control plane: kube-apiserver {}, etcd {}, {cores} cores",
            harness::controlplane::kube_version(),
            harness::controlplane::etcd_version(),
        );
        let concurrency = match self.concurrency {
            Some(concurrency) => format!("--concurrency {concurrency}"),
            None => "the default --concurrency".to_string(),
        };
        let _ = writeln!(out, "operator: all namespaces, leader election on, JSON logs at info, {concurrency}");
        let _ = writeln!(out, "(MB = 10^6 bytes; ratio = value / floor; Kubegres = value / 64 MiB)\n");
        let _ = writeln!(out, "| figure | value | floor | ratio | vs Kubegres |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let _ = writeln!(out, "| start to ready (leader, caches synced) | {} | - | - | - |", secs(self.started));
        memory_row(&mut out, "idle RSS (VmRSS)", self.idle.rss, Some(IDLE_RSS_FLOOR));
        memory_row(&mut out, &format!("RSS with {total} restores (VmRSS)"), self.loaded.rss, Some(LOADED_RSS_FLOOR));
        memory_row(&mut out, "peak RSS (VmHWM)", self.loaded.hwm, Some(LOADED_RSS_FLOOR));
        for (label, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
            let value = self.latencies.percentile(p);
            let (floor, ratio) = if label == "p99" {
                (secs(P99_FLOOR), format!("{:.2}", value.as_secs_f64() / P99_FLOOR.as_secs_f64()))
            } else {
                ("-".to_string(), "-".to_string())
            };
            let _ = writeln!(out, "| create -> Pod seen, {label} | {} | {floor} | {ratio} | - |", millis(value));
        }

        let _ = writeln!(out, "\nRSS breakdown (anon = heap and stacks, file = the binary's pages):");
        let _ = writeln!(
            out,
            "  idle:   anon {:.1} MB, file {:.1} MB\n  loaded: anon {:.1} MB, file {:.1} MB; growth {:.1} MB for {total} restores ({:.1} KB each)",
            mb(self.idle.anon),
            mb(self.idle.file),
            mb(self.loaded.anon),
            mb(self.loaded.file),
            mb(self.loaded.rss.saturating_sub(self.idle.rss)),
            self.loaded.rss.saturating_sub(self.idle.rss) as f64 / 1e3 / total.max(1) as f64,
        );
        let offered = self.latencies.len().saturating_sub(1) as f64 / self.created_over.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "latency: {} restores created one by one, {} ms apart, in one namespace ({offered:.0} creates/s; \
             create call p50 {}, p99 {})",
            self.latencies.len(),
            self.spacing.as_millis(),
            millis(self.create_calls.percentile(50.0)),
            millis(self.create_calls.percentile(99.0)),
        );
        let rate = self.bulk as f64 / self.all_pods_in.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "bulk: {} more restores created in {} ({} creates in flight), all their Pods in {} ({rate:.0} restores/s)",
            self.bulk,
            secs(self.created_in),
            self.bulk_in_flight,
            secs(self.all_pods_in)
        );
        let phases: Vec<String> = self.phases.iter().map(|(phase, count)| format!("{phase} {count}")).collect();
        let _ = writeln!(out, "restores by phase at the end: {}", phases.join(", "));
        let _ = writeln!(
            out,
            "reconciles: {:.0} ({:.1} per restore, {} each on average), reconcile errors: {:.0}",
            self.reconciles,
            self.reconciles / total.max(1) as f64,
            millis(Duration::from_secs_f64(self.reconcile_seconds / self.reconciles.max(1.0))),
            self.reconcile_errors
        );
        let code = match (self.shutdown.killed, self.shutdown.code) {
            (true, _) => "did not exit in time: killed".to_string(),
            (false, Some(code)) => format!("exit code {code}"),
            (false, None) => "killed by a signal".to_string(),
        };
        let _ = writeln!(out, "SIGTERM: {code} after {}", millis(self.shutdown.took));

        let verdict = if self.passed() { "every floor holds" } else { "FLOOR MISSED" };
        let _ = writeln!(
            out,
            "\n{verdict}: idle {:.2} of 20 MB, loaded {:.2} of 40 MB, p99 {:.2} of 1 s; shutdown exit {}",
            self.idle.rss as f64 / IDLE_RSS_FLOOR as f64,
            self.loaded.rss as f64 / LOADED_RSS_FLOOR as f64,
            self.latencies.percentile(99.0).as_secs_f64() / P99_FLOOR.as_secs_f64(),
            self.shutdown.code.map_or("-".to_string(), |code| code.to_string()),
        );
        out
    }
}

fn memory_row(out: &mut String, label: &str, bytes: u64, floor: Option<u64>) {
    let (floor_text, ratio) = match floor {
        Some(floor) => (format!("{:.0} MB", mb(floor)), format!("{:.2}", bytes as f64 / floor as f64)),
        None => ("-".to_string(), "-".to_string()),
    };
    let _ = writeln!(
        out,
        "| {label} | {:.1} MB | {floor_text} | {ratio} | {:.2} |",
        mb(bytes),
        bytes as f64 / KUBEGRES_REQUEST as f64
    );
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn millis(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1e3)
}

/// The value of an unlabelled metric in the Prometheus text format (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The sum of a labelled metric's series (0 when absent).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| rest.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .fold(0.0, |sum, value| sum + value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let latencies = Latencies::new((1..=200).rev().map(Duration::from_millis).collect());
        assert_eq!(latencies.percentile(50.0), Duration::from_millis(100));
        assert_eq!(latencies.percentile(99.0), Duration::from_millis(198));
        assert_eq!(latencies.percentile(100.0), Duration::from_millis(200));
        assert_eq!(Latencies::new(vec![]).percentile(99.0), Duration::ZERO);
        assert_eq!(Latencies::new(vec![Duration::from_millis(7)]).percentile(1.0), Duration::from_millis(7));
    }

    #[test]
    fn metrics_are_read() {
        let text = "# TYPE x counter\nkubegres_restore_reconciles_total 1234\n\
                    kubegres_restore_reconcile_errors_total{category=\"Conflict\"} 2\n\
                    kubegres_restore_reconcile_errors_total{category=\"Forbidden\"} 1\n# EOF\n";
        assert_eq!(metric(text, "kubegres_restore_reconciles_total"), 1234.0);
        assert_eq!(metric_sum(text, "kubegres_restore_reconcile_errors_total"), 3.0);
        assert_eq!(metric(text, "missing"), 0.0);
        assert_eq!(metric_sum(text, "missing").to_string(), "0");
    }
}
