//! The native engine: applies a psql script (pg_dump plain or pg_dumpall)
//! over tokio-postgres, fed by the splitter running on a blocking thread.
//!
//! Statements go through the simple query protocol one at a time, like psql;
//! `COPY ... FROM stdin` blocks stream through copy-in in large chunks.
//! A single-database dump runs in one transaction (the dump's own
//! `BEGIN`/`COMMIT` around large objects are folded into it), so a failure,
//! a truncated dump or a checksum mismatch leaves the target as it was.
//! A multi-database script (pg_dumpall, or pg_dump --create) runs statement by
//! statement and reconnects on `\connect`, as psql does.
//!
//! The boundary is a channel of [`Msg`]s, fed by [`feed`] from the script:
//! a later engine can fan COPY blocks out to several connections from the
//! same stream.

mod feed;

use std::io::BufRead;
use std::pin::pin;

use bytes::Bytes;
use futures::SinkExt;
use proto::crd::OnError;
use tokio::sync::mpsc;
use tokio_postgres::{Client, CopyInSink};

use super::{EngineError, expected};
use crate::dump::DumpError;
use crate::postgres::{SqlFailure, TargetConfig, TargetError};
use crate::progress::Tracker;
use crate::sql::Event;

/// Messages in flight between the reader thread and the engine (each at most
/// one statement or one COPY chunk): bounds memory whatever the dump size.
const CHANNEL_DEPTH: usize = 32;

/// What the producer sends: dump events, then exactly one `End` carrying the
/// verdict on the stream as a whole (trailer present, checksum matching).
#[derive(Debug)]
pub enum Msg {
    Event(Event),
    End(Result<(), DumpError>),
}

/// How the native engine runs.
#[derive(Clone, Debug)]
pub struct NativeOptions {
    pub on_error: OnError,
    /// Run everything in one transaction (single-database dumps).
    pub single_transaction: bool,
    /// How many failures to keep for the final report with `--on-error continue`.
    pub keep_failures: usize,
}

/// What the engine did.
#[derive(Clone, Debug, Default)]
pub struct NativeReport {
    pub statements: u64,
    pub copies: u64,
    pub rows: u64,
    /// Known-harmless errors (clean dumps into a fresh target).
    pub tolerated: u64,
    /// Databases connected to, in order.
    pub databases: Vec<String>,
}

struct Run<'a> {
    target: &'a TargetConfig,
    opts: &'a NativeOptions,
    tracker: &'a Tracker,
    client: Client,
    database: String,
    report: NativeReport,
    failures: Vec<SqlFailure>,
    failure_count: u64,
}

/// Applies a psql script (read on a blocking thread) to the target: a
/// pg_dumpall one when `cluster`, which must end with pg_dumpall's trailer.
/// `client` is an open connection to `target` (the emptiness checks used it
/// already); `finish_check` runs once the script is at its end, before
/// anything commits.
pub async fn restore(
    script: Box<dyn BufRead + Send>,
    cluster: bool,
    client: Client,
    target: &TargetConfig,
    opts: &NativeOptions,
    tracker: &Tracker,
    finish_check: impl FnMut() -> Result<(), DumpError> + Send + 'static,
) -> Result<NativeReport, EngineError> {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let producer = tokio::task::spawn_blocking(move || feed::feed(script, tx, cluster, finish_check));
    let result = run(rx, client, target, opts, tracker).await;
    // The producer ends by itself once the engine has dropped its receiver.
    let _ = producer.await;
    result
}

/// Applies the events from `rx` to the target.
async fn run(
    mut rx: mpsc::Receiver<Msg>,
    client: Client,
    target: &TargetConfig,
    opts: &NativeOptions,
    tracker: &Tracker,
) -> Result<NativeReport, EngineError> {
    let mut run = Run {
        target,
        opts,
        tracker,
        client,
        database: target.dbname.clone(),
        report: NativeReport { databases: vec![target.dbname.clone()], ..Default::default() },
        failures: Vec::new(),
        failure_count: 0,
    };
    tracker.set_database(&target.dbname);
    run.session_setup().await?;
    if opts.single_transaction {
        run.exec_internal("BEGIN").await?;
    }
    let result = run.consume(&mut rx).await;
    match result {
        Ok(()) => {
            if opts.single_transaction {
                run.exec_internal("COMMIT").await?;
            }
            if run.failure_count > 0 {
                return Err(TargetError::Errors { count: run.failure_count, first: run.failures }.into());
            }
            Ok(run.report)
        }
        Err(e) => {
            if opts.single_transaction && !run.client.is_closed() {
                // Best effort: the transaction is rolled back by the server anyway
                // when the connection closes.
                let _ = run.client.batch_execute("ROLLBACK").await;
            }
            Err(e)
        }
    }
}

impl Run<'_> {
    async fn consume(&mut self, rx: &mut mpsc::Receiver<Msg>) -> Result<(), EngineError> {
        loop {
            let Some(msg) = rx.recv().await else {
                return Err(EngineError::Internal("the dump reader stopped without a verdict".into()));
            };
            match msg {
                Msg::End(verdict) => return Ok(verdict?),
                Msg::Event(ev) => self.apply(ev, rx).await?,
            }
        }
    }

    async fn apply(&mut self, ev: Event, rx: &mut mpsc::Receiver<Msg>) -> Result<(), EngineError> {
        match ev {
            Event::Statement { sql, line } => self.statement(&sql, line).await,
            Event::CopyStart { sql, line } => self.copy(&sql, line, rx).await,
            Event::CopyData(_) | Event::CopyEnd { .. } => {
                Err(EngineError::Internal("COPY data outside a COPY block".into()))
            }
            Event::Connect { dbname, line } => self.reconnect(&dbname, line).await,
            Event::Encoding { .. } | Event::DumpComplete { .. } => Ok(()),
            Event::Object { name, kind, schema } => {
                self.tracker.set_object(&kind, schema.as_deref(), &name);
                Ok(())
            }
        }
    }

    async fn session_setup(&mut self) -> Result<(), EngineError> {
        // Nothing secret here; keep the client quiet about NOTICEs pg_dump's
        // own SET client_min_messages would silence too.
        self.exec_internal("SET client_min_messages = warning").await
    }

    async fn exec_internal(&mut self, sql: &str) -> Result<(), EngineError> {
        self.client.batch_execute(sql).await.map_err(|e| self.pg_error(&e, sql, None))
    }

    fn pg_error(&self, e: &tokio_postgres::Error, sql: &str, line: Option<u64>) -> EngineError {
        if e.as_db_error().is_none() && (e.is_closed() || e.code().is_none()) {
            return TargetError::Lost {
                target: self.target.with_dbname(&self.database).display(),
                message: e.to_string(),
            }
            .into();
        }
        TargetError::Sql(SqlFailure::from_pg(e, sql, line, Some(&self.database))).into()
    }

    async fn statement(&mut self, sql: &str, line: u64) -> Result<(), EngineError> {
        self.report.statements += 1;
        if self.opts.single_transaction && is_transaction_control(sql) {
            // Already inside the restore's transaction.
            return Ok(());
        }
        let guard = self.opts.single_transaction && may_be_harmless(sql);
        if guard {
            self.exec_internal("SAVEPOINT restore_agent_stmt").await?;
        }
        match self.client.batch_execute(sql).await {
            Ok(()) => {
                if guard {
                    self.exec_internal("RELEASE SAVEPOINT restore_agent_stmt").await?;
                }
                Ok(())
            }
            Err(e) => {
                if guard && e.as_db_error().is_some() {
                    self.exec_internal("ROLLBACK TO SAVEPOINT restore_agent_stmt").await?;
                    self.exec_internal("RELEASE SAVEPOINT restore_agent_stmt").await?;
                }
                self.failed(&e, sql, line, guard || !self.opts.single_transaction)
            }
        }
    }

    /// Handles a failed statement: tolerated, counted, or fatal.
    /// `recoverable` says whether the session can go on after it.
    fn failed(
        &mut self,
        e: &tokio_postgres::Error,
        sql: &str,
        line: u64,
        recoverable: bool,
    ) -> Result<(), EngineError> {
        let Some(db) = e.as_db_error() else {
            return Err(self.pg_error(e, sql, Some(line)));
        };
        if recoverable && let Some(kind) = expected::classify(sql, db.code().code(), db.message()) {
            self.report.tolerated += 1;
            self.tracker.add_warning();
            tracing::debug!(
                ?kind,
                sqlstate = db.code().code(),
                line,
                "tolerated a known-harmless error: {}",
                db.message()
            );
            return Ok(());
        }
        let failure = SqlFailure::from_pg(e, sql, Some(line), Some(&self.database));
        if self.opts.on_error == OnError::Continue && recoverable {
            tracing::warn!("{failure}");
            self.failure_count += 1;
            self.tracker.add_warning();
            if self.failures.len() < self.opts.keep_failures {
                self.failures.push(failure);
            }
            return Ok(());
        }
        Err(TargetError::Sql(failure).into())
    }

    async fn copy(&mut self, sql: &str, line: u64, rx: &mut mpsc::Receiver<Msg>) -> Result<(), EngineError> {
        self.report.copies += 1;
        let started = self.client.copy_in::<_, Bytes>(sql).await;
        let sink = match started {
            Ok(sink) => Some(sink),
            Err(e) => {
                // The COPY statement itself failed (e.g. the table is missing);
                // its data still has to be read past.
                self.failed(&e, sql, line, !self.opts.single_transaction)?;
                None
            }
        };
        let mut sink: std::pin::Pin<&mut Option<CopyInSink<Bytes>>> = pin!(sink);
        let mut send_error: Option<tokio_postgres::Error> = None;
        loop {
            let Some(msg) = rx.recv().await else {
                return Err(EngineError::Internal("the dump reader stopped inside a COPY block".into()));
            };
            match msg {
                Msg::Event(Event::CopyData(chunk)) => {
                    let rows = memchr::memchr_iter(b'\n', &chunk).count() as u64;
                    if let (Some(mut s), None) = (sink.as_mut().as_pin_mut(), &send_error)
                        && let Err(e) = s.send(chunk).await
                    {
                        send_error = Some(e);
                    }
                    self.tracker.add_rows(rows);
                    self.report.rows += rows;
                }
                Msg::Event(Event::CopyEnd { .. }) => break,
                Msg::Event(other) => {
                    return Err(EngineError::Internal(format!("unexpected {other:?} inside a COPY block")));
                }
                Msg::End(verdict) => {
                    // The stream ended inside the COPY: the verdict is an error
                    // (truncated, checksum) that says why.
                    verdict?;
                    return Err(EngineError::Internal("the dump ended inside a COPY block".into()));
                }
            }
        }
        let Some(s) = sink.as_mut().as_pin_mut() else {
            return Ok(());
        };
        let result = match send_error {
            Some(e) => Err(e),
            None => s.finish().await.map(|_| ()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.failed(&e, sql, line, !self.opts.single_transaction),
        }
    }

    async fn reconnect(&mut self, dbname: &str, line: u64) -> Result<(), EngineError> {
        if self.opts.single_transaction {
            return Err(EngineError::Internal(format!(
                "\\connect {dbname} at line {line} inside a single-transaction restore"
            )));
        }
        let cfg = self.target.with_dbname(dbname);
        // Close the old session first: the script may drop the database it was
        // connected to (pg_dumpall drops and recreates `postgres`).
        let new = cfg.connect().await?;
        self.client = new;
        self.database = dbname.to_string();
        self.tracker.set_database(dbname);
        if self.report.databases.last().map(String::as_str) != Some(dbname) {
            self.report.databases.push(dbname.to_string());
        }
        tracing::info!(database = dbname, line, "connected");
        self.session_setup().await
    }
}

/// `BEGIN;`, `COMMIT;`, `START TRANSACTION;`, `END;` as pg_dump writes them.
fn is_transaction_control(sql: &str) -> bool {
    let s = sql.trim().trim_end_matches(';').trim().to_ascii_uppercase();
    matches!(s.as_str(), "BEGIN" | "COMMIT" | "END" | "START TRANSACTION" | "BEGIN TRANSACTION" | "COMMIT TRANSACTION")
}

/// Statements that can fail harmlessly (see [`expected`]); in one
/// transaction they run under a savepoint so that failing does not abort it.
fn may_be_harmless(sql: &str) -> bool {
    let s = sql.trim_start();
    let head: String = s.chars().take(12).collect::<String>().to_ascii_uppercase();
    head.starts_with("DROP ") || head.starts_with("CREATE ROLE ") || head.starts_with("CREATE USER ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_recognised() {
        for s in ["BEGIN", "COMMIT", "begin", " COMMIT ", "END", "START TRANSACTION"] {
            assert!(is_transaction_control(s), "{s}");
        }
        for s in ["BEGIN ISOLATION LEVEL SERIALIZABLE", "COMMIT PREPARED 'x'", "SELECT 1", "ENDX"] {
            assert!(!is_transaction_control(s), "{s}");
        }
    }

    #[test]
    fn only_drops_and_role_creation_get_savepoints() {
        assert!(may_be_harmless("DROP TABLE public.t"));
        assert!(may_be_harmless("CREATE ROLE app"));
        assert!(!may_be_harmless("CREATE TABLE t (a int)"));
        assert!(!may_be_harmless("DROPX"));
    }
}
