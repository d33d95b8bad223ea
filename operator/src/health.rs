//! `/healthz`, `/readyz` and `/metrics` on one small HTTP server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Where the operator is in its start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// Starting: not ready.
    Starting = 0,
    /// Another replica holds the lease: ready to take over (a standby that
    /// is not ready would block a rolling update of a one-replica Deployment).
    Standby = 1,
    /// The leader, with the KubegresRestore watch cache synced.
    Ready = 2,
    /// Leading, but the watch cache has not synced yet: not ready.
    Syncing = 3,
}

/// The operator's readiness, shared with the HTTP server.
#[derive(Debug, Default)]
pub struct Health {
    state: AtomicU8,
}

impl Health {
    /// Records the new state.
    pub fn set(&self, readiness: Readiness) {
        self.state.store(readiness as u8, Ordering::SeqCst);
    }

    /// The current state.
    pub fn get(&self) -> Readiness {
        match self.state.load(Ordering::SeqCst) {
            1 => Readiness::Standby,
            2 => Readiness::Ready,
            3 => Readiness::Syncing,
            _ => Readiness::Starting,
        }
    }
}

#[derive(Clone)]
struct Shared {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

/// The routes: `/healthz` (the process answers), `/readyz` (leader with its
/// caches synced, or a standby), `/metrics` (Prometheus text format).
pub fn router(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Shared { health, metrics })
}

async fn readyz(State(shared): State<Shared>) -> impl IntoResponse {
    match shared.health.get() {
        Readiness::Ready => (StatusCode::OK, "ready: leader, caches synced"),
        Readiness::Standby => (StatusCode::OK, "ready: standby, another replica holds the lease"),
        Readiness::Syncing => (StatusCode::SERVICE_UNAVAILABLE, "not ready: the watch caches are syncing"),
        Readiness::Starting => (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting"),
    }
}

async fn metrics_text(State(shared): State<Shared>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], shared.metrics.encode())
}
