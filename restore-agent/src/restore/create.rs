//! `--create-database` in the pipeline: its arguments are checked before the
//! source is opened, a multi-database dump is refused once the format is
//! known, and the database is created just before the emptiness check.

use crate::cli::RestoreArgs;
use crate::error::Error;
use crate::format::DumpFormat;
use crate::target::{self, TargetConfig};

/// Refuses `--create-database` without a database name, with a name
/// PostgreSQL would truncate, or naming the maintenance database itself.
pub(super) fn check_args(args: &RestoreArgs, target: &TargetConfig) -> Result<(), Error> {
    if !args.create_database {
        return Ok(());
    }
    if !target.dbname_given {
        return Err(Error::Usage(
            "--create-database needs the name of the new database in --target (postgres://user@host:port/DATABASE)"
                .into(),
        ));
    }
    target::validate_dbname(&target.dbname).map_err(|e| Error::Usage(format!("--create-database: {e}")))?;
    if target.dbname == args.maintenance_db {
        return Err(Error::Usage(format!(
            "--create-database cannot create \"{}\": it is the maintenance database (--maintenance-db)",
            target.dbname
        )));
    }
    Ok(())
}

/// The usage error for a dump that creates or connects to databases itself.
pub(super) fn multi_database_refused(format: DumpFormat) -> Error {
    let what = if format == DumpFormat::PgDumpAll {
        "this is a pg_dumpall dump"
    } else {
        "this script creates and connects to its own database (pg_dump --create)"
    };
    Error::Usage(format!("--create-database needs a single-database dump; {what}"))
}

/// With `--create-database`, creates the target database (see
/// [`target::create_database`]) and records its name in `created`.
pub(super) async fn create_target(
    args: &RestoreArgs,
    target: &TargetConfig,
    created: &mut Option<String>,
) -> Result<(), Error> {
    if !args.create_database {
        return Ok(());
    }
    target::create_database(target, &args.maintenance_db, &args.create_database_marker).await?;
    *created = Some(target.dbname.clone());
    Ok(())
}

/// Says that a failed restore leaves the database it created, and what happens to it next.
pub(super) fn log_left_behind(dbname: &str, marker: &str, error: &Error) {
    tracing::warn!(
        database = dbname,
        marker,
        reason = error.reason(),
        "the restore failed; the database it created is left in place, and the next attempt with the same \
         --create-database-marker drops and recreates it"
    );
}
