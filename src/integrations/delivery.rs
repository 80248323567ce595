//! The life of one delivery channel (a run's report email, tracker comment, webhook, test
//! management; a regression's notices), as stored in a `ChannelReport`, and the one backoff
//! schedule between its attempts, with the one transient/permanent error every integration
//! answers. Pure: the driver passes the time and the jitter in.
//!
//! A channel starts `Pending` (due at once) or `Skipped` (with why). Each delivery attempt
//! is recorded as it ends: `Sent`; or, after a transient failure, `Pending` again with the
//! reason and the time of the next attempt (`nextAt`); or `Failed` once the attempts are used
//! up or the far end refused for good (an SMTP 5xx, an HTTP 4xx). Because the state is
//! stored after every attempt, a restarted driver picks up `Pending` channels where they
//! were and never touches a `Sent` one. A run's report channels are planned and a run
//! finished by [`crate::report::delivery`].

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::crd::{ChannelReport, DeliveryState};

/// How often and how far apart a channel is tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delivery attempts in all (the first one included).
    pub attempts: u32,
    /// Wait after the first failure; it doubles after each further one.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, waiting about 2s, 4s, 8s, 16s and 32s between them.
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base: Duration::from_secs(2),
            max: Duration::from_secs(5 * 60),
        }
    }
}

/// How far the jitter moves a wait: ±20%.
const JITTER: f64 = 0.2;

impl RetryPolicy {
    /// The wait after the `failures`-th failed attempt (from 1): `base · 2^(failures-1)`, moved
    /// by ±20% as `jitter` (in `[0, 1)`) says — so that channels failing together do not all
    /// retry at the same instant — and never longer than `max`.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        let exp = self.base.as_secs_f64() * f64::from(2u32).powi(doublings as i32);
        let spread = 1.0 - JITTER + 2.0 * JITTER * jitter.clamp(0.0, 1.0);
        Duration::from_secs_f64((exp * spread).min(self.max.as_secs_f64()))
    }

    /// The waits between the attempts, without jitter.
    pub fn schedule(&self) -> Vec<Duration> {
        (1..self.attempts).map(|n| self.delay(n, 0.5)).collect()
    }
}

/// Why a delivery attempt did not get through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// It may work later (connection refused, timeout, SMTP 4xx, HTTP 5xx/429).
    Transient(String),
    /// It will not work by trying again (SMTP 5xx, HTTP 4xx, a template that does not render).
    Permanent(String),
}

impl DeliveryError {
    pub fn reason(&self) -> &str {
        match self {
            DeliveryError::Transient(r) | DeliveryError::Permanent(r) => r,
        }
    }
}

/// What one delivery attempt did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Targets that received the report in this attempt.
    pub sent_to: Vec<String>,
    pub result: Result<(), DeliveryError>,
}

/// A channel that has something to deliver, due now.
pub fn pending(now: DateTime<Utc>) -> ChannelReport {
    ChannelReport {
        state: DeliveryState::Pending,
        attempts: 0,
        at: Some(now),
        reason: None,
        next_at: Some(now),
        sent_to: Vec::new(),
    }
}

/// A channel with nothing to do for this run.
pub fn skipped(reason: &str, now: DateTime<Utc>) -> ChannelReport {
    ChannelReport {
        state: DeliveryState::Skipped,
        attempts: 0,
        at: Some(now),
        reason: Some(reason.to_string()),
        next_at: None,
        sent_to: Vec::new(),
    }
}

/// Whether a channel should be tried now.
pub fn is_due(ch: &ChannelReport, now: DateTime<Utc>) -> bool {
    ch.state == DeliveryState::Pending && ch.next_at.is_none_or(|t| t <= now)
}

/// Records the end of a delivery attempt on a `Pending` channel (anything else is left as it is:
/// a final state is final). `jitter` in `[0, 1)` spreads the next wait.
pub fn record(ch: &mut ChannelReport, d: Delivery, policy: &RetryPolicy, now: DateTime<Utc>, jitter: f64) {
    if ch.state != DeliveryState::Pending {
        return;
    }
    ch.attempts += 1;
    ch.at = Some(now);
    for t in d.sent_to {
        if !ch.sent_to.contains(&t) {
            ch.sent_to.push(t);
        }
    }
    let n = ch.attempts;
    match d.result {
        Ok(()) => {
            ch.state = DeliveryState::Sent;
            ch.reason = None;
            ch.next_at = None;
        }
        Err(DeliveryError::Permanent(why)) => {
            ch.state = DeliveryState::Failed;
            ch.reason = Some(format!("refused on attempt {n}, not retried: {why}"));
            ch.next_at = None;
        }
        Err(DeliveryError::Transient(why)) if n >= policy.attempts => {
            ch.state = DeliveryState::Failed;
            ch.reason = Some(format!(
                "gave up after {n} attempt{}: {why}",
                if n == 1 { "" } else { "s" }
            ));
            ch.next_at = None;
        }
        Err(DeliveryError::Transient(why)) => {
            let wait = policy.delay(n, jitter);
            ch.reason = Some(format!(
                "attempt {n} of {} failed: {why}; next in {}",
                policy.attempts,
                crate::duration::human(wait)
            ));
            ch.next_at = Some(now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn failed(why: &str) -> Delivery {
        Delivery {
            sent_to: vec![],
            result: Err(DeliveryError::Transient(why.into())),
        }
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = p.schedule().iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![2, 4, 8, 16, 32]);
        let capped = RetryPolicy {
            attempts: 12,
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(capped.delay(10, 0.5), Duration::from_secs(60));
        assert_eq!(capped.delay(100, 0.99), Duration::from_secs(60), "no overflow");
    }

    #[test]
    fn jitter_moves_a_wait_by_at_most_a_fifth() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(3, 0.0).as_millis(), 6400);
        assert_eq!(p.delay(3, 1.0).as_millis(), 9600);
        for j in [0.0, 0.1, 0.5, 0.9, 0.999] {
            let d = p.delay(3, j).as_secs_f64();
            assert!((6.4..=9.6).contains(&d), "{d}");
        }
    }

    #[test]
    fn a_transient_failure_stays_pending_until_the_next_attempt_is_due() {
        let p = RetryPolicy::default();
        let mut ch = pending(t(0));
        assert!(is_due(&ch, t(0)));
        record(&mut ch, failed("connection refused"), &p, t(0), 0.5);
        assert_eq!((ch.state, ch.attempts), (DeliveryState::Pending, 1));
        assert_eq!(ch.next_at, Some(t(2)));
        assert_eq!(
            ch.reason.as_deref(),
            Some("attempt 1 of 6 failed: connection refused; next in 2s")
        );
        assert!(!is_due(&ch, t(1)));
        assert!(is_due(&ch, t(2)));
    }

    #[test]
    fn the_last_allowed_attempt_failing_fails_the_channel_with_the_reason() {
        let p = RetryPolicy {
            attempts: 2,
            ..RetryPolicy::default()
        };
        let mut ch = pending(t(0));
        record(&mut ch, failed("connection refused"), &p, t(0), 0.5);
        record(&mut ch, failed("connection refused"), &p, t(2), 0.5);
        assert_eq!(ch.state, DeliveryState::Failed);
        assert_eq!(
            ch.reason.as_deref(),
            Some("gave up after 2 attempts: connection refused")
        );
        assert_eq!(ch.next_at, None);
        assert!(!is_due(&ch, t(100)));
    }

    #[test]
    fn a_permanent_refusal_is_not_retried() {
        let mut ch = pending(t(0));
        let d = Delivery {
            sent_to: vec![],
            result: Err(DeliveryError::Permanent("HTTP 404 Not Found".into())),
        };
        record(&mut ch, d, &RetryPolicy::default(), t(0), 0.5);
        assert_eq!(ch.state, DeliveryState::Failed);
        assert!(ch.reason.unwrap().contains("not retried: HTTP 404"));
    }

    #[test]
    fn a_sent_channel_is_final_and_remembers_its_targets() {
        let p = RetryPolicy::default();
        let mut ch = pending(t(0));
        let partial = Delivery {
            sent_to: vec!["hooks.example.com#1".into()],
            result: Err(DeliveryError::Transient("HTTP 502".into())),
        };
        record(&mut ch, partial, &p, t(0), 0.5);
        let rest = Delivery {
            sent_to: vec!["hooks.example.com#2".into()],
            result: Ok(()),
        };
        record(&mut ch, rest, &p, t(2), 0.5);
        assert_eq!((ch.state, ch.attempts), (DeliveryState::Sent, 2));
        assert_eq!(ch.sent_to, vec!["hooks.example.com#1", "hooks.example.com#2"]);
        assert_eq!(ch.reason, None);
        let before = ch.clone();
        record(&mut ch, failed("late"), &p, t(9), 0.5);
        assert_eq!(ch, before, "a final state never changes");
    }
}
