//! Progress: a [`Tracker`] the pipeline updates lock-free as bytes, rows and
//! objects go by, and a reporter task that hands throttled snapshots to
//! [`ProgressSink`]s: a terminal bar, JSON lines, and (in a restore Pod) the
//! KubegresRestore status.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use proto::{RestoreFailure, RestoreProgress, Section};
use serde::Serialize;

use crate::integrity::ByteCounter;

/// Shared, cheap-to-update restore counters.
#[derive(Debug)]
pub(crate) struct Tracker {
    bytes_read: Arc<ByteCounter>,
    /// The source size; `u64::MAX` while unknown.
    bytes_total: AtomicU64,
    uncompressed: AtomicU64,
    rows: AtomicU64,
    warnings: AtomicU64,
    state: Mutex<State>,
    started: Instant,
}

#[derive(Debug, Default)]
struct State {
    object: Option<String>,
    database: Option<String>,
    section: Option<Section>,
}

impl Tracker {
    pub fn new(bytes_read: Arc<ByteCounter>, bytes_total: Option<u64>) -> Arc<Tracker> {
        Arc::new(Tracker {
            bytes_read,
            bytes_total: AtomicU64::new(bytes_total.unwrap_or(u64::MAX)),
            uncompressed: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            started: Instant::now(),
        })
    }

    /// A tracker for tests that do not read a source.
    #[cfg(test)]
    pub fn detached() -> Arc<Tracker> {
        Tracker::new(Arc::new(ByteCounter::default()), None)
    }

    /// The source size, once the source is open.
    pub fn set_total(&self, total: Option<u64>) {
        self.bytes_total.store(total.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn total(&self) -> Option<u64> {
        let t = self.bytes_total.load(Ordering::Relaxed);
        (t != u64::MAX).then_some(t)
    }

    /// The object being restored, from a pg_dump header or an archive TOC
    /// entry; also moves the section forward.
    pub fn set_object(&self, kind: &str, schema: Option<&str>, name: &str) {
        let label = match schema {
            Some(s) if !s.is_empty() && s != "-" => format!("{kind} {s}.{name}"),
            _ => format!("{kind} {name}"),
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.object = Some(label);
        st.section = Some(Section::of_object_type(kind));
    }

    pub fn set_database(&self, db: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.database = Some(db.to_string());
    }

    pub fn set_section(&self, section: Section) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).section = Some(section);
    }

    pub fn add_uncompressed(&self, n: u64) {
        self.uncompressed.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_warning(&self) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The current progress as the contract describes it.
    pub fn snapshot(&self) -> RestoreProgress {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let read = self.bytes_read.get();
        let elapsed = self.started.elapsed();
        let secs = elapsed.as_secs_f64();
        let rate = if secs >= 0.5 { (read as f64 / secs) as u64 } else { 0 };
        let total = self.total();
        let percent = total.filter(|t| *t > 0).map(|t| ((read.min(t) * 100) / t) as u8);
        let eta = match (total, rate) {
            (Some(t), r) if r > 0 && t >= read => Some(human_duration(Duration::from_secs((t - read) / r))),
            _ => None,
        };
        RestoreProgress {
            bytes_read: read,
            bytes_total: total,
            bytes_uncompressed: self.uncompressed.load(Ordering::Relaxed),
            percent,
            rows_copied: self.rows.load(Ordering::Relaxed),
            current_object: st.object.clone(),
            current_database: st.database.clone(),
            section: st.section,
            throughput: (rate > 0).then(|| format!("{}/s", human_bytes(rate))),
            bytes_per_second: (rate > 0).then_some(rate),
            eta,
            elapsed_seconds: elapsed.as_secs(),
            warnings: self.warnings.load(Ordering::Relaxed),
        }
    }
}

/// `1.5 GiB`, `12.0 MiB`, `512 B`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `1h 2m 3s`, `2m 5s`, `7s`.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// What a finished restore did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub format: String,
    pub compression: String,
    pub engine: String,
    pub statements: u64,
    pub copies: u64,
    pub rows: u64,
    pub databases: Vec<String>,
    /// Errors that were tolerated (known-harmless ones, or all of them with `--on-error continue`).
    pub warnings: u64,
    pub bytes_read: u64,
    pub bytes_uncompressed: u64,
    pub elapsed_seconds: f64,
    /// The source's SHA-256, when it was computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// How a restore ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    Completed(Summary),
    Failed(RestoreFailure),
}

/// Receives throttled progress. The operator's status writer implements it
/// to patch `status.progress` of the KubegresRestore.
pub trait ProgressSink: Send {
    /// The latest progress; called at most once per [`ProgressSink::min_interval`].
    fn update<'a>(&'a mut self, progress: &'a RestoreProgress) -> BoxFuture<'a, ()>;
    /// Called once at the end with the final progress.
    fn finish<'a>(&'a mut self, progress: &'a RestoreProgress, outcome: &'a Outcome) -> BoxFuture<'a, ()>;
    /// Smallest interval between two updates.
    fn min_interval(&self) -> Duration {
        Duration::from_secs(2)
    }
}

/// Runs sinks until [`Reporter::finish`].
pub(crate) struct Reporter {
    stop: tokio::sync::watch::Sender<Option<Outcome>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    pub fn start(tracker: Arc<Tracker>, mut sinks: Vec<Box<dyn ProgressSink>>) -> Reporter {
        let (stop, mut rx) = tokio::sync::watch::channel::<Option<Outcome>>(None);
        let task = tokio::spawn(async move {
            let mut last: Vec<Option<tokio::time::Instant>> = vec![None; sinks.len()];
            let tick = sinks.iter().map(|s| s.min_interval()).min().unwrap_or(Duration::from_secs(1));
            let tick = tick.clamp(Duration::from_millis(50), Duration::from_secs(1));
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {
                        let snap = tracker.snapshot();
                        for (i, sink) in sinks.iter_mut().enumerate() {
                            // Ticks come every `tick`: half a tick of slack keeps a
                            // 2 s sink on a 1 s tick at 2 s, not 3 s.
                            if last[i].is_none_or(|t| t.elapsed() + tick / 2 >= sink.min_interval()) {
                                last[i] = Some(tokio::time::Instant::now());
                                sink.update(&snap).await;
                            }
                        }
                    }
                    changed = rx.changed() => {
                        let outcome = if changed.is_ok() { rx.borrow().clone() } else { None };
                        let snap = tracker.snapshot();
                        if let Some(outcome) = outcome {
                            for sink in sinks.iter_mut() {
                                sink.finish(&snap, &outcome).await;
                            }
                        }
                        return;
                    }
                }
            }
        });
        Reporter { stop, task }
    }

    /// Hands the outcome to every sink and waits for them.
    pub async fn finish(self, outcome: Outcome) {
        let _ = self.stop.send(Some(outcome));
        let _ = self.task.await;
    }
}

/// `--progress json`: one JSON object per line on stdout.
pub struct JsonLines {
    interval: Duration,
}

impl JsonLines {
    pub fn new(interval: Duration) -> JsonLines {
        JsonLines { interval }
    }
}

fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, v);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

impl ProgressSink for JsonLines {
    fn update<'a>(&'a mut self, progress: &'a RestoreProgress) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            print_json(&serde_json::json!({ "event": "progress", "progress": progress }));
        })
    }

    fn finish<'a>(&'a mut self, progress: &'a RestoreProgress, outcome: &'a Outcome) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let v = match outcome {
                Outcome::Completed(summary) => {
                    serde_json::json!({ "event": "completed", "progress": progress, "summary": summary })
                }
                Outcome::Failed(failure) => {
                    serde_json::json!({ "event": "failed", "progress": progress, "failure": failure })
                }
            };
            print_json(&v);
        })
    }

    fn min_interval(&self) -> Duration {
        self.interval
    }
}

/// `--progress bar`: an indicatif bar on stderr (a spinner until the size is known).
pub struct Bar {
    bar: indicatif::ProgressBar,
    sized: bool,
}

const BAR_TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}";
const SPINNER_TEMPLATE: &str = "{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec}) {msg}";

impl Bar {
    pub fn new() -> Bar {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template(SPINNER_TEMPLATE) {
            bar.set_style(style);
        }
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
        Bar { bar, sized: false }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl ProgressSink for Bar {
    fn update<'a>(&'a mut self, p: &'a RestoreProgress) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let (Some(t), false) = (p.bytes_total, self.sized) {
                self.sized = true;
                self.bar.set_length(t);
                if let Ok(style) = indicatif::ProgressStyle::with_template(BAR_TEMPLATE) {
                    self.bar.set_style(style);
                }
            }
            self.bar.set_position(p.bytes_read);
            let mut msg = String::new();
            if let Some(db) = &p.current_database {
                msg.push_str(db);
                msg.push_str(": ");
            }
            if let Some(o) = &p.current_object {
                msg.push_str(o);
            }
            msg.push_str(&format!(" | {} rows", p.rows_copied));
            self.bar.set_message(msg);
        })
    }

    fn finish<'a>(&'a mut self, p: &'a RestoreProgress, outcome: &'a Outcome) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.bar.set_position(p.bytes_read);
            match outcome {
                Outcome::Completed(_) => self.bar.finish_with_message(format!("done, {} rows", p.rows_copied)),
                Outcome::Failed(_) => self.bar.abandon_with_message("failed"),
            }
        })
    }

    fn min_interval(&self) -> Duration {
        Duration::from_millis(200)
    }
}

/// `--progress log` (and the default off a terminal): a log line every interval.
pub struct LogLines {
    interval: Duration,
}

impl LogLines {
    pub fn new(interval: Duration) -> LogLines {
        LogLines { interval }
    }
}

impl ProgressSink for LogLines {
    fn update<'a>(&'a mut self, p: &'a RestoreProgress) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if p.bytes_read == 0 {
                return;
            }
            tracing::info!(
                read = %human_bytes(p.bytes_read),
                total = p.bytes_total.map(human_bytes).unwrap_or_default(),
                percent = p.percent.map(|v| v.to_string()).unwrap_or_default(),
                rows = p.rows_copied,
                throughput = p.throughput.as_deref().unwrap_or(""),
                eta = p.eta.as_deref().unwrap_or(""),
                database = p.current_database.as_deref().unwrap_or(""),
                object = p.current_object.as_deref().unwrap_or(""),
                "progress"
            );
        })
    }

    fn finish<'a>(&'a mut self, _p: &'a RestoreProgress, _outcome: &'a Outcome) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn min_interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reports_percent_and_objects() {
        let counter = Arc::new(ByteCounter::default());
        let t = Tracker::new(counter.clone(), Some(200));
        counter.add(50);
        t.add_rows(7);
        t.set_object("TABLE DATA", Some("public"), "film");
        t.set_database("pagila");
        let s = t.snapshot();
        assert_eq!(s.percent, Some(25));
        assert_eq!(s.rows_copied, 7);
        assert_eq!(s.current_object.as_deref(), Some("TABLE DATA public.film"));
        assert_eq!(s.section, Some(Section::Data));
        assert_eq!(s.current_database.as_deref(), Some("pagila"));
        t.set_object("DATABASE", Some("-"), "x");
        assert_eq!(t.snapshot().current_object.as_deref(), Some("DATABASE x"));
    }

    #[test]
    fn humans_read_sizes_and_durations() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(human_duration(Duration::from_secs(7)), "7s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m 5s");
        assert_eq!(human_duration(Duration::from_secs(3723)), "1h 2m 3s");
    }

    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl ProgressSink for Recorder {
        fn update<'a>(&'a mut self, p: &'a RestoreProgress) -> BoxFuture<'a, ()> {
            Box::pin(async move { self.0.lock().unwrap().push(format!("update {}", p.bytes_read)) })
        }
        fn finish<'a>(&'a mut self, _p: &'a RestoreProgress, o: &'a Outcome) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                let what = match o {
                    Outcome::Completed(_) => "completed",
                    Outcome::Failed(_) => "failed",
                };
                self.0.lock().unwrap().push(what.to_string())
            })
        }
        fn min_interval(&self) -> Duration {
            Duration::from_millis(100)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reporter_throttles_and_always_finishes() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(ByteCounter::default());
        let tracker = Tracker::new(counter.clone(), None);
        let reporter = Reporter::start(tracker, vec![Box::new(Recorder(log.clone()))]);
        for _ in 0..10 {
            counter.add(1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reporter.finish(Outcome::Completed(Summary::default())).await;
        let log = log.lock().unwrap();
        let updates = log.iter().filter(|l| l.starts_with("update")).count();
        // 500 ms at one update per 100 ms: about 5, never one per increment.
        assert!((3..=7).contains(&updates), "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("completed"));
    }
}
