//! Launching an attempt: its Job (adopted if a crash came between creating and recording
//! it), its upload token, and — for a sharded attempt — the split each index runs, kept
//! before the Job exists.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use tracing::{info, warn};

use crate::crd::{LABEL_RUN, TestRun};
use crate::launch::job::{
    JobAttempt, TOKEN_KEY, desired_job, label_value, shard_launches, token_secret_name,
};
use crate::operator::context::{Context, Error, MANAGER, write_status};
use crate::operator::results::{self};
use crate::packs::Service;
use crate::results::MergedTest;

/// Starts attempt `number` as the run's next Job (or adopts that Job, if a crash came
/// between creating it and recording it).
pub(super) async fn launch(
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
    let shards = crate::operator::shards::initial_statuses(&job_name, &launches, now);
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
        crate::operator::listing::forget(run, ctx, seq).await?;
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
                .map_err(|e| Error::from(crate::operator::results::ResultsError::from(e))),
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
                Some(plan) => match crate::operator::listing::list(run, ctx, svc, attempt, &plan).await? {
                    crate::operator::listing::Listing::Underway => return Ok(None),
                    crate::operator::listing::Listing::Listed(items) => Some((plan.unit, items)),
                    crate::operator::listing::Listing::Failed(why) => {
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
