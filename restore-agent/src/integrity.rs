//! Counts and hashes the stored (compressed) bytes as they stream past.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
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

/// An error raised by the source (not by a decoder), marked so that the
/// decoder layer passes it through unchanged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceIoError(pub crate::source::SourceError);

/// Whether `e` carries a [`SourceIoError`].
pub fn is_source_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<SourceIoError>())
}

/// Wraps a source reader: counts bytes into a shared counter and, when asked,
/// hashes them with SHA-256. The digest is published once the stream reaches
/// its end.
pub struct Hashing<R> {
    inner: R,
    counter: Arc<ByteCounter>,
    hasher: Option<Sha256>,
    digest: Arc<std::sync::OnceLock<String>>,
}

impl<R> Hashing<R> {
    pub fn new(inner: R, counter: Arc<ByteCounter>, hash: bool) -> (Self, Arc<std::sync::OnceLock<String>>) {
        let digest = Arc::new(std::sync::OnceLock::new());
        (Hashing { inner, counter, hasher: hash.then(Sha256::new), digest: digest.clone() }, digest)
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
}
