//! Waiting on a condition with a timeout: the one way the harness and the
//! tests wait for something to happen (never a fixed sleep).

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
pub const POLL: Duration = Duration::from_millis(100);

/// Checks `check` every [`POLL`] until it returns `Some`; panics after
/// `timeout`, naming `what`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    until_ok(what, timeout, || {
        let next = check();
        async move { next.await.ok_or("not yet") }
    })
    .await
}

/// Checks `check` every [`POLL`] until it returns `Ok`; panics after
/// `timeout`, naming `what` and the last `Err` (what it saw instead).
pub async fn until_ok<T, E, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}: {last}"),
        }
        tokio::time::sleep(POLL).await;
    }
}
