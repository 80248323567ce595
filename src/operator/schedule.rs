//! The NightlySchedule controller.
//!
//! It keeps a schedule's status true to the cluster: `Ready` says whether the run template
//! fits packs_config (a schedule naming an unknown service or preset would only ever produce
//! failing runs, so it is reported at once, with the field at fault), `active` lists the
//! schedule's unfinished runs and `lastRun` its newest run — found by the runs' label, and
//! woken by their changes through their owner reference to the schedule.
//!
//! Firing runs at due times needs the schedule semantics shared with standalone mode (cron,
//! time zones, concurrency policy, missed-start deadline, history limits: `src/schedule`),
//! which are not on this branch yet; until they are wired in here, this controller creates no
//! runs and says so in the `Ready` condition's message.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::Action;
use tracing::warn;

use super::context::{Context, Error};
use crate::crd::{
    Condition, ConditionStatus, LABEL_SCHEDULE, NightlySchedule, NightlyScheduleStatus, Phase, TestRun,
};
use crate::store::created;

/// Reconciles one NightlySchedule.
pub async fn reconcile(schedule: Arc<NightlySchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = schedule.namespace().unwrap_or_default();
    let name = schedule.name_any();
    let runs: Api<TestRun> = ctx.api(&ns);
    let mut mine = runs
        .list(&ListParams::default().labels(&format!("{LABEL_SCHEDULE}={name}")))
        .await?
        .items;
    mine.sort_by_key(|r| (created(r), r.name_any()));

    let mut status = schedule.status.clone().unwrap_or_default();
    let before = status.clone();
    status.active = mine
        .iter()
        .filter(|r| !r.status.as_ref().map_or(Phase::Queued, |s| s.phase).is_terminal())
        .map(ResourceExt::name_any)
        .collect();
    if let Some(last) = mine.last() {
        status.last_run = Some(last.name_any());
    }
    let (state, reason, message) = match ctx.config.check_run(&schedule.spec.template) {
        Ok(_) => (
            ConditionStatus::True,
            "TemplateValid",
            "the run template fits packs_config; firing at due times comes with the shared schedule logic"
                .to_string(),
        ),
        Err(e) => (
            ConditionStatus::False,
            "InvalidTemplate",
            format!("spec.{}: {}", e.field, e.message),
        ),
    };
    Condition::set(
        &mut status.conditions,
        "Ready",
        state,
        reason,
        message,
        Utc::now(),
    );
    if status != before {
        write_status(&ctx, &schedule, status).await?;
    }
    Ok(Action::await_change())
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
    let mut obj = schedule.clone();
    obj.metadata.managed_fields = None;
    obj.status = Some(status);
    let api: Api<NightlySchedule> = ctx.api(&schedule.namespace().unwrap_or_default());
    api.replace_status(&schedule.name_any(), &PostParams::default(), &obj)
        .await?;
    Ok(())
}
