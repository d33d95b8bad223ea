//! Where the control plane's binaries live (kube-apiserver,
//! kube-controller-manager, kube-scheduler, etcd), and building them with
//! `tests/controlplane/build.sh` when they are missing.
//!
//! The versions are pinned in the build script only; this module reads them
//! from the script's text, so the two cannot drift apart.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::ControlPlaneError;
use super::process::tail;

/// The build script, compiled in so that the pinned versions are known.
const BUILD_SCRIPT: &str = include_str!("../../controlplane/build.sh");

/// Reads `NAME=value` from the build script.
fn pinned(name: &str) -> &'static str {
    BUILD_SCRIPT
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .map(|value| value.trim().trim_matches('"'))
        .unwrap_or_else(|| panic!("tests/controlplane/build.sh does not pin {name}"))
}

/// The Kubernetes version the control plane runs, e.g. `v1.37.2`.
pub fn kube_version() -> &'static str {
    pinned("KUBE_VERSION")
}

/// The etcd version the control plane runs, e.g. `v3.7.0`.
pub fn etcd_version() -> &'static str {
    pinned("ETCD_VERSION")
}

/// The path of the build script in the checkout.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane").join("build.sh")
}

/// The binaries of the control plane, all at [`kube_version`] (etcd at
/// [`etcd_version`]).
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The kube-apiserver binary.
    pub kube_apiserver: PathBuf,
    /// The kube-controller-manager binary.
    pub kube_controller_manager: PathBuf,
    /// The kube-scheduler binary.
    pub kube_scheduler: PathBuf,
    /// The etcd binary.
    pub etcd: PathBuf,
}

impl Binaries {
    /// Where the build script puts the binaries:
    /// `${KUBEGRES_RESTORE_CACHE:-$HOME/.cache/kubegres-restore}/controlplane/<version>/bin`.
    pub fn dir() -> PathBuf {
        let cache = match std::env::var_os("KUBEGRES_RESTORE_CACHE") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/kubegres-restore"),
        };
        cache.join("controlplane").join(kube_version()).join("bin")
    }

    /// The binaries in the cache, if all of them exist.
    pub fn cached() -> Option<Self> {
        let dir = Self::dir();
        let binaries = Self {
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: dir.join("kube-controller-manager"),
            kube_scheduler: dir.join("kube-scheduler"),
            etcd: dir.join("etcd"),
        };
        binaries.all().iter().all(|path| path.is_file()).then_some(binaries)
    }

    /// Every binary's path.
    pub fn all(&self) -> [&Path; 4] {
        [&self.kube_apiserver, &self.kube_controller_manager, &self.kube_scheduler, &self.etcd]
    }

    /// The cached binaries, building them first when they are missing (a cold
    /// build takes a long time; see tests/controlplane/README.md). The build's
    /// output goes to `build_log`.
    pub async fn ensure(build_log: &Path) -> Result<Self, ControlPlaneError> {
        if let Some(binaries) = Self::cached() {
            return Ok(binaries);
        }
        let script = build_script();
        eprintln!(
            "controlplane: the control plane {} is not built yet; running {} (log: {})",
            kube_version(),
            script.display(),
            build_log.display()
        );
        let log =
            std::fs::File::create(build_log).map_err(|source| ControlPlaneError::io("create the build log", source))?;
        let output = tokio::process::Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .output()
            .await
            .map_err(|source| ControlPlaneError::io("run tests/controlplane/build.sh", source))?;
        let failed = |message: String| ControlPlaneError::Build {
            message,
            log: tail(&std::fs::read_to_string(build_log).unwrap_or_default(), 40),
        };
        if !output.status.success() {
            return Err(failed(format!("{} exited with {}", script.display(), output.status)));
        }
        Self::cached().ok_or_else(|| {
            failed(format!("{} succeeded but the binaries are not in {}", script.display(), Self::dir().display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_build_script() {
        assert!(kube_version().starts_with("v1."), "{}", kube_version());
        assert!(etcd_version().starts_with("v3."), "{}", etcd_version());
        assert!(Binaries::dir().ends_with(format!("controlplane/{}/bin", kube_version())));
        assert!(BUILD_SCRIPT.contains("kube-controller-manager kube-scheduler"), "build.sh builds them all");
    }
}
