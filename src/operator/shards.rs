//! Sharded attempts in operator mode: one Indexed Job per attempt, one completion per shard
//! ([`crate::launch::job`] builds it), each index uploading its own results
//! (`?shard=<index>`, stored apart by [`super::results::pack_for`]).
//!
//! While the Job runs, each shard's progress (its counts once its upload came) is written to
//! the attempt's `status.attempts[].shards`, the same shape standalone mode writes. When every
//! index has ended, an index that uploaded nothing gets its pod's log as its results (as an
//! unsharded Job does), then the shards merge into the attempt's own results
//! (`<run>-results-<seq>`): every shard's JUnit, plus a broken result for each test a shard
//! was given and did not report ([`crate::shard::unreported`], as standalone mode does), and
//! the shards' logs one after the other. From there the attempt ends like any other: the
//! controller finds its results and records them through the shared core.
//!
//! The decisions ([`outcome`], [`merge`]) are pure; [`observe`] carries them out.

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::info;

use super::context::{Context, Error, write_status};
use super::results::StoredResults;
use crate::core::ReportRead;
use crate::crd::{Attempt, ShardState, ShardStatus, TestRun};
use crate::launch::job::{JobState, ShardLaunch};
use crate::packs::Service;
use crate::results::AttemptResult;
use crate::results::TestIdStyle;
use crate::results::upload::{AttemptResults, Owed, Source};
use crate::shard;

/// What one shard's stored results say.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub state: ShardState,
    /// Its results, with ids in the service's style (none when its report was unreadable).
    pub reported: Vec<AttemptResult>,
    /// The tests it was given and did not report, as broken results.
    pub owed: Vec<AttemptResult>,
    /// Whether its JUnit is part of the merged attempt (not when unreadable).
    pub junit_ok: bool,
    pub exit_code: Option<i32>,
    /// Why it did not finish cleanly.
    pub message: Option<String>,
}

/// Reads shard `index`'s stored results (`launch` says what it was given). `timed_out`: the
/// Job hit its deadline, so a shard that left tests unreported ran out of time. Pure.
pub fn outcome(
    index: u32,
    launch: &ShardLaunch,
    stored: &StoredResults,
    number: u32,
    style: &TestIdStyle,
    timed_out: bool,
) -> Outcome {
    let (read, reported) = stored.parse(number, style);
    let unreadable = match &read {
        ReportRead::Invalid(e) => Some(e.clone()),
        _ => None,
    };
    let why = match (stored.signal, &unreadable, stored.exit_code) {
        _ if timed_out => format!("shard {index} timed out"),
        (Some(s), _, _) => format!("shard {index} was killed by signal {s}"),
        (_, Some(e), _) => format!("shard {index}'s report is unreadable: {e}"),
        (None, None, Some(c)) => format!("shard {index} crashed (exit code {c})"),
        (None, None, None) => format!("shard {index} ended without an exit code"),
    };
    let owed = shard::unreported(number, launch.unit(), &launch.items, &reported, &why);
    let state = if owed.is_empty() && unreadable.is_none() {
        ShardState::Finished
    } else if timed_out {
        ShardState::TimedOut
    } else {
        ShardState::Crashed
    };
    let message = (state != ShardState::Finished).then(|| {
        let mut m = why;
        if !owed.is_empty() {
            m.push_str(&format!("; {} of its tests not reported", owed.len()));
        }
        if stored.source == Source::PodLog {
            m.push_str("; no upload came, its log was read from the pod");
        }
        m
    });
    Outcome {
        state,
        reported,
        owed,
        junit_ok: unreadable.is_none(),
        exit_code: stored.exit_code,
        message,
    }
}

/// A shard's status with its outcome applied.
pub fn ended(mut status: ShardStatus, o: &Outcome, now: chrono::DateTime<Utc>) -> ShardStatus {
    status.state = o.state;
    status.passed = 0;
    status.failed = 0;
    status.skipped = 0;
    status.broken = 0;
    shard::count(&mut status, &o.reported);
    shard::count(&mut status, &o.owed);
    status.exit_code = o.exit_code;
    status.message = o.message.clone();
    status.finished_at.get_or_insert(now);
    status
}

/// The attempt's results merged from every shard's (in index order): their JUnit, what each
/// owes, their logs one after the other under a header, and the shards' problems. Pure.
pub fn merge(stored: &[StoredResults], outcomes: &[Outcome]) -> AttemptResults {
    let n = stored.len();
    let mut junit_gz = Vec::new();
    let mut log = Vec::new();
    let mut owed = Vec::new();
    let mut problems = Vec::new();
    let mut exit_code: Option<i32> = None;
    let mut allure_gz = Vec::new();
    let mut allure_notes = Vec::new();
    for (i, (s, o)) in stored.iter().zip(outcomes).enumerate() {
        if o.junit_ok {
            junit_gz.extend(s.junit_parts().iter().cloned());
            // Allure adapters name their files by UUID: the shards' never collide.
            let (files, notes) = s.allure_parts();
            allure_gz.extend(files.iter().cloned());
            allure_notes.extend(notes.iter().cloned());
        }
        log.extend_from_slice(format!("[tomato] ===== shard {i} of {n} =====\n").as_bytes());
        log.extend_from_slice(s.log().unwrap_or_default().as_bytes());
        owed.extend(o.owed.iter().map(|r| Owed {
            id: r.id.clone(),
            message: r.case.message.clone(),
            kind: r.case.kind.clone(),
        }));
        problems.extend(o.message.clone());
        // The attempt's exit code: the worst shard's (any non-zero over zero).
        exit_code = match (exit_code, o.exit_code) {
            (None, c) => c,
            (Some(a), Some(b)) if a == 0 || (b != 0 && b > a) => Some(b),
            (a, _) => a,
        };
    }
    AttemptResults {
        source: Source::Upload,
        exit_code,
        signal: None,
        junit_gz,
        log,
        message: (!problems.is_empty()).then(|| problems.join("; ")),
        owed,
        allure_gz,
        allure_notes,
    }
}

/// The running sharded attempt (`seq`-th launch, its Job in state `state`, with `pods`):
/// record each shard's progress — an index whose pod ended without an upload gets its pod's
/// log once the upload grace has passed, so a crashed shard shows while the others run —;
/// once every index has ended, store the shards' merge as the attempt's results.
#[allow(clippy::too_many_arguments)]
pub(super) async fn observe(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    seq: usize,
    attempt: &Attempt,
    job: &Job,
    state: &JobState,
    pods: &[k8s_openapi::api::core::v1::Pod],
) -> Result<Action, Error> {
    let name = run.name_any();
    let launches = ctx
        .results
        .launches(run, seq)
        .await?
        .ok_or_else(|| Error::Waiting(format!("what the shards of launch {seq} run is missing")))?;
    let timed_out = state.is_deadline_exceeded();
    // While the Job runs, only the shards still shown running are looked up (one GET each per
    // poll); once it has ended, every shard's results are read for the merge.
    let active = *state == JobState::Active;
    let mut stored: Vec<Option<std::sync::Arc<StoredResults>>> = Vec::with_capacity(launches.len());
    for i in 0..launches.len() {
        let shown_ended = attempt
            .shards
            .get(i)
            .is_some_and(|s| s.state != ShardState::Running);
        stored.push(if active && shown_ended {
            None
        } else {
            ctx.results.load_for(run, seq, Some(i as u32)).await?
        });
    }

    // Progress: a shard whose results came is shown ended, with its counts.
    let now = Utc::now();
    let mut statuses = attempt.shards.clone();
    for (i, (l, s)) in launches.iter().zip(&stored).enumerate() {
        let (Some(s), Some(status)) = (s, statuses.get_mut(i)) else {
            continue;
        };
        if status.state == ShardState::Running {
            let o = outcome(i as u32, l, s, attempt.number, &svc.rerun.test_id, timed_out);
            *status = ended(status.clone(), &o, now);
            info!(
                run = name,
                attempt = attempt.number,
                shard = i,
                state = o.state.as_str(),
                "shard ended"
            );
        }
    }
    if statuses != attempt.shards {
        let number = attempt.number;
        write_status(&ctx.client, run, move |st| {
            if let Some(a) = st.attempts.last_mut().filter(|a| a.number == number) {
                a.shards = statuses;
            }
        })
        .await?;
        return Ok(Action::requeue(std::time::Duration::from_millis(100)));
    }

    if active {
        let silent = silent_shards(
            &attempt.shards,
            &stored,
            pods,
            ctx.timing.upload_grace,
            Utc::now(),
        );
        for &i in &silent {
            super::testrun::store_pod_log(run, ctx, seq, &job.name_any(), Some(i)).await?;
        }
        return Ok(Action::requeue(if silent.is_empty() {
            ctx.timing.poll
        } else {
            std::time::Duration::from_millis(100)
        }));
    }
    // Every index has ended: an index that uploaded nothing gets its pod's log, after the
    // grace an upload still in flight may need.
    if stored.iter().any(Option::is_none) {
        let since = state.finished_at().unwrap_or_else(Utc::now);
        let waited = (Utc::now() - since).to_std().unwrap_or_default();
        if waited < ctx.timing.upload_grace {
            return Ok(Action::requeue(ctx.timing.upload_grace - waited));
        }
        for (i, _) in stored.iter().enumerate().filter(|(_, s)| s.is_none()) {
            super::testrun::store_pod_log(run, ctx, seq, &job.name_any(), Some(i as u32)).await?;
        }
        return Ok(Action::requeue(std::time::Duration::from_millis(100)));
    }
    let stored: Vec<StoredResults> = stored.into_iter().flatten().map(|s| (*s).clone()).collect();
    let outcomes: Vec<Outcome> = launches
        .iter()
        .zip(&stored)
        .enumerate()
        .map(|(i, (l, s))| outcome(i as u32, l, s, attempt.number, &svc.rerun.test_id, timed_out))
        .collect();
    let merged = merge(&stored, &outcomes);
    ctx.results.store_or_cut(run, seq, None, &merged).await?;
    info!(
        run = name,
        attempt = attempt.number,
        shards = stored.len(),
        "shards merged"
    );
    // The controller finds the attempt's results now and ends it.
    Ok(Action::requeue(std::time::Duration::from_millis(100)))
}

/// The shards shown running, with no results stored, whose pod's tests ended more than
/// `grace` ago: no upload is coming, their pod's log stands for their results. Pure.
pub fn silent_shards<T>(
    shards: &[ShardStatus],
    stored: &[Option<T>],
    pods: &[k8s_openapi::api::core::v1::Pod],
    grace: std::time::Duration,
    now: chrono::DateTime<Utc>,
) -> Vec<u32> {
    shards
        .iter()
        .filter(|s| s.state == ShardState::Running)
        .filter(|s| stored.get(s.index as usize).is_some_and(Option::is_none))
        .filter(|s| {
            // The latest pod of the index (a pod the kubelet lost is replaced).
            pods.iter()
                .rfind(|p| crate::launch::job::pod_completion_index(p) == Some(s.index))
                .and_then(crate::launch::job::pod_ended_at)
                .is_some_and(|at| (now - at).to_std().unwrap_or_default() >= grace)
        })
        .map(|s| s.index)
        .collect()
}

/// What a sharded launch starts with: each shard `Running`, with what it was given.
pub fn initial_statuses(
    job_name: &str,
    launches: &[ShardLaunch],
    now: chrono::DateTime<Utc>,
) -> Vec<ShardStatus> {
    launches
        .iter()
        .enumerate()
        .map(|(i, l)| ShardStatus {
            index: i as u32,
            state: ShardState::Running,
            tests: l.items.len() as u32,
            unit: Some(l.unit.clone()),
            expected_seconds: l.expected_seconds,
            passed: 0,
            failed: 0,
            skipped: 0,
            broken: 0,
            launch: Some(format!("Job {job_name}, index {i}")),
            exit_code: None,
            started_at: Some(now),
            finished_at: None,
            message: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RunTemplate;
    use crate::operator::results::{pack_for, unpack};
    use crate::results::upload::gzip;

    const JUNIT: &str = r#"<testsuites><testsuite name="t"><testcase classname="t" name="a"/><testcase classname="t" name="b"><failure message="no"/></testcase></testsuite></testsuites>"#;

    fn run() -> TestRun {
        let mut run = TestRun::test("demo-abc", RunTemplate::test("demo"));
        run.metadata.namespace = Some("qa".into());
        run
    }

    fn launch(unit: &str, items: &[&str]) -> ShardLaunch {
        ShardLaunch {
            argv: vec!["x".into()],
            env: vec![],
            unit: unit.into(),
            items: items.iter().map(|s| s.to_string()).collect(),
            expected_seconds: None,
        }
    }

    fn stored(shard: u32, junit: Option<&str>, exit_code: i32, log: &str) -> StoredResults {
        let results = AttemptResults {
            source: if junit.is_some() {
                Source::Upload
            } else {
                Source::PodLog
            },
            exit_code: Some(exit_code),
            signal: None,
            junit_gz: junit.map(|j| gzip(j.as_bytes())).into_iter().collect(),
            log: log.as_bytes().to_vec(),
            message: None,
            owed: vec![],
            allure_gz: Vec::new(),
            allure_notes: Vec::new(),
        };
        let maps = pack_for(&run(), 1, Some(shard), &results).unwrap();
        assert!(
            maps[0]
                .metadata
                .name
                .as_deref()
                .unwrap()
                .ends_with("-results-1-shard-0")
                || shard != 0
        );
        unpack(maps.last().unwrap(), &[]).unwrap()
    }

    #[test]
    fn a_crashed_shard_owes_its_packs_and_the_merge_keeps_the_others_results() {
        let style = TestIdStyle::default();
        let launches = [launch("packs", &["basic"]), launch("packs", &["slow"])];
        let shards = [
            stored(0, Some(JUNIT), 1, "ran\n"),
            stored(1, None, 137, "killed\n"),
        ];
        let outcomes: Vec<Outcome> = launches
            .iter()
            .zip(&shards)
            .enumerate()
            .map(|(i, (l, s))| outcome(i as u32, l, s, 1, &style, false))
            .collect();
        assert_eq!(
            outcomes[0].state,
            ShardState::Finished,
            "a failing test is not a crash"
        );
        assert_eq!(outcomes[0].reported.len(), 2);
        assert_eq!(outcomes[1].state, ShardState::Crashed);
        let why = outcomes[1].message.as_deref().unwrap();
        assert!(why.contains("shard 1 crashed (exit code 137)"), "{why}");

        let merged = merge(&shards, &outcomes);
        assert_eq!(merged.exit_code, Some(137));
        assert_eq!(merged.owed.len(), 1);
        assert_eq!(merged.owed[0].id, "slow");
        let log = String::from_utf8(merged.log.clone()).unwrap();
        assert!(log.contains("===== shard 1 of 2 =====\nkilled"), "{log}");
        // Stored and read back as the attempt's results: two from JUnit, one broken.
        let maps = super::super::results::pack(&run(), 1, &merged).unwrap();
        let back = unpack(maps.last().unwrap(), &[]).unwrap();
        let (read, all) = back.parse(1, &style);
        assert_eq!(read, ReportRead::Found(3));
        let slow = all.iter().find(|r| r.id == "slow").unwrap();
        assert_eq!(slow.case.status, crate::results::CaseStatus::Errored);

        let status = ended(
            initial_statuses("demo-abc-1", &launches, Utc::now())[1].clone(),
            &outcomes[1],
            Utc::now(),
        );
        assert_eq!(
            (status.state, status.broken, status.exit_code),
            (ShardState::Crashed, 1, Some(137))
        );
    }

    #[test]
    fn a_shard_whose_pod_ended_without_an_upload_is_read_from_its_pod_after_the_grace() {
        let launches = [
            launch("packs", &["api"]),
            launch("packs", &["slow"]),
            launch("packs", &["x"]),
        ];
        let now = Utc::now();
        let shards = initial_statuses("j", &launches, now);
        let pod = |index: u32, ended: Option<i64>| -> k8s_openapi::api::core::v1::Pod {
            let state = match ended {
                Some(ago) => serde_json::json!({"terminated": {"exitCode": 137,
                    "finishedAt": (now - chrono::Duration::seconds(ago)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}}),
                None => serde_json::json!({"running": {}}),
            };
            serde_json::from_value(serde_json::json!({
                "metadata": {"annotations": {"batch.kubernetes.io/job-completion-index": index.to_string()}},
                "status": {"containerStatuses": [{"name": "tests", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 0, "state": state}]}
            }))
            .unwrap()
        };
        let pods = [pod(0, Some(30)), pod(1, Some(30)), pod(2, None)];
        let stored = [Some(stored(0, Some(JUNIT), 1, "")), None, None];
        let grace = std::time::Duration::from_secs(10);
        // 0 uploaded, 2 still runs: only 1 is silent.
        assert_eq!(silent_shards(&shards, &stored, &pods, grace, now), [1]);
        let long_grace = std::time::Duration::from_secs(60);
        assert!(silent_shards(&shards, &stored, &pods, long_grace, now).is_empty());
    }

    #[test]
    fn a_shard_given_tests_owes_only_those_it_did_not_report() {
        let style = TestIdStyle::default();
        let l = launch("tests", &["t::a", "t::c"]);
        let o = outcome(0, &l, &stored(0, Some(JUNIT), 1, ""), 2, &style, true);
        assert_eq!(o.state, ShardState::TimedOut);
        assert_eq!(o.owed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["t::c"]);
    }
}
