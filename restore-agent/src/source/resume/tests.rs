//! The resumable reader against a scripted opener.

use super::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncReadExt;

/// What one `open` call does.
#[derive(Clone)]
enum Step {
    /// Serve from the offset, then fail with a network error after n bytes.
    DropAfter(usize),
    /// Serve from the offset, then hang after n bytes.
    StallAfter(usize),
    /// Fail the open itself.
    Fail(u16),
    /// Serve everything from the offset.
    Serve,
    /// Serve everything but report another total.
    ServeTotal(u64),
}

struct Fake {
    data: Bytes,
    steps: Mutex<Vec<Step>>,
    opens: Mutex<Vec<u64>>,
    calls: AtomicUsize,
}

impl Fake {
    fn new(data: &[u8], steps: Vec<Step>) -> Fake {
        Fake {
            data: Bytes::copy_from_slice(data),
            steps: Mutex::new(steps),
            opens: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        }
    }
}

impl RangeOpen for std::sync::Arc<Fake> {
    fn open(&self, offset: u64) -> impl Future<Output = Result<RangeBody, SourceError>> + Send {
        let this = self.clone();
        async move {
            this.calls.fetch_add(1, Ordering::SeqCst);
            this.opens.lock().unwrap().push(offset);
            let step = {
                let mut steps = this.steps.lock().unwrap();
                if steps.is_empty() { Step::Serve } else { steps.remove(0) }
            };
            let rest = this.data.slice(offset as usize..);
            let total = Some(this.data.len() as u64);
            // Chunks of 10 bytes.
            let chunks = |b: Bytes| -> Vec<Result<Bytes, SourceError>> {
                b.chunks(10).map(|c| Ok(Bytes::copy_from_slice(c))).collect()
            };
            match step {
                Step::Fail(status) => Err(SourceError::Http { status, url: "fake".into() }),
                Step::Serve => Ok(RangeBody { body: futures::stream::iter(chunks(rest)).boxed(), total }),
                Step::ServeTotal(t) => {
                    Ok(RangeBody { body: futures::stream::iter(chunks(rest)).boxed(), total: Some(t) })
                }
                Step::DropAfter(n) => {
                    let mut items = chunks(rest.slice(..n));
                    items.push(Err(SourceError::Network { what: "fake".into(), detail: "reset".into() }));
                    Ok(RangeBody { body: futures::stream::iter(items).boxed(), total })
                }
                Step::StallAfter(n) => {
                    let items = chunks(rest.slice(..n));
                    let body = futures::stream::iter(items).chain(futures::stream::pending()).boxed();
                    Ok(RangeBody { body, total })
                }
            }
        }
    }
}

fn policy() -> Policy {
    Policy {
        attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        idle_timeout: Duration::from_millis(100),
    }
}

async fn read_all(steps: Vec<Step>, data: &[u8]) -> (io::Result<Vec<u8>>, Vec<u64>) {
    let fake = std::sync::Arc::new(Fake::new(data, steps));
    let res = async {
        let (mut r, total) = open_resumable(fake.clone(), "fake".into(), policy()).await.map_err(|e| e.into_io())?;
        assert_eq!(total, Some(data.len() as u64));
        let mut out = Vec::new();
        r.read_to_end(&mut out).await?;
        Ok(out)
    }
    .await;
    let opens = fake.opens.lock().unwrap().clone();
    (res, opens)
}

fn data() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn resumes_after_drops_and_stalls() {
    let d = data();
    let (out, opens) = read_all(vec![Step::DropAfter(250), Step::StallAfter(300), Step::Serve], &d).await;
    assert_eq!(out.unwrap(), d);
    assert_eq!(opens, vec![0, 250, 550]);
}

#[tokio::test]
async fn retries_transient_open_failures_and_gives_up() {
    let d = data();
    let (out, opens) = read_all(vec![Step::Fail(503), Step::Fail(500), Step::Serve], &d).await;
    assert_eq!(out.unwrap(), d);
    assert_eq!(opens, vec![0, 0, 0]);

    let (out, opens) = read_all(vec![Step::Fail(503); 10], &d).await;
    let e = out.unwrap_err();
    assert!(crate::source::is_source_error(&e));
    assert_eq!(e.to_string(), "HTTP 503 Service Unavailable from fake (gave up after 4 attempts)");
    assert_eq!(opens.len(), 4);
}

#[tokio::test]
async fn permanent_failures_are_not_retried() {
    let (out, opens) = read_all(vec![Step::Fail(404)], &data()).await;
    assert_eq!(out.unwrap_err().to_string(), "HTTP 404 Not Found from fake");
    assert_eq!(opens, vec![0]);
}

#[tokio::test]
async fn progress_restarts_the_attempt_count() {
    // Five drops in a row with 4 attempts allowed: fine, since each resume makes progress.
    let d = data();
    let steps = vec![Step::DropAfter(100); 5];
    let (out, opens) = read_all(steps, &d).await;
    assert_eq!(out.unwrap(), d);
    assert_eq!(opens, vec![0, 100, 200, 300, 400, 500]);
}

#[tokio::test]
async fn a_changed_size_fails_the_resume() {
    let d = data();
    let (out, _) = read_all(vec![Step::DropAfter(100), Step::ServeTotal(5000)], &d).await;
    let e = out.unwrap_err();
    assert_eq!(e.to_string(), "fake changed while it was being read: its size was 1000 bytes and is now 5000");
}

#[test]
fn content_range() {
    assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, Some(1000))));
    assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
    assert_eq!(parse_content_range("bytes */1000"), None);
    assert_eq!(parse_content_range("items 1-2/3"), None);
    assert_eq!(check_range("u", 100, Some("bytes 100-199/200")).unwrap(), Some(200));
    let e = check_range("u", 100, Some("bytes 0-199/200")).unwrap_err();
    assert_eq!(e.to_string(), "u: cannot resume: asked for bytes 100- and got bytes from 0 on");
    assert_eq!(check_range("u", 100, None).unwrap_err().reason(), "SourceRangeNotHonoured");
}
