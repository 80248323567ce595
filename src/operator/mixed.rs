//! Attempts whose packs run in two places in operator mode ([`crate::launch::split`]): the
//! local packs as the attempt's Job, the Aqua packs as launches the controller polls, side by
//! side (`status.attempts[].mixed`).
//!
//! Each part's results are kept apart — the Job's upload (or its pod's log) as part
//! [`LOCAL_PART`], the Aqua reports as part [`AQUA_PART`] — and once both are in they are
//! merged ([`merge`]) into the attempt's own results, from which the attempt ends like any
//! other. Each reconcile takes the Aqua part's next step ([`super::aqua::observe`], its
//! launch ids in the status, so a restarted controller polls the same launches) and looks at
//! the Job. An Aqua part that cannot go on (a launch refused, polls failing past
//! `errorRetries`, a report unreadable) ends the attempt as it would end an Aqua attempt, and
//! its Job is stopped: the next attempt, if any, runs both parts again.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::context::{Context, Error};
use super::results::StoredResults;
use super::testrun;
use crate::core::ReportRead;
use crate::crd::{Attempt, TestRun};
use crate::launch::job::{JobState, job_state, pod_launch_failure};
use crate::packs::Service;
use crate::results::upload::AttemptResults;

/// The stored part (as a shard's results are stored) holding the Job's results.
pub const LOCAL_PART: u32 = 0;
/// The stored part holding the Aqua launches' results.
pub const AQUA_PART: u32 = 1;

/// One set of results from both parts: the Job's reports (unless they cannot be read: they
/// would make the whole set unreadable, Aqua's tests with it) and Aqua's, the Job's log
/// followed by Aqua's launch links, the Job's exit code and the tests it owes. `aqua` is none
/// when the Aqua part could not go on: the Job's tests are kept all the same. Pure.
pub fn merge(local: &StoredResults, local_readable: bool, aqua: Option<&StoredResults>) -> AttemptResults {
    let mut junit_gz = Vec::new();
    let (mut allure_gz, mut allure_notes) = (Vec::new(), Vec::new());
    if local_readable {
        junit_gz.extend(local.junit_parts().iter().cloned());
        let (files, notes) = local.allure_parts();
        allure_gz.extend(files.iter().cloned());
        allure_notes.extend(notes.iter().cloned());
    }
    let mut log = local.log().unwrap_or_default();
    let mut message = local.message.clone();
    if let Some(aqua) = aqua {
        junit_gz.extend(aqua.junit_parts().iter().cloned());
        if !log.is_empty() && !log.ends_with('\n') {
            log.push('\n');
        }
        log.push_str("[tomato] ===== the packs run in Aqua =====\n");
        log.push_str(&aqua.log().unwrap_or_default());
        message = crate::text::joined(message, aqua.message.clone());
    }
    AttemptResults {
        source: local.source,
        exit_code: local.exit_code,
        signal: local.signal,
        junit_gz,
        log: log.into_bytes(),
        message,
        owed: local.owed.clone(),
        allure_gz,
        allure_notes,
    }
}

/// What the Job's own report says, when it is not a report of tests: missing (the packs run
/// locally wrote none) or unreadable. Decides the attempt's report as standalone mode's
/// `combine` does, although Aqua's tests are there: the local packs' outcome is unknown.
pub fn local_trouble(local: &StoredResults, number: u32, svc: &Service) -> Option<ReportRead> {
    match local.parse(number, &svc.rerun.test_id).0 {
        ReportRead::Found(_) => None,
        other => Some(other),
    }
}

/// The running mixed attempt (the `seq`-th launch, its Job `job_name`): ended once both
/// parts' results are merged; else a look at the Job, then the Aqua part's next step.
pub(super) async fn observe(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    seq: usize,
    attempt: &Attempt,
    job_name: &str,
) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let jobs: Api<Job> = ctx.api(&ns);
    let job = jobs.get_opt(job_name).await?;
    let state = job.as_ref().map(job_state);
    let local = ctx.results.load_for(run, seq, Some(LOCAL_PART)).await?;
    let aqua = ctx.results.load_for(run, seq, Some(AQUA_PART)).await?;
    if let Some(stored) = ctx.results.load(run, seq).await? {
        let mut end = testrun::attempt_end(run, svc, attempt, &stored, state.as_ref());
        if aqua.is_none() {
            // Kept without the Aqua part, which could not go on (a reconcile that recorded
            // that lost its status write): the attempt ends in that error again.
            let why = stored
                .message
                .clone()
                .unwrap_or_else(|| "the Aqua part ended without results".into());
            end.report = ReportRead::Invalid(why);
            return testrun::record(run, ctx, svc, &end).await;
        }
        if let Some(trouble) = local
            .as_deref()
            .and_then(|l| local_trouble(l, attempt.number, svc))
        {
            if trouble == ReportRead::Missing {
                let said = "the packs run locally wrote no report".to_string();
                end.message = crate::text::joined(end.message, Some(said));
            }
            end.report = trouble;
        }
        return testrun::record(run, ctx, svc, &end).await;
    }
    if let (Some(local), Some(aqua)) = (&local, &aqua) {
        let readable = !matches!(
            local_trouble(local, attempt.number, svc),
            Some(ReportRead::Invalid(_))
        );
        ctx.results
            .store_or_cut(run, seq, None, &merge(local, readable, Some(aqua)))
            .await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    // The Job first: its trouble ends the attempt before Aqua is asked anything more. Its
    // end wakes the run (the Job is watched); the poll looks for a pod stuck on its image.
    // Once its results are in, Aqua's own interval (and backoff) alone sets the pace.
    let mut next = Duration::MAX;
    if local.is_none() {
        next = ctx.timing.poll;
        match &state {
            None => return testrun::job_disappeared(run, ctx, job_name).await,
            Some(JobState::Active) => {
                let pods = testrun::job_pods(ctx, &ns, job_name).await?;
                if let Some(why) = pods.iter().find_map(pod_launch_failure) {
                    // Nothing of the attempt can be judged: its launches in Aqua are stopped too.
                    let (going, revoked) = super::aqua::revoke_going(svc, Some(attempt)).await;
                    let note = crate::launch::aqua::stopped_note(&going, revoked);
                    let why = crate::text::joined(Some(why), note).unwrap_or_default();
                    return testrun::launch_failed(run, ctx, svc, attempt, &jobs, job_name, why).await;
                }
            }
            Some(finished) => {
                let since = finished.finished_at().unwrap_or_else(chrono::Utc::now);
                let waited = (chrono::Utc::now() - since).to_std().unwrap_or_default();
                if waited < ctx.timing.upload_grace {
                    next = next.min(ctx.timing.upload_grace - waited);
                } else {
                    testrun::store_pod_log(run, ctx, seq, job_name, Some(LOCAL_PART)).await?;
                    next = Duration::from_millis(100);
                }
            }
        }
    }
    if aqua.is_none() {
        match super::aqua::observe(run, ctx, svc, seq, attempt, Some(AQUA_PART)).await? {
            Ok(after) => next = next.min(after),
            Err(end) => {
                // The Aqua part cannot go on. The Job's tests, when in, are kept; a Job still
                // running is stopped (its tests would be judged without the Aqua packs').
                match &local {
                    Some(local) => {
                        let readable = local_trouble(local, attempt.number, svc).is_none();
                        let mut kept = merge(local, readable, None);
                        kept.message = end.message.clone();
                        ctx.results.store_or_cut(run, seq, None, &kept).await?;
                    }
                    None if job.is_some() => testrun::stop_job(&jobs, job_name).await?,
                    None => {}
                }
                return testrun::record(run, ctx, svc, &end).await;
            }
        }
    }
    Ok(Action::requeue(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::upload::{Owed, Source, gzip};

    fn part(junit: &str, log: &str, exit_code: Option<i32>, message: Option<&str>) -> StoredResults {
        StoredResults::of(&AttemptResults {
            source: Source::Upload,
            exit_code,
            signal: None,
            junit_gz: vec![gzip(junit.as_bytes())],
            log: log.as_bytes().to_vec(),
            message: message.map(str::to_string),
            owed: Vec::new(),
            allure_gz: Vec::new(),
            allure_notes: Vec::new(),
        })
    }

    #[test]
    fn both_parts_are_one_set_of_tests_with_the_jobs_exit_code_and_both_logs() {
        let mut local = part(
            r#"<testsuite><testcase classname="t" name="web"><failure message="x"/></testcase></testsuite>"#,
            "pytest: 1 failed",
            Some(1),
            None,
        );
        local.owed.push(Owed {
            id: "t::gone".into(),
            message: "not reported".into(),
            kind: String::new(),
        });
        let aqua = part(
            r#"<testsuite><testcase classname="farm" name="checkout"/></testsuite>"#,
            "[tomato] Aqua launch L1 of pack farm: https://aqua/L1\n",
            None,
            Some("restarted"),
        );
        let merged = StoredResults::of(&merge(&local, true, Some(&aqua)));
        let (read, results) = merged.parse(2, &crate::results::TestIdStyle::default());
        assert_eq!(read, crate::core::ReportRead::Found(3));
        let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(results.iter().all(|r| r.attempt == 2));
        assert_eq!(merged.exit_code, Some(1), "the Job's");
        let log = merged.log().unwrap();
        assert!(
            log.starts_with(
                "pytest: 1 failed\n[tomato] ===== the packs run in Aqua =====\n[tomato] Aqua launch L1"
            ),
            "{log}"
        );
        assert_eq!(merged.message.as_deref(), Some("restarted"));
    }

    #[test]
    fn an_unreadable_local_report_leaves_aqua_tests_readable_and_is_named() {
        let cfg = crate::packs::PacksConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packs_config"
        )))
        .unwrap();
        let svc = (**cfg.service("demo-py").unwrap()).clone();
        let local = part("<testsuite><testcase", "pytest crashed", Some(2), None);
        let Some(crate::core::ReportRead::Invalid(why)) = local_trouble(&local, 1, &svc) else {
            panic!("a broken report is trouble");
        };
        assert!(!why.is_empty());
        let aqua = part(
            r#"<testsuite><testcase classname="farm" name="checkout"/></testsuite>"#,
            "",
            None,
            None,
        );
        let merged = StoredResults::of(&merge(&local, false, Some(&aqua)));
        let (read, results) = merged.parse(1, &svc.rerun.test_id);
        assert_eq!(read, crate::core::ReportRead::Found(1), "Aqua's test, readable");
        assert_eq!(results[0].case.name, "checkout");
        let empty = StoredResults::of(&AttemptResults {
            junit_gz: Vec::new(),
            ..merge(&local, true, None)
        });
        assert_eq!(
            local_trouble(&empty, 1, &svc),
            Some(crate::core::ReportRead::Missing)
        );
    }

    #[test]
    fn without_the_aqua_part_the_jobs_tests_are_kept() {
        let local = part(
            r#"<testsuite><testcase classname="t" name="web"/></testsuite>"#,
            "pytest: 1 passed",
            Some(0),
            None,
        );
        let kept = StoredResults::of(&merge(&local, true, None));
        let (read, _) = kept.parse(1, &crate::results::TestIdStyle::default());
        assert_eq!(read, crate::core::ReportRead::Found(1));
        assert_eq!(kept.log().unwrap(), "pytest: 1 passed", "no Aqua section");
    }
}
