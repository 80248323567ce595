//! Mutes (issue 17 item 5): which failures a run does not count against its verdict, and when
//! a mute goes out of force. Pure: the drivers read the service's Mutes and the clock, the
//! core applies [`Active`] when an attempt ends, and a periodic pass in each mode writes what
//! [`assess`] decides (expiry, a closed ticket) into each Mute's status.
//!
//! Decisions, written down here because the issue leaves them open:
//! - A mute covers a test's failure when it is in force ([`in_force`]: before `expires`, not
//!   lifted) and either names no signature or names the failure's signature (the same
//!   signature classification records: [`crate::results::Signature::of`] of the message and
//!   trace of the failing attempt).
//! - A muted failure is not rerun: the mute says the failure is known, so spending attempts
//!   on it would only delay the verdict. A failure with another signature than the mute's is
//!   not muted, and is rerun as any other.
//! - A muted failing test counts as `muted` in the run's summary, not as failed or broken;
//!   when every failing test is muted the run Succeeds.
//! - The mutes in force when an attempt ends are the ones that count; a mute created or
//!   deleted later does not change a verdict already reached.
//! - Lifting is final: a reopened ticket does not bring a lifted mute back (mute again).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::crd::{MAX_MUTED_RECORDS, Mute, MuteSpec, MuteState, MuteStatus, MutedTest};
use crate::results::{MergedTest, Signature, TestVerdict};

/// Characters of a mute's reason a run's record keeps.
const REASON_CHARS: usize = 200;

/// The longest a mute may last from its creation: a mute is a promise to look again.
pub const MAX_DURATION_DAYS: i64 = 366;

/// Whether `mute` is in force at `now`.
pub fn in_force(mute: &Mute, now: DateTime<Utc>) -> bool {
    now < mute.spec.expires && mute.status.as_ref().is_none_or(|s| s.state != MuteState::Lifted)
}

/// One mute in force, as a run records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub signature: Option<String>,
    pub reason: String,
    pub ticket: Option<String>,
}

/// The mutes in force for one service at one instant, by test.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Active {
    by_test: HashMap<String, Vec<Entry>>,
}

impl Active {
    /// No mutes.
    pub fn none() -> Active {
        Active::default()
    }

    /// The mutes of `service` among `mutes` in force at `now`, in name order (so the same
    /// mute is named every time several cover one failure).
    pub fn of(mutes: &[Mute], service: &str, now: DateTime<Utc>) -> Active {
        let mut sorted: Vec<&Mute> = mutes
            .iter()
            .filter(|m| m.spec.service == service && in_force(m, now))
            .collect();
        sorted.sort_by_key(|m| m.metadata.name.clone());
        let mut by_test: HashMap<String, Vec<Entry>> = HashMap::new();
        for m in sorted {
            by_test.entry(m.spec.test.clone()).or_default().push(Entry {
                name: m.metadata.name.clone().unwrap_or_default(),
                signature: m.spec.signature.clone(),
                reason: m.spec.reason.clone(),
                ticket: m.spec.ticket.clone(),
            });
        }
        Active { by_test }
    }

    pub fn is_empty(&self) -> bool {
        self.by_test.is_empty()
    }

    /// The mute covering a failure of `test` with `signature`: one naming that signature
    /// first, else one naming none.
    pub fn covering(&self, test: &str, signature: &Signature) -> Option<&Entry> {
        let entries = self.by_test.get(test)?;
        entries
            .iter()
            .find(|e| e.signature.as_deref() == Some(signature.as_str()))
            .or_else(|| entries.iter().find(|e| e.signature.is_none()))
    }

    /// Any mute of `test` (for a muted test that passed).
    pub fn of_test(&self, test: &str) -> Option<&Entry> {
        self.by_test.get(test).and_then(|e| e.first())
    }
}

/// What mutes did to a run's merged tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Every muted failing test (at most [`MAX_MUTED_RECORDS`]) and every muted test that
    /// passed, failing ones first.
    pub records: Vec<MutedTest>,
}

impl Applied {
    /// The ids of the failing tests a mute covers.
    pub fn muted_failures(&self) -> std::collections::HashSet<&str> {
        self.records
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.test.as_str())
            .collect()
    }

    /// The records a run's status keeps: every muted failure, and muted tests that passed up
    /// to [`MAX_MUTED_RECORDS`] records in all (those only inform).
    pub fn bounded(mut self) -> Vec<MutedTest> {
        let failing = self.records.iter().filter(|r| !r.passed).count();
        self.records.truncate(failing.max(MAX_MUTED_RECORDS));
        self.records
    }
}

/// Which of `merged` a mute covers: each failing or broken test whose failure an [`Active`]
/// mute covers (at most [`MAX_MUTED_RECORDS`]: beyond, they count as failing), and each passed
/// or flaky test some mute of which is in force. A pack or file a crashed shard owed
/// ([`crate::shard::UNREPORTED_ITEM`]) is no test: never muted.
pub fn apply(merged: &[MergedTest], active: &Active) -> Applied {
    if active.is_empty() {
        return Applied::default();
    }
    // The reason is shortened in the record (the Mute keeps it whole): 500 records stay far
    // under an object's size limit.
    let reason = |e: &Entry| match e.reason.char_indices().nth(REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &e.reason[..cut]),
        None => e.reason.clone(),
    };
    let record = |t: &MergedTest, e: &Entry, passed: bool| MutedTest {
        test: t.id.clone(),
        mute: e.name.clone(),
        reason: reason(e),
        ticket: e.ticket.clone(),
        passed,
    };
    let mut failing = Vec::new();
    let mut passed = Vec::new();
    for t in merged
        .iter()
        .filter(|t| t.case.kind != crate::shard::UNREPORTED_ITEM)
    {
        if t.verdict.is_failing() {
            let signature = Signature::of(&t.case.message, &t.case.trace);
            if let Some(e) = active.covering(&t.id, &signature)
                && failing.len() < MAX_MUTED_RECORDS
            {
                failing.push(record(t, e, false));
            }
        } else if matches!(t.verdict, TestVerdict::Passed | TestVerdict::Flaky)
            && let Some(e) = active.of_test(&t.id)
        {
            passed.push(record(t, e, true));
        }
    }
    failing.extend(passed);
    Applied { records: failing }
}

/// What reading a mute's ticket found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketState {
    /// The tracker's name of the status (`Done`, `Closed`).
    pub status: String,
    /// Whether the tracker counts that status as closed.
    pub closed: bool,
}

/// Whether a mute's ticket should be read now: it lifts itself on a closed ticket, is in
/// force, and was not read in the last `every`.
pub fn ticket_due(mute: &Mute, now: DateTime<Utc>, every: Duration) -> bool {
    mute.spec.lift_when_ticket_closed
        && mute.spec.ticket.is_some()
        && in_force(mute, now)
        && mute
            .status
            .as_ref()
            .and_then(|s| s.checked_at)
            .is_none_or(|at| now - at >= every)
}

/// A mute's status at `now`, given what its ticket read found (when it was read): expired
/// past `expires`, lifted on a closed ticket when it asks to be, else active. A failed read
/// is recorded in the message and leaves the mute in force.
pub fn assess(mute: &Mute, now: DateTime<Utc>, ticket: Option<Result<TicketState, String>>) -> MuteStatus {
    let mut st = mute.status.clone().unwrap_or_default();
    if st.state == MuteState::Lifted {
        return st;
    }
    if now >= mute.spec.expires {
        if st.state != MuteState::Expired {
            st.state = MuteState::Expired;
            st.ended_at = Some(now);
            st.message = Some(format!(
                "expired on {}",
                mute.spec.expires.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        return st;
    }
    if st.state == MuteState::Expired {
        // Its expiry was moved later: in force again, and no longer "expired on ...".
        st.ended_at = None;
        st.message = None;
    }
    st.state = MuteState::Active;
    let key = mute.spec.ticket.as_deref().unwrap_or_default();
    match ticket {
        None => {}
        Some(Ok(t)) => {
            st.checked_at = Some(now);
            st.ticket_status = Some(t.status.clone());
            if t.closed && mute.spec.lift_when_ticket_closed {
                st.state = MuteState::Lifted;
                st.ended_at = Some(now);
                st.message = Some(format!("lifted: ticket {key} is closed ({})", t.status));
            } else {
                st.message = None;
            }
        }
        Some(Err(e)) => {
            st.checked_at = Some(now);
            st.message = Some(format!("could not read ticket {key}: {e}"));
        }
    }
    st
}

/// How often each mode's mute pass runs (and a ticket is read at most) when
/// `TOMATO_MUTE_INTERVAL` does not say.
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The pass interval from the environment's `TOMATO_MUTE_INTERVAL` (`5m`, `30s`), else
/// [`DEFAULT_INTERVAL`]; both modes read it the same way.
pub fn interval_from_env() -> Result<std::time::Duration, String> {
    match std::env::var("TOMATO_MUTE_INTERVAL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(v) => crate::duration::parse(&v).map_err(|e| format!("TOMATO_MUTE_INTERVAL: {e}")),
        None => Ok(DEFAULT_INTERVAL),
    }
}

/// One pass over `mutes` at `now`: the new status of each mute whose status changes, as
/// `(index in mutes, status)` (names repeat across namespaces). Each mute whose ticket is due ([`ticket_due`] with `every`) has it read
/// with `read` (an error, such as no tracker being configured, is recorded in the status
/// and leaves the mute in force).
pub async fn pass<F, Fut>(
    mutes: &[Mute],
    now: DateTime<Utc>,
    every: std::time::Duration,
    read: F,
) -> Vec<(usize, MuteStatus)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<TicketState, String>>,
{
    let every = Duration::from_std(every).unwrap_or(Duration::MAX);
    let mut changed = Vec::new();
    for (i, m) in mutes.iter().enumerate() {
        let ticket = match (&m.spec.ticket, ticket_due(m, now, every)) {
            (Some(key), true) => Some(read(key.clone()).await),
            _ => None,
        };
        let st = assess(m, now, ticket);
        if m.status.as_ref() != Some(&st) {
            changed.push((i, st));
        }
    }
    changed
}

/// A mute spec's own faults at `now`, as `(field, message)` (the caller checks the service
/// against packs_config and whether a tracker is configured).
pub fn check_spec(spec: &MuteSpec, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    if spec.test.trim().is_empty() {
        errors.push(("test", "the test id is empty".to_string()));
    } else if spec.test.chars().count() > 1024 {
        errors.push(("test", "the test id is longer than 1024 characters".to_string()));
    } else if let Err(e) = crate::text::check_text(&spec.test) {
        errors.push(("test", e));
    }
    if let Some(sig) = &spec.signature
        && !(sig.len() == 16
            && sig
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        errors.push((
            "signature",
            format!(
                "{} is not a failure signature (16 lowercase hex digits, as the run page shows it)",
                crate::text::quote(sig)
            ),
        ));
    }
    if spec.reason.trim().is_empty() {
        errors.push(("reason", "say why the failure is muted".to_string()));
    } else if spec.reason.chars().count() > 1000 {
        errors.push(("reason", "the reason is longer than 1000 characters".to_string()));
    } else if let Err(e) = crate::text::check_text(&spec.reason) {
        errors.push(("reason", e));
    }
    if let Some(t) = &spec.ticket
        && !is_ticket_key(t)
    {
        errors.push((
            "ticket",
            format!("{} is not a ticket key such as QA-123", crate::text::quote(t)),
        ));
    }
    if spec.lift_when_ticket_closed && spec.ticket.is_none() {
        errors.push(("liftWhenTicketClosed", "needs a ticket to watch".to_string()));
    }
    if spec.expires <= now {
        errors.push(("expires", "is not in the future".to_string()));
    } else if spec.expires > now + Duration::days(MAX_DURATION_DAYS) {
        errors.push((
            "expires",
            format!("is more than {MAX_DURATION_DAYS} days away: mute for a while, then look again"),
        ));
    }
    if let Some(a) = &spec.author {
        if a.chars().count() > 253 {
            errors.push(("author", "is longer than 253 characters".to_string()));
        } else if let Err(e) = crate::text::check_name(a) {
            errors.push(("author", e));
        }
    }
    errors
}

/// `QA-123`: an upper-case project key, a dash, digits.
pub fn is_ticket_key(key: &str) -> bool {
    let Some((project, number)) = key.split_once('-') else {
        return false;
    };
    let mut chars = project.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Case, CaseStatus};
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).unwrap()
    }

    fn mute(name: &str, test: &str, signature: Option<&str>, expires: DateTime<Utc>) -> Mute {
        let mut m = Mute::new(
            name,
            MuteSpec {
                service: "demo".into(),
                test: test.into(),
                signature: signature.map(str::to_string),
                reason: format!("known: {name}"),
                ticket: Some("QA-7".into()),
                expires,
                lift_when_ticket_closed: false,
                author: None,
            },
        );
        m.metadata.name = Some(name.into());
        m
    }

    fn test(id: &str, verdict: TestVerdict, message: &str) -> MergedTest {
        let status = match verdict {
            TestVerdict::Failed => CaseStatus::Failed,
            TestVerdict::Broken => CaseStatus::Errored,
            TestVerdict::Skipped => CaseStatus::Skipped,
            _ => CaseStatus::Passed,
        };
        MergedTest {
            id: id.into(),
            verdict,
            history: vec![(1, status)],
            case: Case {
                suites: vec![],
                classname: String::new(),
                name: id.into(),
                file: None,
                time_ms: None,
                status,
                message: message.into(),
                kind: String::new(),
                trace: String::new(),
                system_out: String::new(),
                system_err: String::new(),
            },
            attempt: 1,
        }
    }

    #[test]
    fn a_mute_is_in_force_until_it_expires_or_is_lifted() {
        let mut m = mute("m", "t", None, at(10));
        assert!(in_force(&m, at(9)));
        assert!(!in_force(&m, at(10)), "out of force at the expiry instant");
        m.status = Some(MuteStatus {
            state: MuteState::Lifted,
            ..MuteStatus::default()
        });
        assert!(
            !in_force(&m, at(9)),
            "a lifted mute is out of force before its expiry"
        );
    }

    #[test]
    fn only_the_services_mutes_in_force_count() {
        let mut other = mute("other", "t", None, at(20));
        other.spec.service = "else".into();
        let mutes = vec![
            mute("old", "t", None, at(5)),
            other,
            mute("now", "u", None, at(20)),
        ];
        let active = Active::of(&mutes, "demo", at(10));
        let sig = Signature::of("boom", "");
        assert_eq!(active.covering("t", &sig), None, "expired, or another service's");
        assert_eq!(active.covering("u", &sig).map(|e| e.name.as_str()), Some("now"));
    }

    #[test]
    fn a_signature_mute_covers_only_that_failure_and_wins_over_a_test_mute() {
        let sig = Signature::of("timeout after 30s", "");
        let mutes = vec![
            mute("any", "t", None, at(20)),
            mute("exact", "t", Some(sig.as_str()), at(20)),
            mute("only-sig", "u", Some(sig.as_str()), at(20)),
        ];
        let active = Active::of(&mutes, "demo", at(10));
        assert_eq!(active.covering("t", &sig).unwrap().name, "exact");
        let other = Signature::of("connection refused", "");
        assert_eq!(active.covering("t", &other).unwrap().name, "any");
        assert_eq!(
            active.covering("u", &other),
            None,
            "another failure of u is not muted"
        );
        // Numbers are masked by the signature: a different timeout is the same failure.
        assert_eq!(
            active
                .covering("u", &Signature::of("timeout after 45s", ""))
                .unwrap()
                .name,
            "only-sig"
        );
    }

    #[test]
    fn apply_records_muted_failures_first_and_muted_tests_that_passed() {
        let sig = Signature::of("expected 200, got 503", "");
        let mutes = vec![
            mute("m-pass", "p", None, at(20)),
            mute("m-fail", "f", Some(sig.as_str()), at(20)),
            mute("m-broken", "b", None, at(20)),
            mute("m-changed", "c", Some(sig.as_str()), at(20)),
        ];
        let merged = vec![
            test("p", TestVerdict::Passed, ""),
            test("f", TestVerdict::Failed, "expected 200, got 503"),
            test("b", TestVerdict::Broken, "setup failed"),
            test("c", TestVerdict::Failed, "element not found"),
            test("x", TestVerdict::Failed, "boom"),
            test("s", TestVerdict::Skipped, ""),
        ];
        let applied = apply(&merged, &Active::of(&mutes, "demo", at(10)));
        let got: Vec<(&str, &str, bool)> = applied
            .records
            .iter()
            .map(|r| (r.test.as_str(), r.mute.as_str(), r.passed))
            .collect();
        assert_eq!(
            got,
            vec![
                ("f", "m-fail", false),
                ("b", "m-broken", false),
                ("p", "m-pass", true)
            ]
        );
        let failures = applied.muted_failures();
        assert!(failures.contains("f") && failures.contains("b") && failures.len() == 2);
        assert_eq!(applied.records[0].ticket.as_deref(), Some("QA-7"));
        assert!(apply(&merged, &Active::none()).records.is_empty());

        // A pack a crashed shard owed is no test: a mute of its id does not cover it.
        let mut owed = test("pack:basic", TestVerdict::Broken, "the shard crashed");
        owed.case.kind = crate::shard::UNREPORTED_ITEM.to_string();
        let mutes = vec![mute("m-pack", "pack:basic", None, at(20))];
        assert!(
            apply(&[owed], &Active::of(&mutes, "demo", at(10)))
                .records
                .is_empty()
        );
    }

    #[test]
    fn assess_expires_lifts_on_a_closed_ticket_and_keeps_a_failed_read_in_force() {
        let mut m = mute("m", "t", None, at(20));
        m.spec.lift_when_ticket_closed = true;
        let open = TicketState {
            status: "In Progress".into(),
            closed: false,
        };
        let st = assess(&m, at(10), Some(Ok(open)));
        assert_eq!(st.state, MuteState::Active);
        assert_eq!(st.ticket_status.as_deref(), Some("In Progress"));
        assert_eq!(st.checked_at, Some(at(10)));

        let st = assess(&m, at(11), Some(Err("HTTP 503".into())));
        assert_eq!(st.state, MuteState::Active);
        assert_eq!(
            st.message.as_deref(),
            Some("could not read ticket QA-7: HTTP 503")
        );

        let done = TicketState {
            status: "Done".into(),
            closed: true,
        };
        let st = assess(&m, at(12), Some(Ok(done.clone())));
        assert_eq!(st.state, MuteState::Lifted);
        assert_eq!(st.ended_at, Some(at(12)));
        assert_eq!(
            st.message.as_deref(),
            Some("lifted: ticket QA-7 is closed (Done)")
        );
        m.status = Some(st.clone());
        assert!(!in_force(&m, at(12)));
        assert_eq!(
            assess(&m, at(25), None),
            st,
            "lifting is final, even past the expiry"
        );

        // A closed ticket does not lift a mute that did not ask for it.
        let mut keep = mute("k", "t", None, at(20));
        keep.status = None;
        assert_eq!(assess(&keep, at(12), Some(Ok(done))).state, MuteState::Active);

        let expired = assess(&keep, at(20), None);
        assert_eq!(expired.state, MuteState::Expired);
        assert_eq!(expired.ended_at, Some(at(20)));
        assert_eq!(
            expired.message.as_deref(),
            Some("expired on 2026-03-20 12:00 UTC")
        );
        keep.status = Some(expired.clone());
        assert_eq!(
            assess(&keep, at(22), None),
            expired,
            "the first noticed instant stays"
        );
        keep.spec.expires = at(30);
        let again = assess(&keep, at(22), None);
        assert_eq!(
            (again.state, again.ended_at, again.message),
            (MuteState::Active, None, None),
            "an expiry moved later puts the mute back in force"
        );
    }

    #[test]
    fn a_ticket_is_read_when_due_only() {
        let mut m = mute("m", "t", None, at(20));
        let every = Duration::minutes(10);
        assert!(!ticket_due(&m, at(10), every), "it did not ask to be lifted");
        m.spec.lift_when_ticket_closed = true;
        assert!(ticket_due(&m, at(10), every));
        m.status = Some(MuteStatus {
            checked_at: Some(at(10)),
            ..MuteStatus::default()
        });
        assert!(!ticket_due(&m, at(10) + Duration::minutes(9), every));
        assert!(ticket_due(&m, at(10) + Duration::minutes(10), every));
        assert!(!ticket_due(&m, at(21), every), "an expired mute is not read");
    }

    #[tokio::test]
    async fn a_pass_writes_only_what_changed_and_reads_only_due_tickets() {
        let mut lifting = mute("lifting", "t", None, at(20));
        lifting.spec.lift_when_ticket_closed = true;
        lifting.spec.ticket = Some("QA-9".into());
        let mut steady = mute("steady", "u", None, at(20));
        steady.status = Some(MuteStatus::default());
        let expiring = mute("expiring", "v", None, at(10));
        let reads = std::sync::Mutex::new(Vec::new());
        let changed = pass(
            &[lifting, steady, expiring],
            at(10),
            std::time::Duration::from_secs(60),
            |key| {
                reads.lock().unwrap().push(key);
                async {
                    Ok(TicketState {
                        status: "Done".into(),
                        closed: true,
                    })
                }
            },
        )
        .await;
        assert_eq!(*reads.lock().unwrap(), vec!["QA-9".to_string()]);
        let got: Vec<(usize, MuteState)> = changed.iter().map(|(i, s)| (*i, s.state)).collect();
        assert_eq!(got, vec![(0, MuteState::Lifted), (2, MuteState::Expired)]);
    }

    #[test]
    fn check_spec_names_every_fault() {
        let now = at(10);
        let mut spec = mute("m", "t", None, at(20)).spec;
        assert!(check_spec(&spec, now).is_empty());
        spec.test = " ".into();
        spec.signature = Some("ABC".into());
        spec.reason = String::new();
        spec.ticket = Some("qa 7".into());
        spec.expires = at(9);
        let fields: Vec<&str> = check_spec(&spec, now).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["test", "signature", "reason", "ticket", "expires"]);
        spec = mute("m", "t", None, now + Duration::days(400)).spec;
        spec.ticket = None;
        spec.lift_when_ticket_closed = true;
        let errors = check_spec(&spec, now);
        assert_eq!(
            errors[0],
            ("liftWhenTicketClosed", "needs a ticket to watch".to_string())
        );
        assert!(errors[1].1.contains("366 days"), "{errors:?}");
        assert!(is_ticket_key("QA_X2-15") && !is_ticket_key("QA-") && !is_ticket_key("qa-1"));
    }
}
