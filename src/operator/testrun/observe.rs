//! The attempt in flight: its Job (or Aqua launch) watched until its results are stored, its
//! pods' launch failures, a vanished Job, and the pod log read when no upload came.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::controller::Action;

use super::{record, stop_job};
use crate::core::AttemptEnd;
use crate::crd::{Attempt, AttemptState, TestRun};
use crate::launch::job::{
    JobState, LABEL_JOB_NAME, TEST_CONTAINER, job_name, job_state, pod_completion_index, pod_exit_code,
    pod_launch_failure,
};
use crate::operator::context::{Context, Error, write_status};
use crate::operator::results::StoredResults;
use crate::packs::Service;
use crate::results::upload::{AttemptResults, Source};

/// The attempt in flight: ended (results stored), stuck, gone, or still running.
pub(super) async fn observe(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    seq: usize,
    attempt: &Attempt,
) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let job_name = attempt
        .launch
        .clone()
        .unwrap_or_else(|| job_name(&run.name_any(), seq));
    let jobs: Api<Job> = ctx.api(&ns);
    let job = jobs.get_opt(&job_name).await?;
    let state = job.as_ref().map(job_state);
    if attempt.mixed {
        return crate::operator::mixed::observe(run, ctx, svc, seq, attempt, &job_name).await;
    }
    if let Some(stored) = ctx.results.load(run, seq).await? {
        return end_attempt(run, ctx, svc, attempt, &stored, state.as_ref()).await;
    }
    if let (Some(job), Some(state), false) = (&job, &state, attempt.shards.is_empty()) {
        let pods = job_pods(ctx, &ns, &job_name).await?;
        if *state == JobState::Active
            && let Some(why) = pods.iter().find_map(pod_launch_failure)
        {
            return launch_failed(run, ctx, svc, attempt, &jobs, &job_name, why).await;
        }
        return crate::operator::shards::observe(run, ctx, svc, seq, attempt, job, state, &pods).await;
    }
    match state {
        None => job_disappeared(run, ctx, &job_name).await,
        Some(JobState::Active) => {
            let pods = job_pods(ctx, &ns, &job_name).await?;
            if let Some(why) = pods.iter().find_map(pod_launch_failure) {
                return launch_failed(run, ctx, svc, attempt, &jobs, &job_name, why).await;
            }
            Ok(Action::requeue(ctx.timing.poll))
        }
        Some(finished) => {
            let since = finished.finished_at().unwrap_or_else(Utc::now);
            let waited = (Utc::now() - since).to_std().unwrap_or_default();
            if waited < ctx.timing.upload_grace {
                return Ok(Action::requeue(ctx.timing.upload_grace - waited));
            }
            store_pod_log(run, ctx, seq, &job_name, None).await?;
            Ok(Action::requeue(Duration::from_millis(100)))
        }
    }
}

/// The attempt's Job is gone before it reported (deleted by hand, or garbage-collected): the
/// attempt is interrupted, and launched again.
pub(in crate::operator) async fn job_disappeared(
    run: &TestRun,
    ctx: &Context,
    job_name: &str,
) -> Result<Action, Error> {
    let why = format!("its Job {job_name} disappeared before it reported; launched again");
    write_status(&ctx.client, run, |st| {
        st.stop_attempt(AttemptState::Interrupted, &why, Utc::now());
    })
    .await?;
    ctx.event(run, true, "AttemptInterrupted", why).await;
    Ok(Action::await_change())
}

/// The running attempt of an Aqua service: its stored results end it; else the next step in
/// Aqua ([`crate::operator::aqua::observe`]), or the end that step came to.
pub(super) async fn observe_aqua(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    seq: usize,
    attempt: &Attempt,
) -> Result<Action, Error> {
    if let Some(stored) = ctx.results.load(run, seq).await? {
        return end_attempt(run, ctx, svc, attempt, &stored, None).await;
    }
    match crate::operator::aqua::observe(run, ctx, svc, seq, attempt, None).await? {
        Ok(after) => Ok(Action::requeue(after)),
        Err(end) => record(run, ctx, svc, &end).await,
    }
}

/// A pod of the attempt cannot start (its image, a missing Secret): the attempt failed to launch.
pub(in crate::operator) async fn launch_failed(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    attempt: &Attempt,
    jobs: &Api<Job>,
    job_name: &str,
    why: String,
) -> Result<Action, Error> {
    stop_job(jobs, job_name).await?;
    let end = AttemptEnd {
        number: attempt.number,
        state: AttemptState::LaunchFailed,
        exit_code: None,
        report: crate::core::ReportRead::Missing,
        message: Some(why),
        runner_error: None,
    };
    record(run, ctx, svc, &end).await
}

/// Lines of a pod's log read when no upload came.
const POD_LOG_TAIL_LINES: i64 = 50_000;

/// No upload came: record the pod's log (and exit code) as the attempt's results, or as
/// shard `shard`'s (the pod of that completion index), or as a mixed attempt's local part
/// (its Job's one pod, which has no index).
pub(in crate::operator) async fn store_pod_log(
    run: &TestRun,
    ctx: &Context,
    seq: usize,
    job_name: &str,
    shard: Option<u32>,
) -> Result<(), Error> {
    let ns = run.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = ctx.api(&ns);
    let pods = job_pods(ctx, &ns, job_name).await?;
    let pod = pods
        .iter()
        .rfind(|p| shard.is_none() || pod_completion_index(p).is_none_or(|i| Some(i) == shard));
    let (log, exit_code) = match pod {
        Some(p) => {
            // The end of the log holds the failures and the summary: ask for its last lines
            // (`limitBytes` would keep the start); `results::pack` cuts it to its last bytes.
            let params = LogParams {
                container: Some(TEST_CONTAINER.into()),
                tail_lines: Some(POD_LOG_TAIL_LINES),
                ..Default::default()
            };
            let log = pods_api
                .logs(&p.name_any(), &params)
                .await
                .unwrap_or_else(|e| format!("[tomato] the pod log could not be read either: {e}\n"));
            (log, pod_exit_code(p))
        }
        None => (
            "[tomato] the Job left no pod to read a log from\n".to_string(),
            None,
        ),
    };
    let results = AttemptResults {
        source: Source::PodLog,
        exit_code,
        signal: None,
        junit_gz: Vec::new(),
        log: log.into_bytes(),
        message: Some(format!(
            "tomato exec uploaded no results within {}s of the tests' end; its log was read from the pod",
            ctx.timing.upload_grace.as_secs()
        )),
        owed: Vec::new(),
        allure_gz: Vec::new(),
        allure_notes: Vec::new(),
    };
    ctx.results.store_or_cut(run, seq, shard, &results).await?;
    Ok(())
}

/// The pods of a Job, oldest first.
pub(in crate::operator) async fn job_pods(
    ctx: &Context,
    ns: &str,
    job_name: &str,
) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = ctx.api(ns);
    let mut items = pods
        .list(&ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job_name}")))
        .await?
        .items;
    items.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    Ok(items)
}

/// Results are stored: the attempt ended. Records it and the core's decision.
pub(in crate::operator) async fn end_attempt(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    attempt: &Attempt,
    stored: &StoredResults,
    job: Option<&JobState>,
) -> Result<Action, Error> {
    let end = attempt_end(run, svc, attempt, stored, job);
    record(run, ctx, svc, &end).await
}

/// How an attempt whose results are `stored` ended, its Job in state `job`. Pure.
pub(in crate::operator) fn attempt_end(
    run: &TestRun,
    svc: &Service,
    attempt: &Attempt,
    stored: &StoredResults,
    job: Option<&JobState>,
) -> AttemptEnd {
    let (report, _) = stored.parse(attempt.number, &svc.rerun.test_id);
    let timed_out = job.is_some_and(JobState::is_deadline_exceeded);
    let timeout = crate::launch::timeout_of(run, svc);
    let message = if timed_out {
        Some(format!("timed out after {}", crate::duration::human(timeout)))
    } else if let Some(m) = &stored.message {
        Some(m.clone())
    } else {
        stored.signal.map(|s| format!("killed by signal {s}"))
    };
    AttemptEnd {
        number: attempt.number,
        state: if timed_out {
            AttemptState::TimedOut
        } else {
            AttemptState::Finished
        },
        exit_code: stored.exit_code,
        report,
        message,
        runner_error: stored
            .log()
            .ok()
            .and_then(|log| crate::launch::runner_error(&log)),
    }
}
