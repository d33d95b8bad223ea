//! `pod-init PLAN`: the process kubelet's stand-in for runc's init. It turns
//! itself into a container and `exec`s the container's program:
//! a private mount namespace (and UTS namespace for the hostname), `/` made
//! rprivate, the Pod's bind mounts (read-only through a bind remount), `/`
//! remounted read-only for `readOnlyRootFilesystem`, the container's user
//! and groups, its working directory, then `execvp` with the environment it
//! was started with (the kubelet starts it with exactly the container's env).
//!
//! It first joins the container's cgroup (when the kubelet has one), so the
//! kubelet can kill every process of the container, even those that left
//! its process group (PostgreSQL's children call setsid).
//!
//! Bind sources are all opened (`O_PATH`) before the first mount, so a mount
//! over `/tmp` cannot hide a source that lives under `/tmp`.
//!
//! On failure it writes one line to the plan's error file and to stderr, and
//! exits with 128 (reported as `StartError`, as for runc).

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use harness::kubelet::plan::{BindMount, Plan, START_ERROR_EXIT_CODE};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Uid, chdir, execvp, setgid, setgroups, sethostname, setuid};

fn main() {
    let Some(plan_path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("pod-init: usage: pod-init PLAN");
        std::process::exit(START_ERROR_EXIT_CODE);
    };
    let plan = match Plan::read(&plan_path) {
        Ok(plan) => plan,
        Err(message) => fail(None, &message),
    };
    let error = run(&plan);
    fail(plan.error_file.as_deref(), &error);
}

/// Reports `message` and exits with [`START_ERROR_EXIT_CODE`].
fn fail(error_file: Option<&Path>, message: &str) -> ! {
    eprintln!("pod-init: {message}");
    if let Some(path) = error_file {
        let _ = std::fs::write(path, message);
    }
    std::process::exit(START_ERROR_EXIT_CODE)
}

/// Prepares the container and execs its program; returns only on failure.
fn run(plan: &Plan) -> String {
    match prepare(plan) {
        Ok(()) => exec(plan),
        Err(message) => message,
    }
}

fn prepare(plan: &Plan) -> Result<(), String> {
    if let Some(cgroup) = &plan.cgroup {
        // Best effort: without it the kubelet still has the process group.
        if let Err(e) = std::fs::write(cgroup.join("cgroup.procs"), "0") {
            eprintln!("pod-init: cannot join the cgroup {}: {e}", cgroup.display());
        }
    }
    let mut flags = CloneFlags::CLONE_NEWNS;
    if plan.hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    unshare(flags).map_err(|e| format!("cannot create the mount namespace: {e}"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| format!("cannot make / rprivate: {e}"))?;
    if let Some(hostname) = &plan.hostname {
        sethostname(hostname).map_err(|e| format!("cannot set the hostname {hostname:?}: {e}"))?;
    }

    // Open every source first: a later mount may cover where it lives.
    let mut sources = Vec::with_capacity(plan.mounts.len());
    for bind in &plan.mounts {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_PATH.bits())
            .open(&bind.source)
            .map_err(|e| format!("cannot open the mount source {}: {e}", bind.source.display()))?;
        let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(true);
        sources.push((file, is_dir));
    }
    for (bind, (source, is_dir)) in plan.mounts.iter().zip(&sources) {
        bind_mount(bind, source, *is_dir)?;
    }

    let working_dir = if plan.working_dir.as_os_str().is_empty() { Path::new("/") } else { &plan.working_dir };
    if !working_dir.exists() {
        std::fs::create_dir_all(working_dir)
            .map_err(|e| format!("cannot create the working directory {}: {e}", working_dir.display()))?;
    }
    if plan.read_only_root {
        remount_read_only(Path::new("/"))?;
    }

    let groups: Vec<Gid> = plan.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| format!("cannot set the supplementary groups {:?}: {e}", plan.groups))?;
    setgid(Gid::from_raw(plan.gid)).map_err(|e| format!("cannot set the group {}: {e}", plan.gid))?;
    setuid(Uid::from_raw(plan.uid)).map_err(|e| format!("cannot set the user {}: {e}", plan.uid))?;
    if plan.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("cannot set no_new_privs: {e}"))?;
    }
    chdir(working_dir).map_err(|e| format!("cannot change to the working directory {}: {e}", working_dir.display()))
}

/// Bind-mounts `source` (already opened) at the bind's target, creating the
/// mount point (an empty directory or file) when it is missing.
fn bind_mount(bind: &BindMount, source: &File, is_dir: bool) -> Result<(), String> {
    let target = &bind.target;
    if std::fs::symlink_metadata(target).is_err() {
        let created = if is_dir {
            std::fs::create_dir_all(target)
        } else {
            if let Some(parent) = target.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(target).map(drop)
        };
        created.map_err(|e| format!("cannot create the mount point {}: {e}", target.display()))?;
    }
    let fd_path = format!("/proc/self/fd/{}", source.as_raw_fd());
    mount(Some(fd_path.as_str()), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| format!("cannot bind-mount {} at {}: {e}", bind.source.display(), target.display()))?;
    if bind.read_only {
        remount_read_only(target)?;
    }
    Ok(())
}

/// A bind remount read-only of the mount at `target`, keeping its other
/// flags (nosuid, nodev, noexec...). MS_BIND makes it change this mount only,
/// never the filesystem.
fn remount_read_only(target: &Path) -> Result<(), String> {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if let Ok(stat) = statvfs(target) {
        let kept = stat.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if kept.contains(fs) {
                flags |= ms;
            }
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("cannot remount {} read-only: {e}", target.display()))
}

/// `execvp`s the program; returns the error message when it fails.
fn exec(plan: &Plan) -> String {
    let to_c = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
    let program = match to_c(&plan.program) {
        Ok(program) => program,
        Err(message) => return message,
    };
    let argv: Result<Vec<CString>, String> = plan.argv.iter().map(|a| to_c(a)).collect();
    let argv = match argv {
        Ok(argv) => argv,
        Err(message) => return message,
    };
    let error = match execvp(&program, &argv) {
        Err(error) => error,
        Ok(never) => match never {},
    };
    if error == nix::errno::Errno::ENOENT && !plan.program.contains('/') {
        format!("exec: {:?}: executable file not found in $PATH", plan.program)
    } else {
        format!("exec: {:?}: {error}", plan.program)
    }
}
