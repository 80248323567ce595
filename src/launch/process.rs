//! The `process` launcher: an attempt as a local child process (standalone mode).
//!
//! - argv straight to `execve`, never a shell;
//! - its own working directory (the attempt's directory) and its own process group, so a
//!   timeout or a cancel stops the test runner *and* everything it started (browsers,
//!   servers), and nothing it left behind outlives the attempt;
//! - stdout and stderr to one `output.log` in the attempt directory, through one shared file
//!   description so their lines interleave in the order they were written;
//! - Tomato's own `TOMATO_*` settings (API tokens, SMTP credentials) are not inherited; the
//!   child gets the attempt's `TOMATO_*` variables and a `TOMATO_OWNER` marker, by which a
//!   restarted server finds and kills processes an earlier instance left running.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::LaunchPlan;
use crate::secrets::Secret;

/// Name of the combined stdout/stderr log in an attempt directory.
pub const LOG_FILE: &str = "output.log";
/// Environment variable marking processes started by one Tomato data directory.
pub const OWNER_ENV: &str = "TOMATO_OWNER";
/// How long a process group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Everything needed to start an attempt's process.
pub struct ProcessSpec {
    pub plan: LaunchPlan,
    /// Resolved `spec.env` (may hold secrets; only ever put into the child's environment).
    pub extra_env: Vec<(String, Secret)>,
    /// The attempt directory: working directory and home of its log.
    pub dir: PathBuf,
    /// Value of [`OWNER_ENV`].
    pub owner: String,
}

/// A started attempt.
pub struct RunningProcess {
    pub pid: u32,
    child: Child,
    started: Instant,
    log: std::fs::File,
    timeout: Duration,
}

/// How the process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited by itself with this code.
    Code(i32),
    /// Killed by a signal it did not get from us.
    Signal(i32),
    /// Ran past its timeout and was killed.
    TimedOut(Duration),
    /// Stopped because the run was cancelled (or the server shuts down).
    Cancelled,
}

/// Starts the process. The error is the reason to show the user.
pub fn spawn(spec: ProcessSpec) -> Result<RunningProcess, String> {
    let program = spec.plan.argv.first().ok_or("the launch command is empty")?;
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| format!("cannot create the attempt directory {}: {e}", spec.dir.display()))?;
    let log_path = spec.dir.join(LOG_FILE);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    // The header shows exactly what ran; it holds no secret (those are only in the environment).
    let _ = writeln!(log, "[tomato] $ {}", shell_display(&spec.plan.argv));
    let stdout = log
        .try_clone()
        .map_err(|e| format!("cannot share the log file: {e}"))?;
    let stderr = log
        .try_clone()
        .map_err(|e| format!("cannot share the log file: {e}"))?;

    let mut cmd = Command::new(program);
    cmd.args(&spec.plan.argv[1..])
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TOMATO_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env(OWNER_ENV, &spec.owner);
    for (k, v) in &spec.plan.env {
        cmd.env(k, v);
    }
    for (k, v) in &spec.extra_env {
        cmd.env(k, v.expose());
    }
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("command not found: {program}"),
        std::io::ErrorKind::PermissionDenied => format!("permission denied running {program}"),
        _ => format!("cannot start {program}: {e}"),
    })?;
    let pid = child.id().ok_or("the process exited before its pid was known")?;
    Ok(RunningProcess {
        pid,
        child,
        started: Instant::now(),
        log,
        timeout: spec.plan.timeout,
    })
}

impl RunningProcess {
    /// Waits for the end: exit, timeout or cancel. On timeout and cancel the whole process
    /// group gets SIGTERM, then SIGKILL after a grace period; after any end, whatever is left
    /// in the group is killed.
    pub async fn wait(mut self, cancel: CancellationToken) -> Exit {
        let exit = tokio::select! {
            status = self.child.wait() => match status {
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(c), _) => Exit::Code(c),
                    (None, Some(sig)) => Exit::Signal(sig),
                    (None, None) => Exit::Code(-1),
                },
                Err(_) => Exit::Code(-1),
            },
            _ = tokio::time::sleep(self.timeout) => {
                self.stop().await;
                Exit::TimedOut(self.timeout)
            }
            _ = cancel.cancelled() => {
                self.stop().await;
                Exit::Cancelled
            }
        };
        kill_group(self.pid, Signal::SIGKILL);
        let took = crate::duration::human(self.started.elapsed());
        let line = match exit {
            Exit::Code(c) => format!("exit code {c} after {took}"),
            Exit::Signal(s) => format!("killed by signal {s} after {took}"),
            Exit::TimedOut(t) => format!("timed out after {}; killed", crate::duration::human(t)),
            Exit::Cancelled => format!("cancelled after {took}; killed"),
        };
        let _ = writeln!(self.log, "[tomato] {line}");
        exit
    }

    async fn stop(&mut self) {
        kill_group(self.pid, Signal::SIGTERM);
        if tokio::time::timeout(GRACE, self.child.wait()).await.is_err() {
            kill_group(self.pid, Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
    }
}

fn kill_group(pgid: u32, sig: Signal) {
    if let Ok(p) = i32::try_from(pgid) {
        // ESRCH (the group is gone) is the normal case after a clean exit.
        let _ = killpg(Pid::from_raw(p), sig);
    }
}

/// Kills every process (and its process group) carrying `TOMATO_OWNER=<owner>`: what an
/// earlier instance of this data directory left running when it died. Returns how many
/// processes were found.
pub fn kill_orphans(owner: &str) -> usize {
    let marker = format!("{OWNER_ENV}={owner}");
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut found = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            found += 1;
            kill_group(pid, Signal::SIGKILL);
            if let Ok(p) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
    }
    found
}

/// argv as a person would type it, for the log header (quoting only for display).
fn shell_display(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%^$".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Path of an attempt's log.
pub fn log_path(attempt_dir: &Path) -> PathBuf {
    attempt_dir.join(LOG_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, argv: &[&str], timeout: Duration) -> ProcessSpec {
        ProcessSpec {
            plan: LaunchPlan {
                reports: None,
                argv: argv.iter().map(|s| s.to_string()).collect(),
                env: vec![("TOMATO_ATTEMPT".into(), "2".into())],
                timeout,
            },
            extra_env: vec![("API_KEY".into(), Secret::new("k"))],
            dir: dir.to_path_buf(),
            owner: "test-owner".into(),
        }
    }

    #[tokio::test]
    async fn runs_without_a_shell_and_logs_both_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = spawn(spec(
            dir.path(),
            &[
                "sh",
                "-c",
                "echo out $TOMATO_ATTEMPT $API_KEY; echo err >&2; pwd; exit 3",
                "$(touch pwned)",
            ],
            Duration::from_secs(30),
        ))
        .unwrap();
        assert_eq!(p.wait(CancellationToken::new()).await, Exit::Code(3));
        let log = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert!(log.contains("out 2 k"), "{log}");
        assert!(log.contains("err"), "{log}");
        assert!(
            log.contains(&dir.path().canonicalize().unwrap().display().to_string()),
            "{log}"
        );
        assert!(log.contains("exit code 3"), "{log}");
        assert!(
            !dir.path().join("pwned").exists(),
            "an argument is never run by a shell"
        );
    }

    #[tokio::test]
    async fn a_missing_command_is_a_readable_launch_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = spawn(spec(dir.path(), &["no-such-runner-xyz"], Duration::from_secs(1)))
            .err()
            .unwrap();
        assert_eq!(err, "command not found: no-such-runner-xyz");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        // The grandchild would outlive a kill of the direct child alone.
        let p = spawn(spec(
            dir.path(),
            &["sh", "-c", "sleep 300 & echo $! > grandchild.pid; wait"],
            Duration::from_millis(500),
        ))
        .unwrap();
        assert!(matches!(
            p.wait(CancellationToken::new()).await,
            Exit::TimedOut(_)
        ));
        let gpid: i32 = std::fs::read_to_string(dir.path().join("grandchild.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            nix::sys::signal::kill(Pid::from_raw(gpid), None).is_err() || is_zombie(gpid),
            "grandchild {gpid} survived"
        );
    }

    #[tokio::test]
    async fn cancel_stops_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = spawn(spec(dir.path(), &["sleep", "300"], Duration::from_secs(300))).unwrap();
        let token = CancellationToken::new();
        let t2 = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            t2.cancel();
        });
        assert_eq!(p.wait(token).await, Exit::Cancelled);
    }

    #[tokio::test]
    async fn orphans_are_found_by_their_owner_marker() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), &["sleep", "300"], Duration::from_secs(300));
        s.owner = format!("orphan-test-{}", std::process::id());
        let owner = s.owner.clone();
        let p = spawn(s).unwrap();
        let pid = p.pid as i32;
        assert_eq!(kill_orphans(&owner), 1);
        // Reap it, as the dead server's init would.
        let exit = p.wait(CancellationToken::new()).await;
        assert_eq!(exit, Exit::Signal(9));
        assert!(nix::sys::signal::kill(Pid::from_raw(pid), None).is_err());
    }

    fn is_zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
    }
}
