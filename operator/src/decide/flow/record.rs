//! How the draft records a decision: phase transitions, conditions, Events,
//! the requeue hint, the start, the deadline and spec-change checks.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use proto::crd::{
    CONDITION_FAILED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_SPEC_CHANGED, PhaseEvent, set_condition,
};
use proto::{Phase, RestoreFailure};

use super::{Draft, Flow};
use crate::decide::actions::{Action, EventType, Requeue};

impl Draft<'_> {
    /// First reconcile: record what the restore acts on.
    pub(super) fn start(&mut self) {
        let observed = self.observed;
        let restore = &observed.restore;
        self.status.start_time = Some(Time(observed.now));
        self.status.observed_generation = restore.metadata.generation;
        self.status.source = restore.spec.source_summary();
        self.status.target = restore.spec.target_summary();
        self.status.set_phase(Phase::Pending);
        self.event(EventType::Normal, "Started", "the restore started");
    }

    /// A spec changed after the start is not acted on: say so.
    pub(super) fn check_spec_changed(&mut self) {
        let generation = self.observed.restore.metadata.generation;
        match (self.status.observed_generation, generation) {
            (Some(acted_on), Some(current)) if acted_on != current => self.condition(
                CONDITION_SPEC_CHANGED,
                true,
                "SpecChangedAfterStart",
                &format!(
                    "the spec changed after the restore started (generation {current}); the restore goes on with \
                     generation {acted_on} and the change is not acted on: create a new KubegresRestore instead"
                ),
            ),
            _ => {}
        }
    }

    /// Whether the spec changed after the restore started.
    pub(super) fn spec_changed(&self) -> bool {
        matches!(
            (self.status.observed_generation, self.observed.restore.metadata.generation),
            (Some(acted_on), Some(current)) if acted_on != current
        )
    }

    /// What the restore would create next (a retry's Pod or cluster, or a
    /// deleted one) can only be built from the current spec, which the
    /// restore does not act on: end it instead of running a spec half
    /// changed.
    pub(super) fn refuse_changed_spec(&mut self, what: &str) -> Flow {
        let message = format!(
            "the spec changed after the restore started and {what} would have to be created again from it; \
             create a new KubegresRestore instead"
        );
        self.fail_stop("SpecChangedAfterStart", &message)
    }

    /// Fails the restore when `activeDeadlineSeconds` passed; else requeues
    /// for the deadline.
    pub(super) fn deadline_passed(&mut self) -> bool {
        let observed = self.observed;
        let (Some(seconds), Some(Time(start))) =
            (observed.restore.spec.active_deadline_seconds, &self.status.start_time)
        else {
            return false;
        };
        let deadline = add(*start, Duration::from_secs(u64::try_from(seconds).unwrap_or(0)));
        if observed.now >= deadline {
            self.fail(
                "DeadlineExceeded",
                &format!("the restore did not finish within activeDeadlineSeconds ({seconds} s)"),
                None,
            );
            return true;
        }
        self.requeue(until(observed.now, deadline));
        false
    }

    /// Moves the phase on `event`; an event that does not apply changes
    /// nothing and stops the flow.
    pub(super) fn transition(&mut self, event: PhaseEvent) -> Flow {
        let phase = self.status.phase();
        let Some(next) = phase.next(event) else {
            return Flow::Stop;
        };
        if next == phase {
            return Flow::Stop;
        }
        self.status.set_phase(next);
        if !next.is_terminal() {
            self.condition(CONDITION_PROGRESSING, true, next.as_str(), next.stage());
        }
        if next != Phase::Failed {
            self.event(EventType::Normal, next.as_str(), next.stage());
        }
        Flow::Continue
    }

    pub(super) fn succeed(&mut self) {
        self.transition(PhaseEvent::Finalized);
        let message = "the dump is restored; only the database is left";
        self.status.completion_time = Some(Time(self.observed.now));
        self.condition(CONDITION_READY, true, "Succeeded", message);
        self.condition(CONDITION_PROGRESSING, false, "Succeeded", message);
    }

    pub(super) fn fail_stop(&mut self, reason: &str, message: &str) -> Flow {
        self.fail(reason, message, None);
        Flow::Stop
    }

    /// Ends the restore: Failed, with the reason, and its objects deleted.
    pub(super) fn fail(&mut self, reason: &str, message: &str, failure: Option<RestoreFailure>) {
        self.status.set_phase(Phase::Failed);
        self.status.completion_time = Some(Time(self.observed.now));
        self.status.failure = Some(failure.unwrap_or_else(|| RestoreFailure {
            reason: reason.to_string(),
            message: message.to_string(),
            ..Default::default()
        }));
        self.condition(CONDITION_FAILED, true, reason, message);
        self.condition(CONDITION_PROGRESSING, false, reason, message);
        self.condition(CONDITION_READY, false, reason, message);
        if !self.observed.pods.is_empty() || self.observed.children.any() {
            self.actions.push(Action::DeleteChildren);
        }
        self.event(EventType::Warning, reason, message);
    }

    pub(super) fn condition(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let generation = self.status.observed_generation.or(self.observed.restore.metadata.generation);
        set_condition(
            &mut self.status.conditions,
            Condition {
                type_: type_.to_string(),
                status: if status { "True" } else { "False" }.to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                observed_generation: generation,
                last_transition_time: Time(self.observed.now),
            },
        );
    }

    pub(super) fn event(&mut self, type_: EventType, reason: &str, message: &str) {
        self.actions.push(Action::EmitEvent { type_, reason: reason.to_string(), message: message.to_string() });
    }

    pub(super) fn requeue(&mut self, after: Duration) {
        self.requeue = self.requeue.min(Requeue::After(after));
    }
}

pub(super) fn add(at: Timestamp, wait: Duration) -> Timestamp {
    let millis = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millisecond(at.as_millisecond().saturating_add(millis)).unwrap_or(Timestamp::MAX)
}

pub(super) fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(at.as_millisecond() - now.as_millisecond()).unwrap_or(0))
}
