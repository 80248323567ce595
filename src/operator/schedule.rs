//! The NightlySchedule controller: operator mode's twin of the standalone scheduler task,
//! over the same pure schedule semantics ([`crate::schedule`]: cron in the schedule's time
//! zone, `suspend`, `concurrencyPolicy`, `startingDeadlineSeconds`, history limits).
//!
//! Each reconcile decides ([`crate::schedule::tick`], shared with the standalone scheduler)
//! from the schedule, its runs (found by their label; they carry the schedule's controller
//! owner reference, so their changes wake it) and the time; it starts
//! the due run — named after the schedule and the scheduled minute, so a repeated reconcile
//! or a new leader finds the name taken instead of starting it twice —, cancels runs a
//! `Replace` policy replaces, deletes finished runs beyond the history limits, writes the
//! status through the status subresource, and asks to be reconciled again at the next due
//! time (no polling in between).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::context::{Context, Error};
use crate::crd::{LABEL_SCHEDULE, NightlySchedule, NightlyScheduleStatus, TestRun};
use crate::schedule::{Tick, tick};

/// Reconciles one NightlySchedule ([`tick`] decides, this carries it out).
pub async fn reconcile(schedule: Arc<NightlySchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = schedule.namespace().unwrap_or_default();
    let name = schedule.name_any();
    let now = Utc::now();
    let runs_api: Api<TestRun> = ctx.api(&ns);
    let runs = runs_api
        .list(&ListParams::default().labels(&format!("{LABEL_SCHEDULE}={name}")))
        .await?
        .items;
    let mut effects = match tick(&schedule, &runs, &ctx.config, now) {
        Tick::Invalid { status } => {
            if Some(&status) != schedule.status.as_ref() {
                write_status(&ctx, &schedule, status).await?;
            }
            return Ok(Action::await_change());
        }
        Tick::Due(effects) => effects,
    };

    for r in &effects.cancel {
        info!(
            schedule = name,
            run = r,
            "concurrencyPolicy Replace: cancelling the unfinished run"
        );
        let cancel = Patch::Merge(serde_json::json!({"spec": {"cancel": true}}));
        runs_api.patch(r, &PatchParams::default(), &cancel).await?;
    }
    let mut started = None;
    if let Some((scheduled, mut new)) = effects.start.take() {
        let run = new.metadata.name.clone().unwrap_or_default();
        new.metadata.namespace = Some(ns.clone());
        new.status = None;
        new.metadata.annotations.get_or_insert_default().insert(
            crate::crd::ANNOTATION_CREATED.into(),
            crate::crd::precise_time(now),
        );
        match runs_api.create(&PostParams::default(), &new).await {
            Ok(_) => info!(schedule = name, run, %scheduled, "scheduled run started"),
            // Started for this time already (by an earlier leader that died before recording it).
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        started = Some(run);
    }
    effects.log(&name);
    for old in &effects.delete {
        match runs_api.delete(old, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if Some(&effects.status) != schedule.status.as_ref() {
        write_status(&ctx, &schedule, effects.status).await?;
    }
    if let Some(run) = started {
        ctx.event(
            schedule.as_ref(),
            false,
            "RunStarted",
            format!("started run {run}"),
        )
        .await;
    }
    Ok(match effects.next {
        Some(at) => Action::requeue(
            (at - Utc::now())
                .to_std()
                .unwrap_or_default()
                .max(Duration::from_millis(200)),
        ),
        None => Action::await_change(),
    })
}

pub fn error_policy(schedule: Arc<NightlySchedule>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        return Action::requeue(Duration::from_millis(200).min(ctx.timing.retry));
    }
    warn!(schedule = schedule.name_any(), error = %error, "reconcile failed");
    Action::requeue(ctx.timing.retry)
}

async fn write_status(
    ctx: &Context,
    schedule: &NightlySchedule,
    status: NightlyScheduleStatus,
) -> Result<(), Error> {
    super::context::replace_status(&ctx.client, schedule, |s| s.status = Some(status)).await?;
    Ok(())
}
