//! `tomato exec -- <command>`: the entrypoint of a Job's test container.
//!
//! It runs the tests' command (argv as given, never through a shell) in its own process
//! group, copies its output both to the container's stdout/stderr (so `kubectl logs` and the
//! operator's pod-log fallback see it) and to a log file, forwards SIGTERM (a Job's deadline,
//! a cancel) to the whole group, and when the command has ended uploads the JUnit report(s)
//! and the log tail to the operator's API, authenticated by the run's token. It exits with the
//! command's status, so the pod shows the tests' own outcome. The token comes only from the
//! environment (`TOMATO_UPLOAD_TOKEN`, filled from a Secret) and is never printed.
//!
//! `tomato exec --sharded` is one index of a sharded attempt's Indexed Job: it takes its argv
//! and its own `TOMATO_TESTS`/`TOMATO_PACKS` from `TOMATO_SHARD_<JOB_COMPLETION_INDEX>` (see
//! [`super::job`]), sets `TOMATO_SHARD`, and uploads with `?shard=<index>`. The other
//! indexes' `TOMATO_SHARD_<i>` are not passed on to the tests.
//!
//! `tomato exec --fetch` reads the same [`super::job::ShardLaunch`] from the API
//! (`TOMATO_LAUNCH_URL`, `?shard=<index>` added with `--sharded`) with the run's token: the
//! operator does so when a launch is too large for its Job object and its results database
//! keeps it instead. Nothing but the URL is in the pod.
//!
//! `tomato exec --list -- <command>` is the container of the Job that lists a sharded attempt's
//! tests in operator mode (see [`super::job::listing_job`]): the listing command's standard
//! output becomes the pod's log, which the operator reads and splits by; its standard error is
//! held back (the pod log would mix it into the listing) and printed only when it fails.
//!
//! `tomato exec --copy-self-to PATH` is the Job's init container: it copies this binary into
//! a volume the test container mounts, since the test suite's image does not contain Tomato.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::results::upload::{LOG_TAIL_BYTES, gzip};
use crate::secrets::Secret;

/// How long the command's process group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// Upload tries (with 1, 2, 4, ... seconds between them).
const UPLOAD_TRIES: u32 = 6;
/// Tries to read a fetched launch (1, 2, 4, ... 64 seconds between them: two minutes).
const FETCH_TRIES: u32 = 8;

/// What `tomato exec` was asked to do.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// The tests' argv.
    pub command: Vec<String>,
    /// Where the runner writes JUnit XML (`*.xml` under `junit/` beside it are read too).
    pub junit: PathBuf,
    /// Where the combined log is kept.
    pub log: PathBuf,
    /// Where to upload the results; none means run only (useful outside a Job).
    pub upload_url: Option<String>,
    pub token: Option<Secret>,
    /// Variables set for the command on top of ours (a shard's own).
    pub env: Vec<(String, String)>,
}

/// The shard this pod of an Indexed Job runs, from its environment (`var` reads one
/// variable): its index and what it runs. Pure.
pub fn resolve_shard(var: impl Fn(&str) -> Option<String>) -> Result<(u32, super::job::ShardLaunch), String> {
    use super::job::ENV_SHARD_PREFIX;
    let index = completion_index(&var)?;
    let key = format!("{ENV_SHARD_PREFIX}{index}");
    let json = var(&key)
        .ok_or_else(|| format!("--sharded: {key} is not set (the shards ConfigMap has no index {index})"))?;
    let launch: super::job::ShardLaunch =
        serde_json::from_str(&json).map_err(|e| format!("--sharded: {key} is not a shard: {e}"))?;
    if launch.argv.is_empty() {
        return Err(format!("--sharded: {key} has no command"));
    }
    Ok((index, launch))
}

/// This pod's completion index in an Indexed Job (`var` reads one variable). Pure.
pub fn completion_index(var: impl Fn(&str) -> Option<String>) -> Result<u32, String> {
    use super::job::ENV_COMPLETION_INDEX;
    let raw = var(ENV_COMPLETION_INDEX)
        .ok_or_else(|| format!("--sharded needs {ENV_COMPLETION_INDEX} (an Indexed Job sets it)"))?;
    raw.trim()
        .parse()
        .map_err(|_| format!("{ENV_COMPLETION_INDEX} is {raw:?}, not an index"))
}

/// The upload URL of shard `index`: the attempt's with `shard=<index>` in its query.
pub fn shard_upload_url(url: &str, index: u32) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}shard={index}")
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Code(i32),
    Signal(i32),
}

impl Ended {
    /// How a process ended, from its exit status.
    pub fn of(status: std::process::ExitStatus) -> Ended {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) => Ended::Code(c),
            (None, Some(s)) => Ended::Signal(s),
            (None, None) => Ended::Code(1),
        }
    }

    /// The status to exit with, as a shell would report it.
    pub fn exit_code(self) -> i32 {
        match self {
            Ended::Code(c) => c,
            Ended::Signal(s) => 128 + s,
        }
    }
}

/// Runs the command, then uploads. Returns the status to exit with. An upload failure is
/// reported on stderr but does not change the status: the operator then reads the pod log.
pub async fn run(opts: ExecOptions) -> anyhow::Result<i32> {
    let started = std::time::SystemTime::now();
    let ended = run_command(&opts).await?;
    if let Some(reports) = std::env::var_os(crate::launch::REPORTS_ENV)
        && let Err(e) = crate::results::collect_reports(Path::new(&reports), &opts.junit, started)
    {
        eprintln!("[tomato exec] the runner's reports could not be collected: {e}");
    }
    if let Some(url) = &opts.upload_url {
        match upload(&opts, url, ended).await {
            Ok(summary) => eprintln!("[tomato exec] {summary}"),
            Err(e) => eprintln!("[tomato exec] the results could not be uploaded: {e:#}"),
        }
    } else {
        eprintln!(
            "[tomato exec] TOMATO_UPLOAD_URL is not set; results stay in {}",
            opts.junit.display()
        );
    }
    Ok(ended.exit_code())
}

/// Runs the command with its output teed to our stdout/stderr and the log file.
async fn run_command(opts: &ExecOptions) -> anyhow::Result<Ended> {
    use anyhow::Context;
    let (program, args) = opts
        .command
        .split_first()
        .context("no command given after `--`")?;
    if let Some(dir) = opts.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if let Some(dir) = opts.junit.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log =
        std::fs::File::create(&opts.log).with_context(|| format!("cannot create {}", opts.log.display()))?;
    let log = Arc::new(Mutex::new(log));
    let mut command = Command::new(program);
    // Every shard's list is in our environment; the tests get only their own (`opts.env`).
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy()
            .starts_with(crate::launch::job::ENV_SHARD_PREFIX)
        {
            command.env_remove(k);
        }
    }
    let mut child = match command
        .args(args)
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        .env_remove(crate::launch::job::ENV_UPLOAD_TOKEN)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("[tomato exec] cannot start {program:?}: {e}\n");
            eprint!("{msg}");
            let _ = log.lock().map(|mut f| f.write_all(msg.as_bytes()));
            // 127: what a shell answers for a command that cannot be found.
            return Ok(Ended::Code(127));
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    let out = tokio::spawn(tee(
        child.stdout.take().expect("stdout is piped"),
        tokio::io::stdout(),
        log.clone(),
    ));
    let err = tokio::spawn(tee(
        child.stderr.take().expect("stderr is piped"),
        tokio::io::stderr(),
        log.clone(),
    ));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let status = tokio::select! {
        s = child.wait() => s?,
        _ = async { tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} } } => {
            eprintln!("[tomato exec] asked to stop; stopping the tests");
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            }
            match tokio::time::timeout(GRACE, child.wait()).await {
                Ok(s) => s?,
                Err(_) => {
                    if let Some(pid) = pid {
                        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    child.wait().await?
                }
            }
        }
    };
    // Whatever the runner started in its group goes with it.
    if let Some(pid) = pid {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = out.await;
        let _ = err.await;
    })
    .await;
    Ok(Ended::of(status))
}

/// How much of a failed listing's standard error `tomato exec --list` prints.
const LIST_STDERR_BYTES: usize = 16 * 1024;

/// The lines `tomato exec --list` prints around the listing. The operator reads the listing
/// from the pod's log, which the kubelet rotates (at 10 MiB by default) and then serves only
/// its newest file: a log without both lines does not hold the whole listing.
pub const LIST_BEGINS: &str = "[tomato exec] the listing begins";
pub const LIST_ENDS: &str = "[tomato exec] the listing ends";

/// `tomato exec --list`: runs the listing command (argv, never a shell) with its standard
/// output passed straight through between [`LIST_BEGINS`] and [`LIST_ENDS`], and the end of
/// its standard error kept; on failure prints that to our standard error. Returns the status
/// to exit with.
pub async fn list(command: &[String]) -> anyhow::Result<i32> {
    use anyhow::Context;
    let (program, args) = command.split_first().context("no command given after `--`")?;
    // Before the command can write: it shares our standard output.
    println!("{LIST_BEGINS}");
    let child = Command::new(program)
        .args(args)
        .env_remove(crate::launch::job::ENV_UPLOAD_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("[tomato exec] cannot start the listing command {program:?}: {e}");
            return Ok(127);
        }
    };
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let tail = tokio::spawn(async move {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = stderr.read(&mut buf).await {
            kept.extend_from_slice(&buf[..n]);
            let over = kept.len().saturating_sub(LIST_STDERR_BYTES);
            kept.drain(..over);
        }
        kept
    });
    let code = Ended::of(child.wait().await?).exit_code();
    let errors = tail.await.unwrap_or_default();
    if code == 0 {
        println!("{LIST_ENDS}");
    } else {
        eprintln!(
            "[tomato exec] the listing command exited with {code}; its error output ends:\n{}",
            String::from_utf8_lossy(&errors)
        );
    }
    Ok(code)
}

/// Copies a stream to `to` and to the shared log file.
async fn tee(
    mut from: impl AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    log: Arc<Mutex<std::fs::File>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = to.write_all(&buf[..n]).await;
        let _ = to.flush().await;
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(&buf[..n]);
        }
    }
}

/// The last `max` bytes of a file.
fn tail(path: &Path, max: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(max);
    bytes[start..].to_vec()
}

/// Uploads the results as `multipart/form-data`: `exitCode` or `signal`, one gzip'd `junit`
/// part per report, and the `log` tail. Retries transport errors and 5xx answers; a 409 means
/// an earlier try (or the pod-log fallback) already recorded this attempt.
async fn upload(opts: &ExecOptions, url: &str, ended: Ended) -> anyhow::Result<String> {
    let token = opts
        .token
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("TOMATO_UPLOAD_TOKEN is not set"))?;
    let files = crate::results::junit_files(&opts.junit);
    let reports: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter_map(|f| {
            let bytes = std::fs::read(f).ok()?;
            let name = f.file_name()?.to_string_lossy().into_owned();
            Some((format!("{name}.gz"), gzip(&bytes)))
        })
        .collect();
    let log = tail(&opts.log, LOG_TAIL_BYTES);
    let (allure, allure_notes) = allure_upload(&crate::results::allure_dir(&opts.junit));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut last_error = String::new();
    for attempt in 0..UPLOAD_TRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
        let mut form = reqwest::multipart::Form::new();
        form = match ended {
            Ended::Code(c) => form.text("exitCode", c.to_string()),
            Ended::Signal(s) => form.text("signal", s.to_string()),
        };
        for (name, gz) in &reports {
            form = form.part(
                "junit",
                reqwest::multipart::Part::bytes(gz.clone())
                    .file_name(name.clone())
                    .mime_str("application/gzip")?,
            );
        }
        for (name, gz) in &allure {
            form = form.part(
                "allure",
                reqwest::multipart::Part::bytes(gz.clone())
                    .file_name(format!("{name}.gz"))
                    .mime_str("application/gzip")?,
            );
        }
        for note in &allure_notes {
            form = form.text("allureNote", note.clone());
        }
        form = form.part(
            "log",
            reqwest::multipart::Part::bytes(log.clone())
                .file_name("output.log")
                .mime_str("text/plain")?,
        );
        let sent = client
            .post(url)
            .bearer_auth(token.expose())
            .multipart(form)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                return Ok(format!(
                    "uploaded {} JUnit report(s), {} Allure file(s) and {} KiB of log",
                    reports.len(),
                    allure.len(),
                    log.len() / 1024
                ));
            }
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                return Ok("this attempt's results were already recorded".into());
            }
            Ok(r) if r.status().is_server_error() => {
                last_error = format!("{}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            Ok(r) => {
                let status = r.status();
                anyhow::bail!(
                    "the API refused the upload ({status}): {}",
                    r.text().await.unwrap_or_default()
                );
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    anyhow::bail!("{UPLOAD_TRIES} tries failed; the last: {last_error}")
}

/// The files of the attempt's Allure results (`{allure}`) to upload, gzip'd, by file name:
/// every result and container file, and the attachments they reference within operator
/// mode's limits ([`crate::results::upload::OPERATOR_ATTACHMENTS`]: results live in
/// ConfigMaps there); each attachment left out is named in a note with the reason, so the run
/// page says so instead of showing less. Names that are not plain file names are never sent.
fn allure_upload(dir: &Path) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    use crate::results::allure;
    let Ok(Some(read)) = allure::read_dir(dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| {
                allure::safe_source(n) && (n.ends_with("-result.json") || n.ends_with("-container.json"))
            })
            .collect();
        names.sort();
        for n in names {
            if let Ok(bytes) = std::fs::read(dir.join(&n))
                && bytes.len() as u64 <= allure::MAX_FILE_BYTES
            {
                files.push((n, gzip(&bytes)));
            }
        }
    }
    let mut tests: Vec<(String, allure::Extras)> =
        read.tests.into_iter().map(|t| (t.case.name, t.extras)).collect();
    let size_of = |source: &str| {
        std::fs::symlink_metadata(dir.join(source))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    };
    allure::apply_limits(
        &mut tests,
        crate::results::upload::OPERATOR_ATTACHMENTS,
        0,
        size_of,
    );
    let mut notes = Vec::new();
    for (name, extras) in &tests {
        for a in &extras.attachments {
            match &a.refused {
                Some(why) => notes.push(format!("{name}: attachment {:?} refused: {why}", a.name)),
                None if files.iter().any(|(n, _)| *n == a.source) => {}
                None => {
                    if let Ok(bytes) = std::fs::read(dir.join(&a.source)) {
                        files.push((a.source.clone(), gzip(&bytes)));
                    }
                }
            }
        }
    }
    (files, notes)
}

/// `tomato exec --fetch`: what this pod runs, read from `url` (with `?shard=<index>` for one
/// index of a sharded Job) with the run's token. Tried like an upload (the API may be
/// restarting, or an older replica without the route may answer 404 during a rolling
/// upgrade); a refusal (400, 401, 403) is not tried again.
pub async fn fetch_launch(
    url: &str,
    token: Option<&Secret>,
    shard: Option<u32>,
) -> Result<super::job::ShardLaunch, String> {
    let token = token.ok_or_else(|| {
        format!(
            "--fetch needs the run's token in {}",
            super::job::ENV_UPLOAD_TOKEN
        )
    })?;
    let url = match shard {
        Some(i) => shard_upload_url(url, i),
        None => url.to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let mut last_error = String::new();
    for attempt in 0..FETCH_TRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
        match client.get(&url).bearer_auth(token.expose()).send().await {
            Ok(r) if r.status().is_success() => {
                return r
                    .json()
                    .await
                    .map_err(|e| format!("the launch read from {url} is not one: {e}"));
            }
            Ok(r) if r.status().is_client_error() && r.status() != reqwest::StatusCode::NOT_FOUND => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return Err(format!("{url} refused to say what to run ({status}): {body}"));
            }
            Ok(r) => last_error = format!("{url} answered {}", r.status()),
            Err(e) => last_error = format!("{url}: {e}"),
        }
        eprintln!("[tomato exec] reading the launch failed ({last_error}); trying again");
    }
    Err(format!(
        "{FETCH_TRIES} tries to read what to run failed; the last: {last_error}"
    ))
}

/// Copies the running binary to `to` (mode 0755): the init container's whole job.
pub fn copy_self_to(to: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().context("cannot find the running binary")?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::copy(&me, to).with_context(|| format!("cannot copy {} to {}", me.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_takes_its_own_argv_and_tests_by_its_completion_index() {
        let launch = super::super::job::ShardLaunch {
            argv: vec!["node".into(), "--test".into(), "/suite/slow.test.mjs".into()],
            env: vec![("TOMATO_PACKS".into(), "slow".into())],
            unit: "packs".into(),
            items: vec!["slow".into()],
            expected_seconds: None,
        };
        let json = serde_json::to_string(&launch).unwrap();
        let vars = |k: &str| match k {
            "JOB_COMPLETION_INDEX" => Some("1".to_string()),
            "TOMATO_SHARD_1" => Some(json.clone()),
            "TOMATO_SHARD_0" => Some("{}".to_string()),
            _ => None,
        };
        assert_eq!(resolve_shard(vars).unwrap(), (1, launch));
        let err = resolve_shard(|k| (k == "JOB_COMPLETION_INDEX").then(|| "2".to_string())).unwrap_err();
        assert!(err.contains("TOMATO_SHARD_2"), "{err}");
        assert!(
            resolve_shard(|_| None)
                .unwrap_err()
                .contains("JOB_COMPLETION_INDEX")
        );
        assert_eq!(
            shard_upload_url("http://t/api/v1/runs/r/attempts/1/results?namespace=qa", 2),
            "http://t/api/v1/runs/r/attempts/1/results?namespace=qa&shard=2"
        );
    }

    #[tokio::test]
    async fn the_command_runs_without_a_shell_and_its_output_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ExecOptions {
            command: vec!["sh".into(), "-c".into(), "echo out; echo err >&2; exit 3".into()],
            junit: dir.path().join("junit.xml"),
            log: dir.path().join("output.log"),
            upload_url: None,
            token: None,
            env: vec![],
        };
        assert_eq!(run_command(&opts).await.unwrap(), Ended::Code(3));
        let log = std::fs::read_to_string(dir.path().join("output.log")).unwrap();
        assert!(log.contains("out\n") && log.contains("err\n"), "{log}");
    }

    #[tokio::test]
    async fn a_missing_program_is_exit_127_with_the_reason_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ExecOptions {
            command: vec!["no-such-runner; rm -rf /".into()],
            junit: dir.path().join("junit.xml"),
            log: dir.path().join("output.log"),
            upload_url: None,
            token: None,
            env: vec![],
        };
        assert_eq!(run_command(&opts).await.unwrap(), Ended::Code(127));
        let log = std::fs::read_to_string(dir.path().join("output.log")).unwrap();
        assert!(log.contains("cannot start"), "{log}");
    }

    /// Operator mode (issue 16): the Allure results go up with the JUnit, attachments within
    /// operator mode's limits; one over them is named in a note, never silently left out.
    #[test]
    fn allure_results_are_uploaded_with_their_attachments_within_the_limits() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/allure_samples/pytest/allure-results");
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        for e in std::fs::read_dir(&sample).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            std::fs::copy(e.path(), dir.path().join(&name)).unwrap();
            sources.push(name);
        }
        // The screenshot grows over the per-test limit.
        let png = sources.iter().find(|n| n.ends_with(".png")).unwrap().clone();
        std::fs::write(dir.path().join(&png), vec![0u8; (2 << 20) as usize]).unwrap();
        std::fs::write(dir.path().join("stray.bin"), b"not referenced").unwrap();
        let (files, notes) = allure_upload(dir.path());
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.iter().filter(|n| n.ends_with("-result.json")).count(), 6);
        assert_eq!(names.iter().filter(|n| n.ends_with("-container.json")).count(), 4);
        assert!(names.iter().any(|n| n.ends_with("-attachment.txt")), "{names:?}");
        assert!(!names.contains(&png.as_str()), "the big screenshot stays behind");
        assert!(!names.contains(&"stray.bin"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "test_card_declined: attachment \"screenshot\" refused: 2.0 MB is over the limit of 1.0 MB"
            ),
            "{notes:?}"
        );
        assert_eq!(allure_upload(&dir.path().join("none")), (Vec::new(), Vec::new()));
    }

    #[test]
    fn junit_files_are_the_report_and_the_junit_directory_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junit.xml"), "<testsuites/>").unwrap();
        std::fs::create_dir(dir.path().join("junit")).unwrap();
        std::fs::write(dir.path().join("junit/b.xml"), "<testsuites/>").unwrap();
        std::fs::write(dir.path().join("junit/a.xml"), "<testsuites/>").unwrap();
        std::fs::write(dir.path().join("junit/notes.txt"), "").unwrap();
        let names: Vec<String> = crate::results::junit_files(&dir.path().join("junit.xml"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["junit.xml", "a.xml", "b.xml"]);
    }
}
