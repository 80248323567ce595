//! The standalone driver: a small event loop over the SQLite store that carries out the
//! core's decisions with local processes.
//!
//! It wakes on every committed change (a run created, cancelled, re-prioritised) and on every
//! attempt's end, and then reconciles: every unfinished run is brought one step closer to its
//! end. Level-triggered like a Kubernetes controller — what to do is always derived from
//! what is stored, never from what the loop remembers — so a restart resumes exactly where
//! the last instance stopped: interrupted attempts are marked and launched again, a decided
//! rerun is launched, a verdict is reported.
//!
//! Reporting works the same way: each channel's state is in `status.report`; the loop hands
//! due channels to tasks of their own (a slow SMTP server never holds up admission), records
//! what each attempt did as it comes back, and wakes when the next retry is due. A run in
//! `Reporting` no longer holds its service's or stand's slot: its tests are done.
//!
//! This module holds the loop and the queue; [`attempts`] launches attempts, [`ended`] reads
//! what an attempt left and records the core's decision, [`shards`] runs a sharded attempt and
//! [`eager`] its eager reruns, [`aqua`] and [`mixed`] carry out attempts whose packs run in
//! Aqua (all of them, or beside local ones), [`reporting`] delivers the report.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::core::{AttemptEnd, ReportRead, Step};
use crate::crd::created;
use crate::crd::{AttemptState, DeliveryState, Phase, Selection, TestRun, TestRunStatus};
use crate::integrations::delivery::Delivery;
use crate::launch::process::{self, Exit, ProcessSpec};
use crate::launch::{AttemptRef, plan};
use crate::packs::{PacksConfig, Service};
use crate::queue::{self, Entry};
use crate::report::{Channel, Reporter};
use crate::results::{self, AttemptResult, MergedTest};
use crate::secrets::SecretsDir;
use crate::store::{ListFilter, SqliteStore, StoreError};

mod aqua;
mod attempts;
mod eager;
mod ended;
mod mixed;
mod reporting;
mod shards;

use crate::store::files::{JUNIT_FILE, attempt_dir};

/// Phases the driver still has work for.
const UNFINISHED: [Phase; 4] = [Phase::Queued, Phase::Running, Phase::Retrying, Phase::Reporting];

/// Longest sleep of the loop with nothing to wake it (a safety net: every change and every
/// end of an attempt or a delivery wakes it anyway).
const IDLE_WAKE: Duration = Duration::from_secs(30);

/// An attempt's end, sent from its waiter task to the loop.
#[derive(Clone)]
struct AttemptDone {
    run: String,
    end: AttemptEnd,
    cancelled: bool,
}

/// A report delivery attempt's end, sent from its task to the loop.
#[derive(Clone)]
struct Delivered {
    run: String,
    channel: Channel,
    delivery: Delivery,
}

/// How long a stopping server waits for report deliveries in flight (within Kubernetes'
/// default 30 s termination grace).
const SHUTDOWN_DELIVERY_WAIT: Duration = Duration::from_secs(20);

/// The standalone driver. Create with [`Driver::new`], run with [`Driver::run`].
pub struct Driver {
    store: SqliteStore,
    config: Arc<PacksConfig>,
    data_dir: PathBuf,
    secrets: SecretsDir,
    /// Cancel tokens of attempts in flight, by run name.
    in_flight: HashMap<String, CancellationToken>,
    done_tx: mpsc::UnboundedSender<AttemptDone>,
    done_rx: mpsc::UnboundedReceiver<AttemptDone>,
    reporter: Arc<Reporter>,
    /// Report channels being delivered right now, by run.
    delivering: HashSet<(String, Channel)>,
    delivered_tx: mpsc::UnboundedSender<Delivered>,
    delivered_rx: mpsc::UnboundedReceiver<Delivered>,
    /// The earliest time a waiting report channel is due (found by the last reconcile).
    next_due: Option<DateTime<Utc>>,
    /// Outcomes the store refused to record (a full disk): kept and recorded again until they
    /// are stored, so that no run is stranded `Running` by one failed write.
    unrecorded: Unrecorded,
}

/// Attempt ends and report deliveries that are known but not yet stored, and when to try
/// storing them again.
#[derive(Default)]
struct Unrecorded {
    ends: Vec<AttemptDone>,
    deliveries: Vec<Delivered>,
    /// Store writes failed in a row (drives the backoff; 0 while writes succeed).
    failures: u32,
}

impl Unrecorded {
    fn is_empty(&self) -> bool {
        self.ends.is_empty() && self.deliveries.is_empty()
    }

    /// Backoff before the next try: 0.5 s doubling to [`WRITE_RETRY_MAX`].
    fn retry_in(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(8);
        (Duration::from_millis(500) * 2u32.pow(exp)).min(WRITE_RETRY_MAX)
    }
}

/// Longest wait between two tries of a write the store refused.
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

impl Driver {
    pub fn new(
        store: SqliteStore,
        config: Arc<PacksConfig>,
        data_dir: &Path,
        secrets: SecretsDir,
        reporter: Arc<Reporter>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (delivered_tx, delivered_rx) = mpsc::unbounded_channel();
        Driver {
            store,
            config,
            data_dir: data_dir.to_path_buf(),
            secrets,
            in_flight: HashMap::new(),
            done_tx,
            done_rx,
            reporter,
            delivering: HashSet::new(),
            delivered_tx,
            delivered_rx,
            next_due: None,
            unrecorded: Unrecorded::default(),
        }
    }

    /// Runs until `shutdown` is cancelled; then stops the attempts in flight (they are
    /// relaunched by the next start).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut changes = self.store.subscribe();
        self.recover().await;
        let mut reconcile_failing = false;
        loop {
            // What the store refused before is stored first; while it still refuses, nothing
            // new is admitted or launched (the runs are examined again at the next try).
            if self.record_unrecorded().await {
                let started = std::time::Instant::now();
                let pass = self.reconcile().await;
                crate::metrics::global().reconciled(
                    "testrun",
                    started.elapsed(),
                    pass.as_ref().err().map(StoreError::metric_label),
                );
                match pass {
                    Ok(()) => {
                        reconcile_failing = false;
                        self.unrecorded.failures = 0;
                    }
                    Err(e) => {
                        if !reconcile_failing {
                            error!(error = %e, "reconcile failed; retrying");
                        }
                        reconcile_failing = true;
                        self.unrecorded.failures += 1;
                    }
                }
            }
            let sleep = self.sleep();
            tokio::select! {
                Some(done) = self.done_rx.recv() => self.attempt_done_or_keep(done).await,
                Some(d) = self.delivered_rx.recv() => self.delivered_or_keep(d).await,
                change = changes.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = change {
                        break;
                    }
                }
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.cancelled() => break,
            }
            // Coalesce a burst of changes into one reconcile pass.
            while changes.try_recv().is_ok() {}
        }
        info!(
            attempts = self.in_flight.len(),
            "driver stopping; killing attempts in flight"
        );
        for token in self.in_flight.values() {
            token.cancel();
        }
        self.finish_deliveries().await;
    }

    /// At shutdown, waits (a while) for the report deliveries in flight and records them: a
    /// delivery the far end received but Tomato did not record would be sent again by the
    /// next start. Only a harder stop than this (kill -9) leaves that window open.
    async fn finish_deliveries(&mut self) {
        if self.delivering.is_empty() {
            return;
        }
        info!(
            deliveries = self.delivering.len(),
            "waiting for the report deliveries in flight"
        );
        let drain = async {
            while !self.delivering.is_empty() {
                let Some(d) = self.delivered_rx.recv().await else {
                    break;
                };
                self.delivered_or_keep(d).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_DELIVERY_WAIT, drain).await.is_err() {
            warn!(
                "report deliveries still in flight at shutdown; they stay Pending and are sent by the next start"
            );
        }
    }

    /// After a restart: kill what an earlier instance left running and mark its attempts
    /// interrupted, so that reconcile launches them again.
    async fn recover(&mut self) {
        let killed = process::kill_orphans(self.store.instance());
        if killed > 0 {
            warn!(
                killed,
                "killed test processes left running by a previous instance"
            );
        }
        let runs = match self.unfinished().await {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot read runs at start-up");
                return;
            }
        };
        for run in runs {
            let Some(name) = run.metadata.name.clone() else {
                continue;
            };
            // An Aqua attempt is not interrupted: its launches go on in Aqua, and reconcile
            // polls them again (see `aqua`) — while the service still runs in Aqua.
            let still_aqua = self
                .config
                .service(&run.spec.template.service)
                .is_some_and(|s| s.aqua.is_some());
            if run
                .status
                .as_ref()
                .and_then(TestRunStatus::running_attempt)
                .is_none_or(|a| still_aqua && a.launch.as_deref() == Some(crate::launch::aqua::LAUNCH_REF))
            {
                continue;
            }
            let res = self
                .store
                .update::<TestRun, _>(&name, |r| {
                    let st = r.status.get_or_insert_default();
                    let stopped = st.stop_attempt(
                        AttemptState::Interrupted,
                        "Tomato restarted while it ran; launched again",
                        Utc::now(),
                    );
                    Ok((stopped.is_some(), stopped))
                })
                .await;
            match res {
                Ok((_, Some(a))) => warn!(run = name, attempt = a.number, "attempt interrupted by a restart"),
                Ok(_) => {}
                Err(e) => error!(run = name, error = %e, "cannot mark an interrupted attempt"),
            }
        }
    }

    /// The unfinished runs, parsing only those that changed since the last pass
    /// ([`SqliteStore::list_runs_cached`]).
    async fn unfinished(&self) -> Result<Vec<Arc<TestRun>>, StoreError> {
        let filter = ListFilter {
            phases: UNFINISHED.to_vec(),
            ..Default::default()
        };
        self.store.list_runs_cached(&filter).await
    }

    /// The stands held by an outage ([`crate::outage::held`], over the runs
    /// [`ListFilter::outage_holds`] selects), parsed only when they changed.
    async fn held_stands(&self) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let runs = self.store.outage_runs().await?;
        Ok(crate::outage::held(runs.iter().map(|r| r.as_ref())))
    }

    /// How long the loop may sleep: until the next report retry is due, or the next try of a
    /// refused write, at most [`IDLE_WAKE`].
    fn sleep(&self) -> Duration {
        let due = self
            .next_due
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .map_or(IDLE_WAKE, |d| d.min(IDLE_WAKE));
        if self.unrecorded.failures > 0 {
            due.min(self.unrecorded.retry_in())
        } else {
            due
        }
    }

    /// Records an attempt's end; if the store refuses, keeps it to record again.
    async fn attempt_done_or_keep(&mut self, done: AttemptDone) {
        let kept = done.clone();
        if let Err(e) = self.attempt_done(done).await {
            self.keep_end(kept, &e);
        }
    }

    /// Records a delivery; if the store refuses, keeps it (and the channel marked in flight,
    /// so that it is not sent twice) to record again.
    async fn delivered_or_keep(&mut self, d: Delivered) {
        let kept = d.clone();
        if let Err(e) = self.delivered(d).await {
            self.keep_delivery(kept, &e);
        }
    }

    fn keep_end(&mut self, done: AttemptDone, e: &StoreError) {
        if self.unrecorded.failures == 0 {
            error!(run = done.run, error = %e, "recording an attempt's end failed; trying again until it is stored");
        }
        // Its attempt is over (no longer in flight), but the run holds its slot until the
        // end is stored.
        self.unrecorded.ends.push(done);
        self.unrecorded.failures += 1;
    }

    fn keep_delivery(&mut self, d: Delivered, e: &StoreError) {
        if self.unrecorded.failures == 0 {
            error!(run = d.run, error = %e, "recording a report delivery failed; trying again until it is stored");
        }
        self.delivering.insert((d.run.clone(), d.channel));
        self.unrecorded.deliveries.push(d);
        self.unrecorded.failures += 1;
    }

    /// Tries to store what the store refused before, in the order it happened. Answers
    /// whether everything is stored (and the loop may go on with new work).
    async fn record_unrecorded(&mut self) -> bool {
        if self.unrecorded.is_empty() {
            // At most a failed reconcile is pending: its next pass is the retry.
            return true;
        }
        let ends = std::mem::take(&mut self.unrecorded.ends);
        let deliveries = std::mem::take(&mut self.unrecorded.deliveries);
        let before = ends.len() + deliveries.len();
        let failures = self.unrecorded.failures;
        for (i, done) in ends.iter().enumerate() {
            if let Err(e) = self.attempt_done(done.clone()).await {
                self.unrecorded.ends.extend(ends[i..].iter().cloned());
                self.unrecorded.deliveries.extend(deliveries);
                self.unrecorded.failures = failures + 1;
                tracing::debug!(error = %e, "the store still refuses writes");
                return false;
            }
        }
        for (i, d) in deliveries.iter().enumerate() {
            if let Err(e) = self.delivered(d.clone()).await {
                self.unrecorded.deliveries.extend(deliveries[i..].iter().cloned());
                self.unrecorded.failures = failures + 1;
                tracing::debug!(error = %e, "the store still refuses writes");
                return false;
            }
        }
        info!(recorded = before, "stored what the store had refused; runs go on");
        self.unrecorded.failures = 0;
        true
    }

    /// One pass over every unfinished run.
    async fn reconcile(&mut self) -> Result<(), StoreError> {
        self.next_due = None;
        let runs = self.unfinished().await?;
        let mut entries = Vec::with_capacity(runs.len());
        for run in &runs {
            let name = run.metadata.name.clone().unwrap_or_default();
            let phase = run.status.as_ref().map_or(Phase::Queued, |s| s.phase);
            if run.spec.cancel && phase != Phase::Reporting {
                self.cancel(&name).await?;
                continue;
            }
            match phase {
                Phase::Queued => entries.push(Entry::of(run, false, &*self.config)),
                Phase::Running | Phase::Retrying => {
                    entries.push(Entry::of(run, true, &*self.config));
                    if !self.in_flight.contains_key(&name) {
                        self.advance(run).await?;
                    }
                }
                // Not an admission entry: reporting holds no slot of the service or the stand.
                Phase::Reporting => self.report(run).await?,
                _ => {}
            }
        }

        let admission = queue::admit(&entries, self.config.as_ref(), &self.held_stands().await?);
        for name in &admission.admitted {
            info!(run = name, "admitted");
            let (run, _) = self
                .store
                .update::<TestRun, _>(name, |r| {
                    r.status.get_or_insert_default().admit(Utc::now());
                    Ok((true, ()))
                })
                .await?;
            crate::metrics::global().dequeued(
                &run.spec.template.service,
                (Utc::now() - created(&run)).to_std().unwrap_or_default(),
            );
            self.advance(&run).await?;
        }
        // What each queued run waits for is stored when it changes; its place is not: the place
        // of every run behind moves at each admission, and rewriting a long queue each time
        // made a pass cost the whole queue. Readers compute the place from the queue as it is
        // (`api::runs::queue_positions`).
        let waiting: HashMap<&str, &crate::queue::WaitReason> = admission
            .waiting
            .iter()
            .map(|w| (w.name.as_str(), &w.reason))
            .collect();
        let moved: Vec<(String, crate::queue::WaitReason)> = runs
            .iter()
            .filter_map(|run| {
                let name = run.metadata.name.as_deref()?;
                let reason = *waiting.get(name)?;
                run.status
                    .as_ref()
                    .is_none_or(|st| st.wait_at_changes(None, reason))
                    .then(|| (name.to_string(), reason.clone()))
            })
            .collect();
        if !moved.is_empty() {
            self.store
                .update_many::<TestRun, crate::queue::WaitReason>(moved, |r, reason| {
                    r.status.get_or_insert_default().wait_at(None, &reason)
                })
                .await?;
        }
        Ok(())
    }

    /// Stops a run: kills its attempt (the waiter reports back and this runs again) or,
    /// with nothing in flight, ends it `Cancelled`.
    async fn cancel(&mut self, name: &str) -> Result<(), StoreError> {
        if let Some(token) = self.in_flight.get(name) {
            token.cancel();
            return Ok(());
        }
        self.store
            .update::<TestRun, _>(name, |r| {
                let st = r.status.get_or_insert_default();
                let changed = !st.phase.is_terminal();
                if changed {
                    st.cancel(Utc::now());
                }
                Ok((changed, ()))
            })
            .await?;
        info!(run = name, "cancelled");
        Ok(())
    }

    async fn conclude_error(&mut self, name: &str, message: String) -> Result<(), StoreError> {
        self.store
            .update::<TestRun, _>(name, move |r| {
                r.status.get_or_insert_default().conclude(
                    crate::crd::Verdict::Error,
                    Some(message),
                    Utc::now(),
                );
                Ok((true, ()))
            })
            .await?;
        Ok(())
    }

    /// The run's merged verdicts so far.
    async fn merged(&self, name: &str, status: &TestRunStatus) -> Result<Vec<MergedTest>, StoreError> {
        let results = self.store.results(name).await?;
        Ok(crate::core::merge_run(status, results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_writes_are_tried_again_sooner_at_first_then_every_few_seconds() {
        let mut u = Unrecorded {
            failures: 1,
            ..Default::default()
        };
        assert_eq!(u.retry_in(), Duration::from_millis(500));
        u.failures = 2;
        assert_eq!(u.retry_in(), Duration::from_secs(1));
        u.failures = 50;
        assert_eq!(u.retry_in(), WRITE_RETRY_MAX);
    }
}
