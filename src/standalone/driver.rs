//! The standalone driver: a small event loop over the SQLite store that carries out the
//! core's decisions with local processes.
//!
//! It wakes on every committed change (a run created, cancelled, re-prioritised) and on every
//! attempt's end, and then reconciles: every unfinished run is brought one step closer to its
//! end. Level-triggered like a Kubernetes controller — what to do is always derived from
//! what is stored, never from what the loop remembers — so a restart resumes exactly where
//! the last instance stopped: interrupted attempts are marked and launched again, a decided
//! rerun is launched, a verdict is reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::core::{AttemptEnd, ReportRead, Step};
use crate::crd::{AttemptState, Phase, Selection, SelectionKind, TestRun, TestRunStatus};
use crate::launch::process::{self, Exit, ProcessSpec};
use crate::launch::{AttemptRef, RerunTest, plan};
use crate::packs::{PacksConfig, Service};
use crate::queue::{self, Entry};
use crate::results::{self, AttemptResult, MergedTest};
use crate::secrets::SecretsDir;
use crate::store::{ListFilter, SqliteStore, StoreError, created};

/// Phases the driver still has work for.
const UNFINISHED: [Phase; 4] = [Phase::Queued, Phase::Running, Phase::Retrying, Phase::Reporting];

/// An attempt's end, sent from its waiter task to the loop.
struct AttemptDone {
    run: String,
    end: AttemptEnd,
    cancelled: bool,
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
}

impl Driver {
    pub fn new(store: SqliteStore, config: Arc<PacksConfig>, data_dir: &Path, secrets: SecretsDir) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Driver {
            store,
            config,
            data_dir: data_dir.to_path_buf(),
            secrets,
            in_flight: HashMap::new(),
            done_tx,
            done_rx,
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
            tokio::select! {
                Some(done) = self.done_rx.recv() => {
                    let run = done.run.clone();
                    if let Err(e) = self.attempt_done(done).await {
                        error!(run, error = %e, "recording an attempt's end failed");
                    }
                }
                change = changes.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = change {
                        break;
                    }
                }
                _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
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

    /// One pass over every unfinished run.
    async fn reconcile(&mut self) -> Result<(), StoreError> {
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
                Phase::Reporting => {
                    entries.push(entry(run, true));
                    self.report(&name).await?;
                }
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
        for run in &runs {
            let name = run.metadata.name.as_deref().unwrap_or_default();
            let Some(&pos) = positions.get(name) else { continue };
            if run.status.as_ref().and_then(|s| s.queue_position) != Some(pos) {
                self.store
                    .update::<TestRun, _>(name, move |r| {
                        let st = r.status.get_or_insert_default();
                        let changed = st.phase == Phase::Queued && st.queue_position != Some(pos);
                        if changed {
                            st.queue_position = Some(pos);
                        }
                        Ok((changed, ()))
                    })
                    .await?;
            }
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
                ingest(&store, &name, number, dir, move |c| test_id.id_of(c)).await
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
        let next = crate::core::record_end(&mut decided, &end, results, max_attempts, Utc::now());
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
                Ok((true, ()))
            })
            .await?;
        Ok(())
    }

    /// Reporting. Channels come with the reporting work; until then the verdict is final
    /// and the run simply ends in its phase.
    async fn report(&mut self, name: &str) -> Result<(), StoreError> {
        self.store
            .update::<TestRun, _>(name, |r| {
                let st = r.status.get_or_insert_default();
                let changed = st.phase == Phase::Reporting;
                if changed {
                    st.finish(Utc::now());
                }
                Ok((changed, ()))
            })
            .await?;
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
    id_of: impl Fn(&results::Case) -> String + Send + 'static,
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
        Ok(Some(results::assign_ids(number, cases, id_of)))
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
