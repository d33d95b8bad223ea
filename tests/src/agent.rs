//! Runs the `restore-agent` binary as a user would, and reads what it says.
//!
//! The binary is the one cargo built next to the test executable
//! (`target/debug/restore-agent`), or `$KGR_AGENT_BIN`. A missing or stale
//! binary (older than the agent's or proto's sources) is a test failure that
//! says to run `cargo build -p restore-agent`: the tests never run an old
//! agent by accident.

use std::ffi::OsStr;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::pg::{PgCluster, clear_pg_env};

/// How long one agent run may take before the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The path of the `restore-agent` binary.
pub fn agent_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("KGR_AGENT_BIN") {
            let p = PathBuf::from(p);
            assert!(p.exists(), "KGR_AGENT_BIN={} does not exist", p.display());
            return p;
        }
        let exe = std::env::current_exe().expect("cannot find the test executable");
        // target/<profile>/deps/<test>-<hash> -> target/<profile>/restore-agent
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("test executable has no target dir");
        let bin = profile_dir.join("restore-agent");
        if !bin.exists() {
            panic!(
                "the restore-agent binary is missing at {}: run `cargo build -p restore-agent` \
                 (or `cargo test --workspace`) first",
                bin.display()
            );
        }
        if let Some(src) = newest_source_change() {
            let built = std::fs::metadata(&bin).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            if src.1 > built {
                panic!(
                    "the restore-agent binary at {} is older than {}: run `cargo build -p restore-agent` first",
                    bin.display(),
                    src.0.display()
                );
            }
        }
        bin
    })
}

/// The most recently modified source file of the agent and proto crates.
fn newest_source_change() -> Option<(PathBuf, SystemTime)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut stack = vec![
        root.join("restore-agent/src"),
        root.join("restore-agent/Cargo.toml"),
        root.join("proto/src"),
        root.join("proto/Cargo.toml"),
    ];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        // Test-only modules and fixtures are not part of the binary (cargo does
        // not rebuild it for them): `tests/`, `testdata/` and `tests.rs`.
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if matches!(name, "tests" | "testdata" | "tests.rs") {
            continue;
        }
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if let Ok(m) = meta.modified()
            && newest.as_ref().is_none_or(|(_, t)| m > *t)
        {
            newest = Some((p, m));
        }
    }
    newest
}

/// What one run of the agent did.
#[derive(Debug, Clone)]
pub struct AgentOutput {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Everything written on stdout.
    pub stdout: String,
    /// Everything written on stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl AgentOutput {
    /// stdout lines that parse as JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The last JSON object on stdout (with `--progress json`).
    pub fn last_event(&self) -> Option<Value> {
        self.json_lines().pop()
    }

    /// The `failure` object of a final `{"event":"failed"}` line.
    pub fn failure(&self) -> Option<Value> {
        let last = self.last_event()?;
        (last.get("event")? == "failed").then(|| last.get("failure").cloned()).flatten()
    }

    /// The message of the `error: ...` line on stderr.
    pub fn error_message(&self) -> Option<&str> {
        self.stderr.lines().rev().find_map(|l| l.strip_prefix("error: "))
    }

    /// A description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit code: {:?} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.elapsed,
            tail(&self.stdout, 6000),
            tail(&self.stderr, 6000)
        )
    }

    /// Asserts that the run succeeded (exit 0).
    pub fn assert_success(&self) {
        assert_eq!(self.code, Some(0), "the agent should have succeeded\n{}", self.describe());
    }

    /// Asserts the exit code and that the `error:` line contains, for each
    /// group of `needles`, at least one of the group's strings (compared
    /// case-insensitively). Returns the error message.
    pub fn assert_failure(&self, code: i32, needles: &[&[&str]]) -> String {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{}", self.describe());
        let Some(msg) = self.error_message() else {
            panic!("no `error: ` line on stderr\n{}", self.describe());
        };
        eprintln!("agent exit {code}: error: {msg}");
        let lower = msg.to_lowercase();
        for group in needles {
            assert!(
                group.iter().any(|n| lower.contains(&n.to_lowercase())),
                "the error message should mention one of {group:?}: {msg:?}\n{}",
                self.describe()
            );
        }
        msg.to_string()
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs the agent with `args` and extra environment variables `envs` (the
/// caller's `PG*` and `RESTORE_AGENT_*` variables are removed first), failing the test after
/// [`DEFAULT_TIMEOUT`].
pub fn run_agent<A: AsRef<OsStr>>(args: &[A], envs: &[(String, String)]) -> AgentOutput {
    run_agent_with_timeout(args, envs, DEFAULT_TIMEOUT)
}

/// [`run_agent`] with a timeout of your choosing.
pub fn run_agent_with_timeout<A: AsRef<OsStr>>(
    args: &[A],
    envs: &[(String, String)],
    timeout: Duration,
) -> AgentOutput {
    let start = Instant::now();
    let mut cmd = Command::new(agent_bin());
    clear_pg_env(&mut cmd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RESTORE_AGENT_") {
            cmd.env_remove(&k);
        }
    }
    cmd.args(args).envs(envs.iter().map(|(k, v)| (k, v))).env("NO_COLOR", "1");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", agent_bin().display()));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("cannot wait for the agent") {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    let output = AgentOutput { code: status.and_then(|s| s.code()), stdout, stderr, elapsed: start.elapsed() };
    if status.is_none() {
        panic!("the agent did not finish within {timeout:?} and was killed\n{}", output.describe());
    }
    output
}

/// `restore-agent restore --source SOURCE --target postgres://postgres@127.0.0.1:PORT/DB EXTRA...`
/// with the password in PGPASSWORD only.
pub fn restore(source: &Path, target: &PgCluster, db: &str, extra: &[&str]) -> AgentOutput {
    restore_with_password(source, &target.url_without_password(db), target.password(), extra)
}

/// Like [`restore`], for any target URL and password.
pub fn restore_with_password(source: &Path, target_url: &str, password: &str, extra: &[&str]) -> AgentOutput {
    let mut args: Vec<&OsStr> = vec![OsStr::new("restore"), OsStr::new("--source"), source.as_os_str()];
    args.extend([OsStr::new("--target"), OsStr::new(target_url)]);
    args.extend(extra.iter().map(OsStr::new));
    run_agent(&args, &[("PGPASSWORD".to_string(), password.to_string())])
}
