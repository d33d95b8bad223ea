//! Throwaway PostgreSQL clusters for the tests.
//!
//! [`PgCluster::start`] runs `initdb` into a temporary directory (as the
//! `postgres` user when the tests run as root, since initdb refuses root),
//! starts a server listening on 127.0.0.1 on a free port with its socket in
//! the temporary directory, and waits until a real connection succeeds. Drop
//! stops it (`pg_ctl stop -m immediate`) and removes the directory. A small
//! watchdog process also stops the server and removes the directory when the
//! test process dies without dropping the cluster (a `static` cluster shared
//! by the tests of one binary, a killed test run).
//!
//! Every client program started through [`PgCluster::command`] gets a clean
//! environment: the caller's `PG*` variables are removed, and PGHOST, PGPORT,
//! PGUSER, PGPASSWORD and PGDATABASE point at this cluster, so the password
//! never appears on a command line.
//!
//! Submodules: `tools` (psql, queries, pg_dump, pg_restore against a
//! cluster) and `names` (quoting and random names).

mod names;
mod tools;

pub use names::{percent_encode, quote_ident, quote_literal, random_token};
use tools::output_text;
pub use tools::run_ok;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::net::free_port;

/// How long a cluster may take to accept connections after the server starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the bootstrap superuser of every test cluster.
pub const SUPERUSER: &str = "postgres";

/// A running, throwaway PostgreSQL cluster.
pub struct PgCluster {
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    host: String,
    port: u16,
    password: String,
    server: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is left out on purpose.
        f.debug_struct("PgCluster").field("port", &self.port).field("data", &self.data).finish()
    }
}

/// The directory holding `initdb`, `postgres`, `pg_ctl`, `psql`, `pg_dump`...:
/// `pg_config --bindir`, else the highest `/usr/lib/postgresql/*/bin`.
pub fn bindir() -> &'static Path {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR.get_or_init(|| {
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && dir.join("initdb").exists() {
                return dir;
            }
        }
        let mut best: Option<(u32, PathBuf)> = None;
        if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
            for e in entries.flatten() {
                let Ok(v) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let bin = e.path().join("bin");
                if bin.join("initdb").exists() && best.as_ref().is_none_or(|(b, _)| v > *b) {
                    best = Some((v, bin));
                }
            }
        }
        match best {
            Some((_, dir)) => dir,
            None => panic!(
                "PostgreSQL server binaries not found: neither `pg_config --bindir` nor \
                 /usr/lib/postgresql/*/bin has initdb (install the postgresql package)"
            ),
        }
    })
}

/// The path of one PostgreSQL program (`psql`, `pg_dump`, ...).
pub fn pg_program(name: &str) -> PathBuf {
    bindir().join(name)
}

/// Whether this process runs as root (initdb and postgres then run as `postgres`).
pub fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id").arg("-u").output().expect("cannot run `id -u`");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

/// A command that runs `program` as the `postgres` OS user when we are root.
fn server_command(program: &Path) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgCluster {
    /// Starts a new cluster with a random superuser password.
    pub fn start() -> PgCluster {
        Self::start_with_password(&random_token(24))
    }

    /// Starts a new cluster whose `postgres` superuser has this password.
    ///
    /// Used for the target of a pg_dumpall restore: such a dump sets the
    /// superuser's password to the source cluster's, so giving both clusters
    /// the same password keeps the harness able to connect afterwards.
    pub fn start_with_password(password: &str) -> PgCluster {
        let mut last_log = String::new();
        for _ in 0..5 {
            match Self::try_start(password) {
                Ok(c) => return c,
                // Another test took the port between free_port() and bind: retry.
                Err(log) if log.contains("could not bind") || log.contains("already in use") => last_log = log,
                Err(log) => panic!("PostgreSQL test cluster failed to start:\n{log}"),
            }
        }
        panic!("PostgreSQL test cluster failed to start (no free port after 5 tries):\n{last_log}")
    }

    fn try_start(password: &str) -> Result<PgCluster, String> {
        let dir = tempfile::Builder::new().prefix("kgr-pg-").tempdir().expect("cannot create a temp dir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pwfile");
        fs::write(&pwfile, format!("{password}\n")).expect("cannot write the password file");
        if running_as_root() {
            run_ok(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()), "chown of the cluster dir");
        }
        let initdb = server_command(&pg_program("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !initdb.status.success() {
            return Err(format!("initdb failed\n{}", output_text(&initdb)));
        }
        let _ = fs::remove_file(&pwfile);

        let port = free_port().map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))?;
        let log_path = dir.path().join("server.log");
        let log = fs::File::create(&log_path).expect("cannot create the server log");
        let log_err = log.try_clone().expect("cannot clone the server log handle");
        let mut cmd = server_command(&pg_program("postgres"));
        cmd.arg("-D").arg(&data);
        let socket_dir = dir.path().display().to_string();
        let port_s = port.to_string();
        for (k, v) in [
            ("listen_addresses", "127.0.0.1"),
            ("port", port_s.as_str()),
            ("unix_socket_directories", socket_dir.as_str()),
            ("fsync", "off"),
            ("full_page_writes", "off"),
            ("synchronous_commit", "off"),
            ("max_wal_size", "2GB"),
            ("checkpoint_timeout", "30min"),
            ("max_connections", "60"),
            ("max_locks_per_transaction", "256"),
        ] {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let mut server = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let watchdog = spawn_watchdog(&data, dir.path());
        let mut cluster = PgCluster {
            dir: Some(dir),
            data,
            host: "127.0.0.1".to_string(),
            port,
            password: password.to_string(),
            server: None,
            watchdog,
        };

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.try_wait() {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("postgres exited with {status} before accepting connections\n{log}"));
            }
            let probe = cluster
                .command("psql")
                .args(["-X", "-q", "-At", "-c", "SELECT 1"])
                .env("PGCONNECT_TIMEOUT", "2")
                .output();
            if matches!(&probe, Ok(o) if o.status.success()) {
                break;
            }
            if Instant::now() > deadline {
                let _ = server.kill();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                let probe = probe.map(|o| output_text(&o)).unwrap_or_else(|e| e.to_string());
                return Err(format!(
                    "postgres did not accept connections within {READY_TIMEOUT:?}\nlast probe: {probe}\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster.server = Some(server);
        Ok(cluster)
    }

    /// A server this harness did not start (a Kubegres primary in the local
    /// cluster, at its Pod IP), reached as `postgres` with this password; the
    /// comparisons and queries work on it, and dropping it stops nothing.
    pub fn connect_to(host: &str, port: u16, password: &str) -> PgCluster {
        PgCluster {
            dir: None,
            data: PathBuf::new(),
            host: host.to_string(),
            port,
            password: password.to_string(),
            server: None,
            watchdog: None,
        }
    }

    /// The host it listens on (127.0.0.1 for the clusters it starts).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A directory for the test's own files that is removed with the cluster,
    /// also when the test process dies (the watchdog removes the cluster's
    /// whole temporary directory): use it for files kept in a `static`.
    pub fn scratch_dir(&self) -> PathBuf {
        let dir = self.dir.as_ref().expect("a running cluster has its directory").path().join("scratch");
        fs::create_dir_all(&dir).expect("cannot create the scratch directory");
        dir
    }

    /// The server log so far (for failure messages).
    pub fn server_log(&self) -> String {
        self.dir
            .as_ref()
            .map(|d| fs::read_to_string(d.path().join("server.log")).unwrap_or_default())
            .unwrap_or_default()
    }

    /// `postgres://postgres:PW@127.0.0.1:PORT/db` (for clients that need the
    /// password in the URL; never hand it to the agent's command line).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@{}:{}/{}",
            percent_encode(&self.password),
            self.host,
            self.port,
            percent_encode(db)
        )
    }

    /// `postgres://postgres@127.0.0.1:PORT/db`: the URL without the password,
    /// as the agent gets it (the password comes from PGPASSWORD).
    pub fn url_without_password(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@{}:{}/{}", self.host, self.port, percent_encode(db))
    }

    /// PGHOST, PGPORT, PGUSER and PGPASSWORD for child processes.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), self.host.clone()),
            ("PGPORT".into(), self.port.to_string()),
            ("PGUSER".into(), SUPERUSER.into()),
            ("PGPASSWORD".into(), self.password.clone()),
        ]
    }

    /// A command for a PostgreSQL client program (`psql`, `pg_dump`, ...) of
    /// the installed version, with a clean `PG*` environment pointing at this
    /// cluster and the `postgres` database.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(pg_program(program));
        clear_pg_env(&mut cmd);
        cmd.envs(self.env())
            .env("PGDATABASE", "postgres")
            .env("PGCLIENTENCODING", "UTF8")
            .env("PGCONNECT_TIMEOUT", "10");
        cmd
    }

    /// A connection config for tokio-postgres.
    pub fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host).port(self.port).user(SUPERUSER).password(&self.password).dbname(db);
        c
    }

    /// Connects with tokio-postgres (the connection runs on a spawned task, so
    /// this needs a tokio runtime).
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = self
            .config(db)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to database {db:?} on port {}: {e}", self.port));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server_command(&pg_program("pg_ctl"))
                .arg("stop")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "20"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(server.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin); // lets the watchdog finish (it finds nothing left to do)
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes the caller's `PG*` variables so that a developer's environment
/// cannot redirect a test.
pub fn clear_pg_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&k);
        }
    }
}

/// Starts `sh` waiting for EOF on its stdin, which comes when this process
/// drops the handle or dies; it then stops the server and removes the dir.
fn spawn_watchdog(data: &Path, dir: &Path) -> Option<(Child, ChildStdin)> {
    let pg_ctl = pg_program("pg_ctl");
    let stop = if running_as_root() { "runuser -u postgres -- \"$1\"" } else { "\"$1\"" };
    let script = format!("cat >/dev/null; {stop} stop -D \"$2\" -m immediate -w -t 20 >/dev/null 2>&1; rm -rf \"$3\"");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(pg_ctl)
        .arg(data)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let _ = stdin.flush();
    Some((child, stdin))
}
