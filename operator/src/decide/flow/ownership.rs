//! What the restore may delete: only what it provably created. A Kubegres
//! cluster when it carries the restore's uid label (and only the object of
//! the uid observed); a data volume when its uid was recorded while one of
//! the restore's clusters existed and had made it (created after that
//! cluster, with its label), and no cluster of that name that is not the
//! restore's exists (it may be running on them); Pods, the ServiceAccount, Role and
//! RoleBinding when their owner reference names the restore's uid. Every
//! delete is conditional on the uid observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proto::Phase;
use proto::crd::{CreatedCluster, OwnedVolume, ResolvedTarget};

use super::{DELETION_POLL, Draft};
use crate::decide::actions::{Action, Kind};
use crate::decide::names;
use crate::decide::observed::{Child, DataVolume};

impl Draft<'_> {
    /// The Kubegres cluster this restore creates, when it creates one.
    pub(super) fn new_cluster_name(&self) -> Option<&str> {
        match self.observed.restore.spec.target() {
            Ok(ResolvedTarget::NewCluster { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// The data volumes of `cluster` that this restore's clusters created:
    /// those recorded in `status.createdCluster.volumes`, and those its
    /// current cluster made since it was created. None before the restore
    /// created a cluster of that name, none once it handed the cluster over
    /// (they are the user's then), and none while a cluster of that name
    /// that is not the restore's exists (it may be running on them).
    pub(super) fn our_volumes(&self, cluster: &str) -> Vec<&DataVolume> {
        let Some(created) = self.status.created_cluster.as_ref().filter(|created| created.name == cluster) else {
            return Vec::new();
        };
        if self.status.phase() == Phase::Succeeded {
            return Vec::new();
        }
        let target = &self.observed.target;
        if target.exists && !target.managed_by_us {
            return Vec::new();
        }
        target
            .volumes
            .iter()
            .filter(|volume| {
                created.volumes.iter().any(|owned| owned.uid == volume.uid) || self.made_by_our_cluster(volume)
            })
            .collect()
    }

    /// Whether the restore's cluster that exists now made this volume: it
    /// carries the cluster's label and was created after the cluster (no
    /// other cluster of that name can have existed since).
    fn made_by_our_cluster(&self, volume: &DataVolume) -> bool {
        let target = &self.observed.target;
        target.exists
            && target.managed_by_us
            && volume.cluster_label
            && matches!((volume.created, target.created), (Some(volume), Some(cluster)) if volume >= cluster)
    }

    /// Records in the status the volumes the restore's current cluster made,
    /// and forgets recorded ones that are gone: identity, so that a volume
    /// left by someone else's cluster of the same name is never taken for
    /// one of the restore's once its own cluster is gone.
    pub(super) fn record_owned_volumes(&mut self, cluster: &str) {
        let observed = self.observed;
        let made: Vec<OwnedVolume> = observed
            .target
            .volumes
            .iter()
            .filter(|volume| self.made_by_our_cluster(volume))
            .map(|volume| OwnedVolume { name: volume.name.clone(), uid: volume.uid.clone() })
            .collect();
        let Some(created) = self.status.created_cluster.as_mut().filter(|created| created.name == cluster) else {
            return;
        };
        let mut volumes: Vec<OwnedVolume> = created
            .volumes
            .iter()
            .filter(|owned| observed.target.volumes.iter().any(|volume| volume.uid == owned.uid))
            .cloned()
            .collect();
        for volume in made {
            if !volumes.contains(&volume) {
                volumes.push(volume);
            }
        }
        if created.volumes != volumes {
            created.volumes = volumes;
        }
    }

    /// The data volumes of `cluster` that this restore did not create: a
    /// cluster created under that name would start on their data.
    pub(super) fn foreign_volumes(&self, cluster: &str) -> Vec<&DataVolume> {
        let ours = self.our_volumes(cluster);
        self.observed.target.volumes.iter().filter(|volume| !ours.contains(volume)).collect()
    }

    /// Asks to delete this restore's volumes of `cluster` that are not being
    /// deleted yet; returns whether any of them still exists.
    pub(super) fn delete_our_volumes(&mut self, cluster: &str) -> bool {
        let ours: Vec<(String, String, bool)> = self
            .our_volumes(cluster)
            .into_iter()
            .map(|volume| (volume.name.clone(), volume.uid.clone(), volume.deleting))
            .collect();
        for (name, uid, deleting) in &ours {
            if !deleting {
                self.actions.push(Action::Delete { kind: Kind::Volume, name: name.clone(), uid: uid.clone() });
            }
        }
        !ours.is_empty()
    }

    /// Asks to delete the target cluster when it is this restore's and not
    /// handed over; returns whether it still exists.
    pub(super) fn delete_our_cluster(&mut self, cluster: &str) -> bool {
        let target = &self.observed.target;
        if !target.exists || !target.managed_by_us {
            return false;
        }
        if !target.deleted
            && let Some(uid) = target.uid.clone()
        {
            self.actions.push(Action::Delete { kind: Kind::Kubegres, name: cluster.to_string(), uid });
        }
        true
    }

    /// Records the cluster this restore created (its uid, and when the first
    /// one of that name was created) once it is seen.
    pub(super) fn record_created_cluster(&mut self, cluster: &str) {
        let target = &self.observed.target;
        let (true, Some(uid), Some(created)) = (target.managed_by_us, target.uid.as_ref(), target.created) else {
            return;
        };
        let (first_created, volumes) = match &self.status.created_cluster {
            Some(known) if known.name == cluster => (known.first_created.clone(), known.volumes.clone()),
            _ => (Time(created), Vec::new()),
        };
        let record = CreatedCluster { name: cluster.to_string(), uid: uid.clone(), first_created, volumes };
        if self.status.created_cluster.as_ref() != Some(&record) {
            self.status.created_cluster = Some(record);
        }
    }

    /// Deletes this restore's Pods (those not being deleted yet) and its
    /// ServiceAccount, Role and RoleBinding; returns whether any of them
    /// still exists.
    pub(super) fn delete_leftovers(&mut self) -> bool {
        let observed = self.observed;
        for pod in observed.pods.iter().filter(|pod| !pod.deleting) {
            self.actions.push(Action::Delete { kind: Kind::Pod, name: pod.name.clone(), uid: pod.uid.clone() });
        }
        let name = names::children_name(names::name(&observed.restore));
        let children = &observed.children;
        for (child, kind) in [
            (&children.role_binding, Kind::RoleBinding),
            (&children.role, Kind::Role),
            (&children.service_account, Kind::ServiceAccount),
        ] {
            if let Child::Ours(uid) = child {
                self.actions.push(Action::Delete { kind, name: name.clone(), uid: uid.clone() });
            }
        }
        !observed.pods.is_empty() || children.any()
    }

    /// A restore being deleted: a cluster it created and never handed over
    /// is half-restored and goes, with its volumes, then the restore's own
    /// objects. Returns whether anything of the restore's is left (the
    /// finalizer stays until it is gone).
    pub(super) fn clean_up_deleted(&mut self) -> bool {
        let mut left = self.delete_leftovers();
        if let Some(cluster) = self.new_cluster_name().map(str::to_string) {
            left |= self.delete_our_cluster(&cluster);
            left |= self.delete_our_volumes(&cluster);
        }
        if left {
            self.requeue(DELETION_POLL);
        }
        left
    }
}
