//! The TestRun controller: operator mode's twin of the standalone driver.
//!
//! `reconcile` is level-triggered: from the run's status and what exists in the cluster (its
//! Jobs, its results ConfigMaps) it takes the one next step the shared core
//! ([`crate::core::next_step`], [`crate::core::decide_end`]) decides, and writes the outcome
//! through the status subresource with the run's resourceVersion, so a step is never taken
//! twice on stale state. Every child is named deterministically (`<run>-<n>` for the n-th
//! launch) and applied with server-side apply, so a reconcile repeated after a crash or by a
//! new leader adopts what exists instead of creating it again.
//!
//! Admission from the queue is not here but in [`super::admission`] (one decision over all
//! runs); this controller takes a run from `Running` to its verdict, cancels it, and — through
//! the finalizer — stops its Jobs before a deleted run goes.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use tracing::{info, warn};

mod launch;
mod observe;
mod record;
mod reporting;

pub(super) use observe::{attempt_end, job_disappeared, job_pods, launch_failed, store_pod_log};
pub(super) use record::record;

use super::context::{Context, Error, write_status};
use crate::core::Step;
use crate::crd::{LABEL_RUN, Phase, TestRun, Verdict};
use crate::launch::job::{JobState, job_state, label_value};

/// The finalizer that stops a run's Jobs before the run is deleted.
pub const FINALIZER: &str = "tomato.dev/stop-jobs";

/// Reconciles one TestRun.
pub async fn reconcile(run: Arc<TestRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The store holds this change now: the queue may have moved.
    ctx.queue.wake();
    let api: Api<TestRun> = ctx.api(&run.namespace().unwrap_or_default());
    // A finished run has no Jobs left to stop: it gives its finalizer back, so deleting it (or
    // its namespace) never waits for an operator that may be gone by then.
    let finished = run.status.as_ref().is_some_and(|s| s.phase.is_terminal());
    if finished && run.metadata.deletion_timestamp.is_none() {
        if run.finalizers().iter().any(|f| f == FINALIZER) {
            let rest: Vec<&String> = run.finalizers().iter().filter(|f| *f != FINALIZER).collect();
            let patch = serde_json::json!({"metadata": {
                "finalizers": rest,
                "resourceVersion": run.resource_version(),
            }});
            api.patch(&run.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        return Ok(Action::await_change());
    }
    finalizer(&api, FINALIZER, run, |event| async {
        match event {
            // Every step sees each rerun's tests, also those kept in the results database.
            Finalizer::Apply(run) => apply(&ctx.results.hydrate(&run).await?, &ctx).await,
            Finalizer::Cleanup(run) => cleanup(&run, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Logs the failure and retries: soon after a lost write race, later otherwise.
pub fn error_policy(run: Arc<TestRun>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        return Action::requeue(Duration::from_millis(200).min(ctx.timing.retry));
    }
    warn!(run = run.name_any(), kind = error.metric_label(), error = %error, "reconcile failed");
    Action::requeue(ctx.timing.retry)
}

async fn apply(run: &TestRun, ctx: &Context) -> Result<Action, Error> {
    let phase = run.status.as_ref().map_or(Phase::Queued, |s| s.phase);
    if phase.is_terminal() {
        return Ok(Action::await_change());
    }
    if run.spec.cancel && phase != Phase::Reporting {
        return cancel(run, ctx).await;
    }
    match phase {
        // A run applied with kubectl or GitOps was not checked by Tomato's API: the schema
        // cannot hold packs_config (its services, presets, stand patterns), so it is checked
        // here, before admission would launch anything against its stand.
        Phase::Queued => match ctx.config.check_run(&run.spec.template) {
            Err(e) => {
                let why = format!("spec.{}: {}", e.field, e.message);
                conclude(run, ctx, Verdict::Error, Some(why)).await
            }
            // Admission decides (super::admission); it is woken by every reconcile.
            Ok(_) => Ok(Action::await_change()),
        },
        Phase::Reporting => reporting::report(run, ctx).await,
        _ => advance(run, ctx).await,
    }
}

/// An admitted run: watch the attempt in flight, or take the next step.
async fn advance(run: &TestRun, ctx: &Context) -> Result<Action, Error> {
    let Some(svc) = ctx.config.service(&run.spec.template.service).cloned() else {
        let why = format!(
            "service {:?} is no longer in packs_config",
            run.spec.template.service
        );
        return conclude(run, ctx, Verdict::Error, Some(why)).await;
    };
    let status = run.status.clone().unwrap_or_default();
    if let Some(attempt) = status.running_attempt() {
        if svc.aqua.is_some() && attempt.launch.as_deref() == Some(crate::launch::aqua::LAUNCH_REF) {
            return observe::observe_aqua(run, ctx, &svc, status.attempts.len(), attempt).await;
        }
        return observe::observe(run, ctx, &svc, status.attempts.len(), attempt).await;
    }
    let max_attempts = svc.max_attempts(&run.spec.template);
    let results = ctx.results.run_results(run, &svc.rerun.test_id).await?;
    let merged = crate::core::merge_run(&status, results);
    let packs = || {
        svc.resolve_packs(run.spec.template.category.as_deref(), &run.spec.template.packs)
            .map_err(|e| e.to_string())
    };
    match crate::core::next_step(&status, &merged, max_attempts, packs) {
        None => Ok(Action::await_change()),
        Some(Step::Finish { verdict, message }) => conclude(run, ctx, verdict, message).await,
        Some(Step::Launch { number, selection }) => {
            launch::launch(run, ctx, &svc, number, selection, &merged).await
        }
    }
}

/// No attempt can follow: the verdict is final.
async fn conclude(
    run: &TestRun,
    ctx: &Context,
    verdict: Verdict,
    message: Option<String>,
) -> Result<Action, Error> {
    let m = message.clone();
    write_status(&ctx.client, run, |st| st.conclude(verdict, m, Utc::now())).await?;
    announce_verdict(run, ctx, verdict, message).await;
    Ok(Action::await_change())
}

pub(super) async fn announce_verdict(
    run: &TestRun,
    ctx: &Context,
    verdict: Verdict,
    message: Option<String>,
) {
    // The verdict is final: history may count the run as a previous comparable one now,
    // while its reports are still being delivered.
    record_finished(run, ctx, verdict.phase()).await;
    let note = match message {
        Some(m) => format!("{}: {m}", verdict.phase()),
        None => verdict.phase().to_string(),
    };
    ctx.event(run, verdict != Verdict::Succeeded, "Concluded", note)
        .await;
}

/// Records in the results database how the run finished (history's "previous comparable
/// run" reads the TestRun's own status; this keeps the database's record complete for
/// queries that outlive it). A failure is logged, not retried: the run's status stands.
pub(super) async fn record_finished(run: &TestRun, ctx: &Context, phase: Phase) {
    if let Err(e) = ctx.results.finish(run, phase).await {
        warn!(run = run.name_any(), error = %e, "the results database did not record how the run finished");
    }
}

/// `spec.cancel`: stop the run's Jobs, end the run `Cancelled`. Every unfinished Job of the
/// run is stopped, not only the recorded attempt's: a launch whose status write lost to the
/// cancel created a Job that no attempt names.
async fn cancel(run: &TestRun, ctx: &Context) -> Result<Action, Error> {
    let jobs: Api<Job> = ctx.api(&run.namespace().unwrap_or_default());
    for job in active_jobs(run, &jobs).await? {
        if job.metadata.deletion_timestamp.is_none() {
            stop_job(&jobs, &job.name_any()).await?;
        }
    }
    match ctx
        .config
        .service(&run.spec.template.service)
        .filter(|s| s.aqua.is_some())
    {
        Some(svc) => {
            let running = run.status.as_ref().and_then(|st| st.running_attempt());
            let note = super::aqua::cancel_note(svc, running).await;
            write_status(&ctx.client, run, |st| super::aqua::cancelled(st, note)).await?;
        }
        None => {
            write_status(&ctx.client, run, |st| st.cancel(Utc::now())).await?;
        }
    }
    info!(run = run.name_any(), "cancelled");
    record_finished(run, ctx, Phase::Cancelled).await;
    ctx.event(run, false, "Cancelled", "the run was cancelled".into())
        .await;
    Ok(Action::await_change())
}

/// The run's Jobs that have not finished.
async fn active_jobs(run: &TestRun, jobs: &Api<Job>) -> Result<Vec<Job>, Error> {
    let selector = format!("{LABEL_RUN}={}", label_value(&run.name_any()));
    Ok(jobs
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|j| job_state(j) == JobState::Active)
        .collect())
}

/// Deletes a Job and its pods (a missing Job is fine). Foreground deletion keeps the Job
/// until its pods are gone, so "the Job is gone" means "the tests stopped".
pub(in crate::operator) async fn stop_job(jobs: &Api<Job>, name: &str) -> Result<(), Error> {
    delete_job(jobs, name, &DeleteParams::foreground()).await
}

/// Deletes a Job as `params` say; a missing Job is fine.
pub(super) async fn delete_job(jobs: &Api<Job>, name: &str, params: &DeleteParams) -> Result<(), Error> {
    match jobs.delete(name, params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The run is being deleted: stop its unfinished Jobs first, and let it go once they are gone.
async fn cleanup(run: &TestRun, ctx: &Context) -> Result<Action, Error> {
    let jobs: Api<Job> = ctx.api(&run.namespace().unwrap_or_default());
    let running = active_jobs(run, &jobs).await?;
    for job in &running {
        if job.metadata.deletion_timestamp.is_none() {
            stop_job(&jobs, &job.name_any()).await?;
            info!(
                run = run.name_any(),
                job = job.name_any(),
                "stopped the Job of a deleted run"
            );
        }
    }
    for job in &running {
        if jobs.get_opt(&job.name_any()).await?.is_some() {
            return Err(Error::Waiting(format!(
                "Job {} is still stopping",
                job.name_any()
            )));
        }
    }
    Ok(Action::await_change())
}
