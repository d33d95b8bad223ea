//! Starting etcd and kube-apiserver on free loopback ports and waiting
//! until they are ready.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pki::{Ca, CertifiedKey};
use super::process::{LoggedProcess, TAIL_LINES};
use super::{
    Binaries, ControlPlaneError, POLL_INTERVAL, PORT_ATTEMPTS, READY_TIMEOUT, SERVICE_ACCOUNT_ISSUER,
    SERVICE_CLUSTER_IP_RANGE, certificate_user, client_from_kubeconfig, kubeconfig,
};

/// Starts etcd on two free loopback ports and waits until `/health` is true.
pub(super) async fn start_etcd(binaries: &Binaries, dir: &Path) -> Result<(LoggedProcess, String), ControlPlaneError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let args: Vec<OsString> = vec![
            "--name=controlplane".into(),
            arg("--data-dir=", dir.join("etcd")),
            format!("--listen-client-urls={client_url}").into(),
            format!("--advertise-client-urls={client_url}").into(),
            format!("--listen-peer-urls={peer_url}").into(),
            format!("--initial-advertise-peer-urls={peer_url}").into(),
            format!("--initial-cluster=controlplane={peer_url}").into(),
            "--initial-cluster-state=new".into(),
            // Throwaway data: durability buys nothing and costs test time.
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ];
        let mut etcd = LoggedProcess::spawn("etcd", &binaries.etcd, &args, dir, dir.join("etcd.log"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = etcd.exited() {
                let logs = etcd.log_tail(TAIL_LINES);
                if attempt < PORT_ATTEMPTS && logs.contains("address already in use") {
                    break;
                }
                return Err(ControlPlaneError::Exited { name: "etcd", status, logs });
            }
            let last = match etcd_health(client_port).await {
                Ok(()) => return Ok((etcd, client_url)),
                Err(error) => error,
            };
            if started.elapsed() > READY_TIMEOUT {
                return Err(ControlPlaneError::NotReady {
                    name: "etcd",
                    waited: READY_TIMEOUT,
                    last,
                    logs: etcd.log_tail(TAIL_LINES),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        // The ports were taken between choosing and binding them: try others.
        drop(etcd);
        let _ = std::fs::remove_dir_all(dir.join("etcd"));
    }
}

/// One `GET /health` against etcd over plain HTTP.
async fn etcd_health(port: u16) -> Result<(), String> {
    let mut stream =
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|error| format!("connect: {error}"))?;
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .map_err(|error| format!("write: {error}"))?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .map_err(|_| "no answer within 5s".to_string())?
        .map_err(|error| format!("read: {error}"))?;
    if response.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(format!("answered {:?}", response.lines().last().unwrap_or_default()))
    }
}

/// Starts kube-apiserver on a free loopback port and waits until `/readyz`
/// answers ok to the admin. With `controllers` (a controller-manager will
/// run) the ServiceAccount admission plugin stays on, as in any real
/// cluster, and NodeRestriction is added, as kubeadm does.
pub(super) async fn start_apiserver(
    binaries: &Binaries,
    controllers: bool,
    dir: &Path,
    etcd: &mut LoggedProcess,
    etcd_url: &str,
    ca: &Ca,
    admin: &CertifiedKey,
) -> Result<(LoggedProcess, String, kube::Client), ControlPlaneError> {
    let pki = dir.join("pki");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        let server_url = format!("https://127.0.0.1:{port}");
        let mut args: Vec<OsString> = vec![
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}").into(),
            format!("--etcd-servers={etcd_url}").into(),
            arg("--client-ca-file=", pki.join("ca.crt")),
            arg("--tls-cert-file=", pki.join("apiserver.crt")),
            arg("--tls-private-key-file=", pki.join("apiserver.key")),
            arg("--cert-dir=", dir.join("apiserver-certs")),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}").into(),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}").into(),
            arg("--service-account-key-file=", pki.join("service-account.pub")),
            arg("--service-account-signing-key-file=", pki.join("service-account.key")),
            "--authorization-mode=Node,RBAC".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            // The `kubernetes` Service's endpoints would be 127.0.0.1, which
            // the Endpoints validation rejects; nothing here needs them.
            "--endpoint-reconciler-type=none".into(),
        ];
        if controllers {
            args.push("--enable-admission-plugins=NodeRestriction".into());
        } else {
            // No controller-manager creates the `default` ServiceAccount or
            // tokens, so the plugin would reject every Pod.
            args.push("--disable-admission-plugins=ServiceAccount".into());
        }
        let mut apiserver = LoggedProcess::spawn(
            "kube-apiserver",
            &binaries.kube_apiserver,
            &args,
            dir,
            dir.join("kube-apiserver.log"),
        )?;
        let both_logs = |apiserver: &LoggedProcess, etcd: &LoggedProcess| {
            format!("{}\n{}", etcd.log_tail(TAIL_LINES), apiserver.log_tail(TAIL_LINES))
        };
        let client = client_from_kubeconfig(&kubeconfig(&server_url, ca.cert_pem(), &certificate_user(admin))).await?;
        let started = Instant::now();
        loop {
            if let Some(status) = etcd.exited() {
                return Err(ControlPlaneError::Exited { name: etcd.name(), status, logs: both_logs(&apiserver, etcd) });
            }
            if let Some(status) = apiserver.exited() {
                let logs = both_logs(&apiserver, etcd);
                if attempt < PORT_ATTEMPTS && logs.contains("address already in use") {
                    break;
                }
                return Err(ControlPlaneError::Exited { name: apiserver.name(), status, logs });
            }
            let readyz = http::Request::get("/readyz").body(Vec::new());
            let last = match readyz {
                Ok(request) => match client.request_text(request).await {
                    Ok(body) if body.trim() == "ok" => return Ok((apiserver, server_url, client)),
                    Ok(body) => format!("/readyz answered {body:?}"),
                    Err(error) => format!("/readyz: {error}"),
                },
                Err(error) => format!("cannot build the /readyz request: {error}"),
            };
            if started.elapsed() > READY_TIMEOUT {
                return Err(ControlPlaneError::NotReady {
                    name: apiserver.name(),
                    waited: READY_TIMEOUT,
                    last,
                    logs: both_logs(&apiserver, etcd),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, ControlPlaneError> {
    crate::net::free_port().map_err(|source| ControlPlaneError::io("find a free loopback port", source))
}

/// `--flag=` followed by a path.
pub(super) fn arg(flag: &str, path: PathBuf) -> OsString {
    let mut arg = OsString::from(flag);
    arg.push(path.into_os_string());
    arg
}
