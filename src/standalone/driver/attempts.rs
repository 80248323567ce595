//! Attempts: launching the next one a run needs, reading its results when it ends, and
//! recording the core's decision (rerun or verdict).

use super::*;

/// A started attempt process ([`Driver::start_process`]): what its end is read with.
pub(super) struct Started {
    pub proc: process::RunningProcess,
    /// Where a runner that names its own report files writes them.
    pub reports: Option<String>,
    pub started: std::time::SystemTime,
}

impl Driver {
    /// Launches whatever attempt an active run without an attempt in flight needs next.
    pub(super) async fn advance(&mut self, run: &TestRun) -> Result<(), StoreError> {
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
        // An Aqua attempt running with no task (Tomato restarted): poll its launches again.
        if svc.aqua.is_some()
            && let Some(a) = status
                .running_attempt()
                .filter(|a| a.launch.as_deref() == Some(crate::launch::aqua::LAUNCH_REF))
        {
            return self.resume_aqua(run, &svc, a.number).await;
        }
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
        // Which packs Aqua runs and which a local process runs: one decision, shared with
        // operator mode (crate::launch::split).
        let previous = crate::launch::aqua::previous_of(&status, &selection);
        let parts = crate::launch::split::split(&svc, &selection, previous, &merged);
        match parts.local {
            None => self.launch_aqua(run, &svc, number, selection).await,
            Some(local) if parts.aqua.is_some() => {
                self.launch_mixed(run, &svc, number, selection, local, &merged)
                    .await
            }
            Some(_) => self.launch(run, &svc, number, selection, &merged).await,
        }
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
        // Nothing is started that could not be recorded: while the disk refuses writes, a
        // small probe write answers first (and the run waits for the next pass).
        if self.store.write_refused().is_some() {
            self.store.probe_write().await?;
        }
        let seq = run.status.as_ref().map_or(0, |s| s.attempts.len()) + 1;
        let dir = attempt_dir(&self.data_dir, &name, seq);
        let timeout = crate::launch::timeout_of(run, svc);
        // Tests rerun eagerly during the attempt this one reruns: adopted, not run again.
        let skip = match (selection.kind, selection.of_attempt) {
            (crate::crd::SelectionKind::Failed, Some(of)) if svc.rerun.eager => {
                let prev = run
                    .status
                    .as_ref()
                    .and_then(|st| st.attempts.iter().rposition(|a| a.number == of))
                    .map(|i| attempt_dir(&self.data_dir, &name, i + 1));
                match prev {
                    Some(prev) => {
                        let (d, tests, style) =
                            (dir.clone(), selection.tests.clone(), svc.rerun.test_id.clone());
                        tokio::task::spawn_blocking(move || {
                            super::eager::adopt(&prev, &d, &tests, number, &style)
                        })
                        .await
                        .unwrap_or_default()
                    }
                    None => HashSet::new(),
                }
            }
            _ => HashSet::new(),
        };
        if !skip.is_empty() && selection.tests.iter().all(|t| skip.contains(t)) {
            return self.adopt_eager(&name, number, selection, dir, svc).await;
        }
        let rest = Selection {
            tests: selection
                .tests
                .iter()
                .filter(|t| !skip.contains(*t))
                .cloned()
                .collect(),
            ..selection.clone()
        };
        if let Some(shards) = svc.attempt_shards(run, &rest) {
            return self
                .launch_sharded(run, svc, number, selection, merged, dir, timeout, shards, skip)
                .await;
        }
        let mut reruns = crate::launch::reruns(&selection, merged);
        reruns.retain(|r| !skip.contains(r.id));
        let token = CancellationToken::new();
        let packs = selection.packs.clone();
        let what = format!("attempt started ({} tests selected)", reruns.len());
        let Some(Started {
            proc,
            reports,
            started,
        }) = self
            .start_process(run, svc, number, selection, &packs, &reruns, &dir, &token, &what)
            .await?
        else {
            return Ok(());
        };
        self.in_flight.insert(name.clone(), token.clone());
        let tx = self.done_tx.clone();
        let store = self.store.clone();
        let test_id = svc.rerun.test_id.clone();
        let limits = svc.attachments;
        tokio::spawn(async move {
            let exit = proc.wait(token).await;
            let cancelled = exit == Exit::Cancelled;
            let (state, exit_code, message) = exit_state(exit);
            let runner_error = if cancelled {
                None
            } else {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || after_exit(&dir, reports.as_deref(), started))
                    .await
                    .ok()
                    .flatten()
            };
            let report = if cancelled {
                ReportRead::Missing
            } else {
                ingest(&store, &name, number, dir, test_id, limits).await
            };
            let end = AttemptEnd {
                number,
                state,
                exit_code,
                report,
                message,
                runner_error,
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

    /// A rerun whose every test was rerun eagerly ([`super::eager`]): no process; the
    /// attempt is their adopted reports, read as any attempt's are.
    async fn adopt_eager(
        &mut self,
        name: &str,
        number: u32,
        selection: Selection,
        dir: PathBuf,
        svc: &Service,
    ) -> Result<(), StoreError> {
        let tests = selection.tests.len();
        self.store
            .update::<TestRun, _>(name, move |r| {
                r.status.get_or_insert_default().begin_attempt(
                    number,
                    selection,
                    "eager reruns".into(),
                    Utc::now(),
                );
                Ok((true, ()))
            })
            .await?;
        info!(
            run = name,
            attempt = number,
            tests,
            "every test of the rerun ran eagerly"
        );
        self.in_flight.insert(name.to_string(), CancellationToken::new());
        let (tx, store, test_id, name, limits) = (
            self.done_tx.clone(),
            self.store.clone(),
            svc.rerun.test_id.clone(),
            name.to_string(),
            svc.attachments,
        );
        tokio::spawn(async move {
            let report = ingest(&store, &name, number, dir, test_id, limits).await;
            let end = AttemptEnd {
                number,
                state: AttemptState::Finished,
                exit_code: None,
                report,
                message: Some("its tests were rerun eagerly, while the attempt before still ran".into()),
                runner_error: None,
            };
            let _ = tx.send(AttemptDone {
                run: name,
                end,
                cancelled: false,
            });
        });
        Ok(())
    }

    /// Starts the process of an attempt (`packs`, with `reruns` selected) in `dir` and records
    /// the attempt begun with its pid; both a plain and a mixed attempt start this way. `None`:
    /// the process could not start, and that launch failure is recorded. When the record
    /// fails, the process is stopped (its whole group) rather than left running untracked;
    /// the run is launched again once the store takes writes.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_process(
        &mut self,
        run: &TestRun,
        svc: &Service,
        number: u32,
        selection: Selection,
        packs: &[String],
        reruns: &[crate::launch::RerunTest<'_>],
        dir: &std::path::Path,
        token: &CancellationToken,
        what: &str,
    ) -> Result<Option<Started>, StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let junit = dir.join(JUNIT_FILE);
        let plan = plan(
            svc,
            &AttemptRef {
                files: &[],
                run: &name,
                stand: &run.spec.template.stand,
                number,
                packs,
                reruns,
                junit: &junit,
                timeout: crate::launch::timeout_of(run, svc),
            },
        );
        let reports = plan.reports.clone();
        let started = std::time::SystemTime::now();
        let spawned = self.secrets.env(&run.spec.template.env).and_then(|extra_env| {
            process::spawn(ProcessSpec {
                plan,
                extra_env,
                dir: dir.to_path_buf(),
                owner: self.store.instance().to_string(),
            })
        });
        let proc = match spawned {
            Ok(p) => p,
            Err(reason) => {
                self.launch_failed(&name, number, selection, reason).await?;
                return Ok(None);
            }
        };
        info!(run = name, attempt = number, pid = proc.pid, packs = ?packs, "{what}");
        let launch_ref = format!("pid {}", proc.pid);
        let begun = self
            .store
            .update::<TestRun, _>(&name, move |r| {
                r.status
                    .get_or_insert_default()
                    .begin_attempt(number, selection, launch_ref, Utc::now());
                Ok((true, ()))
            })
            .await;
        if let Err(e) = begun {
            token.cancel();
            proc.wait(token.clone()).await;
            return Err(e);
        }
        Ok(Some(Started {
            proc,
            reports,
            started,
        }))
    }

    /// Records an attempt that could not be started (and so ended at once).
    pub(super) async fn launch_failed(
        &mut self,
        name: &str,
        number: u32,
        selection: Selection,
        reason: String,
    ) -> Result<(), StoreError> {
        warn!(run = name, attempt = number, reason, "launch failed");
        let end = AttemptEnd {
            number,
            state: AttemptState::LaunchFailed,
            exit_code: None,
            report: ReportRead::Missing,
            message: Some(reason),
            runner_error: None,
        };
        self.store
            .update::<TestRun, _>(name, move |r| {
                let st = r.status.get_or_insert_default();
                st.begin_attempt(number, selection, "not started".into(), Utc::now());
                Ok((true, ()))
            })
            .await?;
        self.record_end(name, end).await
    }

    /// An attempt's waiter reported its end.
    pub(super) async fn attempt_done(&mut self, done: AttemptDone) -> Result<(), StoreError> {
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
        let now = Utc::now();
        let mutes = self
            .store
            .list::<crate::crd::Mute>(&crate::store::ListFilter {
                service: Some(svc.name.clone()),
                ..Default::default()
            })
            .await?;
        let mutes = crate::mute::Active::of(&mutes, &svc.name, now);
        let (next, merged) = crate::core::record_end(&mut decided, &end, results, max_attempts, &mutes, now);
        let classification = {
            let (svc, data_dir, run, status) = (
                svc.clone(),
                self.data_dir.clone(),
                name.to_string(),
                decided.clone(),
            );
            tokio::task::spawn_blocking(move || {
                let c = classify_run(&svc, &data_dir, &run, &status, &merged);
                (c, merged)
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        };
        let (classification, merged_for_outage) = classification;
        // The per-test categories go first: once the status says the attempt ended, every
        // surface reads them (crate::classify's module comment).
        let next = crate::core::stand_down(
            &mut decided,
            &next,
            &merged_for_outage,
            &classification.by_test,
            &svc.outage_policy(),
            &run.spec.template.stand,
            now,
        )
        .unwrap_or(next);
        let categories =
            crate::classify::stats_without(&classification, &merged_for_outage, &decided.muted_failing());
        self.store.put_categories(name, classification.by_test).await?;
        info!(run = name, attempt = end.number, state = ?end.state, next = ?next, "attempt ended");
        let took = crate::core::attempt_took(&decided, end.number);
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
                st.muted = decided.muted;
                st.stand_down = decided.stand_down;
                Ok((true, ()))
            })
            .await?;
        crate::metrics::global().attempt_ended(&svc.name, end.state, took);
        Ok(())
    }
}

/// An attempt's state, exit code and message from how its process ended.
pub(super) fn exit_state(exit: Exit) -> (AttemptState, Option<i32>, Option<String>) {
    match exit {
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
    }
}

/// What is read off an attempt's directory once its process ended: the report files the
/// runner wrote into its own directory (`launch.reports`) are collected beside the JUnit
/// report, and the runner's complaint, if any, is taken from the end of the log.
pub(super) fn after_exit(
    dir: &Path,
    reports: Option<&str>,
    started: std::time::SystemTime,
) -> Option<String> {
    if let Some(from) = reports
        && let Err(e) = results::collect_reports(Path::new(from), &dir.join(JUNIT_FILE), started)
    {
        warn!(dir = %dir.display(), error = %e, "the runner's reports could not be collected");
    }
    let log = std::fs::read(process::log_path(dir)).ok()?;
    let tail = &log[log.len().saturating_sub(64 * 1024)..];
    crate::launch::runner_error(&String::from_utf8_lossy(tail))
}

/// Classifies a run's failing and flaky tests with its service's rules, reading attempt logs
/// from the data directory for tests without output of their own.
fn classify_run(
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

/// Reads the JUnit report(s) a launch left in `dir` — `junit.xml`, or every `*.xml` under
/// `junit/` — and its Allure results (`allure-results/`) as attempt `number`'s results, one
/// set of tests (see [`results::allure::unite`]); `None` when it wrote neither.
pub(super) fn read_junit(
    dir: &Path,
    number: u32,
    style: &crate::results::TestIdStyle,
) -> Result<Option<Vec<AttemptResult>>, String> {
    read_reports(dir, number, style).map(|r| r.map(|(results, _)| results))
}

/// [`read_junit`], with the attempt's Allure extras by test id and the notes of reading them.
pub(super) fn read_reports(
    dir: &Path,
    number: u32,
    style: &crate::results::TestIdStyle,
) -> Result<Option<(Vec<AttemptResult>, results::allure::AttemptExtras)>, String> {
    let junit = dir.join(JUNIT_FILE);
    let files = results::junit_files(&junit);
    let allure = results::allure::read_dir(&results::allure_dir(&junit)).map_err(|e| e.to_string())?;
    if files.is_empty() && allure.is_none() {
        return Ok(None);
    }
    let mut cases = Vec::new();
    for f in &files {
        results::junit::parse_file(f, |c| cases.push(c))
            .map_err(|e| format!("{}: {e}", f.file_name().unwrap_or_default().to_string_lossy()))?;
    }
    let allure = allure.unwrap_or_default();
    let (cases, tests) = results::allure::unite(cases, allure.tests, style);
    let extras = results::allure::AttemptExtras {
        tests,
        notes: allure.notes,
    };
    Ok(Some((results::assign_ids(number, cases, style), extras)))
}

/// Reads an attempt's reports, keeps its Allure extras within the service's attachment
/// limits, and stores its results.
async fn ingest(
    store: &SqliteStore,
    run: &str,
    number: u32,
    dir: PathBuf,
    style: crate::results::TestIdStyle,
    limits: results::allure::Limits,
) -> ReportRead {
    match read_local(dir, number, style, limits).await {
        Ok(Some(results)) => store_results(store, run, number, results).await,
        Ok(None) => ReportRead::Missing,
        Err(e) => ReportRead::Invalid(e),
    }
}

/// What [`ingest`] reads, without storing it: the results of a launch's reports (`None`: it
/// wrote none), its Allure extras kept beside them.
pub(super) async fn read_local(
    dir: PathBuf,
    number: u32,
    style: crate::results::TestIdStyle,
    limits: results::allure::Limits,
) -> Result<Option<Vec<AttemptResult>>, String> {
    let parsed = tokio::task::spawn_blocking(move || {
        let read = read_reports(&dir, number, &style)?;
        Ok::<_, String>(read.map(|(results, mut extras)| {
            if !extras.tests.is_empty() || !extras.notes.is_empty() {
                for n in &extras.notes {
                    warn!(dir = %dir.display(), note = n, "Allure results");
                }
                let used = dir
                    .parent()
                    .map_or(0, |run_dir| results::attachments::used_by_run(run_dir, &dir));
                let files = results::allure_dir(&dir.join(JUNIT_FILE));
                if let Err(e) = results::attachments::keep(&dir, &files, &mut extras, limits, used) {
                    warn!(dir = %dir.display(), error = %e, "the Allure extras could not be kept");
                }
            }
            results
        }))
    })
    .await;
    match parsed {
        Ok(read) => read,
        Err(e) => Err(format!("the parser task failed: {e}")),
    }
}

/// The Allure record of a sharded attempt, whose shards' Allure files were gathered into
/// the attempt's own `allure-results/` ([`gather_allure`]): read, keyed by test id, and kept
/// within the service's limits, as [`ingest`] does for an attempt run whole.
pub(super) fn keep_gathered_allure(
    dir: &Path,
    style: &crate::results::TestIdStyle,
    limits: results::allure::Limits,
) {
    let files = results::allure_dir(&dir.join(JUNIT_FILE));
    let Ok(Some(read)) = results::allure::read_dir(&files) else {
        return;
    };
    let (_, tests) = results::allure::unite(Vec::new(), read.tests, style);
    let mut extras = results::allure::AttemptExtras {
        tests,
        notes: read.notes,
    };
    let used = dir
        .parent()
        .map_or(0, |run_dir| results::attachments::used_by_run(run_dir, dir));
    if let Err(e) = results::attachments::keep(dir, &files, &mut extras, limits, used) {
        warn!(dir = %dir.display(), error = %e, "the Allure extras could not be kept");
    }
}

/// Moves a shard's Allure files (`<shard>/allure-results/`) into its attempt's, after the
/// shard's results were read: adapters name them by UUID, so shards never collide, and the
/// attempt's record and attachments then live where the API serves them.
pub(super) fn gather_allure(shard_dir: &Path, attempt_dir: &Path) {
    let from = results::allure_dir(&shard_dir.join(JUNIT_FILE));
    let Ok(entries) = std::fs::read_dir(&from) else {
        return;
    };
    let to = results::allure_dir(&attempt_dir.join(JUNIT_FILE));
    if std::fs::create_dir_all(&to).is_err() {
        return;
    }
    for e in entries.flatten() {
        let _ = std::fs::rename(e.path(), to.join(e.file_name()));
    }
}

/// Stores an attempt's results. A disk that refuses writes is waited out: the reports are on
/// disk and the results are stored once there is room (the run stays Running meanwhile).
pub(super) async fn store_results(
    store: &SqliteStore,
    run: &str,
    number: u32,
    results: Vec<AttemptResult>,
) -> ReportRead {
    let n = results.len();
    let mut delay = Duration::from_millis(500);
    loop {
        match store.put_results(run, number, results.clone()).await {
            Ok(()) => return ReportRead::Found(n),
            Err(e) if e.is_unwritable() => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(WRITE_RETRY_MAX);
            }
            Err(e) => return ReportRead::Invalid(format!("cannot store results: {e}")),
        }
    }
}
