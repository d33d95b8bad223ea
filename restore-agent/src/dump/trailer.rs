//! pg_dump's "dump complete" trailer, the mark that a script was written to
//! its end: one rule, whether the agent's splitter reads the script or psql
//! does (and only its last bytes are seen, through [`Tail`]).

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use super::DumpError;
use crate::sql::Event;

const DATABASE_TRAILER: &[u8] = b"-- PostgreSQL database dump complete";
const CLUSTER_TRAILER: &[u8] = b"-- PostgreSQL database cluster dump complete";

/// The last trailer of a script, if nothing but comments and meta-commands
/// followed it: `Some(true)` for pg_dumpall's cluster trailer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trailer(Option<bool>);

impl Trailer {
    /// Follows the splitter's events.
    pub fn see(&mut self, event: &Event) {
        match event {
            Event::DumpComplete { cluster } => self.0 = Some(*cluster),
            Event::Statement { .. } | Event::CopyStart { .. } | Event::Connect { .. } => self.0 = None,
            _ => {}
        }
    }

    /// The last trailer in the last bytes of a script.
    pub fn in_tail(tail: &[u8]) -> Trailer {
        let database = memchr::memmem::rfind(tail, DATABASE_TRAILER);
        let cluster = memchr::memmem::rfind(tail, CLUSTER_TRAILER);
        Trailer(match (database, cluster) {
            (None, None) => None,
            (Some(_), None) => Some(false),
            (None, Some(_)) => Some(true),
            (Some(d), Some(c)) => Some(c > d),
        })
    }

    /// Whether a script (a pg_dumpall one when `cluster`) ends as pg_dump ends it.
    pub fn verdict(self, cluster: bool) -> Result<(), DumpError> {
        match self.0 {
            Some(c) if c == cluster => Ok(()),
            Some(_) if cluster => Err(DumpError::Truncated(
                "the pg_dumpall script ends after a database but before \"PostgreSQL database cluster dump complete\""
                    .into(),
            )),
            _ => Err(DumpError::Truncated(format!(
                "the script does not end with pg_dump's \"{}\" trailer",
                String::from_utf8_lossy(if cluster { CLUSTER_TRAILER } else { DATABASE_TRAILER })
            ))),
        }
    }
}

/// Keeps the last bytes read, to check a script's trailer when psql (not
/// the splitter) consumes it.
pub struct Tail<R> {
    inner: R,
    buf: Arc<Mutex<Vec<u8>>>,
}

/// Enough for the trailer and the `\unrestrict` line after it.
const TAIL_BYTES: usize = 1024;

impl<R> Tail<R> {
    pub fn new(inner: R) -> Self {
        Tail { inner, buf: Arc::new(Mutex::new(Vec::with_capacity(2 * TAIL_BYTES))) }
    }

    /// What the bytes read so far end with, readable while the reader is elsewhere.
    pub fn watch(&self) -> TailWatch {
        TailWatch(self.buf.clone())
    }
}

/// The trailer of what a [`Tail`] has read.
#[derive(Clone)]
pub struct TailWatch(Arc<Mutex<Vec<u8>>>);

impl TailWatch {
    pub fn trailer(&self) -> Trailer {
        Trailer::in_tail(&self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let new = &out[..n];
        if new.len() >= TAIL_BYTES {
            buf.clear();
            buf.extend_from_slice(&new[new.len() - TAIL_BYTES..]);
        } else {
            buf.extend_from_slice(new);
            if buf.len() > TAIL_BYTES {
                let cut = buf.len() - TAIL_BYTES;
                buf.drain(..cut);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_is_found_in_the_tail() {
        let tail = |t: &[u8], cluster| Trailer::in_tail(t).verdict(cluster);
        assert!(tail(b"x\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k\n", false).is_ok());
        assert!(tail(b"x\n--\n-- PostgreSQL database dump complete\n--\n", true).is_err());
        assert!(tail(b"COPY t FROM stdin;\n1\n", false).is_err());
        let dumpall =
            b"-- PostgreSQL database dump complete\n--\n\n--\n-- PostgreSQL database cluster dump complete\n--\n";
        assert!(tail(dumpall, true).is_ok());
    }

    #[test]
    fn the_same_verdicts_whoever_reads_the_script() {
        let mut t = Trailer::default();
        t.see(&Event::DumpComplete { cluster: false });
        assert_eq!(t, Trailer::in_tail(b"-- PostgreSQL database dump complete\n"));
        assert!(t.verdict(false).is_ok());
        let e = t.verdict(true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the dump is truncated: the pg_dumpall script ends after a database but before \"PostgreSQL database cluster dump complete\""
        );
        t.see(&Event::Statement { sql: "SELECT 1".into(), line: 9 });
        assert_eq!(t, Trailer::in_tail(b"SELECT 1;\n"));
        assert_eq!(
            t.verdict(false).unwrap_err().to_string(),
            "the dump is truncated: the script does not end with pg_dump's \"-- PostgreSQL database dump complete\" trailer"
        );
        assert_eq!(
            t.verdict(true).unwrap_err().to_string(),
            "the dump is truncated: the script does not end with pg_dump's \"-- PostgreSQL database cluster dump complete\" trailer"
        );
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut t = Tail::new(&data[..]);
        let mut small = [0u8; 37];
        while t.read(&mut small).unwrap() > 0 {}
        assert_eq!(&*t.buf.lock().unwrap(), &data[data.len() - TAIL_BYTES..]);
    }
}
