use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::crd::{FilesRetention, Phase, RunRetention, RunTemplate, TestRun, TestRunStatus};

const DAY: Duration = Duration::from_secs(86_400);

fn at(day: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(day)
}

/// A run of `outcome` that finished on `day`.
fn run(name: &str, outcome: Outcome, day: i64) -> RunFacts {
    RunFacts {
        name: name.into(),
        finished: Some(at(day)),
        outcome,
        over: RunOverride::default(),
        files_expired: false,
        referenced: false,
    }
}

fn ok(name: &str, day: i64) -> RunFacts {
    run(name, Outcome::Successful, day)
}

fn bad(name: &str, day: i64) -> RunFacts {
    run(name, Outcome::Failed, day)
}

fn ages(successful: u64, failed: u64) -> Policy {
    Policy {
        successful: Limits {
            max_age: Some(DAY * successful as u32),
            runs: None,
        },
        failed: Limits {
            max_age: Some(DAY * failed as u32),
            runs: None,
        },
        files: None,
    }
}

fn counts(successful: u32, failed: u32) -> Policy {
    Policy {
        successful: Limits {
            max_age: None,
            runs: Some(successful),
        },
        failed: Limits {
            max_age: None,
            runs: Some(failed),
        },
        files: None,
    }
}

#[test]
fn a_run_goes_at_exactly_its_max_age_and_not_a_second_before() {
    let policy = ages(30, 90);
    let runs = [ok("green", 0), bad("red", 0)];
    let just_before = at(30) - chrono::Duration::seconds(1);
    assert_eq!(decide(&policy, &runs, just_before), Decision::default());
    assert_eq!(decide(&policy, &runs, at(30)).delete, ["green"]);
    assert_eq!(
        decide(&policy, &runs, at(90) - chrono::Duration::seconds(1)).delete,
        ["green"]
    );
    assert_eq!(decide(&policy, &runs, at(90)).delete, ["green", "red"]);
}

#[test]
fn count_limits_keep_the_newest_of_each_outcome_apart() {
    let policy = counts(2, 1);
    let runs = [
        ok("s1", 1),
        ok("s2", 2),
        ok("s3", 3),
        bad("f1", 1),
        bad("f2", 2),
        ok("s4", 4),
    ];
    let d = decide(&policy, &runs, at(5));
    // The newest two successful (s4, s3) and the newest failed (f2) stay.
    assert_eq!(d.delete, ["f1", "s1", "s2"]);
}

#[test]
fn with_only_runs_set_the_newest_stay_however_old() {
    let policy = counts(3, 3);
    let runs = [ok("a", 0), ok("b", 1), bad("c", 2)];
    assert_eq!(decide(&policy, &runs, at(100_000)), Decision::default());
}

#[test]
fn cancelled_and_error_runs_count_with_failed() {
    assert_eq!(Outcome::of(Phase::Succeeded), Some(Outcome::Successful));
    for p in [Phase::Failed, Phase::Error, Phase::Cancelled] {
        assert_eq!(Outcome::of(p), Some(Outcome::Failed), "{p}");
    }
    for p in [Phase::Queued, Phase::Running, Phase::Retrying, Phase::Reporting] {
        assert_eq!(Outcome::of(p), None, "{p} is not finished");
    }
}

#[test]
fn both_limits_are_upper_bounds_each_on_its_own() {
    let policy = Policy {
        successful: Limits {
            max_age: Some(DAY * 10),
            runs: Some(2),
        },
        ..Policy::default()
    };
    let runs = [ok("old", 0), ok("mid", 8), ok("new", 9), ok("newest", 9)];
    // At day 9 `mid` and `old` are beyond the newest two; none is 10 days old yet.
    assert_eq!(decide(&policy, &runs, at(9)).delete, ["mid", "old"]);
    // At day 19 everything is past 10 days, the newest two included.
    assert_eq!(decide(&policy, &runs, at(19)).delete.len(), 4);
}

#[test]
fn unfinished_runs_are_never_touched_nor_counted() {
    let policy = Policy {
        files: Some(DAY),
        ..counts(1, 1)
    };
    let mut queued = ok("queued", 0);
    queued.finished = None;
    let runs = [queued, ok("done", 1), ok("older", 0)];
    let d = decide(&policy, &runs, at(100));
    assert_eq!(d.delete, ["older"]);
    assert_eq!(d.expire_files, ["done"]);
}

#[test]
fn pinned_runs_are_neither_counted_nor_deleted_nor_lose_files() {
    let policy = Policy {
        files: Some(DAY),
        ..counts(1, 1)
    };
    let mut pinned = ok("release", 5);
    pinned.over.keep = true;
    let runs = [pinned, ok("a", 1), ok("b", 2)];
    let d = decide(&policy, &runs, at(1000));
    // `b` is the newest counted run (the pinned one is newer but not counted).
    assert_eq!(d.delete, ["a"]);
    assert_eq!(d.expire_files, ["b"]);
    let aged = decide(&ages(1, 1), &runs, at(1000));
    assert_eq!(aged.delete, ["a", "b"]);
}

#[test]
fn a_runs_own_max_age_replaces_the_services_limits() {
    let mut long = ok("long", 0);
    long.over.max_age = Some(DAY * 365);
    let mut short = ok("short", 0);
    short.over.max_age = Some(DAY);
    let runs = [long, short, ok("plain", 0)];
    let policy = Policy {
        successful: Limits {
            max_age: Some(DAY * 30),
            runs: Some(1),
        },
        ..Policy::default()
    };
    // `plain` is the only counted run: it stays by count until 30 days.
    assert_eq!(decide(&policy, &runs, at(1)).delete, ["short"]);
    assert_eq!(decide(&policy, &runs, at(30)).delete, ["plain", "short"]);
    assert_eq!(decide(&policy, &runs, at(365)).delete, ["long", "plain", "short"]);
    // Even a service that keeps everything honours a run's own limit.
    assert_eq!(decide(&Policy::default(), &runs, at(1)).delete, ["short"]);
}

#[test]
fn referenced_runs_are_counted_but_kept_and_may_lose_files() {
    let policy = Policy {
        files: Some(DAY),
        ..counts(1, 1)
    };
    let mut last = ok("last", 0);
    last.referenced = true;
    let runs = [last, ok("newer", 3)];
    let d = decide(&policy, &runs, at(10));
    assert_eq!(d.delete, Vec::<String>::new());
    assert_eq!(d.expire_files, ["last", "newer"]);
    let d = decide(&ages(1, 1), &runs, at(10));
    assert_eq!(d.delete, ["newer"]);
}

#[test]
fn files_expire_sooner_than_runs_once_and_not_for_deleted_runs() {
    let policy = Policy {
        files: Some(DAY * 7),
        ..ages(30, 30)
    };
    let mut gone = ok("gone-files", 0);
    gone.files_expired = true;
    let runs = [ok("fresh", 5), ok("week-old", 0), gone, ok("month-old", -30)];
    let d = decide(&policy, &runs, at(7));
    assert_eq!(d.delete, ["month-old"]);
    assert_eq!(d.expire_files, ["week-old"], "each run's files expire once");
    // A run's own files limit wins over the service's.
    let mut own = ok("own", 0);
    own.over.files_max_age = Some(DAY);
    assert_eq!(decide(&Policy::default(), &[own], at(1)).expire_files, ["own"]);
}

#[test]
fn no_policy_keeps_everything() {
    let runs = [ok("a", -10_000), bad("b", -10_000)];
    assert!(Policy::default().keeps_everything());
    assert_eq!(decide(&Policy::default(), &runs, at(0)), Decision::default());
}

fn stored(name: &str, service: &str, phase: Phase, finished: Option<DateTime<Utc>>) -> TestRun {
    let mut r = TestRun::test(
        name,
        RunTemplate {
            service: service.into(),
            stand: "localhost".into(),
            category: None,
            packs: vec![],
            priority: crate::crd::Priority::DEFAULT,
            emails: vec![],
            issue_key: None,
            version: None,
            retries: None,
            shards: None,
            env: vec![],
        },
    );
    r.metadata.namespace = Some("default".into());
    r.status = Some(TestRunStatus {
        phase,
        finished_at: finished,
        ..TestRunStatus::default()
    });
    r
}

#[test]
fn facts_read_phase_finish_override_and_expired_files() {
    let mut r = stored("r", "demo", Phase::Cancelled, Some(at(3)));
    r.spec.retention = Some(RunRetention {
        max_age: Some("2d".into()),
        files: Some(FilesRetention {
            max_age: Some("12h".into()),
        }),
        ..RunRetention::default()
    });
    r.metadata
        .annotations
        .get_or_insert_default()
        .insert(ANNOTATION_FILES_EXPIRED.into(), at(4).to_rfc3339());
    let f = facts(&r, true);
    assert_eq!(f.finished, Some(at(3)));
    assert_eq!(f.outcome, Outcome::Failed);
    assert_eq!(f.over.max_age, Some(DAY * 2));
    assert_eq!(f.over.files_max_age, Some(Duration::from_secs(12 * 3600)));
    assert!(f.files_expired && f.referenced);
    assert_eq!(
        facts(&stored("q", "demo", Phase::Reporting, None), false).finished,
        None
    );
}

#[test]
fn an_unreadable_override_pins_the_run() {
    let mut r = stored("r", "demo", Phase::Succeeded, Some(at(0)));
    r.spec.retention = Some(RunRetention {
        max_age: Some("0d".into()),
        ..RunRetention::default()
    });
    assert!(facts(&r, false).over.keep);
    assert_eq!(
        check_override(r.spec.retention.as_ref().unwrap())
            .unwrap_err()
            .field,
        "retention.maxAge"
    );
    let both = RunRetention {
        keep: true,
        max_age: Some("1d".into()),
        files: None,
    };
    assert_eq!(check_override(&both).unwrap_err().field, "retention");
    let files = RunRetention {
        files: Some(FilesRetention {
            max_age: Some("7x".into()),
        }),
        ..RunRetention::default()
    };
    assert_eq!(
        check_override(&files).unwrap_err().field,
        "retention.files.maxAge"
    );
}

#[test]
fn plan_groups_by_namespace_and_service_and_skips_services_without_policy() {
    let policy = counts(1, 1);
    let mut other_ns = stored("x2", "demo", Phase::Succeeded, Some(at(2)));
    other_ns.metadata.namespace = Some("team-b".into());
    let runs = vec![
        stored("a1", "demo", Phase::Succeeded, Some(at(1))),
        stored("a2", "demo", Phase::Succeeded, Some(at(2))),
        other_ns,
        stored("b1", "unlisted", Phase::Succeeded, Some(at(1))),
        stored("b2", "unlisted", Phase::Succeeded, Some(at(2))),
    ];
    let steps = plan(
        &runs,
        |s| (s == "demo").then_some(&policy),
        &HashSet::new(),
        at(10),
    );
    assert_eq!(
        steps,
        [Step {
            namespace: "default".into(),
            run: "a1".into(),
            action: Action::Delete
        }]
    );
    // A run's own age limit holds in a service without retention.
    let mut own = stored("b0", "unlisted", Phase::Succeeded, Some(at(1)));
    own.spec.retention = Some(RunRetention {
        max_age: Some("2d".into()),
        ..RunRetention::default()
    });
    let with_own: Vec<TestRun> = runs.iter().cloned().chain([own]).collect();
    let steps = plan(
        &with_own,
        |s| (s == "demo").then_some(&policy),
        &HashSet::new(),
        at(10),
    );
    let deleted: Vec<&str> = steps.iter().map(|s| s.run.as_str()).collect();
    assert_eq!(deleted, ["a1", "b0"]);
    let referenced = HashSet::from([("default".to_string(), "a1".to_string())]);
    assert!(plan(&runs, |s| (s == "demo").then_some(&policy), &referenced, at(10)).is_empty());
}

fn arb_run() -> impl Strategy<Value = RunFacts> {
    (
        0..40usize,
        proptest::option::weighted(0.8, 0..100i64),
        any::<bool>(),
        proptest::option::weighted(0.1, Just(())),
        proptest::option::weighted(0.2, 1..50u64),
        proptest::option::weighted(0.2, 1..50u64),
        any::<bool>(),
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(n, day, success, keep, own, own_files, files_expired, referenced)| RunFacts {
                name: format!("run-{n}"),
                finished: day.map(at),
                outcome: if success {
                    Outcome::Successful
                } else {
                    Outcome::Failed
                },
                over: RunOverride {
                    keep: keep.is_some(),
                    max_age: own.map(|d| DAY * d as u32),
                    files_max_age: own_files.map(|d| DAY * d as u32),
                },
                files_expired,
                referenced,
            },
        )
}

fn arb_limits() -> impl Strategy<Value = Limits> {
    (proptest::option::of(1..60u64), proptest::option::of(1..10u32)).prop_map(|(days, runs)| Limits {
        max_age: days.map(|d| DAY * d as u32),
        runs,
    })
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (arb_limits(), arb_limits(), proptest::option::of(1..60u64)).prop_map(|(successful, failed, files)| {
        Policy {
            successful,
            failed,
            files: files.map(|d| DAY * d as u32),
        }
    })
}

proptest! {
    #[test]
    fn never_deletes_unfinished_pinned_or_referenced_runs_and_deletions_only_grow_with_time(
        runs in proptest::collection::vec(arb_run(), 0..30),
        policy in arb_policy(),
        t1 in 0..200i64,
        dt in 0..200i64,
    ) {
        // Names are unique within a service.
        let mut seen = HashSet::new();
        let runs: Vec<RunFacts> = runs.into_iter().filter(|r| seen.insert(r.name.clone())).collect();
        let early = decide(&policy, &runs, at(t1));
        let late = decide(&policy, &runs, at(t1 + dt));
        for d in [&early, &late] {
            for name in d.delete.iter().chain(&d.expire_files) {
                let r = runs.iter().find(|r| &r.name == name).unwrap();
                prop_assert!(r.finished.is_some(), "{name} is unfinished");
                prop_assert!(!r.over.keep, "{name} is pinned");
            }
            for name in &d.delete {
                let r = runs.iter().find(|r| &r.name == name).unwrap();
                prop_assert!(!r.referenced, "{name} is referenced");
                prop_assert!(!d.expire_files.contains(name), "{name} both deleted and expired");
            }
            for name in &d.expire_files {
                let r = runs.iter().find(|r| &r.name == name).unwrap();
                prop_assert!(!r.files_expired, "{name}'s files expired twice");
            }
        }
        for name in &early.delete {
            prop_assert!(late.delete.contains(name), "{name} deleted at {t1} but not later");
        }
        // What lost its files early is later either still expired or deleted.
        for name in &early.expire_files {
            prop_assert!(late.delete.contains(name) || late.expire_files.contains(name));
        }
    }
}

#[test]
fn the_pass_interval_defaults_to_ten_minutes_and_names_the_variable_when_bad() {
    assert_eq!(interval(None), Ok(DEFAULT_INTERVAL));
    assert_eq!(interval(Some("")), Ok(DEFAULT_INTERVAL));
    assert_eq!(interval(Some("30s")), Ok(Duration::from_secs(30)));
    assert!(
        interval(Some("0s"))
            .unwrap_err()
            .starts_with("TOMATO_RETENTION_INTERVAL:")
    );
}
