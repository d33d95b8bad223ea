//! Leader election through a `coordination.k8s.io` Lease
//! (kube-lease-manager), so that two replicas never reconcile at once.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a lease lasts without renewal, in seconds.
pub const LEASE_DURATION: u64 = 15;
/// How long before expiry the holder renews it, in seconds.
pub const LEASE_GRACE: u64 = 5;

/// Where the lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// Its namespace (the operator's own).
    pub namespace: String,
    /// This replica's identity (its Pod name).
    pub identity: String,
}

/// A running election: `leading` tells whether this replica holds the lease.
pub struct Election {
    /// `true` while this replica is the leader.
    pub leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Election {
    /// Starts competing for the lease.
    pub async fn start(client: Client, config: &LeaseConfig) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(LEASE_DURATION)
            .with_grace(LEASE_GRACE)
            .with_field_manager(format!("{}-{}", proto::OPERATOR_FIELD_MANAGER, config.identity))
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        Ok(Election { leading, task })
    }

    /// Stops competing and releases the lease if we hold it, so that a
    /// standby takes over at once instead of after the lease expires.
    pub async fn release(self) {
        drop(self.leading);
        match self.task.await {
            Ok(Ok(manager)) => {
                if let Err(error) = manager.release().await {
                    tracing::warn!("cannot release the lease: {error}");
                }
            }
            Ok(Err(error)) => tracing::warn!("the lease manager stopped: {error}"),
            Err(error) => tracing::warn!("the lease manager task failed: {error}"),
        }
    }
}
