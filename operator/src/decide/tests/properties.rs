//! Properties of the decide step over random worlds (proptest): whatever
//! happens around a restore (its cluster deleted by someone else, a cluster
//! or volumes of that name created by someone else, Pods that fail, vanish or
//! succeed, the restore deleted mid-way, time passing), it never deletes or
//! hands over an object it did not create, never creates a cluster onto a
//! volume it did not create, and, once the world stops changing, its
//! decisions reach a fixpoint.
//!
//! The tiny world of [`super::apply`] gives the restore's own objects uids
//! without the `foreign-` prefix; every object the events below create has it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use super::{apply, default_spec, observed, restore};
use crate::decide::{Action, Child, DataVolume, Observed, PodPhase, TargetCluster, decide};

const FOREIGN: &str = "foreign-";

/// Something that happens in the world between two reconciles.
#[derive(Clone, Debug)]
enum Event {
    /// The operator reconciles: decide, then apply.
    Reconcile,
    /// Time passes.
    Wait(u16),
    /// The cluster's primary becomes Ready, or its Service routes.
    PrimaryReady,
    ServiceReady,
    /// The newest restore Pod starts, exits with a code, or is deleted (evicted).
    PodRuns,
    PodExits(i32),
    PodVanishes,
    /// Someone deletes the cluster (Kubegres keeps its volumes).
    ClusterDeleted,
    /// Someone creates a Kubegres of the restore's cluster name, which
    /// creates a data volume of its own.
    ForeignCluster,
    /// A data volume named like the cluster's that someone else created
    /// before the restore (a retained volume of an earlier cluster).
    RetainedVolume {
        index: u8,
        labeled: bool,
    },
    /// Someone else's object holds the name of the restore's ServiceAccount,
    /// Role or RoleBinding.
    ForeignChild(u8),
    /// The restore is deleted.
    RestoreDeleted,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => Just(Event::Reconcile),
        2 => (1u16..600).prop_map(Event::Wait),
        2 => Just(Event::PrimaryReady),
        2 => Just(Event::ServiceReady),
        2 => Just(Event::PodRuns),
        2 => prop_oneof![Just(0), Just(1), Just(3), Just(4), Just(5), Just(137)].prop_map(Event::PodExits),
        1 => Just(Event::PodVanishes),
        1 => Just(Event::ClusterDeleted),
        1 => Just(Event::ForeignCluster),
        1 => (1u8..4, any::<bool>()).prop_map(|(index, labeled)| Event::RetainedVolume { index, labeled }),
        1 => (0u8..3).prop_map(Event::ForeignChild),
        1 => Just(Event::RestoreDeleted),
    ]
}

fn seconds_after(at: Timestamp, seconds: i64) -> Timestamp {
    Timestamp::from_second(at.as_second() + seconds).unwrap()
}

/// Applies an event other than a reconcile to the world.
fn happen(world: &mut Observed, event: &Event, serial: usize) {
    let now = world.now;
    let cluster = "restored";
    match event {
        Event::Reconcile => {}
        Event::Wait(seconds) => world.now = seconds_after(now, i64::from(*seconds)),
        Event::PrimaryReady => world.target.primary_ready = world.target.exists,
        Event::ServiceReady => world.target.service_ready = world.target.exists && world.target.primary_ready,
        Event::PodRuns => {
            if let Some(pod) = world.pods.last_mut().filter(|pod| pod.phase == PodPhase::Pending) {
                pod.phase = PodPhase::Running;
            }
        }
        Event::PodExits(code) => {
            if let Some(pod) =
                world.pods.last_mut().filter(|pod| matches!(pod.phase, PodPhase::Pending | PodPhase::Running))
            {
                pod.phase = if *code == 0 { PodPhase::Succeeded } else { PodPhase::Failed };
                pod.exit_code = Some(*code);
                pod.reason = Some(if *code == 137 { "OOMKilled" } else { "Error" }.to_string());
                pod.finished_at = Some(now);
            }
        }
        Event::PodVanishes => {
            world.pods.pop();
        }
        Event::ClusterDeleted => {
            let volumes = std::mem::take(&mut world.target.volumes);
            world.target = TargetCluster { volumes, ..Default::default() };
        }
        Event::ForeignCluster => {
            if !world.target.exists {
                let mut volumes = std::mem::take(&mut world.target.volumes);
                let name = format!("postgres-db-{cluster}-9-0");
                if !volumes.iter().any(|volume| volume.name == name) {
                    volumes.push(DataVolume {
                        name,
                        uid: format!("{FOREIGN}volume-of-cluster-{serial}"),
                        created: Some(now),
                        cluster_label: true,
                        deleting: false,
                    });
                }
                world.target = TargetCluster {
                    exists: true,
                    uid: Some(format!("{FOREIGN}kubegres-{serial}")),
                    created: Some(now),
                    primary_ready: true,
                    service_ready: true,
                    volumes,
                    ..Default::default()
                };
            }
        }
        Event::RetainedVolume { index, labeled } => {
            let name = format!("postgres-db-{cluster}-{index}-0");
            if !world.target.volumes.iter().any(|volume| volume.name == name) {
                world.target.volumes.push(DataVolume {
                    name,
                    uid: format!("{FOREIGN}retained-{serial}"),
                    created: Some(seconds_after(super::t0(), -86_400)),
                    cluster_label: *labeled,
                    deleting: false,
                });
            }
        }
        Event::ForeignChild(which) => {
            let children = &mut world.children;
            let child = match which {
                0 => &mut children.service_account,
                1 => &mut children.role,
                _ => &mut children.role_binding,
            };
            if *child == Child::Missing {
                *child = Child::Foreign;
            }
        }
        Event::RestoreDeleted => {
            world.restore.metadata.deletion_timestamp.get_or_insert(Time(now));
        }
    }
}

/// The uids of the restore's own objects in the world.
fn is_foreign(uid: &str) -> bool {
    uid.starts_with(FOREIGN)
}

/// What no decision may ever ask, whatever the world.
fn check_decision(world: &Observed, actions: &[Action]) -> Result<(), TestCaseError> {
    for action in actions {
        match action {
            Action::Delete { kind, name, uid } => {
                prop_assert!(!is_foreign(uid), "deleted {} {name} ({uid}), not the restore's", kind.as_str());
                prop_assert!(
                    !(world.target.exists
                        && world.target.uid.as_deref().is_some_and(is_foreign)
                        && *kind == crate::decide::Kind::Volume),
                    "deleted volume {name} while a cluster not the restore's holds the name"
                );
            }
            Action::HandOverKubegres { uid, name, .. } => {
                prop_assert!(!is_foreign(uid), "handed over {name} ({uid}), not the restore's");
            }
            Action::CreateKubegres { name, .. } => {
                prop_assert!(!world.target.exists, "created {name} while a cluster of that name exists");
                let foreign: Vec<&str> = world
                    .target
                    .volumes
                    .iter()
                    .filter(|volume| is_foreign(&volume.uid))
                    .map(|volume| volume.name.as_str())
                    .collect();
                prop_assert!(foreign.is_empty(), "created {name} onto volumes it did not create: {foreign:?}");
            }
            _ => {}
        }
    }
    Ok(())
}

/// The foreign objects of a world, by uid.
fn foreign_uids(world: &Observed) -> Vec<String> {
    let mut uids: Vec<String> = world.target.volumes.iter().map(|volume| volume.uid.clone()).collect();
    uids.extend(world.target.uid.clone());
    uids.retain(|uid| is_foreign(uid));
    uids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_touches_what_it_did_not_create_and_settles(
        events in prop::collection::vec(event(), 1..60),
        backoff_limit in 0i32..4,
    ) {
        let mut spec = default_spec();
        spec["backoffLimit"] = backoff_limit.into();
        let mut world = observed(restore(spec));
        for (serial, event) in events.iter().enumerate() {
            if matches!(event, Event::Reconcile) {
                let decision = decide(&world);
                check_decision(&world, &decision.actions)?;
                world = apply(&world, &decision);
            } else {
                happen(&mut world, event, serial);
            }
        }
        let foreign_before = foreign_uids(&world);

        // The world stops changing: within a few reconciles (time passing
        // only as the decisions ask), nothing more is asked.
        let mut settled = false;
        for _ in 0..500 {
            let decision = decide(&world);
            check_decision(&world, &decision.actions)?;
            let quiet = decision.actions.iter().all(|action| matches!(action, Action::EmitEvent { .. }))
                && !decision.status_changed;
            let requeue = decision.requeue;
            world = apply(&world, &decision);
            if quiet {
                match requeue {
                    crate::decide::Requeue::None => { settled = true; break; }
                    crate::decide::Requeue::After(wait) => {
                        let wait = i64::try_from(wait.as_secs()).unwrap_or(i64::MAX).max(1);
                        world.now = seconds_after(world.now, wait);
                    }
                }
            }
        }
        // Deadlines (a target that never becomes ready, a Pod that never
        // starts) end in Failed; backoffs end in a new attempt; so the only
        // worlds that keep asking are bugs.
        prop_assert!(settled, "no fixpoint: phase {:?}, status {:?}", super::phase(&world), world.restore.status);
        // Nothing foreign was deleted along the way.
        let foreign_after = foreign_uids(&world);
        prop_assert_eq!(foreign_before, foreign_after);
    }
}
