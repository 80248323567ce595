//! The operator's retention pass: the leader deletes the finished TestRuns that
//! [`crate::retention::plan`] says have been kept long enough — the same decision as standalone
//! mode's, over the TestRuns of the controllers' scope (grouped per namespace and service).
//!
//! A run's Jobs and results ConfigMaps carry a controller owner reference to it, so the API
//! server's garbage collector removes them after the run (background propagation); a finished
//! run has given its finalizer back, so nothing holds the deletion. Each delete is
//! conditional on the resourceVersion the pass decided on: a run changed meanwhile (pinned
//! with `kubectl patch`, say) is left for the next pass to decide again.
//!
//! With a results database, what it keeps of each deleted run is deleted too, and so is
//! what it keeps of runs deleted otherwise (`kubectl delete`): each pass forgets the recorded
//! runs, created before its listing, that no TestRun of the scope carries any more. That is
//! why one results database serves one operator installation.
//!
//! Files-only expiry (`retention.files`) needs the results database: there each attempt's
//! verdicts are rows of their own, so the uploads (reports, logs, attachments) can go while
//! the verdicts, categories and history stay, and the run is marked
//! `tomato.dev/files-expired` as in standalone mode (its files then answer 410). Results in
//! ConfigMaps carry the verdicts inside the reports, so without a database files-only expiry
//! is skipped.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::results::Keeper;
use super::{Context, Error, Scope, scoped};
use crate::crd::{NightlySchedule, TestRun};
use crate::packs::PacksConfig;
use crate::retention::{Action, Removed, plan, referenced};

/// Runs a pass at once and then every `ctx.timing.retention`, until `stop` (the end of this
/// replica's term as leader).
pub async fn run(ctx: Arc<Context>, scope: Scope, stop: CancellationToken) {
    loop {
        let started = Instant::now();
        match pass(&ctx.client, &ctx.config, &scope, &ctx.results, Utc::now()).await {
            Ok(removed) if !removed.is_empty() => info!(
                runs = removed.runs,
                failed = removed.failed,
                took = ?started.elapsed(),
                "retention deleted expired runs"
            ),
            Ok(_) => debug!(took = ?started.elapsed(), "retention: nothing expired"),
            Err(e) => warn!(error = %e, "retention pass failed; the next pass tries again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.timing.retention) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One pass at `now` over the TestRuns of `scope`: deletes every run retention lets go, and
/// what `results` keeps of it and of runs deleted since the last pass.
pub async fn pass(
    client: &Client,
    config: &PacksConfig,
    scope: &Scope,
    results: &Keeper,
    now: DateTime<Utc>,
) -> Result<Removed, Error> {
    let listed = Utc::now();
    let runs = scoped::<TestRun>(client, scope)
        .list(&ListParams::default())
        .await?
        .items;
    let schedules = scoped::<NightlySchedule>(client, scope)
        .list(&ListParams::default())
        .await?
        .items;
    let steps = plan(
        &runs,
        |service| config.retention(service),
        &referenced(&schedules),
        now,
    );
    let mut removed = Removed::default();
    if results.database().is_some() {
        for step in steps.iter().filter(|s| s.action == Action::ExpireFiles) {
            let Some(run) = runs
                .iter()
                .find(|r| r.namespace().unwrap_or_default() == step.namespace && r.name_any() == step.run)
            else {
                continue;
            };
            match expire_files(client, results, run, now).await {
                Ok(()) => {
                    info!(
                        namespace = step.namespace,
                        run = step.run,
                        "retention: removed an expired run's files"
                    );
                    removed.count(Action::ExpireFiles);
                }
                Err(e) => {
                    warn!(namespace = step.namespace, run = step.run, error = %e, "retention could not remove a run's files; the next pass tries again");
                    removed.failed += 1;
                }
            }
        }
    }
    for step in steps.iter().filter(|s| s.action == Action::Delete) {
        // Conditional on the object as the decision saw it.
        let seen = runs
            .iter()
            .find(|r| r.namespace().unwrap_or_default() == step.namespace && r.name_any() == step.run);
        let (uid, resource_version) =
            seen.map_or((None, None), |r| (r.metadata.uid.clone(), r.resource_version()));
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version,
            }),
            ..DeleteParams::background()
        };
        let api: Api<TestRun> = Api::namespaced(client.clone(), &step.namespace);
        match api.delete(&step.run, &params).await {
            Ok(_) => {
                info!(
                    namespace = step.namespace,
                    run = step.run,
                    "retention: deleted an expired run"
                );
                removed.count(Action::Delete);
                if let Some(run) = seen
                    && let Err(e) = results.forget(run).await
                {
                    warn!(run = step.run, error = %e, "retention: the results database kept the run; the next pass forgets it");
                }
            }
            // Gone already, or changed since the decision: the next pass decides again.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                debug!(
                    namespace = step.namespace,
                    run = step.run,
                    code = e.code,
                    "retention: run left for the next pass"
                );
            }
            // One run the API server refuses must not keep the others from going.
            Err(e) => {
                warn!(namespace = step.namespace, run = step.run, error = %e, "retention could not delete a run; the next pass tries again");
                removed.failed += 1;
            }
        }
    }
    forget_deleted(results, &runs, listed).await;
    Ok(removed)
}

/// Removes `run`'s files from the results database (its verdicts stay), then marks it: a
/// crash in between leaves it unmarked, and the next pass removes nothing twice.
async fn expire_files(
    client: &Client,
    results: &Keeper,
    run: &TestRun,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    results.expire_files(run).await?;
    let api: Api<TestRun> = Api::namespaced(client.clone(), &run.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"annotations": {
        crate::retention::ANNOTATION_FILES_EXPIRED: crate::crd::precise_time(now),
    }}});
    match api
        .patch(
            &run.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Forgets the runs the results database keeps that none of `runs` (listed at `listed`) is:
/// deleted by retention, or by hand. A run recorded after the listing may not be in it yet,
/// so only runs created a minute before it are looked at.
async fn forget_deleted(results: &Keeper, runs: &[TestRun], listed: DateTime<Utc>) {
    let Some(db) = results.database() else {
        return;
    };
    let live: std::collections::HashSet<String> = runs.iter().map(|r| results.key(r)).collect();
    let before = listed - chrono::Duration::minutes(1);
    let mut page = crate::store::results::RunPage {
        service: None,
        before: Some((before, String::new())),
        limit: 500,
    };
    let mut forgotten = 0usize;
    loop {
        let records = match db.list_runs(&page).await {
            Ok(records) => records,
            Err(e) => {
                warn!(error = %e, "retention could not list the results database's runs; the next pass tries again");
                return;
            }
        };
        let Some(last) = records.last() else { break };
        page.before = Some((last.identity.created, last.identity.name.clone()));
        let full = records.len() == page.limit as usize;
        for record in records.iter().filter(|r| !live.contains(&r.identity.name)) {
            match db.delete_run(&record.identity.name).await {
                Ok(true) => forgotten += 1,
                Ok(false) => {}
                Err(e) => {
                    warn!(run = record.identity.name, error = %e, "retention could not forget a deleted run")
                }
            }
        }
        if !full {
            break;
        }
    }
    if forgotten > 0 {
        info!(runs = forgotten, "retention forgot the results of deleted runs");
    }
}
