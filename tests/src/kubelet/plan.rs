//! The plan that the kubelet hands to `pod-init` (tests/src/bin/pod_init.rs):
//! how to turn a plain child process into the container. It holds no
//! secrets: the container's environment is passed as the process's own
//! environment, never in the plan.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `pod-init` does before it `exec`s the container's program.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    /// Bind mounts, made in this order (parents before children).
    pub mounts: Vec<BindMount>,
    /// The user to run as.
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The working directory (created if missing, as runc does).
    pub working_dir: PathBuf,
    /// Remount the container's root filesystem read-only.
    pub read_only_root: bool,
    /// Give the container a root filesystem of its own ([`RootFs`]); without
    /// it the container sees the host's `/` (and mount points are created there).
    pub rootfs: Option<RootFs>,
    /// Run in the mount and UTS namespaces of this running process (the
    /// container's main process) instead of making new ones: exec probes and
    /// `kubectl exec`. No mounts are made.
    pub join: Option<i32>,
    /// The hostname in the container's own UTS namespace (the Pod's name).
    pub hostname: Option<String>,
    /// Set `no_new_privs` (`allowPrivilegeEscalation: false`).
    pub no_new_privileges: bool,
    /// The program: a path, or a name looked up in the container's PATH.
    pub program: String,
    /// argv, argv[0] included.
    pub argv: Vec<String>,
    /// Where `pod-init` writes why it could not start the program.
    pub error_file: Option<PathBuf>,
    /// A cgroup v2 directory `pod-init` moves itself into first (the
    /// container's cgroup: the kubelet kills all of it at once).
    pub cgroup: Option<PathBuf>,
}

/// The container's own root filesystem, assembled by `pod-init` in its
/// mount namespace as a container runtime unpacks an image, with the host's
/// root standing in for the image: a tmpfs root; for each top-level
/// directory of the host an overlay whose lower layer is the host's
/// directory and whose upper layer is a tmpfs of the container's (writes,
/// and the mount points of subPath files, never reach the host); fresh
/// `/tmp`, `/run` and `/dev` (null, zero, full, random, urandom, tty, pts,
/// shm); the host's `/proc` and `/sys`. Then `pivot_root`, so nothing of the
/// host's mount tree is reachable but the volumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// A directory of the container's own, in the Pod's folder: the root
    /// and the overlays' upper layers are mounted on its subdirectories.
    pub dir: PathBuf,
    /// Host paths that the container must not see through its overlays (the
    /// kubelet's own folder, with every Pod's files): an empty read-only
    /// tmpfs is mounted over them.
    pub hide: Vec<PathBuf>,
}

/// One bind mount into the container's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// The host path (a directory or a file).
    pub source: PathBuf,
    /// Where it appears in the container.
    pub target: PathBuf,
    /// Read-only (a bind remount).
    pub read_only: bool,
}

impl Plan {
    /// Reads a plan written by [`Plan::write`].
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|error| format!("cannot read the plan {}: {error}", path.display()))?;
        serde_json::from_slice(&text).map_err(|error| format!("the plan {} is not valid: {error}", path.display()))
    }

    /// Writes the plan as JSON (mode 0600).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(&json)
    }
}

/// The exit code of `pod-init` when it could not start the program (as
/// runc's start errors show up in Kubernetes: exit code 128, reason `StartError`).
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// Sorts mounts so that a parent is mounted before what lies below it; on
/// equal paths the later one (a Pod's volume over an image's private dir) wins.
pub fn order_mounts(mounts: &mut [BindMount]) {
    mounts.sort_by_key(|mount| mount.target.components().count());
}
