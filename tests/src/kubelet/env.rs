//! A container's environment, resolved as kubelet does: the image's ENV,
//! HOSTNAME and KUBERNETES_SERVICE_*, `envFrom` (with prefix), `env` with
//! `value` (and `$(VAR)` expansion) or `valueFrom` (Secret, ConfigMap,
//! fieldRef), then the process kubelet's own PROCESS_KUBELET_POD_IP/UID.
//! Values never appear in messages.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use super::prepare::Blocked;
use super::runtime::Shared;
use super::{POD_IP_ENV, POD_UID_ENV, Program};

/// An ordered environment: a later value for a name replaces the earlier one in place.
#[derive(Default)]
pub(crate) struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    pub fn set(&mut self, name: &str, value: String) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name.to_string(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.vars
    }
}

/// Reads a Secret or ConfigMap with the kubelet's identity. A 403 right
/// after binding is the Node authorizer not yet knowing the Pod: retried briefly.
pub(crate) async fn get_object<K>(shared: &Shared, namespace: &str, name: &str) -> Result<Option<K>, Blocked>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(shared.client.clone(), namespace);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.get_opt(name).await {
            Ok(object) => return Ok(object),
            Err(kube::Error::Api(status)) if status.code == 403 && attempt < 10 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(kube::Error::Api(status)) => return Err(Blocked::config(status.message)),
            Err(error) => return Err(Blocked::config(error.to_string())),
        }
    }
}

/// The data of a Secret, or `secret "name" not found`.
pub(crate) async fn secret_data(
    shared: &Shared,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, Blocked> {
    let secret: Option<Secret> = get_object(shared, namespace, name).await?;
    Ok(secret.map(|secret| {
        let mut data: BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        for (k, v) in secret.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        data
    }))
}

/// The data (and binaryData) of a ConfigMap.
pub(crate) async fn config_map_data(
    shared: &Shared,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, Blocked> {
    let map: Option<ConfigMap> = get_object(shared, namespace, name).await?;
    Ok(map.map(|map| {
        let mut data: BTreeMap<String, Vec<u8>> =
            map.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        for (k, v) in map.binary_data.unwrap_or_default() {
            data.insert(k, v.0);
        }
        data
    }))
}

/// The value of a Pod field for `fieldRef` (env and downward API).
pub(crate) fn field_value(pod: &Pod, pod_ip: Ipv4Addr, path: &str) -> Result<String, Blocked> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => "127.0.0.1".to_string(),
        _ => {
            let map_key = |prefix: &str| path.strip_prefix(prefix).and_then(|rest| rest.strip_suffix("']"));
            if let Some(key) = map_key("metadata.labels['") {
                meta.labels.as_ref().and_then(|l| l.get(key).cloned()).unwrap_or_default()
            } else if let Some(key) = map_key("metadata.annotations['") {
                meta.annotations.as_ref().and_then(|a| a.get(key).cloned()).unwrap_or_default()
            } else {
                return Err(Blocked::config(format!("unsupported fieldRef {path:?} (process kubelet)")));
            }
        }
    };
    Ok(value)
}

/// The full environment of `container`.
pub(crate) async fn container_env(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    program: &Program,
    pod_ip: Ipv4Addr,
) -> Result<Vec<(String, String)>, Blocked> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = Env::default();
    for (name, value) in &program.env {
        env.set(name, value.clone());
    }
    let hostname = pod.spec.as_ref().and_then(|s| s.hostname.clone()).or_else(|| pod.metadata.name.clone());
    env.set("HOSTNAME", hostname.unwrap_or_default());
    let config = &shared.config;
    env.set("KUBERNETES_SERVICE_HOST", config.apiserver_host.clone());
    env.set("KUBERNETES_SERVICE_PORT", config.apiserver_port.to_string());
    env.set("KUBERNETES_SERVICE_PORT_HTTPS", config.apiserver_port.to_string());

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(secret) = &from.secret_ref {
            match secret_data(shared, &namespace, &secret.name).await? {
                Some(data) => data,
                None if secret.optional == Some(true) => continue,
                None => return Err(Blocked::config(format!("secret \"{}\" not found", secret.name))),
            }
        } else if let Some(map) = &from.config_map_ref {
            match config_map_data(shared, &namespace, &map.name).await? {
                Some(data) => data,
                None if map.optional == Some(true) => continue,
                None => return Err(Blocked::config(format!("configmap \"{}\" not found", map.name))),
            }
        } else {
            continue;
        };
        for (key, value) in data {
            env.set(&format!("{prefix}{key}"), String::from_utf8_lossy(&value).into_owned());
        }
    }

    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            let expanded = expand(value, &env);
            env.set(&var.name, expanded);
            continue;
        }
        let Some(source) = &var.value_from else {
            env.set(&var.name, String::new());
            continue;
        };
        if let Some(selector) = &source.secret_key_ref {
            let optional = selector.optional == Some(true);
            match secret_data(shared, &namespace, &selector.name).await? {
                Some(data) => match data.get(&selector.key) {
                    Some(value) => env.set(&var.name, String::from_utf8_lossy(value).into_owned()),
                    None if optional => {}
                    None => {
                        return Err(Blocked::config(format!(
                            "couldn't find key {} in Secret {namespace}/{}",
                            selector.key, selector.name
                        )));
                    }
                },
                None if optional => {}
                None => return Err(Blocked::config(format!("secret \"{}\" not found", selector.name))),
            }
        } else if let Some(selector) = &source.config_map_key_ref {
            let optional = selector.optional == Some(true);
            match config_map_data(shared, &namespace, &selector.name).await? {
                Some(data) => match data.get(&selector.key) {
                    Some(value) => env.set(&var.name, String::from_utf8_lossy(value).into_owned()),
                    None if optional => {}
                    None => {
                        return Err(Blocked::config(format!(
                            "couldn't find key {} in ConfigMap {namespace}/{}",
                            selector.key, selector.name
                        )));
                    }
                },
                None if optional => {}
                None => return Err(Blocked::config(format!("configmap \"{}\" not found", selector.name))),
            }
        } else if let Some(field) = &source.field_ref {
            env.set(&var.name, field_value(pod, pod_ip, &field.field_path)?);
        } else {
            return Err(Blocked::config(format!(
                "env {:?}: only secretKeyRef, configMapKeyRef and fieldRef are supported by the process kubelet",
                var.name
            )));
        }
    }

    env.set(POD_IP_ENV, pod_ip.to_string());
    env.set(POD_UID_ENV, pod.metadata.uid.clone().unwrap_or_default());
    Ok(env.into_vec())
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes NAME's value when it is
/// defined (left as is otherwise), `$$` becomes `$`.
pub(crate) fn expand(input: &str, env: &Env) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_as_kubernetes_does() {
        let mut env = Env::default();
        env.set("A", "x".to_string());
        env.set("A", "1".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "1-$(B)-$(A)-$");
        assert_eq!(expand("no vars", &env), "no vars");
        assert_eq!(expand("$(A", &env), "$(A");
    }
}
