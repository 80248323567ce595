//! A run's report channels: which are due or skipped for the run, and the run's end once none
//! is pending — in the phase of its verdict, which reporting never changes. Each channel's
//! own life (pending, sent, failed, retried) is [`crate::integrations::delivery`]'s.

use chrono::{DateTime, Utc};

use super::{Channel, Target};
use crate::crd::{ChannelReport, DeliveryState, Phase, ReportStatus, TestRunStatus};
use crate::integrations::delivery::{Delivery, RetryPolicy, is_due, pending, record, skipped};

/// What a channel needs for this run: `None` to deliver, `Some(reason)` to skip.
type ChannelPlan = (Channel, Option<String>);

/// Gives every channel without a state its first one (`Pending`, or `Skipped` with the
/// reason), and skips a `Pending` channel that has nothing to deliver any more (its settings
/// were removed while it waited). Returns the channels whose state it set.
fn plan(report: &mut ReportStatus, plans: &[ChannelPlan], now: DateTime<Utc>) -> Vec<Channel> {
    let mut changed = Vec::new();
    for (channel, skip) in plans {
        let slot = report.channel_mut(*channel);
        match (slot.as_ref().map(|c| c.state), skip) {
            (None, None) => *slot = Some(pending(now)),
            (None | Some(DeliveryState::Pending), Some(why)) => *slot = Some(skipped(why, now)),
            _ => continue,
        }
        changed.push(*channel);
    }
    changed
}

/// Ends a `Reporting` run once no channel is `Pending`: the run takes its verdict's phase.
/// Returns whether it did.
fn finish_if_delivered(st: &mut TestRunStatus, now: DateTime<Utc>) -> bool {
    let report = st.report.clone().unwrap_or_default();
    let done = Channel::ALL
        .iter()
        .all(|c| report.channel(*c).is_some_and(|ch| ch.state.is_final()));
    if st.phase == Phase::Reporting && done {
        st.finish(now);
        return true;
    }
    false
}

/// What each channel needs, from where it goes for the run ([`super::Reporter::targets`]):
/// deliver to a target, or skip with the reason.
fn channel_plans(targets: &[(Channel, Result<Target, String>)]) -> Vec<ChannelPlan> {
    targets
        .iter()
        .map(|(c, t)| (*c, t.as_ref().err().cloned()))
        .collect()
}

/// What planning a run's channels changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Planned {
    /// The channels given a state now.
    pub channels: Vec<Channel>,
    /// Whether the run ended (no channel left pending).
    pub finished: bool,
}

impl Planned {
    /// Whether the status changed and must be written.
    pub fn changed(&self) -> bool {
        !self.channels.is_empty() || self.finished
    }
}

/// A `Reporting` run's planning pass, the first thing each reporting step does in both modes:
/// every channel without a state gets its first ([`plan`], from `targets`), and the run ends
/// once none is pending ([`finish_if_delivered`]). A run in any other phase is left alone.
pub fn plan_run(
    st: &mut TestRunStatus,
    targets: &[(Channel, Result<Target, String>)],
    now: DateTime<Utc>,
) -> Planned {
    if st.phase != Phase::Reporting {
        return Planned::default();
    }
    let channels = plan(st.report.get_or_insert_default(), &channel_plans(targets), now);
    let finished = finish_if_delivered(st, now);
    Planned { channels, finished }
}

/// A delivery's outcome as recorded on its channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The channel's state after the outcome (`Sent`, `Failed`, or `Pending` with its retry).
    pub channel: ChannelReport,
    /// Whether the run ended with it (it was the last pending channel).
    pub finished: bool,
}

/// Records one delivery's outcome in `status.report.<channel>` ([`record`]) and ends the run
/// when it was the last pending channel. `None`, changing nothing, when the channel is no
/// longer pending (another delivery recorded it first). `jitter` in `[0, 1)` spreads a retry.
pub fn record_outcome(
    st: &mut TestRunStatus,
    channel: Channel,
    outcome: Delivery,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
    jitter: f64,
) -> Option<Recorded> {
    let slot = st.report.get_or_insert_default().channel_mut(channel);
    let ch = slot.as_mut().filter(|c| c.state == DeliveryState::Pending)?;
    record(ch, outcome, policy, now, jitter);
    let channel = ch.clone();
    let finished = finish_if_delivered(st, now);
    Some(Recorded { channel, finished })
}

/// The channels to deliver now, and when the next pending one is due.
#[derive(Debug)]
pub struct Due {
    /// Each due channel with its target and the targets it already reached (`sentTo`).
    pub now: Vec<(Channel, Target, Vec<String>)>,
    /// The earliest `nextAt` of the channels still pending and not due yet.
    pub next_at: Option<DateTime<Utc>>,
}

/// The channels of `report` due at `now`, leaving out those `busy` says are being delivered
/// already (standalone mode delivers off its loop). Both drivers ask this.
pub fn due(
    targets: Vec<(Channel, Result<Target, String>)>,
    report: &ReportStatus,
    now: DateTime<Utc>,
    busy: impl Fn(Channel) -> bool,
) -> Due {
    let mut due = Due {
        now: Vec::new(),
        next_at: None,
    };
    for (channel, target) in targets {
        let (Ok(target), Some(ch)) = (target, report.channel(channel)) else {
            continue;
        };
        if busy(channel) {
            continue;
        }
        if is_due(ch, now) {
            due.now.push((channel, target, ch.sent_to.clone()));
        } else if let Some(at) = ch.next_at.filter(|_| ch.state == DeliveryState::Pending) {
            due.next_at = Some(due.next_at.map_or(at, |t| t.min(at)));
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Verdict;
    use crate::integrations::delivery::DeliveryError;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn failed(why: &str) -> Delivery {
        Delivery {
            sent_to: Vec::new(),
            result: Err(DeliveryError::Transient(why.into())),
        }
    }

    #[test]
    fn planning_sets_only_unplanned_channels_and_skips_with_the_reason() {
        let mut report = ReportStatus::default();
        let plans = vec![
            (Channel::Email, None),
            (Channel::Tracker, Some("the run has no issueKey".to_string())),
            (Channel::Webhook, Some("no webhook is configured".to_string())),
            (Channel::Tms, Some("the run has no version".to_string())),
        ];
        let set = plan(&mut report, &plans, t(0));
        assert_eq!(set, Channel::ALL.to_vec());
        assert_eq!(report.email.as_ref().unwrap().state, DeliveryState::Pending);
        let tracker = report.tracker.as_ref().unwrap();
        assert_eq!(tracker.state, DeliveryState::Skipped);
        assert_eq!(tracker.reason.as_deref(), Some("the run has no issueKey"));

        // A second pass (another reconcile, a restart) changes nothing.
        report.email.as_mut().unwrap().state = DeliveryState::Sent;
        assert!(plan(&mut report, &plans, t(5)).is_empty());
        assert_eq!(report.email.as_ref().unwrap().state, DeliveryState::Sent);
    }

    #[test]
    fn a_run_finishes_in_its_verdicts_phase_only_when_no_channel_is_pending() {
        let mut st = TestRunStatus::default();
        st.conclude(Verdict::Failed, Some("1 test still failing".into()), t(0));
        let report = st.report.get_or_insert_default();
        plan(
            report,
            &[
                (Channel::Email, None),
                (Channel::Tracker, Some("no".into())),
                (Channel::Webhook, Some("no".into())),
                (Channel::Tms, Some("no".into())),
            ],
            t(0),
        );
        assert!(!finish_if_delivered(&mut st, t(1)));
        assert_eq!(st.phase, Phase::Reporting);

        let email = st.report.as_mut().unwrap().email.as_mut().unwrap();
        let p = RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        };
        record(email, failed("connection refused"), &p, t(1), 0.5);
        assert!(finish_if_delivered(&mut st, t(2)));
        assert_eq!(
            st.phase,
            Phase::Failed,
            "a failed channel never changes the verdict"
        );
        assert_eq!(st.verdict, Some(Verdict::Failed));
        assert_eq!(st.message.as_deref(), Some("1 test still failing"));
    }

    #[test]
    fn due_channels_are_the_pending_ones_whose_time_came_and_the_rest_say_when() {
        let mut report = ReportStatus::default();
        let targets = vec![
            (Channel::Email, Ok(Target::Email { to: Vec::new() })),
            (
                Channel::Tracker,
                Ok(Target::Tracker {
                    issue_key: "QA-1".into(),
                }),
            ),
            (Channel::Webhook, Ok(Target::Webhook { hooks: Vec::new() })),
            (Channel::Tms, Err("the run has no version".to_string())),
        ];
        plan(&mut report, &channel_plans(&targets), t(0));
        assert_eq!(report.tms.as_ref().unwrap().state, DeliveryState::Skipped);
        // The tracker failed once and waits until t(30); the webhook is being delivered.
        let tracker = report.tracker.as_mut().unwrap();
        tracker.next_at = Some(t(30));
        let d = due(targets.clone(), &report, t(10), |c| c == Channel::Webhook);
        let now: Vec<Channel> = d.now.iter().map(|(c, _, _)| *c).collect();
        assert_eq!(now, vec![Channel::Email]);
        assert_eq!(d.next_at, Some(t(30)));
        let later = due(targets, &report, t(30), |_| false);
        assert_eq!(later.now.len(), 3, "email, tracker and webhook are due");
        assert_eq!(later.next_at, None);
    }

    fn email_only() -> Vec<(Channel, Result<Target, String>)> {
        vec![
            (Channel::Email, Ok(Target::Email { to: Vec::new() })),
            (Channel::Tracker, Err("the run has no issueKey".to_string())),
            (Channel::Webhook, Err("no webhook is configured".to_string())),
            (Channel::Tms, Err("the run has no version".to_string())),
        ]
    }

    #[test]
    fn a_planning_pass_plans_a_reporting_run_once_and_leaves_other_phases_alone() {
        let mut running = TestRunStatus::default();
        running.admit(t(0));
        assert_eq!(plan_run(&mut running, &email_only(), t(1)), Planned::default());
        assert!(running.report.is_none(), "a running run is not planned");

        let mut st = TestRunStatus::default();
        st.conclude(Verdict::Succeeded, None, t(0));
        let first = plan_run(&mut st, &email_only(), t(1));
        assert_eq!(first.channels, Channel::ALL.to_vec());
        assert!(first.changed() && !first.finished, "the email is pending");
        let again = plan_run(&mut st, &email_only(), t(2));
        assert!(!again.changed(), "a second pass writes nothing");
    }

    #[test]
    fn an_outcome_is_recorded_on_a_pending_channel_only_and_the_last_one_ends_the_run() {
        let mut st = TestRunStatus::default();
        st.conclude(Verdict::Failed, None, t(0));
        plan_run(&mut st, &email_only(), t(0));
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        let retry = record_outcome(&mut st, Channel::Email, failed("timeout"), &policy, t(1), 0.0).unwrap();
        assert_eq!(retry.channel.state, DeliveryState::Pending);
        assert!(retry.channel.next_at.is_some() && !retry.finished);
        assert_eq!(st.phase, Phase::Reporting);

        let sent = Delivery {
            sent_to: vec!["qa@example.com".into()],
            result: Ok(()),
        };
        let done = record_outcome(&mut st, Channel::Email, sent.clone(), &policy, t(40), 0.0).unwrap();
        assert_eq!(done.channel.state, DeliveryState::Sent);
        assert_eq!(done.channel.sent_to, vec!["qa@example.com".to_string()]);
        assert!(done.finished);
        assert_eq!(st.phase, Phase::Failed);

        let before = st.clone();
        assert_eq!(
            record_outcome(&mut st, Channel::Email, sent, &policy, t(41), 0.0),
            None
        );
        assert_eq!(st, before, "a channel no longer pending is left as it is");
    }
}
