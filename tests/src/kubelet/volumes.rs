//! A container's volumes as host directories, and the bind mounts that put
//! them at their mountPaths: a PVC is the folder of the PersistentVolume it
//! is bound to (`hostPath` or `local`, as a local-path provisioner makes
//! them), emptyDir a per-Pod directory, Secret, ConfigMap, downward API and
//! projected volumes files written under the Pod's directory. ServiceAccount
//! tokens come from the TokenRequest API, bound to the Pod, where a
//! projected volume asks for one: the ServiceAccount admission plugin adds
//! that volume (`kube-api-access-*`), and the kubelet mounts only what the
//! Pod spec says.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount, Volume,
};
use kube::Api;
use kube::api::PostParams;

use super::env::{config_map_data, field_value, get_object, secret_data};
use super::plan::BindMount;
use super::prepare::Blocked;
use super::runtime::{PodRuntime, Shared};

/// The lifetime kubelet asks for when the projection does not say (an hour and 7 s).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The mode of Secret, ConfigMap and projected files unless the Pod says otherwise.
const DEFAULT_MODE: u32 = 0o644;

fn io_blocked(what: &str, path: &Path, error: std::io::Error) -> Blocked {
    Blocked::config(format!("cannot {what} {}: {error}", path.display()))
}

/// The bind mounts of `container`'s volumeMounts, in spec order.
pub(crate) async fn container_mounts(
    shared: &Shared,
    rt: &PodRuntime,
    pod: &Pod,
    container: &Container,
    pod_ip: Ipv4Addr,
) -> Result<Vec<BindMount>, Blocked> {
    let spec = pod.spec.clone().unwrap_or_default();
    let volumes = spec.volumes.clone().unwrap_or_default();
    let fs_group = spec.security_context.as_ref().and_then(|sc| sc.fs_group).and_then(|g| u32::try_from(g).ok());
    let mut dirs: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.iter().find(|v| v.name == mount.name) else {
            return Err(Blocked::config(format!(
                "cannot find volume {:?} to mount into container {:?}",
                mount.name, container.name
            )));
        };
        if !dirs.contains_key(&volume.name) {
            let prepared = volume_dir(shared, rt, pod, volume, pod_ip, fs_group).await?;
            dirs.insert(volume.name.clone(), prepared);
        }
        let (dir, volume_read_only) = dirs[&volume.name].clone();
        let mut source = dir;
        if let Some(sub_path) = mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
            let relative = Path::new(sub_path);
            if relative.is_absolute() || relative.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(Blocked::config(format!("subPath {sub_path:?} must be a relative path without '..'")));
            }
            source = source.join(relative);
            if !source.exists() {
                std::fs::create_dir_all(&source).map_err(|e| io_blocked("create the subPath", &source, e))?;
            }
        }
        if mount.sub_path_expr.is_some() {
            return Err(Blocked::config("subPathExpr is not supported by the process kubelet".to_string()));
        }
        mounts.push(BindMount {
            source,
            target: PathBuf::from(&mount.mount_path),
            read_only: volume_read_only || mount.read_only == Some(true),
        });
    }

    Ok(mounts)
}

/// The host directory of a volume, and whether it is always read-only.
async fn volume_dir(
    shared: &Shared,
    rt: &PodRuntime,
    pod: &Pod,
    volume: &Volume,
    pod_ip: Ipv4Addr,
    fs_group: Option<u32>,
) -> Result<(PathBuf, bool), Blocked> {
    let namespace = rt.namespace.as_str();
    let own_dir = rt.dir.join("volumes").join(&volume.name);
    if let Some(claim) = &volume.persistent_volume_claim {
        let dir = claim_folder(shared, volume, namespace, &claim.claim_name).await?;
        return Ok((dir, claim.read_only == Some(true)));
    }
    if volume.empty_dir.is_some() {
        if !own_dir.exists() {
            std::fs::create_dir_all(&own_dir).map_err(|e| io_blocked("create the emptyDir", &own_dir, e))?;
            std::fs::set_permissions(&own_dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| io_blocked("set the mode of", &own_dir, e))?;
            chown_group(&own_dir, fs_group);
        }
        return Ok((own_dir, false));
    }
    let mut files: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let mode = secret.default_mode.map_or(DEFAULT_MODE, |m| m as u32);
        let data = secret_data(shared, namespace, &name).await?;
        files.extend(source_files(
            volume,
            Source::Secret,
            &name,
            data,
            secret.items.as_deref(),
            mode,
            secret.optional,
        )?);
    } else if let Some(map) = &volume.config_map {
        let mode = map.default_mode.map_or(DEFAULT_MODE, |m| m as u32);
        let data = config_map_data(shared, namespace, &map.name).await?;
        files.extend(source_files(
            volume,
            Source::ConfigMap,
            &map.name,
            data,
            map.items.as_deref(),
            mode,
            map.optional,
        )?);
    } else if let Some(downward) = &volume.downward_api {
        let mode = downward.default_mode.map_or(DEFAULT_MODE, |m| m as u32);
        files.extend(downward_files(pod, pod_ip, downward.items.as_deref().unwrap_or_default(), mode)?);
    } else if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.map_or(DEFAULT_MODE, |m| m as u32);
        for source in projected.sources.iter().flatten() {
            if let Some(secret) = &source.secret {
                let data = secret_data(shared, namespace, &secret.name).await?;
                let items = secret.items.as_deref();
                files.extend(source_files(volume, Source::Secret, &secret.name, data, items, mode, secret.optional)?);
            } else if let Some(map) = &source.config_map {
                let data = config_map_data(shared, namespace, &map.name).await?;
                let items = map.items.as_deref();
                files.extend(source_files(volume, Source::ConfigMap, &map.name, data, items, mode, map.optional)?);
            } else if let Some(token) = &source.service_account_token {
                let audiences = token.audience.clone().into_iter().collect();
                let expiration = token.expiration_seconds.unwrap_or(TOKEN_EXPIRATION_SECONDS);
                let jwt = request_token(shared, pod, audiences, expiration).await?;
                files.push((PathBuf::from(&token.path), jwt.into_bytes(), mode));
            } else if let Some(downward) = &source.downward_api {
                files.extend(downward_files(pod, pod_ip, downward.items.as_deref().unwrap_or_default(), mode)?);
            } else {
                return Err(mount_failed(volume, "unsupported projected source (process kubelet)".to_string()));
            }
        }
    } else {
        let kind = serde_json::to_value(volume)
            .ok()
            .and_then(|v| v.as_object().and_then(|o| o.keys().find(|k| *k != "name").cloned()))
            .unwrap_or_else(|| "unknown".to_string());
        return Err(Blocked::config(format!(
            "volume {:?}: {kind} volumes are not supported by the process kubelet \
             (only persistentVolumeClaim, emptyDir, secret, configMap, downwardAPI and projected)",
            volume.name
        )));
    }
    write_files(&own_dir, &files, fs_group)?;
    Ok((own_dir, true))
}

fn mount_failed(volume: &Volume, message: String) -> Blocked {
    Blocked::config(format!("MountVolume.SetUp failed for volume {:?} : {message}", volume.name))
}

/// What a volume's files come from.
#[derive(Clone, Copy)]
enum Source {
    Secret,
    ConfigMap,
}

/// The files of a Secret or ConfigMap (a volume or a projected source),
/// with kubelet's messages when it or a key is missing and not optional.
fn source_files(
    volume: &Volume,
    source: Source,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: Option<bool>,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, Blocked> {
    let (kind, missing_key) = match source {
        Source::Secret => ("secret", "references non-existent secret key"),
        Source::ConfigMap => ("configmap", "configmap references non-existent config key"),
    };
    match data {
        Some(data) => key_files(&data, items, mode, optional, missing_key),
        None if optional == Some(true) => Ok(Vec::new()),
        None => Err(mount_failed(volume, format!("{kind} \"{name}\" not found"))),
    }
}

/// The files of a Secret or ConfigMap volume: every key, or the `items`.
fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: Option<bool>,
    missing: &str,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, Blocked> {
    let Some(items) = items.filter(|items| !items.is_empty()) else {
        return Ok(data.iter().map(|(k, v)| (PathBuf::from(k), v.clone(), mode)).collect());
    };
    let mut files = Vec::new();
    for item in items {
        match data.get(&item.key) {
            Some(value) => files.push((PathBuf::from(&item.path), value.clone(), item.mode.map_or(mode, |m| m as u32))),
            None if optional == Some(true) => {}
            None => return Err(Blocked::config(format!("{missing}: {}", item.key))),
        }
    }
    Ok(files)
}

/// Downward API files: fieldRef values; labels and annotations as `key="value"` lines.
fn downward_files(
    pod: &Pod,
    pod_ip: Ipv4Addr,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, Blocked> {
    let mut files = Vec::new();
    for item in items {
        let Some(field) = &item.field_ref else {
            return Err(Blocked::config(format!("downwardAPI {:?}: only fieldRef is supported", item.path)));
        };
        let map_lines = |map: Option<&BTreeMap<String, String>>| {
            map.into_iter().flatten().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join("\n")
        };
        let value = match field.field_path.as_str() {
            "metadata.labels" => map_lines(pod.metadata.labels.as_ref()),
            "metadata.annotations" => map_lines(pod.metadata.annotations.as_ref()),
            path => field_value(pod, pod_ip, path)?,
        };
        files.push((PathBuf::from(&item.path), value.into_bytes(), item.mode.map_or(mode, |m| m as u32)));
    }
    Ok(files)
}

fn write_files(dir: &Path, files: &[(PathBuf, Vec<u8>, u32)], fs_group: Option<u32>) -> Result<(), Blocked> {
    std::fs::create_dir_all(dir).map_err(|e| io_blocked("create", dir, e))?;
    chown_group(dir, fs_group);
    for (relative, contents, mode) in files {
        if relative.is_absolute() || relative.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Blocked::config(format!("volume file path {relative:?} must be relative without '..'")));
        }
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_blocked("create", parent, e))?;
        }
        std::fs::write(&path, contents).map_err(|e| io_blocked("write", &path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode & 0o7777))
            .map_err(|e| io_blocked("set the mode of", &path, e))?;
        chown_group(&path, fs_group);
    }
    Ok(())
}

fn chown_group(path: &Path, gid: Option<u32>) {
    if let Some(gid) = gid {
        let _ = std::os::unix::fs::chown(path, None, Some(gid));
    }
}

/// The host folder of the PersistentVolume a claim is bound to, as kubelet's
/// volume manager finds it (claim -> `spec.volumeName` -> the PV's source).
async fn claim_folder(shared: &Shared, volume: &Volume, namespace: &str, claim: &str) -> Result<PathBuf, Blocked> {
    let pvc: Option<PersistentVolumeClaim> = get_object(shared, namespace, claim).await?;
    let Some(pvc) = pvc else {
        return Err(mount_failed(volume, format!("persistentvolumeclaim \"{claim}\" not found")));
    };
    let Some(pv_name) = pvc.spec.as_ref().and_then(|spec| spec.volume_name.clone()).filter(|n| !n.is_empty()) else {
        return Err(mount_failed(volume, format!("PVC {namespace}/{claim} is not bound")));
    };
    let api: Api<PersistentVolume> = Api::all(shared.client.clone());
    let mut attempt = 0;
    let pv = loop {
        attempt += 1;
        match api.get_opt(&pv_name).await {
            Ok(Some(pv)) => break pv,
            Ok(None) => return Err(mount_failed(volume, format!("persistentvolume \"{pv_name}\" not found"))),
            // The Node authorizer learns about a just-bound claim a moment later.
            Err(kube::Error::Api(status)) if status.code == 403 && attempt < 10 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(mount_failed(volume, format!("cannot read the PersistentVolume {pv_name}: {e}"))),
        }
    };
    let spec = pv.spec.unwrap_or_default();
    let path =
        spec.host_path.map(|source| source.path).or_else(|| spec.local.map(|source| source.path)).ok_or_else(|| {
            mount_failed(
                volume,
                format!(
                    "PersistentVolume {pv_name}: only hostPath and local volumes are supported by the process kubelet"
                ),
            )
        })?;
    let dir = PathBuf::from(path);
    if !dir.is_dir() {
        return Err(mount_failed(
            volume,
            format!("the folder {} of PersistentVolume {pv_name} does not exist", dir.display()),
        ));
    }
    Ok(dir)
}

/// A token for the Pod's ServiceAccount (`default` when unset), bound to the Pod.
async fn request_token(shared: &Shared, pod: &Pod, audiences: Vec<String>, expiration: i64) -> Result<String, Blocked> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let account = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.service_account_name.clone())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audiences.is_empty()).then_some(audiences),
            expiration_seconds: Some(expiration),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Pod".to_string()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(shared.client.clone(), &namespace);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.create_token_request(&account, &PostParams::default(), &request).await {
            Ok(response) => {
                return response
                    .status
                    .and_then(|status| status.token)
                    .ok_or_else(|| Blocked::config("the TokenRequest API returned no token".to_string()));
            }
            // The Node authorizer learns about a just-bound Pod a moment later.
            Err(kube::Error::Api(status)) if status.code == 403 && attempt < 10 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(kube::Error::Api(status)) => return Err(Blocked::config(status.message)),
            Err(error) => return Err(Blocked::config(format!("cannot request a ServiceAccount token: {error}"))),
        }
    }
}
