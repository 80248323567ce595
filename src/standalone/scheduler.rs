//! The standalone scheduler: starts the runs of `NightlySchedule`s when they are due.
//!
//! One task. Each pass reads every schedule and its runs from the store, asks
//! [`crate::schedule::tick`] what to do, does it, and then sleeps until the earliest next
//! fire time — or until a schedule changes (woken at once) or a run changes (woken after a
//! short debounce, since runs change often and only their end matters here). No polling.
//!
//! Restart-safe by construction: a fired time is recorded as `status.lastScheduleTime`, and the
//! run's name is derived from the schedule and the scheduled minute, so even a crash between
//! creating the run and recording the time cannot start that time twice; and a due time not
//! yet recorded is still due after a restart (within `startingDeadlineSeconds`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::backend::Backend;
use crate::crd::{LABEL_SCHEDULE, NightlySchedule, NightlyScheduleStatus, Phase, TestRun};
use crate::packs::PacksConfig;
use crate::schedule::{Tick, tick};
use crate::store::{ChangeOp, ListFilter, SqliteStore, StoreError};

/// How long a burst of run changes is gathered before a pass.
const RUN_CHANGE_DEBOUNCE: Duration = Duration::from_millis(500);

pub struct Scheduler {
    store: SqliteStore,
    config: Arc<PacksConfig>,
}

impl Scheduler {
    pub fn new(store: SqliteStore, config: Arc<PacksConfig>) -> Self {
        Scheduler { store, config }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.store.subscribe();
        loop {
            let started = std::time::Instant::now();
            let pass = self.pass(Utc::now()).await;
            crate::metrics::global().reconciled(
                "schedule",
                started.elapsed(),
                pass.as_ref().err().map(StoreError::metric_label),
            );
            let next = match pass {
                Ok(next) => next,
                Err(e) => {
                    error!(error = %e, "scheduler pass failed; retrying in 10s");
                    Some(Utc::now() + chrono::Duration::seconds(10))
                }
            };
            let sleep = next.map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO));
            tokio::select! {
                _ = async { match sleep { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
                change = changes.recv() => match change {
                    Ok(c) if c.kind == "NightlySchedule" => {}
                    Ok(c) if c.kind == "TestRun" && c.op != ChangeOp::Created => {
                        tokio::time::sleep(RUN_CHANGE_DEBOUNCE).await;
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = shutdown.cancelled() => return,
            }
            while changes.try_recv().is_ok() {}
        }
    }

    /// One pass over every schedule; returns the earliest time something is due.
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let schedules: Vec<NightlySchedule> = self.store.list(&ListFilter::default()).await?;
        let names: HashSet<String> = schedules.iter().filter_map(|s| s.metadata.name.clone()).collect();
        let mut earliest: Option<DateTime<Utc>> = None;
        for s in &schedules {
            if let Some(next) = self.reconcile(s, now).await? {
                earliest = Some(earliest.map_or(next, |e: DateTime<Utc>| e.min(next)));
            }
        }
        self.cancel_orphans(&names).await?;
        Ok(earliest)
    }

    async fn runs_of(&self, schedule: &str) -> Result<Vec<TestRun>, StoreError> {
        let filter = ListFilter {
            label: Some((LABEL_SCHEDULE.into(), schedule.into())),
            ..Default::default()
        };
        self.store.list(&filter).await
    }

    /// Brings one schedule up to date ([`tick`] decides); returns when to look at it again.
    async fn reconcile(
        &self,
        s: &NightlySchedule,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let name = s.metadata.name.clone().unwrap_or_default();
        let runs = self.runs_of(&name).await?;
        let mut effects = match tick(s, &runs, &self.config, now) {
            Tick::Invalid { status } => {
                self.set_status(&name, status).await?;
                return Ok(None);
            }
            Tick::Due(effects) => effects,
        };
        for r in &effects.cancel {
            info!(
                schedule = name,
                run = r,
                "concurrencyPolicy Replace: cancelling the unfinished run"
            );
            self.store.cancel_run(r).await?;
        }
        if let Some((scheduled, run)) = effects.start.take() {
            let run_name = run.metadata.name.clone().unwrap_or_default();
            match self.store.create(run).await {
                Ok(_) => info!(schedule = name, run = run_name, %scheduled, "scheduled run started"),
                // Already started for this time (by an instance that died before recording it).
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        effects.log(&name);
        for old in &effects.delete {
            // Its files too (they used to stay behind in the data directory).
            super::retention::remove_run(&self.store, old).await?;
        }
        self.set_status(&name, effects.status).await?;
        // A pending Forbid/Replace time is looked at again when a run changes; otherwise at `next`.
        Ok(effects.next)
    }

    /// Writes a schedule's status if it changed (its spec, written by the API meanwhile, stays).
    async fn set_status(&self, name: &str, status: NightlyScheduleStatus) -> Result<(), StoreError> {
        let res = self
            .store
            .update::<NightlySchedule, _>(name, move |s| {
                let changed = s.status.as_ref() != Some(&status);
                s.status = Some(status);
                Ok((changed, ()))
            })
            .await;
        match res {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Cancels unfinished runs whose schedule was deleted.
    async fn cancel_orphans(&self, schedules: &HashSet<String>) -> Result<(), StoreError> {
        let filter = ListFilter {
            phases: vec![Phase::Queued, Phase::Running, Phase::Retrying],
            ..Default::default()
        };
        let runs: Vec<TestRun> = self.store.list(&filter).await?;
        for r in runs {
            let Some(owner) = r.metadata.labels.as_ref().and_then(|l| l.get(LABEL_SCHEDULE)) else {
                continue;
            };
            if schedules.contains(owner) || r.spec.cancel {
                continue;
            }
            let name = r.metadata.name.clone().unwrap_or_default();
            info!(
                run = name,
                schedule = owner,
                "the schedule was deleted: cancelling its unfinished run"
            );
            self.store.cancel_run(&name).await?;
        }
        Ok(())
    }
}
