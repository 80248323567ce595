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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::core::{AttemptEnd, ReportRead, Step};
use crate::crd::{AttemptState, DeliveryState, Phase, Selection, SelectionKind, TestRun, TestRunStatus};
use crate::launch::process::{self, Exit, ProcessSpec};
use crate::launch::{AttemptRef, RerunTest, plan};
use crate::packs::{PacksConfig, Service};
use crate::queue::{self, Entry};
use crate::report::{Channel, Delivery, Reporter, delivery};
use crate::results::{self, AttemptResult, MergedTest};
use crate::secrets::SecretsDir;
use crate::store::{ListFilter, SqliteStore, StoreError, created};

/// Phases the driver still has work for.
const UNFINISHED: [Phase; 4] = [Phase::Queued, Phase::Running, Phase::Retrying, Phase::Reporting];

/// Longest sleep of the loop with nothing to wake it (a safety net: every change and every
/// end of an attempt or a delivery wakes it anyway).
const IDLE_WAKE: Duration = Duration::from_secs(30);

/// An attempt's end, sent from its waiter task to the loop.
struct AttemptDone {
    run: String,
    end: AttemptEnd,
    cancelled: bool,
}

/// A report delivery attempt's end, sent from its task to the loop.
struct Delivered {
    run: String,
    channel: Channel,
    delivery: Delivery,
}

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
}

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
        }
    }

    /// Runs until `shutdown` is cancelled; then stops the attempts in flight (they are
    /// relaunched by the next start).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut changes = self.store.subscribe();
        self.recover().await;
        loop {
            if let Err(e) = self.reconcile().await {
                error!(error = %e, "reconcile failed; retrying on the next change");
            }
            let sleep = self.sleep();
            tokio::select! {
                Some(done) = self.done_rx.recv() => {
                    let run = done.run.clone();
                    if let Err(e) = self.attempt_done(done).await {
                        error!(run, error = %e, "recording an attempt's end failed");
                    }
                }
                Some(d) = self.delivered_rx.recv() => {
                    let run = d.run.clone();
                    if let Err(e) = self.delivered(d).await {
                        error!(run, error = %e, "recording a report delivery failed");
                    }
                }
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
            if run
                .status
                .as_ref()
                .and_then(TestRunStatus::running_attempt)
                .is_none()
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

    async fn unfinished(&self) -> Result<Vec<TestRun>, StoreError> {
        let filter = ListFilter {
            phases: UNFINISHED.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        self.store.list(&filter).await
    }

    /// How long the loop may sleep: until the next report retry is due, at most [`IDLE_WAKE`].
    fn sleep(&self) -> Duration {
        self.next_due
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .map_or(IDLE_WAKE, |d| d.min(IDLE_WAKE))
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
                Phase::Queued => entries.push(entry(run, false)),
                Phase::Running | Phase::Retrying => {
                    entries.push(entry(run, true));
                    if !self.in_flight.contains_key(&name) {
                        self.advance(run).await?;
                    }
                }
                // Not an admission entry: reporting holds no slot of the service or the stand.
                Phase::Reporting => self.report(run).await?,
                _ => {}
            }
        }

        let admission = queue::admit(&entries, self.config.as_ref());
        for name in &admission.admitted {
            info!(run = name, "admitted");
            let (run, _) = self
                .store
                .update::<TestRun, _>(name, |r| {
                    r.status.get_or_insert_default().admit(Utc::now());
                    Ok((true, ()))
                })
                .await?;
            self.advance(&run).await?;
        }
        let positions: HashMap<&str, u32> = admission.waiting.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        // Renumber the queue in one transaction: a long queue moves as a whole at each admission.
        let moved: Vec<(String, u32)> = runs
            .iter()
            .filter_map(|run| {
                let name = run.metadata.name.as_deref()?;
                let pos = *positions.get(name)?;
                (run.status.as_ref().and_then(|s| s.queue_position) != Some(pos))
                    .then(|| (name.to_string(), pos))
            })
            .collect();
        if !moved.is_empty() {
            self.store
                .update_many::<TestRun, u32>(moved, |r, pos| {
                    let st = r.status.get_or_insert_default();
                    let changed = st.phase == Phase::Queued && st.queue_position != Some(pos);
                    if changed {
                        st.queue_position = Some(pos);
                    }
                    changed
                })
                .await?;
        }
        Ok(())
    }

    /// Launches whatever attempt an active run without an attempt in flight needs next.
    async fn advance(&mut self, run: &TestRun) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let Some(svc) = self.config.service(&run.spec.template.service).cloned() else {
            return self
                .conclude_error(
                    &name,
                    format!(
                        "service {:?} is no longer in packs_config",
                        run.spec.template.service
                    ),
                )
                .await;
        };
        let status = run.status.clone().unwrap_or_default();
        let max_attempts = 1 + u32::from(svc.retries_for(&run.spec.template));
        let merged = self.merged(&name, &status).await?;
        let packs = || {
            svc.resolve_packs(run.spec.template.category.as_deref(), &run.spec.template.packs)
                .map_err(|e| e.to_string())
        };
        let (number, selection) = match crate::core::next_step(&status, &merged, max_attempts, packs) {
            None => return Ok(()), // its waiter will report
            Some(Step::Launch { number, selection }) => (number, selection),
            Some(Step::Finish { verdict, message }) => {
                self.store
                    .update::<TestRun, _>(&name, move |r| {
                        r.status
                            .get_or_insert_default()
                            .conclude(verdict, message, Utc::now());
                        Ok((true, ()))
                    })
                    .await?;
                return Ok(());
            }
        };
        self.launch(run, &svc, number, selection, &merged).await
    }

    /// Starts attempt `number` of `run`.
    async fn launch(
        &mut self,
        run: &TestRun,
        svc: &Service,
        number: u32,
        selection: Selection,
        merged: &[MergedTest],
    ) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let seq = run.status.as_ref().map_or(0, |s| s.attempts.len()) + 1;
        let dir = attempt_dir(&self.data_dir, &name, seq);
        let junit = dir.join("junit.xml");
        let by_id: HashMap<&str, &MergedTest> = merged.iter().map(|t| (t.id.as_str(), t)).collect();
        let reruns: Vec<RerunTest<'_>> = match selection.kind {
            SelectionKind::All => Vec::new(),
            SelectionKind::Failed => selection
                .tests
                .iter()
                .filter_map(|id| {
                    by_id.get(id.as_str()).map(|t| RerunTest {
                        id: &t.id,
                        case: &t.case,
                    })
                })
                .collect(),
        };
        let timeout = match run.spec.timeout.as_deref().map(crate::duration::parse) {
            Some(Ok(t)) => t,
            _ => svc.launch.timeout,
        };
        let plan = plan(
            svc,
            &AttemptRef {
                run: &name,
                stand: &run.spec.template.stand,
                number,
                packs: &selection.packs,
                reruns: &reruns,
                junit: &junit,
                timeout,
            },
        );
        let spawned = self.secrets.env(&run.spec.template.env).and_then(|extra_env| {
            process::spawn(ProcessSpec {
                plan,
                extra_env,
                dir: dir.clone(),
                owner: self.store.instance().to_string(),
            })
        });
        let proc = match spawned {
            Ok(p) => p,
            Err(reason) => {
                warn!(run = name, attempt = number, reason, "launch failed");
                let end = AttemptEnd {
                    number,
                    state: AttemptState::LaunchFailed,
                    exit_code: None,
                    report: ReportRead::Missing,
                    message: Some(reason),
                };
                self.store
                    .update::<TestRun, _>(&name, move |r| {
                        let st = r.status.get_or_insert_default();
                        st.begin_attempt(number, selection, "not started".into(), Utc::now());
                        Ok((true, ()))
                    })
                    .await?;
                return self.record_end(&name, end).await;
            }
        };
        info!(
            run = name,
            attempt = number,
            pid = proc.pid,
            tests = reruns.len(),
            "attempt started"
        );
        let launch_ref = format!("pid {}", proc.pid);
        self.store
            .update::<TestRun, _>(&name, move |r| {
                r.status
                    .get_or_insert_default()
                    .begin_attempt(number, selection, launch_ref, Utc::now());
                Ok((true, ()))
            })
            .await?;

        let token = CancellationToken::new();
        self.in_flight.insert(name.clone(), token.clone());
        let tx = self.done_tx.clone();
        let store = self.store.clone();
        let test_id = svc.rerun.test_id.clone();
        tokio::spawn(async move {
            let exit = proc.wait(token).await;
            let cancelled = exit == Exit::Cancelled;
            let (state, exit_code, message) = match exit {
                Exit::Code(c) => (AttemptState::Finished, Some(c), None),
                Exit::Signal(s) => (
                    AttemptState::Finished,
                    None,
                    Some(format!("killed by signal {s}")),
                ),
                Exit::TimedOut(t) => (
                    AttemptState::TimedOut,
                    None,
                    Some(format!("timed out after {}", crate::duration::human(t))),
                ),
                Exit::Cancelled => (AttemptState::Cancelled, None, Some("cancelled".into())),
            };
            let report = if cancelled {
                ReportRead::Missing
            } else {
                ingest(&store, &name, number, dir, test_id).await
            };
            let end = AttemptEnd {
                number,
                state,
                exit_code,
                report,
                message,
            };
            // The loop may be gone at shutdown; the next start recovers from the store.
            let _ = tx.send(AttemptDone {
                run: name,
                end,
                cancelled,
            });
        });
        Ok(())
    }

    /// An attempt's waiter reported its end.
    async fn attempt_done(&mut self, done: AttemptDone) -> Result<(), StoreError> {
        self.in_flight.remove(&done.run);
        if done.cancelled {
            return self.cancel(&done.run).await;
        }
        self.record_end(&done.run, done.end).await
    }

    /// Records an attempt's end and the core's decision (rerun or verdict) in one write.
    async fn record_end(&mut self, name: &str, end: AttemptEnd) -> Result<(), StoreError> {
        let Some(run) = self.store.get::<TestRun>(name).await? else {
            return Ok(());
        };
        let Some(svc) = self.config.service(&run.spec.template.service).cloned() else {
            return Ok(());
        };
        let max_attempts = 1 + u32::from(svc.retries_for(&run.spec.template));
        let results = self.store.results(name).await?;
        let mut decided = run.status.clone().unwrap_or_default();
        let (next, merged) = crate::core::record_end(&mut decided, &end, results, max_attempts, Utc::now());
        let categories = {
            let (svc, data_dir, run, status) = (
                svc.clone(),
                self.data_dir.clone(),
                name.to_string(),
                decided.clone(),
            );
            tokio::task::spawn_blocking(move || classify_run(&svc, &data_dir, &run, &status, &merged).stats)
                .await
                .map_err(|e| StoreError::Task(e.to_string()))?
        };
        info!(run = name, attempt = end.number, state = ?end.state, next = ?next, "attempt ended");
        self.store
            .update::<TestRun, _>(name, move |r| {
                let st = r.status.get_or_insert_default();
                st.attempts = decided.attempts;
                st.summary = decided.summary;
                st.phase = decided.phase;
                st.verdict = decided.verdict;
                st.message = decided.message;
                st.conditions = decided.conditions;
                st.categories = categories;
                Ok((true, ()))
            })
            .await?;
        Ok(())
    }

    /// Reporting: gives each channel its first state, hands the due ones to delivery tasks,
    /// and ends the run once no channel is pending. Remembers when the next one is due.
    async fn report(&mut self, run: &TestRun) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let svc = self.config.service(&run.spec.template.service).cloned();
        let targets = self.reporter.targets(run, svc.as_deref());
        let plans: Vec<delivery::ChannelPlan> = targets
            .iter()
            .map(|(c, t)| (*c, t.as_ref().err().cloned()))
            .collect();
        let now = Utc::now();
        let (run, (planned, finished)) = self
            .store
            .update::<TestRun, _>(&name, move |r| {
                let st = r.status.get_or_insert_default();
                if st.phase != Phase::Reporting {
                    return Ok((false, (Vec::new(), false)));
                }
                let planned = delivery::plan(st.report.get_or_insert_default(), &plans, now);
                let finished = delivery::finish_if_delivered(st, now);
                Ok((!planned.is_empty() || finished, (planned, finished)))
            })
            .await?;
        let Some(status) = run.status.as_ref() else {
            return Ok(());
        };
        let report = status.report.clone().unwrap_or_default();
        for c in &planned {
            if let Some(ch) = report.channel(*c) {
                info!(run = name, channel = %c, state = ?ch.state, reason = ch.reason.as_deref().unwrap_or(""), "report channel planned");
            }
        }
        if finished {
            info!(run = name, phase = %status.phase, "run finished");
        }
        if status.phase != Phase::Reporting {
            return Ok(());
        }

        let mut due = Vec::new();
        for (channel, target) in targets {
            let (Ok(target), Some(ch)) = (target, report.channel(channel)) else {
                continue;
            };
            if self.delivering.contains(&(name.clone(), channel)) {
                continue;
            }
            if delivery::is_due(ch, now) {
                due.push((channel, target, ch.sent_to.clone()));
            } else if let Some(at) = ch.next_at.filter(|_| ch.state == DeliveryState::Pending) {
                self.next_due = Some(self.next_due.map_or(at, |t| t.min(at)));
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let tests = self.merged(&name, status).await?;
        let categories = {
            let (svc, data_dir, status) = (svc.clone(), self.data_dir.clone(), status.clone());
            let (run_name, tests) = (name.clone(), tests.clone());
            tokio::task::spawn_blocking(move || match svc {
                Some(svc) => classify_run(&svc, &data_dir, &run_name, &status, &tests).by_test,
                None => Default::default(),
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        };
        let content = Arc::new(self.reporter.content(&run, &tests, &categories));
        for (channel, target, sent_to) in due {
            self.delivering.insert((name.clone(), channel));
            let (reporter, content, tx, run) = (
                self.reporter.clone(),
                content.clone(),
                self.delivered_tx.clone(),
                name.clone(),
            );
            tokio::spawn(async move {
                let delivery = reporter.deliver(&target, &content, &sent_to).await;
                // The loop may be gone at shutdown; the channel is still Pending in the store
                // and the next start delivers it.
                let _ = tx.send(Delivered {
                    run,
                    channel,
                    delivery,
                });
            });
        }
        Ok(())
    }

    /// Records a delivery attempt's end in `status.report.<channel>` (and ends the run when
    /// it was the last pending channel).
    async fn delivered(&mut self, d: Delivered) -> Result<(), StoreError> {
        self.delivering.remove(&(d.run.clone(), d.channel));
        let policy = self.reporter.retry().clone();
        let jitter: f64 = rand::random();
        let channel = d.channel;
        let (run, recorded) = self
            .store
            .update::<TestRun, _>(&d.run, move |r| {
                let st = r.status.get_or_insert_default();
                let now = Utc::now();
                let slot = st.report.get_or_insert_default().channel_mut(channel);
                let Some(ch) = slot.as_mut().filter(|c| c.state == DeliveryState::Pending) else {
                    return Ok((false, None));
                };
                delivery::record(ch, d.delivery, &policy, now, jitter);
                let recorded = ch.clone();
                delivery::finish_if_delivered(st, now);
                Ok((true, Some(recorded)))
            })
            .await?;
        let name = d.run;
        match &recorded {
            Some(ch) if ch.state == DeliveryState::Sent => {
                info!(run = name, channel = %channel, attempts = ch.attempts, to = ?ch.sent_to, "report delivered")
            }
            Some(ch) => warn!(
                run = name,
                channel = %channel,
                attempts = ch.attempts,
                state = ?ch.state,
                reason = ch.reason.as_deref().unwrap_or(""),
                "report delivery failed"
            ),
            None => {}
        }
        if let (true, Some(st)) = (recorded.is_some(), run.status.as_ref())
            && st.phase.is_terminal()
        {
            info!(run = name, phase = %st.phase, "run finished");
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

fn entry(run: &TestRun, active: bool) -> Entry {
    Entry {
        name: run.metadata.name.clone().unwrap_or_default(),
        service: run.spec.template.service.clone(),
        stand: queue::stand_key(&run.spec.template.stand),
        priority: run.spec.template.priority,
        created: created(run),
        active,
    }
}

/// Classifies a run's failing and flaky tests with its service's rules, reading attempt logs
/// from the data directory for tests without output of their own.
pub fn classify_run(
    svc: &Service,
    data_dir: &Path,
    run: &str,
    status: &TestRunStatus,
    merged: &[MergedTest],
) -> crate::classify::Classification {
    crate::classify::classify(svc.classifier.as_deref(), merged, |number| {
        // The last launch with that number (an interrupted launch is followed by its relaunch).
        let seq = status.attempts.iter().rposition(|a| a.number == number)? + 1;
        std::fs::File::open(process::log_path(&attempt_dir(data_dir, run, seq))).ok()
    })
}

/// `<data>/runs/<run>/attempt-<seq>`: one directory per launch (a relaunch after an
/// interruption gets its own).
pub fn attempt_dir(data_dir: &Path, run: &str, seq: usize) -> PathBuf {
    data_dir.join("runs").join(run).join(format!("attempt-{seq}"))
}

/// Reads an attempt's JUnit report(s) — `junit.xml`, or every `*.xml` under `junit/` — and
/// stores its results.
async fn ingest(
    store: &SqliteStore,
    run: &str,
    number: u32,
    dir: PathBuf,
    style: crate::packs::TestIdStyle,
) -> ReportRead {
    let parsed = tokio::task::spawn_blocking(move || -> Result<Option<Vec<AttemptResult>>, String> {
        let mut files = Vec::new();
        let main = dir.join("junit.xml");
        if main.is_file() {
            files.push(main);
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("junit")) {
            let mut more: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "xml"))
                .collect();
            more.sort();
            files.extend(more);
        }
        if files.is_empty() {
            return Ok(None);
        }
        let mut cases = Vec::new();
        for f in &files {
            results::junit::parse_file(f, |c| cases.push(c))
                .map_err(|e| format!("{}: {e}", f.file_name().unwrap_or_default().to_string_lossy()))?;
        }
        cases.iter_mut().for_each(|c| style.normalize(c));
        Ok(Some(results::assign_ids(number, cases, |c| style.id_of(c))))
    })
    .await;
    match parsed {
        Ok(Ok(Some(results))) => {
            let n = results.len();
            match store.put_results(run, number, results).await {
                Ok(()) => ReportRead::Found(n),
                Err(e) => ReportRead::Invalid(format!("cannot store results: {e}")),
            }
        }
        Ok(Ok(None)) => ReportRead::Missing,
        Ok(Err(e)) => ReportRead::Invalid(e),
        Err(e) => ReportRead::Invalid(format!("the parser task failed: {e}")),
    }
}
