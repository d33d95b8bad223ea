//! Engines that apply a dump to PostgreSQL: [`native`] (tokio-postgres fed
//! by the [`crate::sql`] splitter) for scripts, [`pg_tools`] (pg_restore,
//! psql) for archives and on request for scripts. Whichever runs, the
//! stream's verdict (its trailer, the caller's checksum) is taken before
//! anything commits.

pub mod expected;
pub mod native;
pub mod pg_tools;

use crate::dump::DumpError;
use crate::postgres::TargetError;
use pg_tools::ToolingError;

/// Which engine applies the dump (what the plan made of `--engine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// tokio-postgres and the built-in psql-script splitter.
    Native,
    /// pg_restore for archives, psql for plain SQL.
    PgTools,
}

impl Engine {
    /// `native` or `pg-tools`, as `--engine` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::PgTools => "pg-tools",
        }
    }
}

/// Why an engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The target failed or refused a statement.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// pg_restore or psql is missing or unusable.
    #[error(transparent)]
    Tooling(#[from] ToolingError),
    /// The dump turned out unusable while it was applied (or its verdict failed).
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// A bug or an unexpected condition.
    #[error("internal error: {0}")]
    Internal(String),
}
