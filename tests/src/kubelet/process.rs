//! Container processes: started through `pod-init` with exactly the
//! container's environment, in their own process group (so the whole tree
//! can be signalled), stdout and stderr appended to the container's log.
//! The kubelet keeps every group it started until it is reaped, so `stop`
//! and `Drop` can kill them all.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::POD_UID_ENV;
use super::prepare::Prepared;
use super::runtime::{Shared, lock};

/// Starts the container's process.
pub(crate) fn spawn(
    shared: &Shared,
    pod_uid: &str,
    prepared: &Prepared,
) -> std::io::Result<(tokio::process::Child, i32)> {
    let log = OpenOptions::new().create(true).append(true).open(&prepared.log_path)?;
    let log_err = log.try_clone()?;
    let mut command = tokio::process::Command::new(&shared.config.pod_init);
    command
        .arg(&prepared.plan_path)
        .env_clear()
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true);
    let child = command.spawn()?;
    let pid = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
    lock(&shared.processes).insert(pid, pod_uid.to_string());
    Ok((child, pid))
}

/// Starts a probe command in the container (same plan, other argv),
/// output discarded.
pub(crate) fn spawn_exec(
    shared: &Shared,
    pod_uid: &str,
    prepared: &Prepared,
    plan_path: &std::path::Path,
) -> std::io::Result<(tokio::process::Child, i32)> {
    let child = tokio::process::Command::new(&shared.config.pod_init)
        .arg(plan_path)
        .env_clear()
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
    lock(&shared.processes).insert(pid, pod_uid.to_string());
    Ok((child, pid))
}

/// After the group leader exited: kills what is left of its group (as the
/// end of a container's PID 1 ends the container) and forgets it.
pub(crate) fn reap_group(shared: &Shared, pgid: i32) {
    if pgid > 0 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    lock(&shared.processes).remove(&pgid);
}

/// After a container's main process exited: kills what is left of it, its
/// process group and its cgroup (children that called setsid).
pub(crate) fn reap_container(shared: &Shared, pgid: i32, cgroup: Option<&Path>) {
    reap_group(shared, pgid);
    if let Some(cgroup) = cgroup {
        kill_cgroup(cgroup);
    }
}

/// A signal to a container's main process (its PID 1).
pub(crate) fn signal_main(pid: i32, signal: Signal) {
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// SIGTERM to the main process of every container of the Pod (what a
/// runtime sends to a container's PID 1).
pub(crate) fn terminate_pod(shared: &Shared, pod_uid: &str) {
    for pgid in groups_of(shared, Some(pod_uid)) {
        let _ = kill(Pid::from_raw(pgid), Signal::SIGTERM);
    }
}

/// SIGKILL to every process group of the Pod, and to any process that still
/// carries its uid in its environment.
pub(crate) fn kill_pod(shared: &Shared, pod_uid: &str) {
    if let Some(cgroup) = pod_cgroup(shared, pod_uid) {
        kill_cgroup(&cgroup);
    }
    for pgid in groups_of(shared, Some(pod_uid)) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    sweep(&HashSet::from([pod_uid.to_string()]));
}

/// SIGKILL to every group the kubelet started (stop and Drop).
pub(crate) fn kill_all(shared: &Shared) {
    let uids: HashSet<String> = lock(&shared.processes).values().cloned().collect();
    if let Some(root) = &shared.cgroup {
        kill_cgroup(root);
    }
    for pgid in groups_of(shared, None) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    let mut all = uids;
    all.extend(lock(&shared.pods).keys().cloned());
    sweep(&all);
}

fn groups_of(shared: &Shared, pod_uid: Option<&str>) -> Vec<i32> {
    lock(&shared.processes)
        .iter()
        .filter(|(_, uid)| pod_uid.is_none_or(|wanted| wanted == uid.as_str()))
        .map(|(pgid, _)| *pgid)
        .filter(|pgid| *pgid > 0)
        .collect()
}

/// SIGKILLs every process whose environment holds `PROCESS_KUBELET_POD_UID`
/// of one of `uids`: processes that left their group (setsid) still die with
/// their Pod, as they would with their container's cgroup.
pub(crate) fn sweep(uids: &HashSet<String>) {
    if uids.is_empty() {
        return;
    }
    for pid in pods_processes(uids) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The processes whose environment holds `PROCESS_KUBELET_POD_UID=<uid>` for one of `uids`.
pub fn pods_processes(uids: &HashSet<String>) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        if u32::try_from(pid).is_ok_and(|pid| pid == me) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let held = environ.split(|b| *b == 0).any(|var| {
            std::str::from_utf8(var)
                .ok()
                .and_then(|var| var.strip_prefix(POD_UID_ENV).and_then(|rest| rest.strip_prefix('=')))
                .is_some_and(|uid| uids.contains(uid))
        });
        if held {
            found.push(pid);
        }
    }
    found
}

/// This kubelet's own cgroup v2 directory,
/// `<cgroup2 mount>/process-kubelet/<node>.<pid>.<n>` (one per kubelet, so
/// two kubelets with the same node name never kill each other's Pods), when
/// cgroup v2 is mounted and writable; else processes are tracked by process
/// group and environment only. Empty directories left by dead kubelets go.
pub(crate) fn cgroup_root(node: &str) -> Option<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        if right.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let Some(mount_point) = left.split_whitespace().nth(4) else { continue };
        let parent = Path::new(mount_point).join("process-kubelet");
        remove_stale_cgroups(&parent);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = parent.join(format!("{node}.{}.{n}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() && dir.join("cgroup.procs").exists() {
            return Some(dir);
        }
    }
    None
}

/// Removes the empty cgroups of kubelets whose process is gone.
fn remove_stale_cgroups(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut parts = name.rsplit('.');
        let (_, pid) = (parts.next(), parts.next());
        let Some(pid) = pid.and_then(|pid| pid.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            remove_cgroup_now(&entry.path());
        }
    }
}

/// The cgroup of a Pod (`None` without cgroup v2).
pub(crate) fn pod_cgroup(shared: &Shared, pod_uid: &str) -> Option<PathBuf> {
    shared.cgroup.as_ref().map(|root| root.join(pod_uid))
}

/// The cgroup of one container of a Pod, created if missing.
pub(crate) fn container_cgroup(shared: &Shared, pod_uid: &str, container: &str) -> Option<PathBuf> {
    let dir = pod_cgroup(shared, pod_uid)?.join(container);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// SIGKILLs every process in the cgroup and below it.
pub(crate) fn kill_cgroup(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    for pid in cgroup_processes(dir) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The processes in the cgroup and below it.
pub(crate) fn cgroup_processes(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(cgroup_processes(&entry.path()));
            }
        }
    }
    pids
}

/// Removes an (emptied) cgroup and its children, waiting briefly for the
/// killed processes to leave it. Best effort.
pub(crate) async fn remove_cgroup(dir: &Path) {
    for _ in 0..50 {
        if cgroup_processes(dir).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    remove_cgroup_now(dir);
}

/// [`remove_cgroup`] for `Drop`: waits at most a second.
pub(crate) fn remove_cgroup_blocking(dir: &Path) {
    for _ in 0..50 {
        if cgroup_processes(dir).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    remove_cgroup_now(dir);
}

fn remove_cgroup_now(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_now(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
