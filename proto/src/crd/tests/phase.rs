//! Phase transitions and conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::*;

#[test]
fn a_new_cluster_restore_goes_through_every_phase() {
    let events = [
        PhaseEvent::Started { creates_target: true },
        PhaseEvent::TargetCreated,
        PhaseEvent::TargetReady,
        PhaseEvent::AgentSucceeded,
        PhaseEvent::Finalized,
    ];
    let mut phase = Phase::default();
    let mut seen = vec![phase];
    for event in events {
        phase = phase.next(event).unwrap_or_else(|| panic!("{event:?} in {phase}"));
        seen.push(phase);
    }
    assert_eq!(
        seen,
        [
            Phase::Pending,
            Phase::CreatingTarget,
            Phase::WaitingForTarget,
            Phase::Restoring,
            Phase::Finalizing,
            Phase::Succeeded
        ]
    );
}

#[test]
fn an_existing_postgres_is_restored_at_once() {
    assert_eq!(Phase::Pending.next(PhaseEvent::Started { creates_target: false }), Some(Phase::Restoring));
    // A database created synchronously is ready without waiting.
    assert_eq!(Phase::CreatingTarget.next(PhaseEvent::TargetReady), Some(Phase::Restoring));
}

#[test]
fn failures_retry_or_end_the_restore() {
    assert_eq!(Phase::Restoring.next(PhaseEvent::AttemptFailed { retry: true }), Some(Phase::Restoring));
    assert_eq!(Phase::Restoring.next(PhaseEvent::AttemptFailed { retry: false }), Some(Phase::Failed));
    for phase in Phase::ALL.into_iter().filter(|p| !p.is_terminal()) {
        assert_eq!(phase.next(PhaseEvent::Fatal), Some(Phase::Failed), "{phase}");
    }
}

#[test]
fn a_lost_target_is_recreated_except_when_finalizing() {
    for phase in [Phase::CreatingTarget, Phase::WaitingForTarget, Phase::Restoring] {
        assert_eq!(phase.next(PhaseEvent::TargetLost), Some(Phase::CreatingTarget), "{phase}");
    }
    assert_eq!(Phase::Finalizing.next(PhaseEvent::TargetLost), Some(Phase::Failed));
    assert_eq!(Phase::Pending.next(PhaseEvent::TargetLost), None);
}

#[test]
fn terminal_phases_accept_nothing_and_stray_events_are_ignored() {
    let all_events = [
        PhaseEvent::Started { creates_target: true },
        PhaseEvent::Started { creates_target: false },
        PhaseEvent::TargetCreated,
        PhaseEvent::TargetReady,
        PhaseEvent::TargetLost,
        PhaseEvent::AgentSucceeded,
        PhaseEvent::AttemptFailed { retry: true },
        PhaseEvent::AttemptFailed { retry: false },
        PhaseEvent::Finalized,
        PhaseEvent::Fatal,
    ];
    for event in all_events {
        assert_eq!(Phase::Succeeded.next(event), None, "{event:?}");
        assert_eq!(Phase::Failed.next(event), None, "{event:?}");
    }
    assert_eq!(Phase::Pending.next(PhaseEvent::AgentSucceeded), None);
    assert_eq!(Phase::Restoring.next(PhaseEvent::Finalized), None);
    assert_eq!(Phase::Finalizing.next(PhaseEvent::Started { creates_target: true }), None);
    assert_eq!(Phase::WaitingForTarget.next(PhaseEvent::AttemptFailed { retry: true }), None);
}

#[test]
fn phases_serialise_by_name() {
    for phase in Phase::ALL {
        assert_eq!(serde_json::to_value(phase).unwrap(), phase.as_str());
        assert_eq!(phase.to_string(), phase.as_str());
        assert!(!phase.stage().is_empty());
    }
    assert!(Phase::Succeeded.is_terminal() && Phase::Failed.is_terminal());
    assert!(!Phase::Finalizing.is_terminal());
}

fn condition(type_: &str, status: &str, reason: &str, at: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: format!("{reason}."),
        observed_generation: Some(1),
        last_transition_time: Time(Timestamp::from_second(at).unwrap()),
    }
}

#[test]
fn conditions_keep_their_transition_time_until_the_status_changes() {
    let mut conditions = Vec::new();
    assert!(set_condition(&mut conditions, condition(CONDITION_PROGRESSING, "True", "Restoring", 100)));
    // Same status, same words, later: nothing to write, time kept.
    assert!(!set_condition(&mut conditions, condition(CONDITION_PROGRESSING, "True", "Restoring", 200)));
    assert_eq!(conditions[0].last_transition_time.0.as_second(), 100);
    // New reason, same status: a change, time still kept.
    assert!(set_condition(&mut conditions, condition(CONDITION_PROGRESSING, "True", "Finalizing", 300)));
    assert_eq!(conditions[0].reason, "Finalizing");
    assert_eq!(conditions[0].last_transition_time.0.as_second(), 100);
    // A real transition takes the new time.
    assert!(set_condition(&mut conditions, condition(CONDITION_PROGRESSING, "False", "Succeeded", 400)));
    assert_eq!(conditions[0].last_transition_time.0.as_second(), 400);
    // Other types are separate entries.
    assert!(set_condition(&mut conditions, condition(CONDITION_READY, "True", "Succeeded", 400)));
    assert_eq!(conditions.len(), 2);
    assert_eq!(find_condition(&conditions, CONDITION_READY).unwrap().status, "True");
    assert!(find_condition(&conditions, CONDITION_SPEC_CHANGED).is_none());
    let status = KubegresRestoreStatus { conditions, ..Default::default() };
    assert_eq!(status.condition(CONDITION_PROGRESSING).unwrap().status, "False");
}
