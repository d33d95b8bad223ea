//! Target connection settings: a libpq-style URL, completed by the usual
//! `PG*` environment variables, so that a password can come from a
//! Secret-backed `PGPASSWORD` and never from the command line.

use std::time::Duration;

use tokio_postgres::Client;
use url::Url;

use super::TargetError;

/// libpq's `sslmode`, as far as the agent implements it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, without verifying its certificate (libpq's default).
    Prefer,
    /// TLS required, certificate not verified (libpq semantics).
    Require,
    /// TLS required, certificate chain verified against the roots.
    VerifyCa,
    /// TLS required, chain and host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, TargetError> {
        Ok(match s {
            "disable" | "allow" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TargetError::Config(format!("unknown sslmode \"{other}\""))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where and as whom to connect. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// A host name, an IP address, or a Unix socket directory (starting with `/`).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    /// Whether the database name was given (URL path, `dbname=` or PGDATABASE).
    pub dbname_given: bool,
    pub sslmode: SslMode,
    pub sslrootcert: Option<String>,
    pub application_name: String,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

impl TargetConfig {
    /// Builds the settings from an optional URL and an environment lookup
    /// (`std::env::var` in the binary, a map in tests). As with libpq, what the
    /// URL says wins over the environment.
    pub fn from_url_and_env(
        url: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TargetConfig, TargetError> {
        let env_nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
        let mut host = None;
        let mut port = None;
        let mut user = None;
        let mut password = None;
        let mut dbname = None;
        let mut sslmode = None;
        let mut sslrootcert = None;
        let mut app = None;
        let mut timeout = None;

        if let Some(raw) = url.filter(|u| !u.trim().is_empty()) {
            let u =
                Url::parse(raw).map_err(|e| TargetError::Config(format!("target is not a postgres:// URL ({e})")))?;
            if u.scheme() != "postgres" && u.scheme() != "postgresql" {
                return Err(TargetError::Config(format!(
                    "target URL scheme must be postgres:// or postgresql://, not {}://",
                    u.scheme()
                )));
            }
            let dec = |s: &str| -> Result<String, TargetError> {
                percent_decode(s).ok_or_else(|| TargetError::Config("target URL has invalid percent-encoding".into()))
            };
            if let Some(h) = u.host_str().filter(|h| !h.is_empty()) {
                let h = dec(h)?;
                host = Some(h.trim_start_matches('[').trim_end_matches(']').to_string());
            }
            port = u.port();
            if !u.username().is_empty() {
                user = Some(dec(u.username())?);
            }
            if let Some(p) = u.password() {
                password = Some(dec(p)?);
            }
            let path = u.path().trim_start_matches('/');
            if !path.is_empty() {
                dbname = Some(dec(path)?);
            }
            for (k, v) in u.query_pairs() {
                let v = v.into_owned();
                match k.as_ref() {
                    "host" => host = Some(v),
                    "port" => port = Some(parse_port(&v)?),
                    "user" => user = Some(v),
                    "password" => password = Some(v),
                    "dbname" => dbname = Some(v),
                    "sslmode" => sslmode = Some(SslMode::parse(&v)?),
                    "sslrootcert" => sslrootcert = Some(v),
                    "application_name" => app = Some(v),
                    "connect_timeout" => timeout = Some(parse_timeout(&v)?),
                    // Accepted and ignored: they do not change how the agent connects.
                    "options"
                    | "target_session_attrs"
                    | "keepalives"
                    | "keepalives_idle"
                    | "gssencmode"
                    | "channel_binding" => {}
                    other => return Err(TargetError::Config(format!("unsupported target URL parameter \"{other}\""))),
                }
            }
        }

        let host = match host.or_else(|| env_nonempty("PGHOST")) {
            Some(h) => h,
            None => DEFAULT_SOCKET_DIR.to_string(),
        };
        let port = match port {
            Some(p) => p,
            None => match env_nonempty("PGPORT") {
                Some(p) => parse_port(&p)?,
                None => 5432,
            },
        };
        let user = user
            .or_else(|| env_nonempty("PGUSER"))
            .or_else(|| env_nonempty("USER"))
            .unwrap_or_else(|| "postgres".to_string());
        let password = password.or_else(|| env("PGPASSWORD"));
        let dbname_given = dbname.is_some() || env_nonempty("PGDATABASE").is_some();
        let dbname = dbname.or_else(|| env_nonempty("PGDATABASE")).unwrap_or_else(|| user.clone());
        let sslmode = match sslmode {
            Some(m) => m,
            None => match env_nonempty("PGSSLMODE") {
                Some(m) => SslMode::parse(&m)?,
                None => SslMode::Prefer,
            },
        };
        let sslrootcert = sslrootcert.or_else(|| env_nonempty("PGSSLROOTCERT"));
        let application_name = app.or_else(|| env_nonempty("PGAPPNAME")).unwrap_or_else(|| "restore-agent".to_string());
        let connect_timeout = match timeout {
            Some(t) => t,
            None => match env_nonempty("PGCONNECT_TIMEOUT") {
                Some(t) => parse_timeout(&t)?,
                None => Duration::from_secs(30),
            },
        };
        Ok(TargetConfig {
            host,
            port,
            user,
            password,
            dbname,
            dbname_given,
            sslmode,
            sslrootcert,
            application_name,
            connect_timeout,
        })
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, dbname: &str) -> TargetConfig {
        TargetConfig { dbname: dbname.to_string(), dbname_given: true, ..self.clone() }
    }

    /// `postgres://user@host:port/db`, never with the password.
    pub fn display(&self) -> String {
        let host = if self.host.starts_with('/') {
            format!("[socket {}]", self.host)
        } else if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("postgres://{}@{}:{}/{}", self.user, host, self.port, self.dbname)
    }

    /// The settings as libpq environment variables, for pg_restore and psql
    /// child processes (so that nothing secret is on their command line).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGSSLMODE", self.sslmode.as_str().to_string()),
            ("PGAPPNAME", self.application_name.clone()),
            ("PGCONNECT_TIMEOUT", self.connect_timeout.as_secs().max(1).to_string()),
        ];
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.clone()));
        }
        if let Some(c) = &self.sslrootcert {
            env.push(("PGSSLROOTCERT", c.clone()));
        }
        env
    }

    /// The tokio-postgres configuration.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .ssl_mode(match self.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
            });
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }

    /// Connects, spawning the connection task; notices are logged at debug level.
    pub async fn connect(&self) -> Result<Client, TargetError> {
        let cfg = self.pg_config();
        let result = if self.sslmode == SslMode::Disable || self.host.starts_with('/') {
            match cfg.connect(tokio_postgres::NoTls).await {
                Ok((client, conn)) => Ok((client, spawn_connection(conn))),
                Err(e) => Err(e),
            }
        } else {
            let tls = super::tls::connector(self.sslmode, self.sslrootcert.as_deref())?;
            match cfg.connect(tls).await {
                Ok((client, conn)) => Ok((client, spawn_connection(conn))),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok((client, _task)) => Ok(client),
            Err(e) => Err(TargetError::from_connect(self, &self.dbname, e)),
        }
    }
}

fn spawn_connection<S, T>(conn: tokio_postgres::Connection<S, T>) -> tokio::task::JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "target connection closed with an error");
        }
    })
}

fn parse_port(s: &str) -> Result<u16, TargetError> {
    s.parse().map_err(|_| TargetError::Config(format!("invalid port \"{s}\"")))
}

fn parse_timeout(s: &str) -> Result<Duration, TargetError> {
    s.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| TargetError::Config(format!("invalid connect_timeout \"{s}\"")))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(url: Option<&str>, env: &[(&str, &str)]) -> Result<TargetConfig, TargetError> {
        let map: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TargetConfig::from_url_and_env(url, &move |k| map.get(k).cloned())
    }

    #[test]
    fn url_wins_and_env_fills_the_rest() {
        let c = cfg(
            Some("postgres://app@db.example:6543/shop?sslmode=disable"),
            &[("PGHOST", "ignored"), ("PGPASSWORD", "s3cret"), ("PGUSER", "ignored")],
        )
        .unwrap();
        assert_eq!((c.host.as_str(), c.port, c.user.as_str(), c.dbname.as_str()), ("db.example", 6543, "app", "shop"));
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert_eq!(c.sslmode, SslMode::Disable);
        assert!(c.dbname_given);
    }

    #[test]
    fn environment_alone_is_enough() {
        let c = cfg(None, &[("PGHOST", "10.0.0.1"), ("PGPORT", "5433"), ("PGUSER", "u"), ("PGDATABASE", "d")]).unwrap();
        assert_eq!(c.display(), "postgres://u@10.0.0.1:5433/d");
        let c = cfg(Some("postgres://u@h"), &[]).unwrap();
        assert_eq!(c.dbname, "u");
        assert!(!c.dbname_given);
    }

    #[test]
    fn percent_encoded_parts_and_sockets() {
        let c = cfg(Some("postgresql://u%40x:p%2Fw@%2Ftmp%2Fsock/my%20db"), &[]).unwrap();
        assert_eq!(c.user, "u@x");
        assert_eq!(c.password.as_deref(), Some("p/w"));
        assert_eq!(c.host, "/tmp/sock");
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.display(), "postgres://u@x@[socket /tmp/sock]:5432/my db");
    }

    #[test]
    fn the_password_is_never_displayed() {
        let c = cfg(Some("postgres://u:hunter2@h/d"), &[]).unwrap();
        assert!(!c.display().contains("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.libpq_env().contains(&("PGPASSWORD", "hunter2".to_string())));
    }

    #[test]
    fn bad_targets_are_config_errors() {
        for bad in ["mysql://h/d", "not a url", "postgres://h/d?sslmode=sometimes", "postgres://h/d?frobnicate=1"] {
            let e = cfg(Some(bad), &[]).expect_err(bad);
            assert!(matches!(e, TargetError::Config(_)), "{bad}: {e}");
        }
        assert!(matches!(cfg(None, &[("PGPORT", "x")]), Err(TargetError::Config(_))));
    }
}
