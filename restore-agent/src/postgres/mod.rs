//! The target PostgreSQL: connection settings from a libpq-style URL plus the
//! usual `PG*` environment variables, connecting with classified errors, and
//! the emptiness checks that keep a restore from writing over data, and the
//! creation of a new database for `--create-database`.

mod config;
mod empty;
mod new_database;
mod tls;

pub use config::{SslMode, TargetConfig};
pub use empty::{check_cluster_empty, check_database_empty};
pub use new_database::{DEFAULT_MARKER, create_database, validate_dbname, validate_marker};

use proto::statement_start;

/// Longest statement start kept in an error report.
pub const STATEMENT_START_CHARS: usize = 200;

/// One failed SQL statement, as reported to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFailure {
    pub sqlstate: Option<String>,
    pub message: String,
    /// The start of the statement, on one line.
    pub statement: String,
    /// The dump line where the statement starts.
    pub line: Option<u64>,
    /// The database it ran in.
    pub database: Option<String>,
}

impl SqlFailure {
    /// Builds a failure from a tokio-postgres error for `sql` at `line`.
    pub fn from_pg(e: &tokio_postgres::Error, sql: &str, line: Option<u64>, database: Option<&str>) -> SqlFailure {
        let (sqlstate, message) = match e.as_db_error() {
            Some(db) => {
                let mut m = db.message().to_string();
                if let Some(d) = db.detail() {
                    m.push_str(" (");
                    m.push_str(d);
                    m.push(')');
                }
                (Some(db.code().code().to_string()), m)
            }
            None => (e.code().map(|c| c.code().to_string()), e.to_string()),
        };
        SqlFailure {
            sqlstate,
            message,
            statement: statement_start(sql, STATEMENT_START_CHARS),
            line,
            database: database.map(str::to_string),
        }
    }
}

impl std::fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.sqlstate {
            Some(s) => write!(f, "ERROR {s}: {}", self.message)?,
            None => write!(f, "ERROR: {}", self.message)?,
        }
        if let Some(line) = self.line {
            write!(f, " at dump line {line}")?;
        }
        if let Some(db) = &self.database {
            write!(f, " in database \"{db}\"")?;
        }
        write!(f, "; statement: {}", self.statement)
    }
}

/// The target failed or refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target URL or settings are unusable.
    #[error("invalid target: {0}")]
    Config(String),
    /// Nothing answered, or the connection broke before authentication.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server rejected the credentials.
    #[error("authentication failed for user \"{user}\" at {target}: {detail}")]
    Auth { target: String, user: String, detail: String },
    /// The database named by the target (or by a `\connect` in the dump) does not exist.
    #[error("database \"{dbname}\" does not exist on {target}")]
    DatabaseMissing { target: String, dbname: String },
    /// A statement failed and the restore stopped.
    #[error("{0}")]
    Sql(SqlFailure),
    /// `--on-error continue` went to the end but statements failed.
    #[error("{count} SQL statement(s) failed; first: {}", first.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "))]
    Errors { count: u64, first: Vec<SqlFailure> },
    /// The connection dropped during the restore.
    #[error("lost the connection to {target} during the restore: {message}")]
    Lost { target: String, message: String },
    /// The target already holds data and `--allow-non-empty` was not given.
    #[error("the target is not empty: {what}; restore into an empty target or pass --allow-non-empty")]
    NotEmpty { what: String },
    /// `--create-database` found a database of that name that it did not create.
    #[error("database \"{dbname}\" already exists and was not created by this restore; choose a new database name")]
    DatabaseExists { dbname: String },
    /// pg_restore or psql reported an error (no SQLSTATE available).
    #[error("{tool} failed: {message}")]
    Tool { tool: &'static str, message: String, failure: Option<SqlFailure> },
}

impl TargetError {
    pub fn reason(&self) -> &'static str {
        match self {
            TargetError::Config(_) => "InvalidTarget",
            TargetError::Connect { .. } => "TargetUnreachable",
            TargetError::Auth { .. } => "AuthenticationFailed",
            TargetError::DatabaseMissing { .. } => "DatabaseMissing",
            TargetError::Sql(_) => "SqlError",
            TargetError::Errors { .. } => "SqlErrors",
            TargetError::Lost { .. } => "ConnectionLost",
            TargetError::NotEmpty { .. } | TargetError::DatabaseExists { .. } => "TargetNotEmpty",
            TargetError::Tool { .. } => "SqlError",
        }
    }

    /// The failed statement, when the error is about one.
    pub fn sql_failure(&self) -> Option<&SqlFailure> {
        match self {
            TargetError::Sql(f) => Some(f),
            TargetError::Errors { first, .. } => first.first(),
            TargetError::Tool { failure, .. } => failure.as_ref(),
            _ => None,
        }
    }

    /// Classifies a tokio-postgres error raised while connecting.
    pub fn from_connect(cfg: &TargetConfig, dbname: &str, e: tokio_postgres::Error) -> TargetError {
        let target = cfg.display();
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            if code == "28P01" || code == "28000" {
                return TargetError::Auth { target, user: cfg.user.clone(), detail: db.message().to_string() };
            }
            if code == "3D000" {
                return TargetError::DatabaseMissing { target, dbname: dbname.to_string() };
            }
        }
        let text = e.to_string();
        if text.contains("password missing") || text.contains("password authentication") {
            return TargetError::Auth { target, user: cfg.user.clone(), detail: text };
        }
        TargetError::Connect { target, source: e }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_failure_displays_everything_a_person_needs() {
        let f = SqlFailure {
            sqlstate: Some("42P01".into()),
            message: "relation \"x\" does not exist".into(),
            statement: "INSERT INTO x VALUES (1)".into(),
            line: Some(42),
            database: Some("app".into()),
        };
        assert_eq!(
            f.to_string(),
            "ERROR 42P01: relation \"x\" does not exist at dump line 42 in database \"app\"; statement: INSERT INTO x VALUES (1)"
        );
        let e = TargetError::Errors { count: 3, first: vec![f.clone()] };
        assert!(e.to_string().starts_with("3 SQL statement(s) failed; first: ERROR 42P01"));
        assert_eq!(e.sql_failure(), Some(&f));
    }
}
