//! The standalone retention task: once at start and then every 10 minutes (or
//! `TOMATO_RETENTION_INTERVAL`), removes the finished runs and the files that
//! [`crate::retention::plan`] says have been kept long enough.
//!
//! Crash-safe by ordering, not by bookkeeping: a whole run goes files first, its object (with
//! its test results and categories, in one transaction) last; a run that only loses its files
//! is marked (`tomato.dev/files-expired`) only after they are gone. So a pass cut short leaves
//! at worst a run whose files are already gone and which the next pass (deciding again from
//! what is stored) finishes removing — never a mark without the removal behind it, and never
//! anything removed that the decision keeps.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::crd::{NightlySchedule, Phase, TestRun};
use crate::packs::PacksConfig;
use crate::retention::{ANNOTATION_FILES_EXPIRED, Action, Removed, Step, plan, referenced};
use crate::store::{ListFilter, SqliteStore, StoreError};

pub struct Retention {
    store: SqliteStore,
    config: Arc<PacksConfig>,
}

impl Retention {
    pub fn new(store: SqliteStore, config: Arc<PacksConfig>) -> Self {
        Retention { store, config }
    }

    /// Runs a pass now and then every `every`, until `shutdown`. Logs what each pass removed
    /// and how long it took; a pass that removes nothing is quiet.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        loop {
            let started = Instant::now();
            match self.pass(Utc::now()).await {
                Ok(removed) if !removed.is_empty() => info!(
                    runs = removed.runs,
                    files = removed.files,
                    failed = removed.failed,
                    took = ?started.elapsed(),
                    "retention removed expired runs and files"
                ),
                Ok(_) => debug!(took = ?started.elapsed(), "retention: nothing expired"),
                Err(e) => warn!(error = %e, "retention pass failed; the next pass tries again"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// What a pass at `now` would do, from what is stored.
    pub async fn plan(&self, now: DateTime<Utc>) -> Result<Vec<Step>, StoreError> {
        let finished = ListFilter {
            phases: Phase::ALL.into_iter().filter(|p| p.is_terminal()).collect(),
            ..ListFilter::default()
        };
        let runs: Vec<TestRun> = self.store.list(&finished).await?;
        let schedules: Vec<NightlySchedule> = self.store.list(&ListFilter::default()).await?;
        Ok(plan(
            &runs,
            |service| self.config.retention(service),
            &referenced(&schedules),
            now,
        ))
    }

    /// One pass at `now`: decides from what is stored and carries every step out. A step that
    /// fails (a directory that cannot be removed) is logged and counted, and the others still
    /// go: one stuck run must not keep every other from expiring.
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<Removed, StoreError> {
        let mut removed = Removed::default();
        for step in self.plan(now).await? {
            match self.apply(&step, now).await {
                Ok(()) => removed.count(step.action),
                Err(e) => {
                    warn!(run = step.run, action = ?step.action, error = %e, "retention could not remove a run's data; the next pass tries again");
                    removed.failed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Carries out one step (see the module's documentation for the order).
    pub async fn apply(&self, step: &Step, now: DateTime<Utc>) -> Result<(), StoreError> {
        match step.action {
            Action::Delete => {
                info!(run = step.run, "retention: deleting an expired run");
                remove_run(&self.store, &step.run).await
            }
            Action::ExpireFiles => {
                info!(run = step.run, "retention: removing an expired run's files");
                remove_files(self.store.data_dir(), &step.run).await?;
                let at = crate::crd::precise_time(now);
                let res = self
                    .store
                    .update::<TestRun, _>(&step.run, move |r| {
                        let notes = r.metadata.annotations.get_or_insert_default();
                        let changed = !notes.contains_key(ANNOTATION_FILES_EXPIRED);
                        if changed {
                            notes.insert(ANNOTATION_FILES_EXPIRED.into(), at);
                        }
                        Ok((changed, ()))
                    })
                    .await;
                match res {
                    Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// Removes a whole run: its files first, then its object with its test results and
/// categories (one transaction, announced so that live views drop it). Also how a schedule's
/// history limit removes its runs.
pub async fn remove_run(store: &SqliteStore, run: &str) -> Result<(), StoreError> {
    remove_files(store.data_dir(), run).await?;
    store.delete::<TestRun>(run).await?;
    Ok(())
}

/// Removes a run's files (`<data>/runs/<run>`: every launch's log, JUnit and Allure results);
/// nothing there is fine. The name was checked when the run was created; it is checked again
/// here because it becomes a path.
pub async fn remove_files(data_dir: &Path, run: &str) -> Result<(), StoreError> {
    crate::runs::check_object_name(run).map_err(StoreError::Invalid)?;
    crate::store::files::remove_run_dir(data_dir, run)
        .await
        .map(|_| ())
}
