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
//! Files-only expiry is skipped in operator mode: an attempt's log and JUnit live in the same
//! results ConfigMaps its test verdicts are read from, so removing them would lose the
//! verdicts. It comes with the results database (issue 14).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Context, Error, Scope, scoped};
use crate::crd::{NightlySchedule, TestRun};
use crate::packs::PacksConfig;
use crate::retention::{Action, Removed, plan, referenced};

/// Runs a pass at once and then every `ctx.timing.retention`, until `stop` (the end of this
/// replica's term as leader).
pub async fn run(ctx: Arc<Context>, scope: Scope, stop: CancellationToken) {
    loop {
        let started = Instant::now();
        match pass(&ctx.client, &ctx.config, &scope, Utc::now()).await {
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

/// One pass at `now` over the TestRuns of `scope`: deletes every run retention lets go.
pub async fn pass(
    client: &Client,
    config: &PacksConfig,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<Removed, Error> {
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
    Ok(removed)
}
