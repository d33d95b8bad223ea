//! Prometheus metrics (prometheus-client), served on `/metrics`. Labels are
//! categories (phase, result, error category), never object names.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use proto::Phase;

/// A `phase` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// The phase's name.
    pub phase: String,
}

/// A `result` label: `succeeded` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// The result.
    pub result: String,
}

/// A `category` label of a reconcile error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    /// [`Error::category`](crate::Error::category).
    pub category: String,
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    restores: Family<PhaseLabel, Gauge>,
    durations: Family<ResultLabel, Histogram>,
    restored_bytes: Counter,
    reconciles: Counter,
    reconcile_duration: Histogram,
    reconcile_errors: Family<CategoryLabel, Counter>,
    /// The last phase seen of each restore (namespace, name).
    phases: Mutex<HashMap<(String, String), Phase>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `kubegres_restore` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kubegres_restore");
        let restores = Family::<PhaseLabel, Gauge>::default();
        registry.register("restores", "KubegresRestores by phase", restores.clone());
        let durations = Family::<ResultLabel, Histogram>::new_with_constructor(|| {
            // 10 s to about 11 days.
            Histogram::new(exponential_buckets(10.0, 2.0, 17))
        });
        registry.register("restore_duration_seconds", "Time from start to completion of a restore", durations.clone());
        let restored_bytes = Counter::default();
        registry.register("restored_bytes", "Dump bytes read by restores that succeeded", restored_bytes.clone());
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register("reconcile_duration_seconds", "Time of one reconcile", reconcile_duration.clone());
        let reconcile_errors = Family::<CategoryLabel, Counter>::default();
        registry.register("reconcile_errors", "Reconciles that failed, by error category", reconcile_errors.clone());
        for phase in Phase::ALL {
            restores.get_or_create(&PhaseLabel { phase: phase.as_str().to_string() }).set(0);
        }
        Metrics {
            registry,
            restores,
            durations,
            restored_bytes,
            reconciles,
            reconcile_duration,
            reconcile_errors,
            phases: Mutex::default(),
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Records a reconcile that took `elapsed`.
    pub fn reconciled(&self, elapsed: Duration) {
        self.reconciles.inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// Records a failed reconcile.
    pub fn reconcile_failed(&self, category: &str) {
        self.reconcile_errors.get_or_create(&CategoryLabel { category: category.to_string() }).inc();
    }

    /// Records the phase of a restore (`None`: the restore is gone).
    pub fn phase(&self, namespace: &str, name: &str, phase: Option<Phase>) {
        let mut phases = self.phases.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (namespace.to_string(), name.to_string());
        match phase {
            Some(phase) => phases.insert(key, phase),
            None => phases.remove(&key),
        };
        for phase in Phase::ALL {
            let count = phases.values().filter(|seen| **seen == phase).count();
            self.restores
                .get_or_create(&PhaseLabel { phase: phase.as_str().to_string() })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Records a restore that ended: its duration and, on success, its bytes.
    pub fn completed(&self, succeeded: bool, duration: Duration, bytes_read: u64) {
        let result = if succeeded { "succeeded" } else { "failed" };
        self.durations.get_or_create(&ResultLabel { result: result.to_string() }).observe(duration.as_secs_f64());
        if succeeded {
            self.restored_bytes.inc_by(bytes_read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_counted_per_restore_and_forgotten() {
        let metrics = Metrics::new();
        metrics.phase("db", "a", Some(Phase::Restoring));
        metrics.phase("db", "b", Some(Phase::Restoring));
        metrics.phase("db", "a", Some(Phase::Succeeded));
        let text = metrics.encode();
        assert!(text.contains("kubegres_restore_restores{phase=\"Restoring\"} 1\n"), "{text}");
        assert!(text.contains("kubegres_restore_restores{phase=\"Succeeded\"} 1\n"), "{text}");
        metrics.phase("db", "b", None);
        let text = metrics.encode();
        assert!(text.contains("kubegres_restore_restores{phase=\"Restoring\"} 0\n"), "{text}");
    }

    #[test]
    fn completions_errors_and_bytes_are_exposed() {
        let metrics = Metrics::new();
        metrics.completed(true, Duration::from_secs(30), 1000);
        metrics.completed(false, Duration::from_secs(5), 7);
        metrics.reconcile_failed("Forbidden");
        metrics.reconciled(Duration::from_millis(3));
        let text = metrics.encode();
        assert!(text.contains("kubegres_restore_restored_bytes_total 1000\n"), "{text}");
        assert!(text.contains("kubegres_restore_restore_duration_seconds_count{result=\"succeeded\"} 1\n"), "{text}");
        assert!(text.contains("kubegres_restore_restore_duration_seconds_count{result=\"failed\"} 1\n"), "{text}");
        assert!(text.contains("kubegres_restore_reconcile_errors_total{category=\"Forbidden\"} 1\n"), "{text}");
        assert!(text.contains("kubegres_restore_reconciles_total 1\n"), "{text}");
    }
}
