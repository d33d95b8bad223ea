//! Images map to local programs: the process kubelet has no container
//! runtime, so an image names a program on this machine, with what the
//! image would have given it (ENTRYPOINT, CMD, USER, ENV, its own writable
//! directories).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an image stands for on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The image's ENTRYPOINT (replaced by a container's `command`).
    pub entrypoint: Vec<String>,
    /// The image's CMD (replaced by a container's `args`).
    pub cmd: Vec<String>,
    /// The image's USER: uid.
    pub uid: u32,
    /// The image's USER: gid.
    pub gid: u32,
    /// The image's ENV (a container's `env` wins on a clash).
    pub env: Vec<(String, String)>,
    /// The image's WORKDIR (`/` when empty).
    pub working_dir: PathBuf,
    /// Paths that get a fresh empty directory per container start, standing
    /// in for the image's own writable directories (and its VOLUMEs).
    pub private_dirs: Vec<PathBuf>,
    /// What really runs, e.g. `PostgreSQL 15`: the image's tag is not
    /// honoured, and the container's log says so on every start.
    pub runs: Option<String>,
}

/// A standard PATH, as base images set it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Program {
    /// A program run as root with a standard PATH and nothing else.
    pub fn new(entrypoint: impl Into<String>) -> Self {
        Self {
            entrypoint: vec![entrypoint.into()],
            cmd: Vec::new(),
            uid: 0,
            gid: 0,
            env: vec![("PATH".to_string(), DEFAULT_PATH.to_string())],
            working_dir: PathBuf::from("/"),
            private_dirs: Vec::new(),
            runs: None,
        }
    }

    /// The restore-agent image (Dockerfile.agent): ENTRYPOINT the agent
    /// binary, USER 65532:65532.
    pub fn restore_agent(path: PathBuf) -> Self {
        Self { uid: 65532, gid: 65532, ..Self::new(path.to_string_lossy().into_owned()) }
    }

    /// The official postgres image: tests/scripts/postgres-entrypoint.sh
    /// (its docker-entrypoint.sh, reduced) run as root with the Debian
    /// PostgreSQL bin dir first on PATH, CMD `postgres`, and fresh
    /// `/var/run/postgresql` and `/var/lib/postgresql/data` (the image's
    /// VOLUME) per container.
    pub fn postgres() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres-entrypoint.sh");
        let bindir = crate::pg::bindir();
        let major =
            bindir.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Self {
            cmd: vec!["postgres".to_string()],
            env: vec![
                ("PATH".to_string(), format!("{}:{DEFAULT_PATH}", bindir.display())),
                ("PG_MAJOR".to_string(), major.clone()),
                ("LANG".to_string(), "C.UTF-8".to_string()),
                ("PGDATA".to_string(), "/var/lib/postgresql/data".to_string()),
            ],
            private_dirs: vec![PathBuf::from("/var/run/postgresql"), PathBuf::from("/var/lib/postgresql/data")],
            runs: Some(format!("this machine's PostgreSQL {major} ({})", bindir.display())),
            ..Self::new(script.to_string_lossy().into_owned())
        }
    }

    /// What the container's log says when `image` starts: the local program
    /// it runs instead of the image, and what really runs when it differs
    /// from the image's tag.
    pub fn start_note(&self, image: &str) -> String {
        let program = self.entrypoint.first().map(String::as_str).unwrap_or_default();
        match &self.runs {
            Some(runs) => format!(
                "process-kubelet: image {image:?} is not pulled: this container runs {runs}, whatever its tag says"
            ),
            None => format!("process-kubelet: image {image:?} is not pulled: this container runs {program}"),
        }
    }

    /// The same program with CMD `cmd`.
    pub fn with_cmd<S: Into<String>>(mut self, cmd: impl IntoIterator<Item = S>) -> Self {
        self.cmd = cmd.into_iter().map(Into::into).collect();
        self
    }

    /// The same program running as `uid:gid`.
    pub fn with_user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

/// Which program each image runs, keyed by the image's repository name
/// (the last path component, without tag or digest).
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    programs: BTreeMap<String, Program>,
}

impl ImageMap {
    /// An empty map: every image fails with `ErrImagePull`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Images whose repository's last component is `repository` (e.g.
    /// `postgres` for `postgres:16.1` and `docker.io/library/postgres`) run `program`.
    pub fn with(mut self, repository: &str, program: Program) -> Self {
        self.programs.insert(repository.to_string(), program);
        self
    }

    /// The program for `image`, if any.
    pub fn program(&self, image: &str) -> Option<&Program> {
        self.programs.get(repository_name(image))
    }

    /// Installs the programs into `store`, as a container runtime unpacks
    /// images: an entrypoint outside the system directories (a binary built
    /// in the checkout, the postgres entrypoint script) is copied there, so
    /// that a Pod's own mounts (an emptyDir at /tmp, say) cannot hide it.
    /// Returns the map with the installed paths.
    pub(crate) fn install(&self, store: &Path) -> std::io::Result<ImageMap> {
        use std::os::unix::fs::PermissionsExt as _;
        let mut installed = self.clone();
        for (repository, program) in &mut installed.programs {
            let Some(entrypoint) = program.entrypoint.first_mut() else { continue };
            let source = Path::new(entrypoint.as_str());
            if !source.is_absolute() || SYSTEM_DIRS.iter().any(|dir| source.starts_with(dir)) {
                continue;
            }
            let dir = store.join(repository);
            std::fs::create_dir_all(&dir)?;
            for folder in [store, dir.as_path()] {
                std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755))?;
            }
            let target = dir.join(source.file_name().unwrap_or(source.as_os_str()));
            std::fs::copy(source, &target)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
            *entrypoint = target.to_string_lossy().into_owned();
        }
        Ok(installed)
    }
}

/// Where the programs of the machine itself live: used in place.
const SYSTEM_DIRS: [&str; 5] = ["/usr", "/bin", "/sbin", "/lib", "/etc"];

/// `ghcr.io/x/restore-agent:0.1.0` -> `restore-agent`;
/// `localhost:5000/postgres@sha256:...` -> `postgres`.
pub fn repository_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        assert_eq!(repository_name("ghcr.io/x/restore-agent:0.1.0"), "restore-agent");
        assert_eq!(repository_name("postgres:16.1"), "postgres");
        assert_eq!(repository_name("docker.io/library/postgres"), "postgres");
        assert_eq!(repository_name("localhost:5000/postgres@sha256:abc"), "postgres");
        assert_eq!(repository_name("busybox"), "busybox");
    }
}
