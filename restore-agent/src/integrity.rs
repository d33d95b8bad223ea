//! Counts and hashes the stored (compressed) bytes as they stream past, and
//! checks the digest against `--sha256`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

/// Shared counter of bytes read from the source.
#[derive(Debug, Default)]
pub struct ByteCounter(AtomicU64);

impl ByteCounter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Wraps a source reader: counts bytes into a shared counter and, when asked,
/// hashes them with SHA-256. The digest is published once the stream reaches
/// its end.
pub struct Hashing<R> {
    inner: R,
    counter: Arc<ByteCounter>,
    hasher: Option<Sha256>,
    digest: Digest,
}

/// The SHA-256 of the stored bytes (lower-case hex), set once the stream
/// reached its end.
pub type Digest = Arc<OnceLock<String>>;

impl<R> Hashing<R> {
    pub fn new(inner: R, counter: Arc<ByteCounter>, hash: bool) -> (Self, Digest) {
        let digest = Arc::new(OnceLock::new());
        (Hashing { inner, counter, hasher: hash.then(Sha256::new), digest: digest.clone() }, digest)
    }
}

/// The stored bytes are not the ones `--sha256` expects.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    #[error("checksum mismatch: expected sha256 {expected}, the source has {actual}")]
    Mismatch { expected: String, actual: String },
    /// The check ran before the stream ended: a bug in the caller.
    #[error("the source was not read to its end; cannot verify its checksum")]
    Unfinished,
}

/// Checks the digest of a stream that reached its end against `expected`
/// (any case); nothing to check without an expected digest.
pub fn verify(expected: Option<&str>, digest: &Digest) -> Result<(), ChecksumError> {
    let Some(expected) = expected else { return Ok(()) };
    match digest.get() {
        Some(actual) if actual.eq_ignore_ascii_case(expected) => Ok(()),
        Some(actual) => Err(ChecksumError::Mismatch { expected: expected.to_string(), actual: actual.clone() }),
        None => Err(ChecksumError::Unfinished),
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Hashing<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let this = &mut *self;
            let new = &buf.filled()[before..];
            this.counter.add(new.len() as u64);
            if new.is_empty() {
                if let Some(h) = this.hasher.take() {
                    let _ = this.digest.set(hex::encode(h.finalize()));
                }
            } else if let Some(h) = this.hasher.as_mut() {
                h.update(new);
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn counts_and_hashes() {
        let data = b"hello world".repeat(10_000);
        let counter = Arc::new(ByteCounter::default());
        let (mut r, digest) = Hashing::new(&data[..], counter.clone(), true);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, data);
        assert_eq!(counter.get(), data.len() as u64);
        assert_eq!(digest.get().unwrap(), &hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn checksum_verdicts() {
        let digest: Digest = Arc::new(OnceLock::new());
        let expected = "ab".repeat(32);
        assert!(matches!(verify(Some(&expected), &digest), Err(ChecksumError::Unfinished)));
        assert!(verify(None, &digest).is_ok());
        digest.set("cd".repeat(32)).unwrap();
        let e = verify(Some(&expected), &digest).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("checksum mismatch: expected sha256 {expected}, the source has {}", "cd".repeat(32))
        );
        assert!(verify(Some(&"CD".repeat(32)), &digest).is_ok());
    }
}
