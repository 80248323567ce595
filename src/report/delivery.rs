//! A run's report channels: which are due or skipped for the run, and the run's end once none
//! is pending — in the phase of its verdict, which reporting never changes. Each channel's
//! own life (pending, sent, failed, retried) is [`crate::integrations::delivery`]'s.

use chrono::{DateTime, Utc};

use super::Channel;
use crate::crd::{DeliveryState, Phase, ReportStatus, TestRunStatus};
use crate::integrations::delivery::{pending, skipped};

/// What a channel needs for this run: `None` to deliver, `Some(reason)` to skip.
pub type ChannelPlan = (Channel, Option<String>);

/// Gives every channel without a state its first one (`Pending`, or `Skipped` with the
/// reason), and skips a `Pending` channel that has nothing to deliver any more (its settings
/// were removed while it waited). Returns the channels whose state it set.
pub fn plan(report: &mut ReportStatus, plans: &[ChannelPlan], now: DateTime<Utc>) -> Vec<Channel> {
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
pub fn finish_if_delivered(st: &mut TestRunStatus, now: DateTime<Utc>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Verdict;
    use crate::integrations::delivery::{Delivery, DeliveryError, RetryPolicy, record};

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
}
