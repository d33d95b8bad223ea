//! The last bytes of a script, to check pg_dump's trailer when psql (not
//! the splitter) consumes the script.

use std::io::{self, Read};
use std::sync::Arc;

use crate::error::{DumpError, Error};

/// Keeps the last few hundred bytes read, to check a script's trailer when
/// psql (not the splitter) consumes it.
pub(super) struct Tail<R> {
    inner: R,
    pub(super) buf: Arc<std::sync::Mutex<Vec<u8>>>,
}

const TAIL_BYTES: usize = 1024;

impl<R> Tail<R> {
    pub(super) fn new(inner: R) -> Self {
        Tail { inner, buf: Arc::new(std::sync::Mutex::new(Vec::with_capacity(2 * TAIL_BYTES))) }
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

pub(super) fn trailer_in_tail(tail: &[u8], cluster: bool) -> Result<(), Error> {
    let needle: &[u8] =
        if cluster { b"-- PostgreSQL database cluster dump complete" } else { b"-- PostgreSQL database dump complete" };
    if memchr::memmem::find(tail, needle).is_some() {
        Ok(())
    } else {
        Err(DumpError::Truncated(format!(
            "the script does not end with pg_dump's \"{}\" trailer",
            String::from_utf8_lossy(&needle[3..])
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_is_found_in_the_tail() {
        assert!(trailer_in_tail(b"x\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k\n", false).is_ok());
        assert!(trailer_in_tail(b"x\n--\n-- PostgreSQL database dump complete\n--\n", true).is_err());
        assert!(trailer_in_tail(b"COPY t FROM stdin;\n1\n", false).is_err());
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut t = Tail::new(&data[..]);
        let mut sink = Vec::new();
        let mut small = [0u8; 37];
        loop {
            let n = t.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            sink.extend_from_slice(&small[..n]);
        }
        assert_eq!(&*t.buf.lock().unwrap(), &data[data.len() - TAIL_BYTES..]);
    }
}
