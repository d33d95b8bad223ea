//! Everything a container needs before it starts, as kubelet prepares it:
//! the program for its image, its user, environment and mounts, the log
//! and termination-message files, and the plan for `pod-init`.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::{Env, container_env, expand};
use super::plan::{BindMount, Plan, RootFs, order_mounts};
use super::runtime::{PodRuntime, Shared, Which};
use super::volumes::container_mounts;

/// Why a container cannot start yet: kubelet's waiting reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocked {
    pub reason: &'static str,
    pub message: String,
}

impl Blocked {
    pub fn config(message: String) -> Self {
        Self { reason: "CreateContainerConfigError", message }
    }
}

/// A container ready to be started.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub plan: Plan,
    pub plan_path: PathBuf,
    pub env: Vec<(String, String)>,
    pub log_path: PathBuf,
    pub termination_file: PathBuf,
    pub fallback_to_logs: bool,
    pub image_id: String,
    /// The line the container's log starts with: what runs instead of the image.
    pub start_note: String,
}

/// `<pod dir>/<container>.log`.
pub(crate) fn log_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join(format!("{container}.log"))
}

fn container_dir(rt: &PodRuntime, container: &str) -> PathBuf {
    rt.dir.join("containers").join(container)
}

/// The file `pod-init` writes its start error to.
pub(crate) fn start_error_file(rt: &PodRuntime, container: &str) -> PathBuf {
    container_dir(rt, container).join("start-error")
}

fn io_blocked(what: &str, path: &Path, error: std::io::Error) -> Blocked {
    Blocked::config(format!("cannot {what} {}: {error}", path.display()))
}

/// The spec of a container of the Pod.
pub(crate) fn container_spec(pod: &Pod, which: Which) -> Option<Container> {
    let spec = pod.spec.as_ref()?;
    match which {
        Which::Init(i) => spec.init_containers.as_ref()?.get(i).cloned(),
        Which::Main(i) => spec.containers.get(i).cloned(),
    }
}

/// Prepares `container` of the Pod to start now.
pub(crate) async fn prepare(
    shared: &Shared,
    rt: &PodRuntime,
    pod: &Pod,
    container: &Container,
    pod_ip: Ipv4Addr,
) -> Result<Prepared, Blocked> {
    let image = container.image.clone().unwrap_or_default();
    let Some(program) = shared.config.images.program(&image).cloned() else {
        return Err(Blocked {
            reason: "ErrImagePull",
            message: format!(
                "Failed to pull image {image:?}: the process kubelet has no local program for image {image:?} \
                 (repository {:?})",
                super::repository_name(&image)
            ),
        });
    };

    // The user: container over Pod over image.
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let to_u32 = |id: i64| u32::try_from(id).ok();
    let uid = sc.run_as_user.or(pod_sc.run_as_user).and_then(to_u32).unwrap_or(program.uid);
    let gid = sc.run_as_group.or(pod_sc.run_as_group).and_then(to_u32).unwrap_or(program.gid);
    let run_as_non_root = sc.run_as_non_root.or(pod_sc.run_as_non_root) == Some(true);
    if run_as_non_root && uid == 0 {
        return Err(Blocked::config(format!(
            "container has runAsNonRoot and image will run as root (pod: {:?}, container: {})",
            rt.describe(),
            container.name
        )));
    }
    let mut groups: Vec<u32> = vec![gid];
    groups.extend(pod_sc.supplemental_groups.iter().flatten().filter_map(|g| to_u32(*g)));
    groups.extend(pod_sc.fs_group.and_then(to_u32));
    groups.dedup();

    let env = container_env(shared, pod, container, &program, pod_ip).await?;
    let mut lookup = Env::default();
    for (name, value) in &env {
        lookup.set(name, value.clone());
    }
    let expand_all = |items: &[String]| items.iter().map(|item| expand(item, &lookup)).collect::<Vec<_>>();
    let command = container.command.as_ref().filter(|command| !command.is_empty());
    let args = container.args.as_ref().filter(|args| !args.is_empty());
    let mut argv = command.map_or_else(|| program.entrypoint.clone(), |command| expand_all(command));
    match (command, args) {
        (_, Some(args)) => argv.extend(expand_all(args)),
        (None, None) => argv.extend(program.cmd.clone()),
        (Some(_), None) => {}
    }
    let Some(executable) = argv.first().cloned() else {
        return Err(Blocked { reason: "CreateContainerError", message: "no command specified".to_string() });
    };

    // The container's own files.
    let dir = container_dir(rt, &container.name);
    std::fs::create_dir_all(&dir).map_err(|e| io_blocked("create", &dir, e))?;
    let termination_file = dir.join("termination-log");
    std::fs::write(&termination_file, b"").map_err(|e| io_blocked("create", &termination_file, e))?;
    std::fs::set_permissions(&termination_file, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| io_blocked("set the mode of", &termination_file, e))?;
    let error_file = start_error_file(rt, &container.name);
    let _ = std::fs::remove_file(&error_file);

    let mut mounts = Vec::new();
    for (index, path) in program.private_dirs.iter().enumerate() {
        let private = dir.join(format!("private-{index}"));
        let _ = std::fs::remove_dir_all(&private);
        std::fs::create_dir_all(&private).map_err(|e| io_blocked("create", &private, e))?;
        mounts.push(BindMount { source: private, target: path.clone(), read_only: false });
    }
    mounts.push(BindMount {
        source: super::hosts::hosts_path(rt),
        target: PathBuf::from("/etc/hosts"),
        read_only: false,
    });
    let termination_path =
        container.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".to_string());
    mounts.push(BindMount {
        source: termination_file.clone(),
        target: PathBuf::from(termination_path),
        read_only: false,
    });
    mounts.extend(container_mounts(shared, rt, pod, container, pod_ip).await?);
    order_mounts(&mut mounts);

    let read_only_root = sc.read_only_root_filesystem == Some(true);
    let plan = Plan {
        mounts,
        uid,
        gid,
        groups,
        working_dir: container.working_dir.as_ref().map_or_else(|| program.working_dir.clone(), PathBuf::from),
        read_only_root,
        rootfs: Some(RootFs { dir: dir.clone(), hide: vec![shared.config.dir.clone()] }),
        join: None,
        hostname: Some(spec.hostname.clone().unwrap_or_else(|| rt.name.clone())),
        no_new_privileges: sc.allow_privilege_escalation == Some(false),
        program: executable,
        argv,
        error_file: Some(error_file),
        cgroup: super::process::container_cgroup(shared, &rt.uid, &container.name),
    };
    let plan_path = dir.join("plan.json");
    plan.write(&plan_path).map_err(|e| io_blocked("write", &plan_path, e))?;
    Ok(Prepared {
        plan,
        plan_path,
        env,
        log_path: log_path(&rt.dir, &container.name),
        termination_file,
        fallback_to_logs: container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
        image_id: format!("process-kubelet://{}", program.entrypoint.first().cloned().unwrap_or_default()),
        start_note: program.start_note(&image),
    })
}
