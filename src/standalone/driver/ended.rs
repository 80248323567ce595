//! An attempt's end: what its process left (exit, JUnit and Allure reports, the runner's
//! complaint) read into the store, and the core's decision ([`crate::core::decide_end`])
//! recorded in one write.

use super::*;

impl Driver {
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
    pub(super) async fn record_end(&mut self, name: &str, end: AttemptEnd) -> Result<(), StoreError> {
        let Some(run) = self.store.get::<TestRun>(name).await? else {
            return Ok(());
        };
        let Some(svc) = self.config.service(&run.spec.template.service).cloned() else {
            return Ok(());
        };
        let results = self.store.results(name).await?;
        let now = Utc::now();
        let mutes = self
            .store
            .list::<crate::crd::Mute>(&crate::store::ListFilter {
                service: Some(svc.name.clone()),
                ..Default::default()
            })
            .await?;
        let mutes = crate::mute::Active::of(&mutes, &svc.name, now);
        // Classification reads the attempts' logs: the decision is taken off the async threads.
        let crate::core::Decided {
            status: decided,
            next,
            by_test,
        } = {
            let (status, data_dir, run_name, end) = (
                run.status.clone().unwrap_or_default(),
                self.data_dir.clone(),
                name.to_string(),
                end.clone(),
            );
            let (svc, stand) = (svc.clone(), run.spec.template.stand.clone());
            tokio::task::spawn_blocking(move || {
                let rules = crate::core::EndRules {
                    max_attempts: svc.max_attempts(&run.spec.template),
                    mutes: &mutes,
                    outage: svc.outage_policy(),
                    stand: &stand,
                };
                crate::core::decide_end(
                    &status,
                    &end,
                    results,
                    &rules,
                    |status, merged| classify_run(&svc, &data_dir, &run_name, status, merged),
                    now,
                )
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        };
        // The per-test categories go first: once the status says the attempt ended, every
        // surface reads them (crate::classify's module comment).
        self.store.put_categories(name, by_test).await?;
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
                st.categories = decided.categories;
                st.muted = decided.muted;
                st.stand_down = decided.stand_down;
                Ok((true, ()))
            })
            .await?;
        crate::metrics::global().attempt_ended(&svc.name, end.state, took);
        Ok(())
    }
}

/// What an attempt process's end is read with, by the task that waits for it.
pub(super) struct Waiter {
    pub run: String,
    pub number: u32,
    pub dir: PathBuf,
    /// Where a runner that names its own report files writes them.
    pub reports: Option<String>,
    pub started: std::time::SystemTime,
    pub test_id: crate::results::TestIdStyle,
    pub limits: results::allure::Limits,
}

impl Waiter {
    /// Waits for the process to end (or `token` to cancel it), reads what it left, and sends
    /// the attempt's end to the loop.
    pub(super) async fn wait(
        self,
        proc: process::RunningProcess,
        token: CancellationToken,
        store: SqliteStore,
        done: mpsc::UnboundedSender<AttemptDone>,
    ) {
        let Waiter {
            run,
            number,
            dir,
            reports,
            started,
            test_id,
            limits,
        } = self;
        let exit = proc.wait(token).await;
        let cancelled = exit == Exit::Cancelled;
        let (state, exit_code, message) = exit_state(exit);
        let (runner_error, report) = if cancelled {
            (None, ReportRead::Missing)
        } else {
            let d = dir.clone();
            let runner_error =
                tokio::task::spawn_blocking(move || after_exit(&d, reports.as_deref(), started))
                    .await
                    .ok()
                    .flatten();
            (
                runner_error,
                ingest(&store, &run, number, dir, test_id, limits).await,
            )
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
        let _ = done.send(AttemptDone { run, end, cancelled });
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
pub(super) async fn ingest(
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
