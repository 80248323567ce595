//! The standalone regressions task: carries out [`crate::regression::reconcile`] for every
//! `Regression` in the store, and [`crate::regression::cleanup`] for the deleted ones.
//!
//! One task with its own loop, like the scheduler. Each pass takes every unfinished
//! regression one step at a time — storing the status after each step, so a crash loses at
//! most the step in flight — until it has to wait (for the next poll of progress, a retry, a
//! deadline), then sleeps until the earliest such time or until a regression changes. No
//! busy loop: a regression in progress is read once per poll interval (`TOMATO_TMS_POLL`).
//!
//! Deletion works as a Kubernetes finalizer does: the API marks the object
//! (`deletionTimestamp`); this task stops its test run in test management and then removes it.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::crd::{Regression, RegressionStatus};
use crate::regression::{Context, cleanup, reconcile};
use crate::store::{ListFilter, SqliteStore, StoreError};

/// Steps taken for one regression in one pass at most (each stored before the next).
const MAX_STEPS: usize = 16;
/// Longest sleep with nothing due (a safety net: changes wake the task anyway).
const IDLE_WAKE: Duration = Duration::from_secs(300);

pub struct Regressions {
    store: SqliteStore,
    ctx: Context,
}

impl Regressions {
    pub fn new(store: SqliteStore, ctx: Context) -> Self {
        Regressions { store, ctx }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.store.subscribe();
        loop {
            let started = std::time::Instant::now();
            let pass = self.pass().await;
            crate::metrics::global().reconciled(
                "regression",
                started.elapsed(),
                pass.as_ref().err().map(StoreError::metric_label),
            );
            let next = match pass {
                Ok(next) => next,
                Err(e) => {
                    error!(error = %e, "regressions pass failed; retrying in 10s");
                    Some(Duration::from_secs(10))
                }
            };
            let wake = tokio::time::Instant::now() + next.unwrap_or(IDLE_WAKE).min(IDLE_WAKE);
            // Only a change of a regression (or the time) starts a pass; runs change often
            // and are none of this task's business.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    change = changes.recv() => match change {
                        Ok(c) if c.kind == "Regression" => break,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    },
                    _ = shutdown.cancelled() => return,
                }
            }
            // A burst of changes (our own writes among them) makes one pass; changes during
            // the pass stay queued and wake the next one.
            while changes.try_recv().is_ok() {}
        }
    }

    /// One pass over every regression; returns how long until one needs a look.
    pub async fn pass(&self) -> Result<Option<Duration>, StoreError> {
        let all: Vec<Regression> = self.store.list(&ListFilter::default()).await?;
        let mut earliest: Option<Duration> = None;
        for reg in all {
            let next = if reg.metadata.deletion_timestamp.is_some() {
                self.remove(reg).await?
            } else {
                self.advance(reg).await?
            };
            if let Some(d) = next {
                earliest = Some(earliest.map_or(d, |e| e.min(d)));
            }
        }
        Ok(earliest)
    }

    /// Takes steps until the regression has to wait.
    async fn advance(&self, mut reg: Regression) -> Result<Option<Duration>, StoreError> {
        let name = reg.metadata.name.clone().unwrap_or_default();
        for _ in 0..MAX_STEPS {
            let before = reg.status.clone();
            let outcome = reconcile(&reg, &self.ctx, Utc::now()).await;
            if before.as_ref() != Some(&outcome.status) {
                log_change(&name, before.as_ref(), &outcome.status);
                match self.set_status(&name, outcome.status.clone()).await? {
                    Some(stored) => reg = stored,
                    None => return Ok(None),
                }
            }
            match outcome.requeue {
                Some(Duration::ZERO) => continue,
                other => return Ok(other),
            }
        }
        Ok(Some(Duration::ZERO))
    }

    /// Stops the test run of a deleted regression, then removes it.
    async fn remove(&self, reg: Regression) -> Result<Option<Duration>, StoreError> {
        let name = reg.metadata.name.clone().unwrap_or_default();
        let result = cleanup(&reg, &self.ctx, Utc::now()).await;
        if result.done {
            if let Some(m) = result.status.message.as_ref().filter(|_| {
                !result
                    .status
                    .tms
                    .as_ref()
                    .is_some_and(|t| t.stopped || t.run_id.is_none())
            }) {
                warn!(
                    regression = name,
                    message = m,
                    "deleting without stopping the test run"
                );
            }
            if result.status.tms.as_ref().is_some_and(|t| t.stopped) {
                info!(regression = name, "test run stopped");
            }
            self.store.delete::<Regression>(&name).await?;
            info!(regression = name, "regression deleted");
            return Ok(None);
        }
        if reg.status.as_ref() != Some(&result.status) {
            self.set_status(&name, result.status).await?;
        }
        Ok(result.requeue)
    }

    /// Stores a status; `None` when the regression is gone.
    async fn set_status(
        &self,
        name: &str,
        status: RegressionStatus,
    ) -> Result<Option<Regression>, StoreError> {
        let res = self
            .store
            .update::<Regression, _>(name, move |r| {
                let changed = r.status.as_ref() != Some(&status);
                r.status = Some(status);
                Ok((changed, ()))
            })
            .await;
        match res {
            Ok((r, _)) => Ok(Some(r)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn log_change(name: &str, before: Option<&RegressionStatus>, after: &RegressionStatus) {
    let phase_before = before.map(|b| b.phase);
    if phase_before != Some(after.phase) {
        info!(
            regression = name,
            phase = %after.phase,
            message = after.message.as_deref().unwrap_or(""),
            "regression phase"
        );
    }
    if let Some(r) = after
        .retry
        .as_ref()
        .filter(|r| before.and_then(|b| b.retry.as_ref()) != Some(*r))
    {
        warn!(
            regression = name,
            failures = r.failures,
            reason = r.reason.as_deref().unwrap_or(""),
            "regression step failed; retrying"
        );
    }
}
