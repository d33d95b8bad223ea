//! The command line. Secrets never come through it: the target password comes
//! from `PGPASSWORD` (or the URL, for interactive use), S3 credentials from the
//! standard AWS variables and profiles, HTTP headers from an environment
//! variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use proto::crd::{CompressionChoice, EngineChoice, FormatChoice, OnError};

use crate::error::Error;
use crate::source::{HttpOptions, Pick, S3Options, SourceOptions};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  internal error
  2  bad usage
  3  the source cannot be read or is not a valid dump (missing, 403/404, empty,
     corrupt, truncated, checksum mismatch, unsupported meta-command)
  4  the target failed (cannot connect, authentication, missing database, SQL error)
  5  the target is not empty (see --allow-non-empty); nothing was written
  6  pg_restore/psql missing or too old for the dump";

/// Restores PostgreSQL dumps (plain, pg_dumpall, custom, directory, tar;
/// gzip, zstd, lz4) from a file, S3 or HTTP into PostgreSQL, with progress.
#[derive(Debug, Parser)]
#[command(name = "restore-agent", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true, env = "RESTORE_AGENT_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `restore_agent=debug`.
    #[arg(long, default_value = "info", global = true, env = "RESTORE_AGENT_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restore a dump into PostgreSQL.
    #[command(after_help = EXIT_CODES)]
    Restore(RestoreArgs),
    /// Tell what a dump is (compression, format, versions, contents) without restoring it.
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
}

/// Where the dump comes from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// The dump: a path or file:// URL (file, or directory-format dump folder),
    /// s3://bucket/key, or http(s)://... With --pick latest: a folder or S3 prefix.
    #[arg(long, env = "RESTORE_AGENT_SOURCE")]
    pub source: String,
    /// With a folder or S3 prefix as source, which dump to take. Kubegres backups
    /// (`<name>-backup-DD_MM_YYYY_HH_MM_SS.gz`) go by their timestamp, others by modification time.
    #[arg(long, value_enum, default_value = "exact")]
    pub pick: Pick,
    /// S3 endpoint URL for S3-compatible servers (MinIO, Ceph, ...).
    #[arg(long, env = "RESTORE_AGENT_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: from the AWS environment or profile, else us-east-1).
    #[arg(long, env = "RESTORE_AGENT_S3_REGION")]
    pub s3_region: Option<String>,
    /// Address buckets by path (https://host/bucket/key) instead of virtual host.
    #[arg(long, env = "RESTORE_AGENT_S3_PATH_STYLE")]
    pub s3_path_style: bool,
    /// Name of an environment variable holding extra HTTP request headers, one
    /// `Name: value` per line (for tokens; never put them on the command line).
    #[arg(long, default_value = "RESTORE_AGENT_HTTP_HEADERS")]
    pub http_headers_env: String,
    /// A PEM file with extra CA certificates to trust for HTTPS sources.
    #[arg(long, env = "RESTORE_AGENT_HTTP_CA_FILE")]
    pub http_ca_file: Option<PathBuf>,
}

impl SourceArgs {
    /// The source options these arguments and the environment give.
    pub fn options(&self) -> Result<SourceOptions, Error> {
        let headers = match std::env::var(&self.http_headers_env) {
            Ok(text) => parse_headers(&text)?,
            Err(_) => Vec::new(),
        };
        Ok(SourceOptions {
            pick: self.pick,
            s3: S3Options {
                endpoint: self.s3_endpoint.clone(),
                region: self.s3_region.clone(),
                path_style: self.s3_path_style,
                ..Default::default()
            },
            http: HttpOptions { headers, ca_file: self.http_ca_file.clone() },
            ..Default::default()
        })
    }
}

/// `Name: value` per line; blank lines and `#` comments ignored.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            // Do not echo the line: it may hold a token.
            return Err(Error::Usage(format!("HTTP header line {} has no ':' (expected `Name: value`)", i + 1)));
        };
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Target: postgres://user@host:port/dbname. PGHOST, PGPORT, PGUSER, PGPASSWORD,
    /// PGDATABASE, PGSSLMODE fill in what the URL leaves out; put the password in PGPASSWORD.
    /// For pg_dumpall dumps the database is where the script starts (default: postgres).
    #[arg(long, env = "RESTORE_AGENT_TARGET")]
    pub target: Option<String>,
    /// Dump format (auto: detected from the bytes).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatChoice,
    /// Compression of the stored bytes (auto: detected from the magic bytes).
    #[arg(long, value_enum, default_value = "auto")]
    pub compression: CompressionChoice,
    /// Engine: native (tokio-postgres) for plain SQL and pg_dumpall, pg-tools
    /// (pg_restore/psql) for archives; auto picks per format.
    #[arg(long, value_enum, default_value = "auto")]
    pub engine: EngineChoice,
    /// Parallel jobs (pg_restore -j for directory dumps).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Expected SHA-256 of the stored (compressed) source bytes, in hex. A mismatch fails the
    /// restore; a single-database restore is then rolled back.
    #[arg(long, value_parser = parse_sha256)]
    pub sha256: Option<String>,
    /// What to do on an SQL error: stop at the first one, or continue, count them and fail at the end.
    #[arg(long, value_enum, default_value = "stop")]
    pub on_error: OnError,
    /// Restore even if the target database (or, for pg_dumpall, the cluster) already holds data.
    #[arg(long)]
    pub allow_non_empty: bool,
    /// Create the database named in --target before restoring into it (a single-database dump
    /// only), connecting to --maintenance-db as the same user. The new database is marked with the
    /// comment `kubegres-restore:<marker>`: a database with exactly that comment, left by an earlier
    /// attempt, is dropped and created again; any other existing database is refused (exit 5) and
    /// never dropped. If the restore fails, the created database is left for the next attempt.
    /// Environment: RESTORE_AGENT_CREATE_DATABASE=true (or 1, yes, on).
    #[arg(long, env = "RESTORE_AGENT_CREATE_DATABASE", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub create_database: bool,
    /// With --create-database: what marks the database as this restore's (the operator passes the
    /// KubegresRestore's UID). 1 to 63 characters out of A-Z a-z 0-9 . _ -
    #[arg(long, env = "RESTORE_AGENT_CREATE_DATABASE_MARKER", default_value = crate::postgres::DEFAULT_MARKER,
          value_parser = parse_marker)]
    pub create_database_marker: String,
    /// With --create-database: the database to connect to while creating (or dropping) the target database.
    #[arg(long, default_value = "postgres")]
    pub maintenance_db: String,
    /// Run a single-database restore in one transaction (auto: yes with --on-error stop).
    #[arg(long, value_enum, default_value = "auto")]
    pub single_transaction: Toggle,
    /// Progress display: a bar on a terminal, JSON lines on stdout, periodic log lines, or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Seconds between two JSON/log/status progress reports.
    #[arg(long, default_value_t = 2.0)]
    pub progress_interval: f64,
    /// Also report progress into the status of this KubegresRestore
    /// (NAMESPACE/NAME; in a restore Pod the operator sets it). Uses the
    /// in-cluster configuration, or KUBECONFIG outside a Pod.
    #[arg(long, env = "RESTORE_AGENT_KUBEGRES_RESTORE")]
    pub kubegres_restore: Option<crate::status::ResourceRef>,
    /// On failure, write the failure (reason, message, SQLSTATE, statement) as
    /// JSON to this file: a restore Pod uses /dev/termination-log, which the
    /// operator reads from the container status.
    #[arg(long, env = "RESTORE_AGENT_TERMINATION_LOG")]
    pub termination_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Compression of the stored bytes (auto: detected).
    #[arg(long, value_enum, default_value = "auto")]
    pub compression: CompressionChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else log lines.
    Auto,
    Bar,
    Json,
    Log,
    None,
}

fn parse_marker(s: &str) -> Result<String, String> {
    crate::postgres::validate_marker(s).map(|()| s.to_string())
}

fn parse_sha256(s: &str) -> Result<String, String> {
    let t = s.trim().to_ascii_lowercase();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err("expected 64 hexadecimal characters".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn restore_defaults() {
        let cli =
            Cli::try_parse_from(["restore-agent", "restore", "--source", "/d.sql.gz", "--target", "postgres://u@h/db"])
                .unwrap();
        let Command::Restore(a) = cli.command else { panic!() };
        assert_eq!(a.jobs, 1);
        assert_eq!(a.on_error, OnError::Stop);
        assert_eq!(a.engine, EngineChoice::Auto);
        assert!(!a.allow_non_empty);
        assert!(!a.create_database);
        assert_eq!(a.create_database_marker, "standalone");
        assert_eq!(a.maintenance_db, "postgres");
    }

    #[test]
    fn create_database_flags() {
        let cli = Cli::try_parse_from([
            "restore-agent",
            "restore",
            "--source",
            "/d.dump",
            "--target",
            "postgres://u@h/new",
            "--create-database",
            "--create-database-marker",
            "0b6f6c1e-8f1c-4c55-a0a4-2b1f3c4d5e6f",
            "--maintenance-db",
            "template1",
        ])
        .unwrap();
        let Command::Restore(a) = cli.command else { panic!() };
        assert!(a.create_database);
        assert_eq!(a.create_database_marker, "0b6f6c1e-8f1c-4c55-a0a4-2b1f3c4d5e6f");
        assert_eq!(a.maintenance_db, "template1");
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        let long_marker = "x".repeat(64);
        for args in [
            vec!["restore-agent", "restore", "--source", "x", "--sha256", "abc"],
            vec!["restore-agent", "restore", "--source", "x", "--jobs", "0"],
            vec!["restore-agent", "restore", "--source", "x", "--format", "xml"],
            vec!["restore-agent", "restore"],
            vec!["restore-agent", "restore", "--source", "x", "--create-database-marker", "not ok"],
            vec!["restore-agent", "restore", "--source", "x", "--create-database-marker", ""],
            vec!["restore-agent", "restore", "--source", "x", "--create-database-marker", &long_marker],
        ] {
            let e = Cli::try_parse_from(&args).expect_err(&args.join(" "));
            assert_eq!(e.exit_code(), 2);
        }
    }

    /// The operator passes a KubegresRestore's knobs to the agent with
    /// `as_arg()`: for every value, that must be the value the command line
    /// takes for it, and the value the CRD stores.
    fn assert_same_values<T>()
    where
        T: ValueEnum + serde::Serialize + std::fmt::Debug,
    {
        for v in T::value_variants() {
            let cli = v.to_possible_value().expect("no value is hidden from the command line");
            let crd = serde_json::to_value(v).unwrap();
            let arg = cli.get_name();
            assert_eq!(crd, serde_json::Value::String(arg.to_string()), "{v:?}: the CRD and the command line disagree");
            assert!(T::from_str(arg, false).is_ok(), "{v:?}");
        }
    }

    #[test]
    fn the_crd_values_are_the_command_line_values() {
        assert_same_values::<FormatChoice>();
        assert_same_values::<CompressionChoice>();
        assert_same_values::<EngineChoice>();
        assert_same_values::<OnError>();
        for v in FormatChoice::ALL {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.as_arg());
        }
        for v in CompressionChoice::ALL {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.as_arg());
        }
        for v in EngineChoice::ALL {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.as_arg());
        }
        for v in OnError::ALL {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.as_arg());
        }
        assert_eq!(FormatChoice::value_variants().len(), FormatChoice::ALL.len());
        assert_eq!(CompressionChoice::value_variants().len(), CompressionChoice::ALL.len());
        assert_eq!(EngineChoice::value_variants().len(), EngineChoice::ALL.len());
        assert_eq!(OnError::value_variants().len(), OnError::ALL.len());
    }

    #[test]
    fn the_command_line_values_are_the_documented_ones() {
        let names = |v: &[clap::builder::PossibleValue]| v.iter().map(|p| p.get_name().to_string()).collect::<Vec<_>>();
        let of = |id: &str| {
            use clap::CommandFactory;
            let cmd = Cli::command();
            let restore = cmd.find_subcommand("restore").unwrap().clone();
            let arg = restore.get_arguments().find(|a| a.get_id() == id).unwrap().clone();
            names(&arg.get_possible_values())
        };
        assert_eq!(of("format"), ["auto", "plain", "custom", "directory", "tar"]);
        assert_eq!(of("compression"), ["auto", "none", "gzip", "zstd", "lz4"]);
        assert_eq!(of("engine"), ["auto", "native", "pg-tools"]);
        assert_eq!(of("on_error"), ["stop", "continue"]);
    }

    #[test]
    fn headers_parse_without_echoing_secrets() {
        let h = parse_headers("Authorization: Bearer abc\n\n# note\nX-Key: v:w\n").unwrap();
        assert_eq!(h, vec![("Authorization".into(), "Bearer abc".into()), ("X-Key".into(), "v:w".into())]);
        let e = parse_headers("Bearer-token-without-colon").unwrap_err();
        assert!(!e.to_string().contains("Bearer-token"), "{e}");
    }
}
