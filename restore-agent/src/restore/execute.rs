//! The executor: carries out a [`Plan`] on the opened dump, step by step,
//! and reports what was done.

use std::sync::Arc;

use super::plan::{EmptyCheck, NewDatabase, Plan};
use crate::archive;
use crate::dump::{DumpError, Opened};
use crate::engine::kept_roles::KeptRoles;
use crate::engine::native::{self, NativeOptions};
use crate::engine::pg_tools::{self, PgToolsOptions, PgToolsReport};
use crate::engine::{Engine, EngineError};
use crate::error::Error;
use crate::format::Format;
use crate::integrity::{self, Digest};
use crate::postgres;
use crate::progress::{Summary, Tracker};

/// How many failed statements `--on-error continue` reports in detail.
const KEEP_FAILURES: usize = 5;

/// Runs the plan. A database the plan created is left when a later step
/// fails (a log line says so): the next attempt drops and recreates it.
pub(super) async fn execute(plan: &Plan, dump: Opened, tracker: &Arc<Tracker>) -> Result<Summary, Error> {
    tracing::info!(
        compression = plan.compression.name(),
        format = plan.format.name(),
        engine = plan.engine.name(),
        single_transaction = plan.single_transaction,
        target = %plan.target.display(),
        "restoring"
    );
    if plan.check_pg_restore
        && let Opened::Stream(stream) = &dump
    {
        check_pg_restore(plan.format, &stream.head)?;
    }
    // The database --create-database makes does not exist yet: wait on the maintenance database.
    let first = match &plan.create_database {
        Some(new) => plan.target.with_dbname(&new.maintenance_db),
        None => plan.target.clone(),
    };
    drop(first.connect_waiting(plan.connect_wait).await?);
    let created = match &plan.create_database {
        Some(new) => {
            postgres::create_database(&plan.target, &new.maintenance_db, &new.marker).await?;
            Some(new)
        }
        None => None,
    };
    let result = apply(plan, dump, tracker).await;
    if let (Err(e), Some(new)) = (&result, created) {
        log_left_behind(&plan.target.dbname, new, e);
    }
    if result.is_ok() && plan.checkpoint {
        checkpoint(&plan.target).await;
    }
    result
}

/// `CHECKPOINT` after a successful restore: a replica's `pg_basebackup`
/// (Kubegres scales the restored cluster up next) then starts at once
/// instead of waiting for the spread checkpoint of gigabytes just written.
/// It needs superuser or `pg_checkpoint`; without them a warning says so and
/// the restore still succeeds (the data is committed either way).
async fn checkpoint(target: &postgres::TargetConfig) {
    let done = match target.connect().await {
        Ok(client) => client.batch_execute("CHECKPOINT").await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match done {
        Ok(()) => tracing::info!("checkpoint done"),
        Err(e) => {
            tracing::warn!("the restore succeeded, but CHECKPOINT failed ({e}): replicas may wait for the next one")
        }
    }
}

/// Says "pg_restore is too old for this archive" before anything runs.
fn check_pg_restore(format: Format, head: &[u8]) -> Result<(), Error> {
    let header = match format {
        Format::Custom => head,
        // toc.dat is the tar's first member: its header follows the member's 512-byte header.
        Format::Tar if head.len() > 512 => &head[512..],
        _ => return Ok(()),
    };
    pg_tools::check_pg_restore_supports(&archive::read_header(&mut &header[..])?)?;
    Ok(())
}

/// The emptiness check, then the engine.
async fn apply(plan: &Plan, dump: Opened, tracker: &Arc<Tracker>) -> Result<Summary, Error> {
    let client = plan.target.connect().await?;
    match plan.empty_check {
        EmptyCheck::Skip => {}
        EmptyCheck::Database => postgres::check_database_empty(&client, &plan.target.dbname).await?,
        EmptyCheck::Cluster => postgres::check_cluster_empty(&client, &plan.target.dbname).await?,
    }
    let mut summary = Summary {
        format: plan.format.name().into(),
        compression: plan.compression.name().into(),
        engine: plan.engine.name().into(),
        ..Default::default()
    };
    let digest = match &dump {
        Opened::Stream(s) => Some(s.digest.clone()),
        Opened::Directory(_) => None,
    };
    match (plan.engine, dump) {
        (Engine::Native, Opened::Stream(stream)) => {
            let opts = NativeOptions {
                on_error: plan.on_error,
                single_transaction: plan.single_transaction,
                keep_failures: KEEP_FAILURES,
                kept_roles: KeptRoles::new(plan.kept_roles.clone()),
            };
            let check = verifier(plan.sha256.clone(), stream.digest.clone());
            let cluster = stream.format == Format::PgDumpAll;
            let report = native::restore(stream.reader, cluster, client, &plan.target, &opts, tracker, check).await?;
            summary.statements = report.statements;
            summary.copies = report.copies;
            summary.rows = report.rows;
            summary.warnings = report.tolerated;
            summary.databases = report.databases;
        }
        (Engine::Native, Opened::Directory(_)) => {
            return Err(Error::Internal("a directory-format dump was planned for the native engine".into()));
        }
        (Engine::PgTools, dump) => {
            drop(client);
            let report = pg_tools(plan, dump, tracker).await?;
            summary.warnings = report.warnings;
            summary.databases = vec![plan.target.dbname.clone()];
            summary.rows = tracker.rows();
        }
    }
    summary.bytes_read = tracker.bytes_read();
    summary.bytes_uncompressed = tracker.snapshot().bytes_uncompressed;
    summary.elapsed_seconds = tracker.elapsed().as_secs_f64();
    summary.sha256 = digest.and_then(|d| d.get().cloned());
    Ok(summary)
}

/// pg_restore or psql, on a blocking thread.
async fn pg_tools(plan: &Plan, dump: Opened, tracker: &Arc<Tracker>) -> Result<PgToolsReport, Error> {
    let opts = PgToolsOptions { jobs: plan.jobs, on_error: plan.on_error, single_transaction: plan.single_transaction };
    let (tracker, target, sha256) = (tracker.clone(), plan.target.clone(), plan.sha256.clone());
    let run = move || -> Result<PgToolsReport, EngineError> {
        match dump {
            Opened::Stream(stream) => {
                let mut check = verifier(sha256, stream.digest.clone());
                if stream.format.is_script() {
                    let cluster = stream.format == Format::PgDumpAll;
                    pg_tools::restore_plain_psql(stream.reader, cluster, &target, &opts, &tracker, &mut check)
                } else {
                    pg_tools::restore_archive_stream(stream.reader, &target, &opts, &tracker, &mut check)
                }
            }
            // The staging directory of a remote dump lives until pg_restore is done.
            Opened::Directory(dir) => pg_tools::restore_directory(&dir.path, &target, &opts, &tracker),
        }
    };
    let report = tokio::task::spawn_blocking(run)
        .await
        .map_err(|e| Error::Internal(format!("pg-tools thread failed: {e}")))??;
    Ok(report)
}

/// The check run when the source is at its end, before anything commits.
fn verifier(expected: Option<String>, digest: Digest) -> impl FnMut() -> Result<(), DumpError> + Send + 'static {
    move || Ok(integrity::verify(expected.as_deref(), &digest)?)
}

/// Says that a failed restore leaves the database it created, and what happens to it next.
fn log_left_behind(dbname: &str, new: &NewDatabase, error: &Error) {
    tracing::warn!(
        database = dbname,
        marker = new.marker.as_str(),
        reason = error.reason(),
        "the restore failed; the database it created is left in place, and the next attempt with the same \
         --create-database-marker drops and recreates it"
    );
}
