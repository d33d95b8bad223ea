//! The plan: everything a restore decides before it does anything. Pure:
//! the command line, what the dump turned out to be and the target's
//! settings go in; a [`Plan`] (or the usage error that refuses it) comes
//! out. The executor then only carries it out, step by step.

use proto::crd::{EngineChoice, OnError};

use crate::cli::{RestoreArgs, Toggle};
use crate::decompress::Compression;
use crate::engine::Engine;
use crate::error::Error;
use crate::format::Format;
use crate::postgres::{self, TargetConfig};

/// What the opened dump is, as far as the plan cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Detected {
    /// A single stream.
    Stream {
        format: Format,
        compression: Compression,
        /// The script creates or connects to databases itself (see [`crate::format::is_multi_database`]).
        multi_database: bool,
    },
    /// A directory-format dump.
    Directory,
}

/// What the restore will do, in the order it does it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub format: Format,
    pub compression: Compression,
    /// Where the restore writes (for a multi-database dump without a
    /// database name: `postgres`, where the script starts).
    pub target: TargetConfig,
    /// 1. Check that the installed pg_restore reads the archive's version.
    pub check_pg_restore: bool,
    /// 2. Create the target database first (`--create-database`).
    pub create_database: Option<NewDatabase>,
    /// 3. Refuse a target that holds data.
    pub empty_check: EmptyCheck,
    /// 4. Apply the dump with this engine...
    pub engine: Engine,
    /// ...in one transaction...
    pub single_transaction: bool,
    /// ...stopping at the first SQL error or going on past them...
    pub on_error: OnError,
    /// ...with this many pg_restore jobs (directory-format dumps)...
    pub jobs: u32,
    /// ...and, before anything commits, check the stored bytes' SHA-256.
    pub sha256: Option<String>,
}

/// `--create-database`: the database the restore creates, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NewDatabase {
    /// The database to connect to while creating it.
    pub maintenance_db: String,
    /// What marks the database as this restore's.
    pub marker: String,
}

/// What must be empty before anything is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EmptyCheck {
    /// `--allow-non-empty`.
    Skip,
    /// The target database.
    Database,
    /// The whole cluster (a dump that creates its databases).
    Cluster,
}

/// The checks that need nothing but the command line and the target's
/// settings: they fail before the source is opened.
pub(super) fn check_args(args: &RestoreArgs, target: &TargetConfig) -> Result<(), Error> {
    if args.on_error == OnError::Continue && args.single_transaction == Toggle::On {
        return Err(Error::Usage("--on-error continue cannot run in a single transaction".into()));
    }
    if !args.create_database {
        return Ok(());
    }
    // Refuses --create-database without a database name, with a name
    // PostgreSQL would truncate, or naming the maintenance database itself.
    if !target.dbname_given {
        return Err(Error::Usage(
            "--create-database needs the name of the new database in --target (postgres://user@host:port/DATABASE)"
                .into(),
        ));
    }
    postgres::validate_dbname(&target.dbname).map_err(|e| Error::Usage(format!("--create-database: {e}")))?;
    if target.dbname == args.maintenance_db {
        return Err(Error::Usage(format!(
            "--create-database cannot create \"{}\": it is the maintenance database (--maintenance-db)",
            target.dbname
        )));
    }
    Ok(())
}

/// Decides the restore of `detected` into `target`.
pub(super) fn plan(args: &RestoreArgs, detected: Detected, target: TargetConfig) -> Result<Plan, Error> {
    match detected {
        Detected::Stream { format, compression, multi_database } => {
            stream(args, format, compression, multi_database, target)
        }
        Detected::Directory => directory(args, target),
    }
}

fn stream(
    args: &RestoreArgs,
    format: Format,
    compression: Compression,
    multi_database: bool,
    target: TargetConfig,
) -> Result<Plan, Error> {
    if args.create_database && multi_database {
        let what = if format == Format::PgDumpAll {
            "this is a pg_dumpall dump"
        } else {
            "this script creates and connects to its own database (pg_dump --create)"
        };
        return Err(Error::Usage(format!("--create-database needs a single-database dump; {what}")));
    }
    let engine = engine(format, args.engine)?;
    let target = if multi_database && !target.dbname_given { target.with_dbname("postgres") } else { target };
    let single_transaction = match args.single_transaction {
        Toggle::On if multi_database => {
            return Err(Error::Usage(
                "--single-transaction on: this dump creates and connects to databases, which cannot run in one transaction".into(),
            ));
        }
        Toggle::On => true,
        Toggle::Off => false,
        Toggle::Auto => !multi_database && args.on_error == OnError::Stop,
    };
    Ok(Plan {
        format,
        compression,
        target,
        check_pg_restore: engine == Engine::PgTools && matches!(format, Format::Custom | Format::Tar),
        create_database: new_database(args),
        empty_check: empty_check(args, multi_database),
        engine,
        single_transaction,
        on_error: args.on_error,
        jobs: args.jobs,
        sha256: args.sha256.clone(),
    })
}

fn directory(args: &RestoreArgs, target: TargetConfig) -> Result<Plan, Error> {
    if args.sha256.is_some() {
        return Err(Error::Usage("--sha256 checks a single-file source; a directory-format dump is many files".into()));
    }
    let engine = engine(Format::Directory, args.engine)?;
    let single_transaction = match args.single_transaction {
        Toggle::On => true,
        Toggle::Off => false,
        Toggle::Auto => args.jobs == 1 && args.on_error == OnError::Stop,
    };
    if single_transaction && args.jobs > 1 {
        return Err(Error::Usage("--single-transaction on cannot be combined with --jobs > 1".into()));
    }
    Ok(Plan {
        format: Format::Directory,
        compression: Compression::None,
        target,
        // pg_restore reads the directory itself and says when it is too old.
        check_pg_restore: false,
        create_database: new_database(args),
        empty_check: empty_check(args, false),
        engine,
        single_transaction,
        on_error: args.on_error,
        jobs: args.jobs,
        sha256: None,
    })
}

/// `--engine`: native applies scripts only; auto picks native for scripts
/// and pg-tools for archives.
fn engine(format: Format, choice: EngineChoice) -> Result<Engine, Error> {
    match (format.is_script(), choice) {
        (true, EngineChoice::Auto | EngineChoice::Native) => Ok(Engine::Native),
        (_, EngineChoice::PgTools) | (false, EngineChoice::Auto) => Ok(Engine::PgTools),
        (false, EngineChoice::Native) => Err(Error::Usage(format!(
            "the native engine restores plain SQL and pg_dumpall scripts, and the source is a {}; use --engine auto or pg-tools",
            format.description()
        ))),
    }
}

fn new_database(args: &RestoreArgs) -> Option<NewDatabase> {
    args.create_database.then(|| NewDatabase {
        maintenance_db: args.maintenance_db.clone(),
        marker: args.create_database_marker.clone(),
    })
}

fn empty_check(args: &RestoreArgs, multi_database: bool) -> EmptyCheck {
    match (args.allow_non_empty, multi_database) {
        (true, _) => EmptyCheck::Skip,
        (false, true) => EmptyCheck::Cluster,
        (false, false) => EmptyCheck::Database,
    }
}

#[cfg(test)]
mod tests;
