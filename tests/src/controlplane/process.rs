//! A child process whose stdout and stderr go to a log file, killed and
//! reaped when dropped, and killed by a watchdog if the test process dies
//! without dropping it (SIGKILL, a timeout), so no server outlives its test.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::ControlPlaneError;

/// How many log lines error messages and [`super::ControlPlane::logs`] show.
pub const TAIL_LINES: usize = 40;

/// A running server process with its log file.
pub struct LoggedProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
    watchdog: Option<Child>,
}

impl std::fmt::Debug for LoggedProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("log", &self.log)
            .finish()
    }
}

impl LoggedProcess {
    /// Starts `program args...` in `dir`, logging to `log`. `dir` is the
    /// control plane's own directory: the watchdog removes it if the test
    /// process dies without dropping this.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[OsString],
        dir: &Path,
        log: PathBuf,
    ) -> Result<Self, ControlPlaneError> {
        let out = File::create(&log).map_err(|source| ControlPlaneError::io("create a log file", source))?;
        let err = out.try_clone().map_err(|source| ControlPlaneError::io("open a log file", source))?;
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| ControlPlaneError::Spawn { name, program: program.to_path_buf(), source })?;
        let watchdog = watchdog(child.id(), dir);
        Ok(Self { name, child, log, watchdog })
    }

    /// The process's name (`etcd`, `kube-apiserver`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How it exited, if it already has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log, under a header naming the process.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log)
            .unwrap_or_else(|error| format!("(cannot read {}: {error})", self.log.display()));
        format!("----- {} log ({}) -----\n{}", self.name, self.log.display(), tail(&text, lines))
    }
}

impl Drop for LoggedProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// A `sh` that, once this test process is gone, kills `pid` and removes
/// `dir` (the control plane's directory). Best effort: if it cannot start,
/// the server is still killed on drop.
fn watchdog(pid: u32, dir: &Path) -> Option<Child> {
    Command::new("sh")
        .args(["-c", r#"while kill -0 "$0" 2>/dev/null; do sleep 1; done; kill -9 "$1" 2>/dev/null; rm -rf "$2""#])
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
