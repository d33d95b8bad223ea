//! Engines that apply a dump to PostgreSQL.

pub mod expected;
pub mod native;
pub mod pg_tools;

use clap::ValueEnum;

/// Which engine applies the dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// native for plain SQL and pg_dumpall scripts, pg-tools for archives.
    Auto,
    /// tokio-postgres and the built-in psql-script splitter.
    Native,
    /// pg_restore for archives, psql for plain SQL.
    PgTools,
}

/// What to do when an SQL statement fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    /// Stop at the first unexpected error (and roll back when in one transaction).
    Stop,
    /// Go on like psql, count the errors, and fail at the end.
    Continue,
}
