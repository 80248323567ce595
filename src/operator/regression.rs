//! The Regression controller: operator mode's twin of the standalone regressions task.
//!
//! Each reconcile carries out one step of [`crate::regression::reconcile`] — the same function
//! the standalone task calls, against the same test management, tracker and email — writes
//! the status it returns through the status subresource, and asks to be reconciled again after
//! the delay it returns (the next poll of the assessors' progress, a retry, or the deadline).
//! Deleting a Regression runs [`crate::regression::cleanup`] (stopping its test run in test
//! management) under kube's finalizer helper before the object goes.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use tracing::{info, warn};

use super::context::{Context, Error};
use crate::crd::{FINALIZER_REGRESSION, Regression, RegressionStatus};

/// Reconciles one Regression.
pub async fn reconcile(reg: Arc<Regression>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<Regression> = ctx.api(&reg.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER_REGRESSION, reg, |event| async {
        match event {
            Event::Apply(reg) => apply(&reg, &ctx).await,
            Event::Cleanup(reg) => cleanup(&reg, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// One step towards `Completed`.
///
/// The step starts from the object as stored, not as the watch cache last saw it: a step
/// writes its status and asks to be called again at once, and a cache that has not caught up
/// with that write would repeat the step's side effects (the assessors' emails, the ticket's
/// comment).
async fn apply(reg: &Regression, ctx: &Context) -> Result<Action, Error> {
    let api: Api<Regression> = ctx.api(&reg.namespace().unwrap_or_default());
    let Some(fresh) = api.get_opt(&reg.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let reg = &fresh;
    let before = reg.status.clone().unwrap_or_default();
    let out = crate::regression::reconcile(reg, &ctx.regressions, Utc::now()).await;
    if out.status.phase != before.phase {
        info!(regression = reg.name_any(), phase = ?out.status.phase, "regression moved on");
        ctx.event(
            reg,
            false,
            "PhaseChanged",
            format!(
                "{:?}: {}",
                out.status.phase,
                out.status.message.clone().unwrap_or_default()
            ),
        )
        .await;
    }
    write_status(ctx, reg, out.status, &before).await?;
    Ok(match out.requeue {
        // One step per reconcile, each stored before the next.
        Some(d) if d.is_zero() => Action::requeue(Duration::from_millis(100)),
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Before the object goes: stop its test run in test management.
async fn cleanup(reg: &Regression, ctx: &Context) -> Result<Action, Error> {
    let before = reg.status.clone().unwrap_or_default();
    let out = crate::regression::cleanup(reg, &ctx.regressions, Utc::now()).await;
    write_status(ctx, reg, out.status, &before).await?;
    if out.done {
        ctx.event(
            reg,
            false,
            "Stopped",
            "the regression's test run is stopped".into(),
        )
        .await;
        Ok(Action::await_change())
    } else {
        // The finalizer stays until the test run is stopped; `error_policy` retries.
        Err(Error::Waiting(format!(
            "stopping the test run of regression {} (retry in {:?})",
            reg.name_any(),
            out.requeue.unwrap_or(ctx.timing.retry)
        )))
    }
}

/// Writes the status through the status subresource when it changed.
async fn write_status(
    ctx: &Context,
    reg: &Regression,
    status: RegressionStatus,
    before: &RegressionStatus,
) -> Result<(), Error> {
    if status == *before {
        return Ok(());
    }
    super::context::replace_status(&ctx.client, reg, |r| r.status = Some(status)).await?;
    Ok(())
}

/// Retries a failed reconcile after a short delay (conflicts at once).
pub fn error_policy(reg: Arc<Regression>, err: &Error, ctx: Arc<Context>) -> Action {
    if err.is_conflict() {
        return Action::requeue(Duration::from_millis(50));
    }
    warn!(regression = reg.name_any(), error = %err, kind = err.metric_label(), "regression reconcile failed");
    Action::requeue(ctx.timing.retry)
}
