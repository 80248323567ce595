//! Schedule rules over a made-up clock: every `now` below is chosen by the test.

use chrono::{NaiveDate, TimeZone};

use super::*;
use crate::crd::RunTemplate;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn spec(schedule: &str, tz: &str) -> NightlyScheduleSpec {
    NightlyScheduleSpec {
        template: RunTemplate::test("demo"),
        timeout: None,
        schedule: schedule.into(),
        time_zone: tz.into(),
        suspend: false,
        concurrency_policy: ConcurrencyPolicy::Forbid,
        starting_deadline_seconds: None,
        successful_runs_history_limit: 7,
        failed_runs_history_limit: 14,
    }
}

/// Every fire time in `[from, to)`.
fn fires(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from - Duration::seconds(1);
    while let Some(n) = s.next_after(t) {
        if n >= to {
            break;
        }
        out.push(n);
        t = n;
    }
    out
}

/// How many times it fires on each local day of the window.
fn per_local_day(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(NaiveDate, usize)> {
    let mut days: Vec<(NaiveDate, usize)> = Vec::new();
    for f in fires(s, from, to) {
        let d = f.with_timezone(&s.tz()).date_naive();
        match days.last_mut() {
            Some((last, n)) if *last == d => *n += 1,
            _ => days.push((d, 1)),
        }
    }
    days
}

#[test]
fn a_time_in_the_spring_forward_gap_fires_once_in_new_york() {
    let s = Schedule::parse("30 2 * * *", "America/New_York").unwrap();
    // 2026-03-08: clocks go from 02:00 EST to 03:00 EDT; 02:30 does not exist.
    let days = per_local_day(&s, at("2026-03-06T12:00:00Z"), at("2026-03-11T12:00:00Z"));
    assert!(days.iter().all(|(_, n)| *n == 1), "{days:?}");
    assert_eq!(
        days.len(),
        5,
        "one fire a day, including the day without 02:30: {days:?}"
    );
    let on_the_day = fires(&s, at("2026-03-08T05:00:00Z"), at("2026-03-09T05:00:00Z"));
    assert_eq!(
        on_the_day,
        vec![at("2026-03-08T07:00:00Z")],
        "snaps to 03:00 EDT, just after the gap"
    );
}

#[test]
fn a_repeated_time_on_the_fall_back_day_fires_once_in_new_york() {
    let s = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
    // 2026-11-01: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
    let on_the_day = fires(&s, at("2026-11-01T04:00:00Z"), at("2026-11-02T04:00:00Z"));
    assert_eq!(
        on_the_day,
        vec![at("2026-11-01T05:30:00Z")],
        "the first occurrence only"
    );
    let days = per_local_day(&s, at("2026-10-29T12:00:00Z"), at("2026-11-04T12:00:00Z"));
    assert!(days.iter().all(|(_, n)| *n == 1), "{days:?}");
}

#[test]
fn both_transitions_fire_once_in_berlin() {
    let s = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
    // 2026-03-29: 02:00 CET → 03:00 CEST (02:30 missing). 2026-10-25: 03:00 CEST → 02:00 CET (02:30 twice).
    for (from, to) in [
        ("2026-03-27T12:00:00Z", "2026-04-01T12:00:00Z"),
        ("2026-10-23T12:00:00Z", "2026-10-28T12:00:00Z"),
    ] {
        let days = per_local_day(&s, at(from), at(to));
        assert!(days.iter().all(|(_, n)| *n == 1), "{days:?}");
        assert_eq!(days.len(), 5, "{days:?}");
    }
    let fall = fires(&s, at("2026-10-24T22:00:00Z"), at("2026-10-25T22:00:00Z"));
    assert_eq!(
        fall,
        vec![at("2026-10-25T00:30:00Z")],
        "02:30 CEST, not again at 02:30 CET"
    );
}

#[test]
fn the_default_schedule_fires_at_two_in_its_zone() {
    let s = Schedule::parse("0 2 * * *", "Europe/Moscow").unwrap();
    assert_eq!(
        s.next_after(at("2026-11-24T12:00:00Z")),
        Some(at("2026-11-24T23:00:00Z"))
    );
    let utc = Schedule::parse("0 2 * * *", "UTC").unwrap();
    assert_eq!(
        utc.next_after(at("2026-11-24T02:00:00Z")),
        Some(at("2026-11-25T02:00:00Z")),
        "strictly after"
    );
}

#[test]
fn macros_are_understood() {
    let from = at("2026-11-24T10:15:00Z");
    for (m, next) in [
        ("@hourly", "2026-11-24T11:00:00Z"),
        ("@daily", "2026-11-25T00:00:00Z"),
        ("@midnight", "2026-11-25T00:00:00Z"),
        ("@weekly", "2026-11-29T00:00:00Z"),
        ("@monthly", "2026-12-01T00:00:00Z"),
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
    ] {
        assert_eq!(
            Schedule::parse(m, "UTC").unwrap().next_after(from),
            Some(at(next)),
            "{m}"
        );
    }
}

#[test]
fn bad_expressions_and_zones_name_their_field() {
    for bad in [
        "",
        "* * * *",
        "0 0 2 * * *",
        "61 * * * *",
        "0 25 * * *",
        "@fortnightly",
        "0 0 * * MON-FUNDAY",
    ] {
        let e = Schedule::parse(bad, "UTC").unwrap_err();
        assert_eq!(e.field, "schedule", "{bad:?}: {e:?}");
    }
    let e = Schedule::parse("0 2 * * *", "Mars/Olympus").unwrap_err();
    assert_eq!(e.field, "timeZone");
    assert!(e.message.contains("Mars/Olympus"));
}

#[test]
fn nothing_is_due_before_the_first_fire_time() {
    let sp = spec("0 2 * * *", "UTC");
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    let created = at("2026-11-24T10:00:00Z");
    let d = decide("nightly", &sp, &s, created, &[], at("2026-11-24T23:00:00Z"));
    assert_eq!(
        d,
        Decision::Wait {
            next: Some(at("2026-11-25T02:00:00Z"))
        }
    );
}

#[test]
fn a_due_time_fires_once_and_then_waits_for_the_next() {
    let sp = spec("0 2 * * *", "UTC");
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    let now = at("2026-11-25T02:00:05Z");
    let d = decide("nightly", &sp, &s, at("2026-11-24T10:00:00Z"), &[], now);
    assert_eq!(
        d,
        Decision::Fire {
            scheduled: at("2026-11-25T02:00:00Z"),
            cancel: vec![],
            next: Some(at("2026-11-26T02:00:00Z"))
        }
    );
    // Recorded as lastScheduleTime, the same time is not due again (restart-safe).
    let again = decide(
        "nightly",
        &sp,
        &s,
        at("2026-11-25T02:00:00Z"),
        &[],
        at("2026-11-25T02:00:30Z"),
    );
    assert!(matches!(again, Decision::Wait { .. }), "{again:?}");
}

#[test]
fn after_downtime_only_the_most_recent_missed_time_fires() {
    let sp = spec("*/10 * * * *", "UTC");
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    // Down from 01:00 to 03:07: twelve times were missed; one run, for 03:00.
    let d = decide(
        "nightly",
        &sp,
        &s,
        at("2026-11-25T01:00:00Z"),
        &[],
        at("2026-11-25T03:07:00Z"),
    );
    assert!(
        matches!(d, Decision::Fire { scheduled, .. } if scheduled == at("2026-11-25T03:00:00Z")),
        "{d:?}"
    );
}

#[test]
fn starting_deadline_skips_a_time_that_is_too_late() {
    let mut sp = spec("0 2 * * *", "UTC");
    sp.starting_deadline_seconds = Some(300);
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    let since = at("2026-11-24T02:00:00Z");
    let within = decide("nightly", &sp, &s, since, &[], at("2026-11-25T02:04:59Z"));
    assert!(matches!(within, Decision::Fire { .. }), "{within:?}");
    let late = decide("nightly", &sp, &s, since, &[], at("2026-11-25T02:05:01Z"));
    match late {
        Decision::Skip {
            reason: SkipReason::MissedDeadline { late, deadline },
            next,
            ..
        } => {
            assert_eq!((late.num_seconds(), deadline), (301, 300));
            assert_eq!(next, Some(at("2026-11-26T02:00:00Z")));
        }
        other => panic!("{other:?}"),
    }
    // Later passes record the same status: nothing to write again until the next time.
    let later = decide("nightly", &sp, &s, since, &[], at("2026-11-25T03:00:00Z"));
    let (mut a, mut b) = (NightlyScheduleStatus::default(), NightlyScheduleStatus::default());
    let now = at("2026-11-25T03:00:00Z");
    record(&mut a, &late, None, None, vec![], false, now);
    record(&mut b, &later, None, None, vec![], false, now);
    assert_eq!(a, b);
}

#[test]
fn suspended_schedules_start_nothing() {
    let mut sp = spec("0 2 * * *", "UTC");
    sp.suspend = true;
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    let d = decide(
        "nightly",
        &sp,
        &s,
        at("2026-11-24T00:00:00Z"),
        &[],
        at("2026-11-25T03:00:00Z"),
    );
    assert!(
        matches!(
            d,
            Decision::Skip {
                reason: SkipReason::Suspended,
                ..
            }
        ),
        "{d:?}"
    );
}

#[test]
fn concurrency_policies_forbid_allow_and_replace() {
    let mut sp = spec("0 2 * * *", "UTC");
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    let (since, now) = (at("2026-11-24T03:00:00Z"), at("2026-11-25T02:00:01Z"));
    let active = vec!["nightly-1".to_string()];

    let d = decide("nightly", &sp, &s, since, &active, now);
    assert!(
        matches!(&d, Decision::Skip { reason: SkipReason::PreviousRunActive(r), .. } if r == "nightly-1"),
        "{d:?}"
    );
    // When the previous run ends, the still-pending time starts (within its deadline), as a CronJob does.
    assert!(matches!(
        decide("nightly", &sp, &s, since, &[], now + Duration::minutes(20)),
        Decision::Fire { .. }
    ));

    sp.concurrency_policy = ConcurrencyPolicy::Allow;
    assert!(
        matches!(decide("nightly", &sp, &s, since, &active, now), Decision::Fire { ref cancel, .. } if cancel.is_empty())
    );

    sp.concurrency_policy = ConcurrencyPolicy::Replace;
    assert!(
        matches!(decide("nightly", &sp, &s, since, &active, now), Decision::Fire { ref cancel, .. } if *cancel == active)
    );
}

/// A pass that started the run of the due time but did not get to record it (a crash, or a
/// status write lost to a stale cache) is followed by one that sees that run among the
/// active ones: the time has fired, so `Replace` must not cancel it and `Forbid` must not
/// wait for it.
#[test]
fn the_run_of_the_due_time_itself_is_neither_replaced_nor_waited_for() {
    let mut sp = spec("0 2 * * *", "UTC");
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    let (since, now) = (at("2026-11-24T03:00:00Z"), at("2026-11-25T02:00:01Z"));
    let own = run_name("nightly", at("2026-11-25T02:00:00Z"));
    let active = vec!["nightly-old".to_string(), own.clone()];

    sp.concurrency_policy = ConcurrencyPolicy::Replace;
    let d = decide("nightly", &sp, &s, since, &active, now);
    assert!(
        matches!(&d, Decision::Fire { cancel, .. } if *cancel == ["nightly-old"]),
        "{d:?}"
    );
    sp.concurrency_policy = ConcurrencyPolicy::Forbid;
    let d = decide("nightly", &sp, &s, since, std::slice::from_ref(&own), now);
    assert!(
        matches!(&d, Decision::Fire { cancel, .. } if cancel.is_empty()),
        "{d:?}"
    );
    let d = decide("nightly", &sp, &s, since, &active, now);
    assert!(
        matches!(&d, Decision::Fire { .. }),
        "already started, so it is recorded as fired whatever else runs: {d:?}"
    );
}

#[test]
fn run_names_are_unique_per_scheduled_minute_and_valid() {
    let a = run_name("nightly-demo", at("2026-11-25T02:00:00Z"));
    assert_eq!(
        a,
        format!("nightly-demo-{}", at("2026-11-25T02:00:00Z").timestamp() / 60)
    );
    assert_ne!(a, run_name("nightly-demo", at("2026-11-25T02:01:00Z")));
    let long = run_name(&"x".repeat(80), at("2026-11-25T02:00:00Z"));
    assert!(long.len() <= 63, "{long}");
}

#[test]
fn history_keeps_the_newest_runs_of_each_outcome() {
    let runs: Vec<FinishedRun> = (0..10)
        .map(|i| FinishedRun {
            name: format!("r{i}"),
            succeeded: i % 2 == 0,
            finished: Utc.timestamp_opt(1_000_000 + i64::from(i) * 60, 0).unwrap(),
        })
        .collect();
    let mut deleted = history_to_delete(&runs, 2, 1);
    deleted.sort();
    // Succeeded: r8, r6 kept; r4, r2, r0 deleted. Failed: r9 kept; r7, r5, r3, r1 deleted.
    assert_eq!(deleted, vec!["r0", "r1", "r2", "r3", "r4", "r5", "r7"]);
    assert!(history_to_delete(&runs, 7, 14).is_empty());
    assert_eq!(history_to_delete(&runs, 0, 0).len(), 10);
}

#[test]
fn check_spec_refuses_negative_deadlines_and_bad_timeouts() {
    let mut sp = spec("0 2 * * *", "UTC");
    sp.starting_deadline_seconds = Some(-1);
    assert_eq!(check_spec(&sp).unwrap_err().field, "startingDeadlineSeconds");
    sp.starting_deadline_seconds = None;
    sp.timeout = Some("forever".into());
    assert_eq!(check_spec(&sp).unwrap_err().field, "timeout");
}

#[test]
fn the_second_pass_of_a_repeated_hour_does_not_fire_again() {
    let sp = spec("30 1 * * *", "America/New_York");
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    let first = at("2026-11-01T05:30:00Z");
    let d = decide(
        "nightly",
        &sp,
        &s,
        at("2026-10-31T12:00:00Z"),
        &[],
        at("2026-11-01T05:30:02Z"),
    );
    assert!(
        matches!(d, Decision::Fire { scheduled, .. } if scheduled == first),
        "{d:?}"
    );
    // Woken during the repeated hour (01:30 EST = 06:30Z): nothing is due.
    for now in [
        "2026-11-01T06:30:00Z",
        "2026-11-01T06:30:05Z",
        "2026-11-01T08:00:00Z",
    ] {
        let d = decide("nightly", &sp, &s, first, &[], at(now));
        assert!(matches!(d, Decision::Wait { .. }), "{now}: {d:?}");
    }
}

#[test]
fn a_schedule_that_never_fires_is_refused_and_a_leap_day_is_not() {
    let never = Schedule::parse("0 0 30 2 *", "UTC").unwrap_err();
    assert_eq!(never.field, "schedule");
    assert!(never.message.contains("never fires"), "{}", never.message);
    assert!(Schedule::parse("0 0 31 4 *", "UTC").is_err(), "April has 30 days");
    assert!(Schedule::parse("0 0 29 2 *", "UTC").is_ok(), "leap years have it");
}

#[test]
fn a_run_started_by_hand_becomes_the_schedules_last_run() {
    let made = |name: &str, when: &str| {
        let mut r = crate::crd::TestRun::test(name, RunTemplate::test("demo")).nightly();
        r.metadata.annotations =
            Some([(crate::crd::ANNOTATION_CREATED.to_string(), when.to_string())].into());
        r
    };
    let runs = vec![
        made("demo-nightly-0501", "2026-05-01T02:00:00Z"),
        made("demo-nightly-manual-x1", "2026-05-01T09:30:00Z"),
        made("demo-nightly-0430", "2026-04-30T02:00:00Z"),
    ];
    assert_eq!(newest_run(&runs).as_deref(), Some("demo-nightly-manual-x1"));
    assert_eq!(newest_run(&[]), None);

    let sp = spec("0 2 * * *", "UTC");
    let s = Schedule::parse(&sp.schedule, &sp.time_zone).unwrap();
    let now = at("2026-05-01T09:31:00Z");
    let wait = decide("nightly", &sp, &s, at("2026-05-01T02:00:00Z"), &[], now);
    let mut st = NightlyScheduleStatus {
        last_run: Some("demo-nightly-0501".into()),
        ..Default::default()
    };
    record(&mut st, &wait, None, newest_run(&runs), vec![], false, now);
    assert_eq!(st.last_run.as_deref(), Some("demo-nightly-manual-x1"));
    // A run the schedule starts at its time is the last run, whatever else there is.
    let fired = Some((at("2026-05-02T02:00:00Z"), "demo-nightly-0502".to_string()));
    record(&mut st, &wait, fired, newest_run(&runs), vec![], false, now);
    assert_eq!(st.last_run.as_deref(), Some("demo-nightly-0502"));
}
