//! The TestRun controller: operator mode's twin of the standalone driver.
//!
//! `reconcile` is level-triggered: from the run's status and what exists in the cluster (its
//! Jobs, its results ConfigMaps) it takes the one next step the shared core
//! ([`crate::core::next_step`], [`crate::core::record_end`]) decides, and writes the outcome
//! through the status subresource with the run's resourceVersion, so a step is never taken
//! twice on stale state. Every child is named deterministically (`<run>-<n>` for the n-th
//! launch) and applied with server-side apply, so a reconcile repeated after a crash or by a
//! new leader adopts what exists instead of creating it again.
//!
//! Admission from the queue is not here but in [`super::admission`] (one decision over all
//! runs); this controller takes a run from `Running` to its verdict, cancels it, and — through
//! the finalizer — stops its Jobs before a deleted run goes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use tracing::{info, warn};

use super::context::{Context, Error, MANAGER, write_status};
use super::results::{self, StoredResults};
use crate::core::{AttemptEnd, Next, Step};
use crate::crd::{Attempt, AttemptState, DeliveryState, LABEL_RUN, Phase, TestRun, Verdict};
use crate::integrations::delivery;
use crate::launch::job::{
    JobAttempt, JobState, LABEL_JOB_NAME, TEST_CONTAINER, TOKEN_KEY, desired_job, job_name, job_state,
    label_value, pod_completion_index, pod_exit_code, pod_launch_failure, shard_launches, token_secret_name,
};
use crate::packs::Service;
use crate::results::MergedTest;
use crate::results::upload::{AttemptResults, Source};

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
        Phase::Reporting => report(run, ctx).await,
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
            return observe_aqua(run, ctx, &svc, status.attempts.len(), attempt).await;
        }
        return observe(run, ctx, &svc, status.attempts.len(), attempt).await;
    }
    let max_attempts = 1 + u32::from(svc.retries_for(&run.spec.template));
    let results = ctx.results.run_results(run, &svc.rerun.test_id).await?;
    let merged = crate::core::merge_run(&status, results);
    let packs = || {
        svc.resolve_packs(run.spec.template.category.as_deref(), &run.spec.template.packs)
            .map_err(|e| e.to_string())
    };
    match crate::core::next_step(&status, &merged, max_attempts, packs) {
        None => Ok(Action::await_change()),
        Some(Step::Finish { verdict, message }) => conclude(run, ctx, verdict, message).await,
        Some(Step::Launch { number, selection }) => launch(run, ctx, &svc, number, selection, &merged).await,
    }
}

/// Starts attempt `number` as the run's next Job (or adopts that Job, if a crash came
/// between creating it and recording it).
async fn launch(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    number: u32,
    mut selection: crate::crd::Selection,
    merged: &[MergedTest],
) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let seq = run.status.as_ref().map_or(0, |s| s.attempts.len()) + 1;
    // A rerun of thousands of tests keeps its list in the results database, not the object.
    ctx.results.keep_selection(run, seq, &mut selection).await?;
    // Which packs Aqua runs and which a Job runs: the decision standalone mode takes too.
    let previous = run
        .status
        .as_ref()
        .and_then(|st| crate::launch::aqua::previous_of(st, &selection));
    let parts = crate::launch::split::split(svc, &selection, previous, merged);
    if parts.local.is_none() {
        // No Job: the attempt is its Aqua launches, made and polled by the next reconciles.
        write_status(&ctx.client, run, |st| {
            st.begin_attempt(
                number,
                selection,
                crate::launch::aqua::LAUNCH_REF.into(),
                Utc::now(),
            );
        })
        .await?;
        info!(
            namespace = ns,
            run = name,
            attempt = number,
            "Aqua attempt started"
        );
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    ensure_token(run, ctx).await?;
    // A mixed attempt's Job runs its local part (its packs, or its local failed tests) whole;
    // the Aqua part is made and polled by the next reconciles (super::mixed).
    let mixed = parts.is_mixed();
    let local = parts.local.clone().unwrap_or_else(|| selection.clone());
    let reruns = crate::launch::reruns(&local, merged);
    let timeout = crate::launch::timeout_of(run, svc);
    let mut attempt = JobAttempt {
        seq,
        number,
        selection: &local,
        reruns: &reruns,
        timeout,
        shards: 1,
        fetch: false,
    };
    // A sharded attempt: what each index runs goes into its ConfigMap before the Job exists.
    let sharded = svc.attempt_shards(run, &selection).filter(|_| !mixed);
    let launches = match sharded {
        Some(n) => match ensure_shards(run, ctx, svc, attempt, &reruns, n).await? {
            Some(launches) => launches,
            // Its listing Job runs; its end wakes this run again (the poll is a safety net).
            None => return Ok(Action::requeue(ctx.timing.poll)),
        },
        None => Vec::new(),
    };
    attempt.shards = launches.len().max(1);
    // With a results database, what the pods run stays out of the Job when it is large: the
    // shards' launches are kept there, and so is a whole launch over FETCH_OVER_BYTES;
    // `tomato exec --fetch` reads its own through the API.
    if ctx.results.database().is_some() {
        if launches.len() > 1 {
            attempt.fetch = true;
        } else {
            let whole = crate::launch::job::whole_launch(run, svc, attempt);
            if whole.bytes() > crate::launch::job::FETCH_OVER_BYTES {
                ctx.results.keep_launches(run, seq, vec![whole]).await?;
                attempt.fetch = true;
            }
        }
    }
    let mut job = desired_job(run, svc, attempt, &ctx.jobs);
    if mixed {
        // Its upload is the local part's (the backend keeps it apart), even before the
        // status says the attempt is mixed.
        for labels in job.metadata.labels.iter_mut() {
            labels.insert(crate::launch::job::LABEL_PART.into(), "local".into());
        }
    }
    let job_name = job.name_any();
    let jobs: Api<Job> = ctx.api(&ns);
    // A Job of this name owned by another run is an earlier run's of the same name (deleted
    // and created again), not yet garbage-collected: adopting it would end this attempt with
    // that run's outcome. It is deleted, and the launch waits for it to go.
    if let Some(existing) = jobs.get_opt(&job_name).await?
        && !results::owned_by(&existing, run.metadata.uid.as_deref())
    {
        if existing.metadata.deletion_timestamp.is_none() {
            jobs.delete(&job_name, &DeleteParams::background()).await?;
        }
        return Err(Error::Waiting(format!(
            "the Job {job_name} of an earlier run of this name is still there; launching once it is gone"
        )));
    }
    jobs.patch(
        &job_name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&job),
    )
    .await?;
    let tests = reruns.len();
    let now = Utc::now();
    let shards = super::shards::initial_statuses(&job_name, &launches, now);
    write_status(&ctx.client, run, |st| {
        st.begin_attempt(number, selection, job_name.clone(), now);
        if let Some(a) = st.attempts.last_mut() {
            a.shards = shards;
            a.mixed = mixed;
        }
    })
    .await?;
    if sharded.is_some() && number == 1 {
        // The split is recorded: the tests' listing (if there was one) has served.
        super::listing::forget(run, ctx, seq).await?;
    }
    info!(
        namespace = ns,
        run = name,
        attempt = number,
        job = job_name,
        tests,
        "attempt started"
    );
    let split = if launches.len() > 1 {
        format!(" ({} shards)", launches.len())
    } else {
        String::new()
    };
    let note = if number == 1 {
        format!("attempt 1 started as Job {job_name}{split}")
    } else {
        format!("attempt {number} started as Job {job_name}{split}, re-running {tests} failed test(s)")
    };
    ctx.event(run, false, "AttemptStarted", note).await;
    Ok(Action::requeue(ctx.timing.poll))
}

/// The shards of a sharded launch, from its ConfigMap: created now from the split, or — when
/// a crash came between creating it and recording the launch — read back as it was created,
/// so the Job and the status follow the split the Job may already run. Attempt 1 is split by
/// its tests (or files) when the service can list them — listed by a Job of the suite's own
/// image ([`super::listing`]): `None` while that runs — else by pack, evenly (a pack's tests
/// are not known up front); a large rerun by its failed tests. Tests are balanced by their
/// recorded durations when a results database keeps them. Fewer than two shards (one pack)
/// is an unsharded launch.
async fn ensure_shards(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    attempt: JobAttempt<'_>,
    reruns: &[crate::launch::RerunTest<'_>],
    n: usize,
) -> Result<Option<Vec<crate::launch::job::ShardLaunch>>, Error> {
    let durations = || async {
        match ctx.results.database() {
            Some(db) => db
                .test_durations(&svc.name, crate::shard::DURATION_RUNS)
                .await
                .map_err(|e| Error::from(super::results::ResultsError::from(e))),
            None => Ok(HashMap::new()),
        }
    };
    let split = match attempt.selection.kind {
        crate::crd::SelectionKind::Failed => {
            crate::shard::split_rerun(&attempt.selection.tests, &durations().await?, n)
        }
        crate::crd::SelectionKind::All => {
            // In the pod, `{dir}` is the suite's place in the image.
            let mut in_image = svc.clone();
            in_image.dir = svc.launch.job.working_dir.clone().into();
            let plan = crate::launch::listing::list_plan(
                &in_image,
                &run.spec.template.stand,
                &attempt.selection.packs,
            );
            if plan.is_some()
                && let Some(kept) = ctx.results.launches(run, attempt.seq).await?
                && kept.len() > 1
            {
                // Split already (a reconcile that raced the status write, or a restart after
                // the split was kept): its listing Job may be gone; it is not run again.
                return Ok(Some(kept));
            }
            let listed = match plan {
                None => None,
                Some(plan) => match super::listing::list(run, ctx, svc, attempt, &plan).await? {
                    super::listing::Listing::Underway => return Ok(None),
                    super::listing::Listing::Listed(items) => Some((plan.unit, items)),
                    super::listing::Listing::Failed(why) => {
                        warn!(
                            run = run.name_any(),
                            why, "cannot list the tests; splitting by pack"
                        );
                        let note = format!("cannot list the tests ({why}); attempt 1 is split by pack");
                        ctx.event(run, true, "ListingFailed", note).await;
                        None
                    }
                },
            };
            let dir = svc.launch.job.working_dir.as_str();
            crate::shard::split_first(listed, &attempt.selection.packs, &durations().await?, dir, n)
        }
    };
    if split.shards.len() < 2 {
        return Ok(Some(Vec::new()));
    }
    // A listed test stands for its case until it has run (as in standalone mode).
    let listed: HashMap<&str, crate::results::Case> = match (attempt.selection.kind, split.unit) {
        (crate::crd::SelectionKind::All, crate::shard::Unit::Tests) => split
            .shards
            .iter()
            .flat_map(|s| &s.items)
            .map(|id| (id.as_str(), crate::shard::listed_case(id)))
            .collect(),
        _ => HashMap::new(),
    };
    let cases: HashMap<&str, &crate::results::Case> = reruns
        .iter()
        .map(|r| (r.id, r.case))
        .chain(listed.iter().map(|(id, case)| (*id, case)))
        .collect();
    let launches = shard_launches(run, svc, attempt, &split, |id| cases.get(id).copied());
    if let Err(why) = crate::launch::job::shards_fit(&launches) {
        warn!(
            run = run.name_any(),
            attempt = attempt.number,
            why,
            "running the attempt unsharded"
        );
        return Ok(Some(Vec::new()));
    }
    Ok(Some(ctx.results.keep_launches(run, attempt.seq, launches).await?))
}

/// Creates the run's upload token Secret once; an existing one is kept (a new token would
/// lock out a Job already running with the old one).
async fn ensure_token(run: &TestRun, ctx: &Context) -> Result<(), Error> {
    let secrets: Api<Secret> = ctx.api(&run.namespace().unwrap_or_default());
    let name = token_secret_name(&run.name_any());
    // Created once; a later launch finds it taken (409) and keeps the token the earlier Jobs got.
    let token: [u8; 32] = rand::random();
    let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: run.namespace(),
            labels: Some([(LABEL_RUN.to_string(), label_value(&run.name_any()))].into()),
            owner_references: kube::Resource::controller_owner_ref(run, &()).map(|r| vec![r]),
            ..Default::default()
        },
        data: Some([(TOKEN_KEY.to_string(), k8s_openapi::ByteString(token.into_bytes()))].into()),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The attempt in flight: ended (results stored), stuck, gone, or still running.
async fn observe(
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
        return super::mixed::observe(run, ctx, svc, seq, attempt, &job_name).await;
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
        return super::shards::observe(run, ctx, svc, seq, attempt, job, state, &pods).await;
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
pub(super) async fn job_disappeared(run: &TestRun, ctx: &Context, job_name: &str) -> Result<Action, Error> {
    let why = format!("its Job {job_name} disappeared before it reported; launched again");
    write_status(&ctx.client, run, |st| {
        st.stop_attempt(AttemptState::Interrupted, &why, Utc::now());
    })
    .await?;
    ctx.event(run, true, "AttemptInterrupted", why).await;
    Ok(Action::await_change())
}

/// The running attempt of an Aqua service: its stored results end it; else the next step in
/// Aqua ([`super::aqua::observe`]), or the end that step came to.
async fn observe_aqua(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    seq: usize,
    attempt: &Attempt,
) -> Result<Action, Error> {
    if let Some(stored) = ctx.results.load(run, seq).await? {
        return end_attempt(run, ctx, svc, attempt, &stored, None).await;
    }
    match super::aqua::observe(run, ctx, svc, seq, attempt, None).await? {
        Ok(after) => Ok(Action::requeue(after)),
        Err(end) => record(run, ctx, svc, &end).await,
    }
}

/// A pod of the attempt cannot start (its image, a missing Secret): the attempt failed to launch.
pub(super) async fn launch_failed(
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
pub(super) async fn store_pod_log(
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
pub(super) async fn job_pods(ctx: &Context, ns: &str, job_name: &str) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = ctx.api(ns);
    let mut items = pods
        .list(&ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job_name}")))
        .await?
        .items;
    items.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    Ok(items)
}

/// Results are stored: the attempt ended. Records it and the core's decision.
pub(super) async fn end_attempt(
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
pub(super) fn attempt_end(
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

/// The service's mutes in force at `now`, from the run's namespace.
async fn mutes_in_force(
    ctx: &Context,
    run: &TestRun,
    svc: &Service,
    now: chrono::DateTime<Utc>,
) -> Result<crate::mute::Active, Error> {
    let api: Api<crate::crd::Mute> =
        Api::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    // Every Mute of the namespace: one made with kubectl need not carry the service label.
    match api.list(&ListParams::default()).await {
        Ok(listed) => Ok(crate::mute::Active::of(&listed.items, &svc.name, now)),
        // The Mute CRD is not installed, or the operator may not list Mutes (an upgrade that
        // did not apply crds/ or the new RBAC): nothing is muted rather than no attempt ending.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => {
            warn!(
                run = run.name_any(),
                code = e.code,
                "cannot list Mutes (apply crds/ and the RBAC of this version): no failure is muted"
            );
            Ok(crate::mute::Active::none())
        }
        Err(e) => Err(e.into()),
    }
}

/// Records an attempt's end and the decision, in one status write; announces both.
pub(super) async fn record(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    end: &AttemptEnd,
) -> Result<Action, Error> {
    let max_attempts = 1 + u32::from(svc.retries_for(&run.spec.template));
    let results = ctx.results.run_results(run, &svc.rerun.test_id).await?;
    // The ended attempt's tests become history rows (with a results database) before the
    // status says it ended, so a reader never sees an ended attempt without them.
    let ended: Vec<_> = results
        .iter()
        .filter(|r| r.attempt == end.number)
        .cloned()
        .collect();
    ctx.results.record_attempt(run, end.number, ended).await?;
    let mut decided = run.status.clone().unwrap_or_default();
    let now = Utc::now();
    let mutes = mutes_in_force(ctx, run, svc, now).await?;
    let (next, merged) = crate::core::record_end(&mut decided, end, results, max_attempts, &mutes, now);
    let classification = classify(run, ctx, svc, &decided, &merged).await?;
    // The per-test categories are stored before the status that says the attempt ended: every
    // surface reads them from there (crate::classify's module comment).
    let seq = decided
        .attempts
        .iter()
        .rposition(|a| a.number == end.number)
        .map_or(decided.attempts.len(), |i| i + 1);
    match ctx
        .results
        .store_categories(run, seq, &classification.by_test)
        .await
    {
        Ok(()) => {}
        // Surfaces then read the tests `status.categories` lists (classify::recorded).
        Err(e @ results::ResultsError::TooLarge(_)) => {
            warn!(run = run.name_any(), error = %e, "the classification is not stored")
        }
        Err(e) => return Err(e.into()),
    }
    let next = crate::core::stand_down(
        &mut decided,
        &next,
        &merged,
        &classification.by_test,
        &svc.outage_policy(),
        &run.spec.template.stand,
        now,
    )
    .unwrap_or(next);
    decided.categories = crate::classify::stats_without(&classification, &merged, &decided.muted_failing());
    let stored = write_status(&ctx.client, run, |st| *st = decided).await?;
    info!(run = run.name_any(), attempt = end.number, state = ?end.state, next = ?next, "attempt ended");
    crate::metrics::global().attempt_ended(
        &svc.name,
        end.state,
        stored
            .status
            .as_ref()
            .and_then(|st| crate::core::attempt_took(st, end.number)),
    );
    let counts = stored
        .status
        .as_ref()
        .and_then(|s| s.attempts.iter().rev().find(|a| a.number == end.number))
        .and_then(|a| a.summary)
        .map_or_else(
            || end.message.clone().unwrap_or_else(|| "no results".into()),
            |s| {
                format!(
                    "{} passed, {} failed, {} broken, {} skipped",
                    s.passed, s.failed, s.broken, s.skipped
                )
            },
        );
    let warning = end.state != AttemptState::Finished;
    ctx.event(
        run,
        warning,
        "AttemptFinished",
        format!("attempt {}: {counts}", end.number),
    )
    .await;
    match next {
        Next::Rerun { number, tests } => {
            let note = format!(
                "{} failed test(s) will run again as attempt {number}",
                tests.len()
            );
            ctx.event(run, false, "RerunScheduled", note).await;
        }
        Next::Finish { verdict, message } => announce_verdict(run, ctx, verdict, message).await,
    }
    Ok(Action::await_change())
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

async fn announce_verdict(run: &TestRun, ctx: &Context, verdict: Verdict, message: Option<String>) {
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

/// The Reporting phase: the verdict is final (`status.verdict`); the report goes out through
/// the reporting code shared with standalone mode ([`crate::report`]). Each channel's state
/// is planned in `status.report` first (`Pending`, or `Skipped` with the reason), then every
/// due channel is delivered and the outcome recorded; a transient failure is retried at the
/// time its backoff sets. The run ends in its verdict's phase once no channel is pending.
/// A delivery whose outcome could not be recorded (the leader died in between) is tried
/// again by the next leader: reports are delivered at least once, never lost; the targets a
/// channel already reached (`sentTo`) are not sent to again.
///
/// It starts from the run as stored, not as the watch cache last saw it: reporting asks to be
/// called again right after recording a delivery, and a cache that has not caught up with
/// that write would still show the channel `Pending` and deliver it twice.
async fn report(run: &TestRun, ctx: &Context) -> Result<Action, Error> {
    let api: Api<TestRun> = ctx.api(&run.namespace().unwrap_or_default());
    let Some(fresh) = api.get_opt(&run.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let fresh = ctx.results.hydrate(&fresh).await?;
    if fresh.status.as_ref().map(|s| s.phase) != Some(Phase::Reporting) {
        return Ok(Action::await_change());
    }
    let run = &fresh;
    let svc = ctx.config.service(&run.spec.template.service).cloned();
    let targets = ctx.reporter.targets(run, svc.as_deref());
    let plans = crate::report::delivery::channel_plans(&targets);
    let now = Utc::now();
    let mut planned_status = run.status.clone().unwrap_or_default();
    let planned = crate::report::delivery::plan(planned_status.report.get_or_insert_default(), &plans, now);
    let finished = crate::report::delivery::finish_if_delivered(&mut planned_status, now);
    let run = if !planned.is_empty() || finished {
        // The written object leaves out rerun lists kept in the database: fill them back in
        // before the tests are merged for the report.
        let written = write_status(&ctx.client, run, |st| *st = planned_status).await?;
        ctx.results.hydrate(&written).await?
    } else {
        run.clone()
    };
    if finished {
        announce_finished(&run, ctx).await;
        return Ok(Action::await_change());
    }

    let status = run.status.clone().unwrap_or_default();
    let report = status.report.clone().unwrap_or_default();
    let crate::report::delivery::Due {
        now: due,
        next_at: next_due,
    } = crate::report::delivery::due(targets, &report, now, |_| false);
    if due.is_empty() {
        return Ok(match next_due {
            Some(at) => Action::requeue(
                (at - now)
                    .to_std()
                    .unwrap_or_default()
                    .max(Duration::from_millis(100)),
            ),
            None => Action::await_change(),
        });
    }
    let tests = merged(&run, ctx, svc.as_deref()).await?;
    let categories = crate::classify::recorded(ctx.results.load_categories(&run).await?, &status.categories);
    let mut content = ctx.reporter.content(&run, &tests, &categories);
    // The email links each failed test's attachments (its last attempt's uploaded Allure
    // results), as standalone mode does from its data directory.
    if let Some(svc) = svc.as_deref() {
        let mut records = std::collections::HashMap::new();
        for seq in 1..=status.attempts.len() {
            if let Ok(Some(stored)) = ctx.results.load(&run, seq).await
                && let Some(r) = stored.allure_extras(
                    &svc.rerun.test_id,
                    crate::results::upload::operator_limits(svc.attachments),
                )
            {
                records.insert(seq, r);
            }
        }
        content.link_recorded_attachments(
            ctx.reporter.public_url(),
            &run.name_any(),
            &status.attempts,
            &records,
        );
    }
    // The latest stored object: each recorded delivery writes on top of the one before.
    let mut current = run.clone();
    for (channel, target, sent_to) in due {
        let outcome = ctx.reporter.deliver(&target, &content, &sent_to).await;
        let (stored, recorded) = record_delivery(current, ctx, channel, outcome).await?;
        current = stored;
        match recorded {
            Some(ch) if ch.state == DeliveryState::Sent => {
                info!(run = run.name_any(), channel = %channel, attempts = ch.attempts, "report delivered");
                let note = format!("{channel} report sent to {}", ch.sent_to.join(", "));
                ctx.event(&run, false, "ReportSent", note).await;
            }
            Some(ch) => {
                let reason = ch.reason.clone().unwrap_or_default();
                warn!(run = run.name_any(), channel = %channel, state = ?ch.state, reason, "report delivery failed");
                ctx.event(&run, true, "ReportFailed", format!("{channel}: {reason}"))
                    .await;
            }
            None => {}
        }
    }
    // Plan again (a retry's time, or the end of reporting) from the recorded state.
    Ok(Action::requeue(Duration::from_millis(100)))
}

/// Records one delivery attempt in `status.report.<channel>` on `run` as last stored (read
/// again if a user's change moved its resourceVersion meanwhile), and ends the run when it
/// was the last pending channel. Returns the stored run, and `None` when the channel was no
/// longer pending.
async fn record_delivery(
    run: TestRun,
    ctx: &Context,
    channel: crate::report::Channel,
    outcome: crate::integrations::delivery::Delivery,
) -> Result<(TestRun, Option<crate::crd::ChannelReport>), Error> {
    let api: Api<TestRun> = ctx.api(&run.namespace().unwrap_or_default());
    let policy = ctx.reporter.retry().clone();
    let jitter: f64 = rand::random();
    let mut last_error = None;
    // The object as last stored; read again only when a write finds it changed.
    let mut fresh = run;
    for _ in 0..5 {
        let now = Utc::now();
        let mut st = fresh.status.clone().unwrap_or_default();
        let slot = st.report.get_or_insert_default().channel_mut(channel);
        let Some(ch) = slot.as_mut().filter(|c| c.state == DeliveryState::Pending) else {
            return Ok((fresh, None));
        };
        delivery::record(ch, outcome.clone(), &policy, now, jitter);
        let recorded = ch.clone();
        let finished = crate::report::delivery::finish_if_delivered(&mut st, now);
        match write_status(&ctx.client, &fresh, |s| *s = st).await {
            Ok(stored) => {
                if finished {
                    announce_finished(&stored, ctx).await;
                }
                return Ok((stored, Some(recorded)));
            }
            Err(e) if e.is_conflict() => {
                last_error = Some(e);
                fresh = api.get(&fresh.name_any()).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Waiting("the delivery could not be recorded".into())))
}

async fn announce_finished(run: &TestRun, ctx: &Context) {
    let st = run.status.clone().unwrap_or_default();
    record_finished(run, ctx, st.phase).await;
    let s = st.summary.unwrap_or_default();
    let note = format!(
        "{}: {} passed, {} failed, {} flaky, {} broken, {} skipped",
        st.phase, s.passed, s.failed, s.flaky, s.broken, s.skipped
    );
    info!(run = run.name_any(), phase = %st.phase, "finished");
    ctx.event(run, st.phase != Phase::Succeeded, "Finished", note)
        .await;
}

/// Records in the results database how the run finished (history's "previous comparable
/// run" reads the TestRun's own status; this keeps the database's record complete for
/// queries that outlive it). A failure is logged, not retried: the run's status stands.
async fn record_finished(run: &TestRun, ctx: &Context, phase: Phase) {
    if let Err(e) = ctx.results.finish(run, phase).await {
        warn!(run = run.name_any(), error = %e, "the results database did not record how the run finished");
    }
}

/// The run's merged verdicts, failing first.
async fn merged(run: &TestRun, ctx: &Context, svc: Option<&Service>) -> Result<Vec<MergedTest>, Error> {
    let Some(svc) = svc else {
        return Ok(Vec::new());
    };
    let results = ctx.results.run_results(run, &svc.rerun.test_id).await?;
    let mut merged = crate::core::merge_run(run.status.as_ref().unwrap_or(&Default::default()), results);
    merged.sort_by_key(|t| t.verdict);
    Ok(merged)
}

/// Failure categories of the failing and flaky tests, with each attempt's stored log for the
/// rules that look at logs (the same classifier as standalone mode).
async fn classify(
    run: &TestRun,
    ctx: &Context,
    svc: &Service,
    status: &crate::crd::TestRunStatus,
    merged: &[MergedTest],
) -> Result<crate::classify::Classification, Error> {
    let mut logs: HashMap<u32, String> = HashMap::new();
    for (i, a) in status.attempts.iter().enumerate() {
        // The last launch of a number wins (an interrupted launch is followed by its relaunch).
        if let Some(stored) = ctx.results.load(run, i + 1).await? {
            logs.insert(a.number, stored.log()?);
        }
    }
    Ok(crate::classify::classify(
        svc.classifier.as_deref(),
        merged,
        |n| logs.get(&n).map(|l| std::io::Cursor::new(l.clone().into_bytes())),
    ))
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
pub(super) async fn stop_job(jobs: &Api<Job>, name: &str) -> Result<(), Error> {
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
