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
use crate::crd::{Attempt, TestRun};
use crate::launch::job::{JobState, job_state, pod_launch_failure};
use crate::packs::Service;
use crate::results::upload::AttemptResults;

/// The stored part (as a shard's results are stored) holding the Job's results.
pub const LOCAL_PART: u32 = 0;
/// The stored part holding the Aqua launches' results.
pub const AQUA_PART: u32 = 1;

/// One set of results from both parts: the Job's reports and Aqua's, the Job's log followed by
/// Aqua's launch links, the Job's exit code and the tests it owes. Pure.
pub fn merge(local: &StoredResults, aqua: &StoredResults) -> AttemptResults {
    let mut junit_gz = local.junit_parts().to_vec();
    junit_gz.extend(aqua.junit_parts().iter().cloned());
    let (allure_gz, allure_notes) = local.allure_parts();
    let mut log = local.log().unwrap_or_default();
    if !log.is_empty() && !log.ends_with('\n') {
        log.push('\n');
    }
    log.push_str("[tomato] ===== the packs run in Aqua =====\n");
    log.push_str(&aqua.log().unwrap_or_default());
    let message = match (&local.message, &aqua.message) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    AttemptResults {
        source: local.source,
        exit_code: local.exit_code,
        signal: local.signal,
        junit_gz,
        log: log.into_bytes(),
        message,
        owed: local.owed.clone(),
        allure_gz: allure_gz.to_vec(),
        allure_notes: allure_notes.to_vec(),
    }
}

/// The running mixed attempt (the `seq`-th launch, its Job `job_name`): ended once both
/// parts' results are merged; else the Aqua part's next step and a look at the Job.
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
    if let Some(stored) = ctx.results.load(run, seq).await? {
        return testrun::end_attempt(run, ctx, svc, attempt, &stored, state.as_ref()).await;
    }
    let aqua = ctx.results.load_for(run, seq, Some(AQUA_PART)).await?;
    let local = ctx.results.load_for(run, seq, Some(LOCAL_PART)).await?;
    if let (Some(local), Some(aqua)) = (&local, &aqua) {
        ctx.results
            .store_or_cut(run, seq, None, &merge(local, aqua))
            .await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let mut next = ctx.timing.poll;
    if aqua.is_none() {
        match super::aqua::observe(run, ctx, svc, seq, attempt, Some(AQUA_PART)).await? {
            Ok(after) => next = next.min(after),
            Err(end) => {
                if job.is_some() {
                    testrun::stop_job(&jobs, job_name).await?;
                }
                return testrun::record(run, ctx, svc, &end).await;
            }
        }
    }
    if local.is_none() {
        match state {
            None => return testrun::job_disappeared(run, ctx, job_name).await,
            Some(JobState::Active) => {
                let pods = testrun::job_pods(ctx, &ns, job_name).await?;
                if let Some(why) = pods.iter().find_map(pod_launch_failure) {
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
        let merged = StoredResults::of(&merge(&local, &aqua));
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
}
