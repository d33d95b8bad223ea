//! A real S3-protocol server for tests: s3s-fs on 127.0.0.1, a random port,
//! a temporary root folder and random credentials.
//!
//! The binary is built once by `tests/scripts/build-s3s-fs.sh` into
//! `${KUBEGRES_RESTORE_CACHE:-$HOME/.cache/kubegres-restore}/s3s-fs`; when it
//! is missing, [`S3Server::start`] runs that script. If the server cannot be
//! started the test panics with the reason: S3 tests never skip.
//!
//! s3s-fs keeps a bucket as a folder and an object as a file under its root,
//! so [`S3Server::put`] writes files directly (and can set their
//! modification time, which s3s-fs reports as LastModified). The throwaway
//! credentials are passed to s3s-fs on its command line (it has no other
//! way); they are random per server and protect nothing else.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;

use crate::net::free_port;
use rand::distr::Alphanumeric;

/// The region the agent should use with this server.
pub const REGION: &str = "us-east-1";

/// A running s3s-fs; killed when dropped.
pub struct S3Server {
    child: Child,
    root: tempfile::TempDir,
    log: PathBuf,
    addr: SocketAddr,
    access_key: String,
    secret_key: String,
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server").field("endpoint", &self.endpoint()).field("root", &self.root.path()).finish()
    }
}

/// Serialises builds of the binary within one test process.
static BUILD: Mutex<()> = Mutex::new(());

/// Where the build script puts the binary.
pub fn binary_path() -> PathBuf {
    let cache = match std::env::var_os("KUBEGRES_RESTORE_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c),
        _ => {
            let home = std::env::var_os("HOME").expect("HOME is not set; set KUBEGRES_RESTORE_CACHE");
            PathBuf::from(home).join(".cache/kubegres-restore")
        }
    };
    cache.join("s3s-fs/bin/s3s-fs")
}

/// The s3s-fs binary, built by the script when missing.
pub fn ensure_binary() -> PathBuf {
    let bin = binary_path();
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if bin.is_file() {
        return bin;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-s3s-fs.sh");
    eprintln!("s3s-fs is missing at {}; building it with {} (a few minutes)", bin.display(), script.display());
    let status = Command::new("bash")
        .arg(&script)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(status.success(), "{} failed ({status}); see its output above", script.display());
    assert!(bin.is_file(), "{} succeeded but {} is missing", script.display(), bin.display());
    bin
}

fn random_string(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

impl S3Server {
    /// Starts s3s-fs and waits until it accepts connections.
    pub fn start() -> S3Server {
        let bin = ensure_binary();
        let mut last_error = String::new();
        // A port found free may be taken before s3s-fs binds it: try a few.
        for _ in 0..5 {
            match S3Server::try_start(&bin) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("s3s-fs ({}) could not be started: {last_error}", bin.display());
    }

    fn try_start(bin: &Path) -> Result<S3Server, String> {
        let root = tempfile::Builder::new().prefix("s3s-fs-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let data = root.path().join("data");
        std::fs::create_dir(&data).map_err(|e| format!("create {}: {e}", data.display()))?;
        let log = root.path().join("s3s-fs.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let port = free_port().map_err(|e| format!("find a free port on 127.0.0.1: {e}"))?;
        let access_key = format!("AK{}", random_string(14).to_uppercase());
        let secret_key = random_string(32);
        let child = Command::new(bin)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--access-key")
            .arg(&access_key)
            .arg("--secret-key")
            .arg(&secret_key)
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", bin.display()))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut server = S3Server { child, root, log, addr, access_key, secret_key };
        server.wait_ready(Duration::from_secs(30))?;
        Ok(server)
    }

    /// Polls the port until s3s-fs accepts a connection, or fails if it exits or times out.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("s3s-fs exited with {status}: {}", self.log_tail()));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("s3s-fs did not listen on {} within {timeout:?}: {}", self.addr, self.log_tail()));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().rev().take(20).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        if tail.is_empty() { "(no output)".into() } else { tail.join("\n") }
    }

    /// The address s3s-fs listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `--s3-endpoint` (use path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The access key id.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret access key.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Environment for an agent process: the standard AWS variables with this
    /// server's credentials and region, and instance metadata off.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// The folder s3s-fs serves (one subfolder per bucket).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Creates a bucket (a folder under the root).
    pub fn create_bucket(&self, bucket: &str) {
        let dir = self.data_dir().join(bucket);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create bucket {}: {e}", dir.display()));
    }

    /// Stores an object, creating its bucket if needed. Returns the file that holds it.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> PathBuf {
        assert!(!key.split('/').any(|p| p == ".." || p == "."), "keys with . or .. segments are not supported: {key}");
        self.create_bucket(bucket);
        let path = self.data_dir().join(bucket).join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Stores an object whose LastModified is `modified`.
    pub fn put_with_mtime(&self, bucket: &str, key: &str, bytes: &[u8], modified: SystemTime) -> PathBuf {
        let path = self.put(bucket, key, bytes);
        let f = std::fs::File::options().write(true).open(&path).expect("open the object file");
        f.set_modified(modified).expect("set the object's modification time");
        path
    }
}

/// A TCP proxy in front of a server (e.g. s3s-fs) that cuts its first
/// connection after passing `drop_after` bytes from the server, and records
/// what clients send (request heads: S3 GETs and HEADs have no body), so
/// tests can check that a resume sent `range: bytes=N-`.
pub struct DropOnceProxy {
    addr: SocketAddr,
    sent: std::sync::Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DropOnceProxy {
    /// Listens on 127.0.0.1 (random port) and forwards to `target`.
    pub async fn start(target: SocketAddr, drop_after: usize) -> DropOnceProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("the proxy's address");
        let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        let task = tokio::spawn(async move {
            let mut first = true;
            while let Ok((client, _)) = listener.accept().await {
                let limit = if std::mem::take(&mut first) { Some(drop_after) } else { None };
                let log = log.clone();
                tokio::spawn(async move {
                    if let Ok(upstream) = tokio::net::TcpStream::connect(target).await {
                        proxy_connection(client, upstream, limit, log).await;
                    }
                });
            }
        });
        DropOnceProxy { addr, sent, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What clients sent, one string per connection (lossy UTF-8).
    pub fn client_bytes(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

impl Drop for DropOnceProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_connection(
    client: tokio::net::TcpStream,
    upstream: tokio::net::TcpStream,
    limit: Option<usize>,
    log: std::sync::Arc<Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let index = {
        let mut l = log.lock().unwrap();
        l.push(String::new());
        l.len() - 1
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let to_server = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            log.lock().unwrap()[index].push_str(&String::from_utf8_lossy(&buf[..n]));
            if up_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = up_write.shutdown().await;
    };
    let to_client = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut passed = 0usize;
        loop {
            let n = match up_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = match limit {
                Some(l) => n.min(l - passed),
                None => n,
            };
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            passed += n;
            if limit.is_some_and(|l| passed >= l) {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    // When the server side stops (or is cut), drop the whole connection.
    tokio::select! {
        _ = to_client => {}
        _ = async { to_server.await; std::future::pending::<()>().await } => {}
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
