//! `pod-init PLAN`: the process kubelet's stand-in for runc's init. It turns
//! itself into a container and `exec`s the container's program:
//! a private mount namespace (and UTS namespace for the hostname), the
//! container's own root filesystem (see `harness::kubelet::plan::RootFs`:
//! the host's directories as lower layers of overlays whose upper layers are
//! the container's, fresh `/tmp`, `/run` and `/dev`, then `pivot_root`), the
//! Pod's bind mounts (read-only through a bind remount), the root remounted
//! read-only for `readOnlyRootFilesystem`, the container's user and groups,
//! its working directory, then `execvp` with the environment it was started
//! with (the kubelet starts it with exactly the container's env).
//!
//! With `join` (exec probes), it enters the mount and UTS namespaces of the
//! container's running process instead and makes no mounts.
//!
//! It first joins the container's cgroup (when the kubelet has one), so the
//! kubelet can kill every process of the container, even those that left
//! its process group (PostgreSQL's children call setsid).
//!
//! Bind sources are all opened (`O_PATH`) before the first mount, so the
//! new root cannot hide them.
//!
//! On failure it writes one line to the plan's error file and to stderr, and
//! exits with 128 (reported as `StartError`, as for runc).

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use harness::kubelet::plan::{BindMount, Plan, RootFs, START_ERROR_EXIT_CODE};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{Gid, Uid, chdir, execvp, pivot_root, setgid, setgroups, sethostname, setuid};

/// Where the host's root is, right after `pivot_root`, until it is detached.
const OLD_ROOT: &str = "/.pod-init-old-root";

/// Device nodes bind-mounted from the host into the container's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn main() {
    let Some(plan_path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("pod-init: usage: pod-init PLAN");
        std::process::exit(START_ERROR_EXIT_CODE);
    };
    let plan = match Plan::read(&plan_path) {
        Ok(plan) => plan,
        Err(message) => fail(None, &message),
    };
    // Opened now (close-on-exec): the container's root hides its path.
    let mut error_file = plan.error_file.as_deref().and_then(|path| File::create(path).ok());
    let error = run(&plan);
    if let Some(file) = error_file.as_mut() {
        use std::io::Write as _;
        let _ = file.write_all(error.as_bytes());
    }
    fail(None, &error);
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
    let prepared = match plan.join {
        Some(pid) => join(plan, pid),
        None => prepare(plan),
    };
    match prepared.and_then(|()| become_user(plan)) {
        Ok(()) => exec(plan),
        Err(message) => message,
    }
}

fn join_cgroup(plan: &Plan) {
    if let Some(cgroup) = &plan.cgroup {
        // Best effort: without it the kubelet still has the process group.
        if let Err(e) = std::fs::write(cgroup.join("cgroup.procs"), "0") {
            eprintln!("pod-init: cannot join the cgroup {}: {e}", cgroup.display());
        }
    }
}

/// Enters the namespaces of the container's running process `pid`.
fn join(plan: &Plan, pid: i32) -> Result<(), String> {
    join_cgroup(plan);
    let open = |kind: &str| {
        File::open(format!("/proc/{pid}/ns/{kind}"))
            .map_err(|e| format!("cannot open the {kind} namespace of the container's process {pid}: {e}"))
    };
    let (mnt, uts) = (open("mnt")?, open("uts")?);
    setns(&uts, CloneFlags::CLONE_NEWUTS).map_err(|e| format!("cannot enter the container's UTS namespace: {e}"))?;
    setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(|e| format!("cannot enter the container's mount namespace: {e}"))?;
    Ok(())
}

fn prepare(plan: &Plan) -> Result<(), String> {
    join_cgroup(plan);
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

    // Open every source first: the new root hides where they live.
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

    let layers = match &plan.rootfs {
        Some(rootfs) => {
            let layers = build_root(rootfs)?;
            enter_root(&rootfs.dir.join("root"))?;
            layers
        }
        None => vec![PathBuf::from("/")],
    };
    for (bind, (source, is_dir)) in plan.mounts.iter().zip(&sources) {
        bind_mount(bind, source, *is_dir)?;
    }
    let working_dir = working_dir(plan);
    if !working_dir.exists() {
        std::fs::create_dir_all(working_dir)
            .map_err(|e| format!("cannot create the working directory {}: {e}", working_dir.display()))?;
    }
    if plan.rootfs.is_some() {
        umount2(OLD_ROOT, MntFlags::MNT_DETACH).map_err(|e| format!("cannot detach the host's root: {e}"))?;
        let _ = std::fs::remove_dir(OLD_ROOT);
    }
    if plan.read_only_root {
        // A volume mounted right at a layer's path covers it: the remount
        // would reach the volume, not the layer.
        for layer in layers.iter().filter(|layer| plan.mounts.iter().all(|bind| &bind.target != *layer)) {
            remount_read_only(layer)?;
        }
    }
    Ok(())
}

fn working_dir(plan: &Plan) -> &Path {
    if plan.working_dir.as_os_str().is_empty() { Path::new("/") } else { &plan.working_dir }
}

/// The user, groups, no_new_privs and working directory, last before exec.
fn become_user(plan: &Plan) -> Result<(), String> {
    let groups: Vec<Gid> = plan.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| format!("cannot set the supplementary groups {:?}: {e}", plan.groups))?;
    setgid(Gid::from_raw(plan.gid)).map_err(|e| format!("cannot set the group {}: {e}", plan.gid))?;
    setuid(Uid::from_raw(plan.uid)).map_err(|e| format!("cannot set the user {}: {e}", plan.uid))?;
    if plan.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("cannot set no_new_privs: {e}"))?;
    }
    let working_dir = working_dir(plan);
    chdir(working_dir).map_err(|e| format!("cannot change to the working directory {}: {e}", working_dir.display()))
}

fn mount_error(what: &str, target: &Path, e: nix::errno::Errno) -> String {
    format!("cannot mount {what} at {}: {e}", target.display())
}

fn mkdir(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

fn tmpfs(target: &Path, options: &str, flags: MsFlags) -> Result<(), String> {
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options)).map_err(|e| mount_error("a tmpfs", target, e))
}

fn rbind(source: &Path, target: &Path) -> Result<(), String> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| mount_error(&source.display().to_string(), target, e))
}

/// Assembles the container's root under `rootfs.dir/root` (still outside
/// it); returns the mounts that make up the root filesystem, as container
/// paths (what `readOnlyRootFilesystem` makes read-only).
fn build_root(rootfs: &RootFs) -> Result<Vec<PathBuf>, String> {
    let root = rootfs.dir.join("root");
    let layers = rootfs.dir.join("layers");
    for dir in [&root, &layers] {
        mkdir(dir, 0o755)?;
    }
    tmpfs(&root, "mode=755", MsFlags::empty())?;
    tmpfs(&layers, "mode=700", MsFlags::empty())?;
    let mut parts = vec![PathBuf::from("/")];
    let entries = std::fs::read_dir("/").map_err(|e| format!("cannot list the host's /: {e}"))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let host = Path::new("/").join(&name);
        let target = root.join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else { continue };
        if meta.file_type().is_symlink() {
            if let Ok(link) = std::fs::read_link(&host) {
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| format!("cannot create the symlink {}: {e}", target.display()))?;
            }
            continue;
        }
        if !meta.is_dir() {
            // Files at the host's top level are not part of any image.
            continue;
        }
        match name.to_str() {
            Some("proc" | "sys") => {
                mkdir(&target, 0o555)?;
                rbind(&host, &target)?;
            }
            Some("dev") => build_dev(&target)?,
            Some("tmp") => mkdir(&target, 0o1777)?,
            Some("run") => mkdir(&target, 0o755)?,
            _ => {
                mkdir(&target, 0o755)?;
                overlay(&host, &target, &layers.join(&name), &meta)?;
                parts.push(Path::new("/").join(&name));
            }
        }
    }
    for hidden in &rootfs.hide {
        let Ok(relative) = hidden.strip_prefix("/") else { continue };
        let inside = root.join(relative);
        if inside.is_dir() {
            tmpfs(&inside, "mode=000,size=4k", MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
        }
    }
    Ok(parts)
}

/// An overlay at `target` of the host's directory `host` with an upper
/// layer in `layer` (on the container's tmpfs, so the kernel sees no overlap
/// with the lower layer). Its top directory keeps the host directory's mode
/// and owner. If the kernel refuses, the host's directory is bound
/// read-only instead: the container still cannot write to the host.
fn overlay(host: &Path, target: &Path, layer: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    mkdir(&upper, meta.mode() & 0o7777)?;
    mkdir(&work, 0o700)?;
    let _ = std::os::unix::fs::chown(&upper, Some(meta.uid()), Some(meta.gid()));
    let options = format!("lowerdir={},upperdir={},workdir={}", host.display(), upper.display(), work.display());
    match mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(options.as_str())) {
        Ok(()) => Ok(()),
        Err(error) => {
            eprintln!("pod-init: no overlay for {} ({error}); binding it read-only", host.display());
            rbind(host, target)?;
            remount_read_only(target)
        }
    }
}

/// A fresh `/dev`: a tmpfs with the host's basic device nodes bound in,
/// `pts`, a fresh `shm` (PostgreSQL's shared memory) and the usual symlinks.
fn build_dev(dev: &Path) -> Result<(), String> {
    mkdir(dev, 0o755)?;
    tmpfs(dev, "mode=755", MsFlags::MS_NOSUID)?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let node = dev.join(name);
        File::create(&node).map_err(|e| format!("cannot create {}: {e}", node.display()))?;
        mount(Some(&host), &node, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| mount_error(&host.display().to_string(), &node, e))?;
    }
    let pts = dev.join("pts");
    mkdir(&pts, 0o755)?;
    if Path::new("/dev/pts").is_dir() {
        rbind(Path::new("/dev/pts"), &pts)?;
    }
    let shm = dev.join("shm");
    mkdir(&shm, 0o1777)?;
    tmpfs(&shm, "mode=1777", MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .map_err(|e| format!("cannot create the symlink /dev/{link}: {e}"))?;
    }
    Ok(())
}

/// `pivot_root` into `root`, keeping the host's root at [`OLD_ROOT`] until
/// the bind mounts are made.
fn enter_root(root: &Path) -> Result<(), String> {
    let old = root.join(OLD_ROOT.trim_start_matches('/'));
    mkdir(&old, 0o700)?;
    pivot_root(root, &old).map_err(|e| format!("cannot pivot_root into {}: {e}", root.display()))?;
    chdir("/").map_err(|e| format!("cannot change to the new root: {e}"))
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
