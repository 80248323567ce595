//! End to end: `tomato` as a client (`run --follow`, `status`, `logs`, `cancel`, `queue`,
//! `completions`), the real binary against a real `tomato serve` running the demo suite with
//! Node's test runner. Every exit code, output on a pipe and on a pseudo-terminal (util-linux
//! `script`), JSON output, Ctrl-C.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::{Server, config_with};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const RUN: Duration = Duration::from_secs(90);

/// `tomato ARGS` against `server`, with no token unless the test gives one.
fn tomato(server: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tomato"));
    cmd.args(args)
        .env("TOMATO_URL", server)
        .env_remove("TOMATO_TOKEN")
        .env_remove("TOMATO_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn output(mut cmd: Command) -> Out {
    let out = tokio::time::timeout(RUN, cmd.output())
        .await
        .expect("tomato finished in time")
        .expect("tomato runs");
    Out {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run_cli(server: &str, args: &[&str]) -> Out {
    output(tomato(server, args)).await
}

/// A `tomato run ... --follow` in the background, read line by line.
struct Following {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Following {
    fn start(server: &str, args: &[&str]) -> Following {
        let mut child = tomato(server, args).spawn().expect("tomato starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        Following {
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// Reads until a line contains `needle`, and answers that line.
    async fn wait_for(&mut self, needle: &str) -> String {
        let read = async {
            while let Some(line) = self.lines.next_line().await.expect("stdout reads") {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            panic!("stdout ended without {needle:?}:\n{}", self.seen.join("\n"))
        };
        tokio::time::timeout(RUN, read)
            .await
            .expect("the line came in time")
    }

    /// The run id from the first line (`queued run ID (URL)`).
    async fn run_id(&mut self) -> String {
        let line = self.wait_for("queued run ").await;
        line.split_whitespace().nth(2).expect("an id").to_string()
    }

    /// Waits for the exit; answers the code, the rest of stdout, and stderr.
    async fn finish(mut self) -> Out {
        let mut rest = self.seen.join("\n");
        while let Some(line) = self.lines.next_line().await.expect("stdout reads") {
            rest.push('\n');
            rest.push_str(&line);
        }
        let out = tokio::time::timeout(RUN, self.child.wait_with_output())
            .await
            .expect("tomato exited in time")
            .expect("tomato ran");
        Out {
            code: out.status.code().expect("exited, not killed by a signal"),
            stdout: rest,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn interrupt(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("still running") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT is sent");
    }
}

#[tokio::test]
async fn a_followed_run_that_passes_exits_0_with_plain_lines_on_a_pipe() {
    let server = Server::start().await;
    let out = run_cli(
        &server.url,
        &[
            "run",
            "demo",
            "--stand",
            "localhost",
            "--category",
            "slow",
            "--follow",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let id = out.stdout.split_whitespace().nth(2).unwrap().to_string();
    for needle in [
        "attempt 1 started: every test of slow".to_string(),
        "attempt 1 finished in".to_string(),
        format!("run {id} Succeeded: 1 passed of 1"),
        format!("run page: {}/runs/{id}", server.url),
    ] {
        assert!(out.stdout.contains(&needle), "no {needle:?} in:\n{}", out.stdout);
    }
    assert!(
        !out.stdout.contains('\x1b'),
        "escape sequences on a pipe:\n{:?}",
        out.stdout
    );
    assert_eq!(server.status(&id).await["phase"], "Succeeded");
}

#[tokio::test]
async fn a_followed_run_with_failing_tests_exits_1_and_lists_its_failures_by_category() {
    let server = Server::start().await;
    let out = run_cli(
        &server.url,
        &[
            "run",
            "demo",
            "--stand",
            "localhost",
            "--category",
            "smoke",
            "--follow",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    for needle in [
        "attempt 2 started: rerun of",
        " Failed: ",
        "failures by category:",
    ] {
        assert!(out.stdout.contains(needle), "no {needle:?} in:\n{}", out.stdout);
    }
}

const BROKEN: &str = r#"
description: A service whose runner is not installed
stands: {pattern: localhost}
launch: {command: [no-such-test-runner, "{tests}"]}
packs: {all: {tests: [x]}}
"#;

#[tokio::test]
async fn a_followed_run_whose_tests_cannot_launch_exits_2_with_the_reason() {
    let config = config_with(&[("broken.yaml", BROKEN)]);
    let server = Server::start_with(Some(config.path()), &[]).await;
    let out = run_cli(
        &server.url,
        &["run", "broken", "--stand", "localhost", "--follow"],
    )
    .await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("attempt 1 could not launch"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("command not found: no-such-test-runner"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn a_followed_run_cancelled_from_another_terminal_exits_3() {
    let server = Server::start().await;
    let mut follow = Following::start(
        &server.url,
        &[
            "run",
            "demo",
            "--stand",
            "localhost",
            "--category",
            "slow",
            "--follow",
        ],
    );
    let id = follow.run_id().await;
    follow.wait_for("attempt 1 started").await;
    let cancel = run_cli(&server.url, &["cancel", &id]).await;
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    assert!(cancel.stdout.contains("cancel requested"), "{}", cancel.stdout);
    let out = follow.finish().await;
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("run {id} Cancelled")),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn nothing_listening_exits_4_with_a_message_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["run", "demo", "--stand", "localhost", "--follow"],
        vec!["status", "demo-x"],
        vec!["queue"],
    ] {
        let out = run_cli(&url, &args).await;
        assert_eq!(out.code, 4, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("cannot reach Tomato at {url}")),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn ctrl_c_while_following_stops_following_and_leaves_the_run_running() {
    let server = Server::start().await;
    let mut follow = Following::start(
        &server.url,
        &[
            "run",
            "demo",
            "--stand",
            "localhost",
            "--category",
            "slow",
            "--follow",
        ],
    );
    let id = follow.run_id().await;
    follow.wait_for("attempt 1 started").await;
    follow.interrupt();
    let out = follow.finish().await;
    assert_eq!(out.code, 130, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains(&format!("run {id} continues; `tomato cancel {id}` stops it")),
        "{}",
        out.stderr
    );
    let st = server.status(&id).await;
    assert_eq!(st["phase"], "Running", "{st:#}");
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(st["phase"], "Succeeded", "{st:#}");
}

#[tokio::test]
async fn ctrl_c_with_cancel_on_interrupt_cancels_the_run_and_exits_3() {
    let server = Server::start().await;
    let mut follow = Following::start(
        &server.url,
        &[
            "run",
            "demo",
            "--stand",
            "localhost",
            "--category",
            "slow",
            "--follow",
            "--cancel-on-interrupt",
        ],
    );
    let id = follow.run_id().await;
    follow.wait_for("attempt 1 started").await;
    follow.interrupt();
    let out = follow.finish().await;
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(st["phase"], "Cancelled", "{st:#}");
}

#[tokio::test]
async fn on_a_terminal_following_draws_progress_bars() {
    let server = Server::start().await;
    // util-linux `script` gives the command a pseudo-terminal and copies what it draws.
    let command = format!(
        "{} run demo --stand localhost --category slow --follow --server {}",
        env!("CARGO_BIN_EXE_tomato"),
        server.url
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = output(cmd).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("\x1b["),
        "no control sequences:\n{:?}",
        out.stdout
    );
    // The live bar (`prefix: what`), then the attempt's line once it ended.
    assert!(
        out.stdout.contains("attempt 1: every test of slow"),
        "{:?}",
        out.stdout
    );
    assert!(out.stdout.contains("attempt 1 finished in"), "{:?}", out.stdout);
    assert!(
        out.stdout.contains("Succeeded: 1 passed of 1"),
        "{:?}",
        out.stdout
    );
}

#[tokio::test]
async fn json_output_parses_for_run_status_queue_logs_and_cancel() {
    let server = Server::start().await;
    let json = |out: &Out| -> Value {
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    };
    let created = json(
        &run_cli(
            &server.url,
            &[
                "run",
                "demo",
                "--stand",
                "localhost",
                "--category",
                "slow",
                "--output",
                "json",
            ],
        )
        .await,
    );
    let id = created["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(created["spec"]["category"], "slow");

    let queue = json(&run_cli(&server.url, &["queue", "demo", "--output", "json"]).await);
    assert_eq!(queue["service"], "demo");
    let all = json(&run_cli(&server.url, &["queue", "--output", "json"]).await);
    assert!(all.as_array().is_some_and(|q| q.len() == 2), "{all}");
    let text = run_cli(&server.url, &["queue"]).await;
    assert!(text.stdout.contains(&id), "{}", text.stdout);

    // Following the log as JSON Lines ends with the run, exit code its verdict.
    let logs = run_cli(&server.url, &["logs", &id, "--follow", "--output", "json"]).await;
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    let chunks: Vec<Value> = logs
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let joined: String = chunks.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert!(joined.contains("waits for the nightly export"), "{joined}");

    let status = json(&run_cli(&server.url, &["status", &id, "--output", "json"]).await);
    assert_eq!(status["status"]["phase"], "Succeeded");
    let log = json(&run_cli(&server.url, &["logs", &id, "--attempt", "1", "--output", "json"]).await);
    assert_eq!(log["attempt"], 1);
    assert_eq!(log["log"].as_str(), Some(joined.as_str()));

    // A finished run cannot be cancelled: the server's 409 is shown, exit 5.
    let cancel = run_cli(&server.url, &["cancel", &id, "--output", "json"]).await;
    assert_eq!(cancel.code, 5, "{}", cancel.stderr);
    assert!(cancel.stderr.contains("HTTP 409"), "{}", cancel.stderr);
    let second = json(
        &run_cli(
            &server.url,
            &[
                "run",
                "demo",
                "--stand",
                "localhost",
                "--category",
                "slow",
                "--output",
                "json",
            ],
        )
        .await,
    );
    let second = second["metadata"]["name"].as_str().unwrap();
    let cancelled = json(&run_cli(&server.url, &["cancel", second, "--output", "json"]).await);
    assert_eq!(cancelled["spec"]["cancel"], true);
}

#[tokio::test]
async fn logs_print_an_attempts_log_as_plain_text() {
    let server = Server::start().await;
    let id = server.run_now("service=demo&stand=localhost&category=slow").await;
    let followed = run_cli(&server.url, &["logs", &id, "--follow"]).await;
    assert_eq!(followed.code, 0, "{}", followed.stderr);
    assert!(
        followed.stdout.contains("waits for the nightly export"),
        "{}",
        followed.stdout
    );
    assert!(
        followed.stderr.contains(&format!("run {id}, launch 1")),
        "{}",
        followed.stderr
    );
    let (_, api_log) = server
        .get_text(&format!("/api/v1/runs/{id}/attempts/1/log"))
        .await;
    let once = run_cli(&server.url, &["logs", &id]).await;
    assert_eq!(once.stdout, api_log);
    assert_eq!(followed.stdout, api_log);
    let missing = run_cli(&server.url, &["logs", &id, "--attempt", "2"]).await;
    assert_eq!(missing.code, 5);
    assert!(
        missing.stderr.contains("there is no attempt 2"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn completions_are_generated_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_cli("http://unused", &["completions", shell]).await;
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(
            out.stdout.contains("cancel-on-interrupt") && out.stdout.contains("tomato"),
            "{shell}: {}",
            out.stdout
        );
    }
    let out = run_cli("http://unused", &["completions", "tcsh"]).await;
    assert_eq!(out.code, 5);
}

#[tokio::test]
async fn bad_input_is_refused_client_side_or_with_the_servers_parameter_and_nothing_is_queued() {
    let server = Server::start().await;
    let cases: [(&[&str], &str); 4] = [
        (&["--env", "FOO"], "expected KEY=VALUE"),
        (&["--priority", "12"], "must be a whole number 0–9"),
        (&["--stand", "example.com"], "HTTP 400): spec.stand:"),
        (&["--packs", "nope"], "HTTP 400): spec.packs"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["run", "demo", "--follow"];
        if !extra.contains(&"--stand") {
            args.extend(["--stand", "localhost"]);
        }
        args.extend(extra);
        let out = run_cli(&server.url, &args).await;
        assert_eq!(out.code, 5, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    let unknown = run_cli(&server.url, &["status", "demo-nope"]).await;
    assert_eq!(unknown.code, 5);
    assert!(unknown.stderr.contains("HTTP 404"), "{}", unknown.stderr);
    let (_, runs) = server.get("/api/v1/runs").await;
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(0), "{runs}");
}

#[tokio::test]
async fn the_token_comes_from_tomato_token_and_never_shows() {
    let secret = "tok-cli-7f3a-very-secret";
    let server = Server::start_with(None, &[("TOMATO_API_TOKENS", secret)]).await;
    let args = ["run", "demo", "--stand", "localhost", "--category", "slow"];
    let refused = run_cli(&server.url, &args).await;
    assert_eq!(refused.code, 5);
    assert!(refused.stderr.contains("HTTP 401"), "{}", refused.stderr);
    let mut cmd = tomato(&server.url, &args);
    cmd.env("TOMATO_TOKEN", "wrong-token");
    let wrong = output(cmd).await;
    assert_eq!(wrong.code, 5);
    assert!(!wrong.stderr.contains("wrong-token"), "{}", wrong.stderr);
    let mut cmd = tomato(&server.url, &args);
    cmd.env("TOMATO_TOKEN", secret);
    let ok = output(cmd).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(!ok.stdout.contains(secret) && !ok.stderr.contains(secret));
}

/// `tomato exec --list` (the container of operator mode's listing Job): the listing's output
/// passes through untouched, its error output is held back while it succeeds (the pod log the
/// operator splits by would mix it in) and shown when it fails, with its exit code.
#[tokio::test]
async fn exec_list_passes_the_listing_through_and_shows_its_errors_only_when_it_fails() {
    let list = |script: &str| {
        let mut cmd = tomato(
            "http://127.0.0.1:9",
            &["exec", "--list", "--", "sh", "-c", script],
        );
        cmd.env("TOMATO_UPLOAD_TOKEN", "tok-list-secret");
        output(cmd)
    };
    let ok = list("echo tests/a.py::one; echo 'a warning' >&2; echo tests/b.py::two").await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        ok.stdout,
        "[tomato exec] the listing begins\ntests/a.py::one\ntests/b.py::two\n[tomato exec] the listing ends\n",
        "between the lines that show the log holds the whole listing"
    );
    assert_eq!(ok.stderr, "", "held back while the listing succeeds");

    let failed = list("echo partial; echo 'ERROR: not found: tests/x.py' >&2; exit 4").await;
    assert_eq!(failed.code, 4);
    assert!(!failed.stdout.contains("the listing ends"), "{}", failed.stdout);
    assert!(
        failed.stderr.contains("exited with 4") && failed.stderr.contains("ERROR: not found: tests/x.py"),
        "{}",
        failed.stderr
    );
    // The run's token is not the listing's business.
    let env = list("env").await;
    assert!(!env.stdout.contains("tok-list-secret"), "{}", env.stdout);

    let missing = output(tomato(
        "http://127.0.0.1:9",
        &["exec", "--list", "--", "/no/such/lister"],
    ))
    .await;
    assert_eq!(missing.code, 127);
    assert!(
        missing.stderr.contains("cannot start the listing command"),
        "{}",
        missing.stderr
    );
    let bare = output(tomato("http://127.0.0.1:9", &["exec", "--list"])).await;
    assert_eq!(bare.code, 2, "a listing needs its command: {}", bare.stderr);
}
