//! Running a tool: its stdin fed from the dump with the end held back, its
//! stderr read on a scoped thread, its exit judged from both.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use proto::crd::OnError;

use super::PgToolsReport;
pub(super) use super::logs::Tool;
use super::logs::ToolLog;
use super::plain_tee::PlainProgress;
use crate::archive::{ArchiveProgress, TocEntry};
use crate::dump::DumpError;
use crate::engine::EngineError;
use crate::postgres::TargetConfig;
use crate::progress::Tracker;

/// Bytes read from the dump at a time.
const CHUNK: usize = 256 * 1024;
/// Most bytes held back for a tar archive's tail (its `restore.sql`) before
/// giving up on holding more than the last chunk.
const HOLD_CAP: u64 = 64 * 1024 * 1024;

/// Something that watches the bytes going to the tool.
pub(super) trait StreamTee {
    fn observe(&mut self, chunk: &[u8]);
    /// The stream offset from which bytes must wait for the end of the stream.
    fn hold_from(&self) -> Option<u64>;
    fn finish(&mut self);
}

impl StreamTee for ArchiveProgress<'_> {
    fn observe(&mut self, chunk: &[u8]) {
        ArchiveProgress::observe(self, chunk);
    }
    fn hold_from(&self) -> Option<u64> {
        ArchiveProgress::hold_from(self)
    }
    fn finish(&mut self) {
        ArchiveProgress::finish(self);
    }
}

impl StreamTee for PlainProgress<'_> {
    fn observe(&mut self, chunk: &[u8]) {
        PlainProgress::observe(self, chunk);
    }
    fn hold_from(&self) -> Option<u64> {
        None
    }
    fn finish(&mut self) {}
}

/// How feeding ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fed {
    /// Every byte went to the tool (or it closed its input after the stream
    /// was complete and checked).
    All,
    /// The tool closed its input before the stream ended.
    ClosedEarly,
}

/// Runs `cmd` with the dump on its stdin; see [`super::restore_archive_stream`].
#[allow(clippy::too_many_arguments)]
pub(super) fn stream_into(
    tool: Tool,
    mut cmd: Command,
    mut reader: Box<dyn Read + Send + '_>,
    target: &TargetConfig,
    on_error: OnError,
    tracker: &Tracker,
    tee: &mut dyn StreamTee,
    toc: Option<&[TocEntry]>,
    finish_check: &mut dyn FnMut() -> Result<(), DumpError>,
) -> Result<PgToolsReport, EngineError> {
    let mut child = cmd.spawn().map_err(|e| EngineError::Tooling(super::spawn_error(tool.name(), e)))?;
    let (Some(stdin), Some(stderr)) = (child.stdin.take(), child.stderr.take()) else {
        kill(&mut child);
        return Err(EngineError::Internal(format!("{} started without pipes", tool.name())));
    };
    std::thread::scope(|s| {
        let log = s.spawn(move || ToolLog::new(tool, tracker, on_error, toc).collect(stderr));
        let mut sink = Sink::new(stdin);
        let fed = feed(&mut sink, &mut *reader, tracker, tee, finish_check);
        let fed = match fed {
            Ok(fed) => fed,
            Err(e) => {
                // Kill first: closing stdin would tell the tool its input is
                // complete (psql --single-transaction would commit).
                kill(&mut child);
                drop(sink);
                let _ = log.join();
                return Err(e);
            }
        };
        let status = child.wait();
        let log =
            log.join().map_err(|_| EngineError::Internal(format!("reading the output of {} failed", tool.name())))?;
        let status = status.map_err(|e| EngineError::Internal(format!("waiting for {} failed: {e}", tool.name())))?;
        let report = log.outcome(status, target)?;
        if fed == Fed::ClosedEarly {
            // The tool finished without the rest: the stream must still be whole.
            drain(&mut *reader, tracker, tee)?;
            finish_check()?;
        }
        Ok(report)
    })
}

/// Runs pg_restore on a directory dump (no stdin).
pub(super) fn run_directory(
    mut cmd: Command,
    target: &TargetConfig,
    on_error: OnError,
    tracker: &Tracker,
    toc: Option<&[TocEntry]>,
) -> Result<PgToolsReport, EngineError> {
    cmd.stdin(Stdio::null());
    let tool = Tool::PgRestore;
    let mut child = cmd.spawn().map_err(|e| EngineError::Tooling(super::spawn_error(tool.name(), e)))?;
    let Some(stderr) = child.stderr.take() else {
        kill(&mut child);
        return Err(EngineError::Internal("pg_restore started without a stderr pipe".into()));
    };
    let log = ToolLog::new(tool, tracker, on_error, toc).collect(stderr);
    let status = child.wait().map_err(|e| EngineError::Internal(format!("waiting for pg_restore failed: {e}")))?;
    log.outcome(status, target)
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Copies the dump into the tool, holding back the newest chunk (and, for
/// tar archives, everything from the last data member's last byte) until
/// the reader is exhausted and `finish_check` passed. On success the tool's
/// stdin is closed; on error it is left open for the caller to kill the
/// tool first.
pub(super) fn feed(
    out: &mut Sink,
    reader: &mut (dyn Read + Send + '_),
    tracker: &Tracker,
    tee: &mut dyn StreamTee,
    finish_check: &mut dyn FnMut() -> Result<(), DumpError>,
) -> Result<Fed, EngineError> {
    let mut read_pos: u64 = 0;
    let mut warned = false;
    loop {
        let mut buf = out.spare.pop().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let n = read_some(reader, &mut buf)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        tracker.add_uncompressed(n as u64);
        tee.observe(&buf);
        let chunk_start = read_pos;
        read_pos += n as u64;
        out.pending.push_back(buf);
        let mut limit = chunk_start;
        if let Some(h) = tee.hold_from() {
            limit = limit.min(h);
        }
        if read_pos - limit.max(out.pending_start) > HOLD_CAP && limit < chunk_start {
            if !warned {
                tracing::warn!("the archive's tail is larger than {HOLD_CAP} bytes; holding back only the last chunk");
                warned = true;
            }
            limit = chunk_start;
        }
        if !out.send_until(limit) {
            return Ok(Fed::ClosedEarly);
        }
    }
    tee.finish();
    finish_check()?;
    out.send_until(read_pos);
    // Dropping stdin closes it: the tool sees the end of its input.
    out.stdin = None;
    Ok(Fed::All)
}

fn read_some(reader: &mut (dyn Read + Send + '_), buf: &mut [u8]) -> Result<usize, DumpError> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DumpError::from_io(e)),
        }
    }
}

/// Reads what the tool did not take, for the progress and the checksum.
fn drain(reader: &mut (dyn Read + Send + '_), tracker: &Tracker, tee: &mut dyn StreamTee) -> Result<(), DumpError> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_some(reader, &mut buf)?;
        if n == 0 {
            tee.finish();
            return Ok(());
        }
        tracker.add_uncompressed(n as u64);
        tee.observe(&buf[..n]);
    }
}

/// The tool's stdin and the chunks not yet written to it.
pub(super) struct Sink {
    stdin: Option<ChildStdin>,
    pending: VecDeque<Vec<u8>>,
    /// Stream offset of the first pending byte.
    pending_start: u64,
    /// Written buffers, reused for reading.
    spare: Vec<Vec<u8>>,
}

impl Sink {
    pub(super) fn new(stdin: ChildStdin) -> Sink {
        Sink { stdin: Some(stdin), pending: VecDeque::new(), pending_start: 0, spare: Vec::new() }
    }

    /// Writes pending bytes below stream offset `limit`; false when the
    /// tool closed its input.
    fn send_until(&mut self, limit: u64) -> bool {
        while self.pending_start < limit {
            let Some(front) = self.pending.front_mut() else { return true };
            let take = ((limit - self.pending_start) as usize).min(front.len());
            let Some(stdin) = self.stdin.as_mut() else { return false };
            if stdin.write_all(&front[..take]).is_err() {
                self.stdin = None;
                return false;
            }
            self.pending_start += take as u64;
            if take == front.len() {
                if let Some(buf) = self.pending.pop_front()
                    && self.spare.len() < 4
                {
                    self.spare.push(buf);
                }
            } else {
                front.drain(..take);
            }
        }
        true
    }
}
