//! End to end, standalone mode, sharded attempts: the real `tomato` binary splits a real
//! pytest suite (listed with `pytest --collect-only -q`) into shards, each its own process
//! in its own directory; a shard that crashes fails only its own tests; the shards merge into
//! one attempt; their progress is in the API; each shard takes a slot of the service and the
//! stand; a second run is balanced by the durations the first one recorded.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;

const RUN: Duration = Duration::from_secs(120);

/// Three shards; the service and the stand take three at once, so one sharded run fills them.
const SERVICE: &str = r#"
stands: {pattern: localhost, concurrency: 3}
concurrency: 3
retries: 1
shards: 3
launch:
  runner: pytest
  env: {PYTHONDONTWRITEBYTECODE: "1"}
packs:
  all: {tests: ["{dir}/tests"]}
"#;

/// A suite: plenty of passing tests, a flaky one, one that always fails, a slow one (so a
/// shard is seen running), and one that kills its whole pytest process on attempt 1 (its
/// shard writes no report at all).
fn suite(dir: &std::path::Path) {
    let tests = dir.join("sharded").join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    let mut a = String::from("import os, time\n\n");
    for i in 0..8 {
        a.push_str(&format!("def test_passes_{i}():\n    pass\n\n"));
    }
    a.push_str(
        "def test_flaky():\n    assert os.environ.get('TOMATO_ATTEMPT') != '1'\n\n\
         def test_always_fails():\n    assert 1 == 2, 'expected 1 but was 2'\n\n\
         def test_slow():\n    time.sleep(3)\n\n",
    );
    std::fs::write(tests.join("test_a.py"), a).unwrap();
    let b = "import os\n\n\
             def test_crashes_its_shard():\n    if os.environ.get('TOMATO_ATTEMPT') == '1':\n        os._exit(3)\n\n\
             def test_passes_b():\n    pass\n";
    std::fs::write(tests.join("test_b.py"), b).unwrap();
}

fn config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sharded.yaml"), SERVICE).unwrap();
    suite(dir.path());
    dir
}

async fn run(server: &Server, id: &str) -> Value {
    let (code, run) = server.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(code, 200, "{run}");
    run
}

async fn create(server: &Server, spec: Value) -> String {
    let (code, body) = server.post_json("/api/v1/runs", &json!({"spec": spec})).await;
    assert_eq!(code, 201, "{body}");
    body["metadata"]["name"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_sharded_run_merges_its_shards_and_a_crashed_shard_fails_only_its_tests() {
    let cfg = config();
    let server = Server::start_with(Some(cfg.path()), &[]).await;
    let id = create(&server, json!({"service": "sharded", "stand": "localhost"})).await;

    // While attempt 1 runs, its shards are in the API, each with its own process.
    let deadline = Instant::now() + RUN;
    let running = loop {
        let r = run(&server, &id).await;
        let shards = &r["status"]["attempts"][0]["shards"];
        if shards
            .as_array()
            .is_some_and(|s| s.len() == 3 && s.iter().all(|x| x["launch"].is_string()))
            && r["status"]["attempts"][0]["state"] == "Running"
        {
            break r;
        }
        assert!(Instant::now() < deadline, "no shards in {r:#}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let shards = running["status"]["attempts"][0]["shards"].as_array().unwrap();
    let total: u64 = shards.iter().map(|s| s["tests"].as_u64().unwrap()).sum();
    assert_eq!(total, 13, "every listed test is in one shard: {running:#}");
    assert!(shards.iter().all(|s| s["unit"] == "tests"), "{running:#}");
    // Every slot of the service and the stand is the first run's: a second run, even of one
    // shard, waits until the first run's tests are done.
    let second = create(
        &server,
        json!({"service": "sharded", "stand": "localhost", "shards": 1}),
    )
    .await;

    let st = server.wait_finished(&id, RUN).await;
    let r = run(&server, &id).await;
    let status = &r["status"];
    let attempts = status["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{status:#}\n{}", server.log());

    // Attempt 1: one shard crashed (pytest died without a report), the others finished; the
    // crashed shard's tests are broken in that attempt, the run did not end in Error.
    let first = &attempts[0];
    assert_eq!(first["state"], "Finished", "{status:#}");
    let shards = first["shards"].as_array().unwrap();
    let crashed: Vec<&Value> = shards.iter().filter(|s| s["state"] == "Crashed").collect();
    assert_eq!(crashed.len(), 1, "{status:#}");
    let crashed = crashed[0];
    assert_eq!(crashed["exitCode"], 3);
    assert_eq!(crashed["broken"], crashed["tests"], "{status:#}");
    assert!(
        crashed["message"]
            .as_str()
            .unwrap()
            .contains("crashed (exit code 3)"),
        "{crashed:#}"
    );
    for s in shards.iter().filter(|s| s["state"] != "Crashed") {
        assert_eq!(s["state"], "Finished", "{status:#}");
        assert_eq!(s["broken"], 0);
        let done = ["passed", "failed", "skipped"].map(|k| s[k].as_u64().unwrap());
        assert_eq!(done.iter().sum::<u64>(), s["tests"].as_u64().unwrap(), "{s:#}");
    }
    assert_eq!(first["summary"]["total"], 13, "{status:#}");
    let attempt_dir = server.data_dir.join("runs").join(&id).join("attempt-1");
    for i in 0..3 {
        assert!(
            attempt_dir
                .join(format!("shard-{i}"))
                .join("output.log")
                .is_file(),
            "each shard has its own directory and log"
        );
    }
    let (code, log) = server
        .get_text(&format!("/api/v1/runs/{id}/attempts/1/log"))
        .await;
    assert_eq!(code, 200);
    assert!(
        log.contains("shard 2 of 3"),
        "the attempt's log joins its shards': {log}"
    );

    // Attempt 2 re-ran the failed and broken tests (few: one process) and the verdicts are
    // those of one unsharded run.
    assert_eq!(attempts[1]["selection"]["kind"], "Failed");
    assert!(attempts[1]["shards"].is_null(), "a small rerun is not sharded");
    assert_eq!(st["phase"], "Failed", "{st:#}");
    let verdicts = server.verdicts(&id).await;
    assert_eq!(verdicts.len(), 13, "{verdicts:#?}");
    assert_eq!(verdicts["tests/test_a.py::test_flaky"], "flaky");
    assert_eq!(verdicts["tests/test_a.py::test_always_fails"], "failed");
    assert_eq!(verdicts["tests/test_b.py::test_crashes_its_shard"], "flaky");
    for (test, v) in &verdicts {
        if test.contains("passes") || test.contains("slow") {
            let crashed_with_it = v == "flaky";
            assert!(v == "passed" || crashed_with_it, "{test}: {v}");
        }
    }

    // The second run (one shard, by its own spec) waited for the slots, then ran unsplit; a
    // third, sharded again, is balanced by the durations the first recorded: the slow test
    // has a shard to itself.
    server.wait_finished(&second, RUN).await;
    let r2 = run(&server, &second).await;
    assert!(r2["status"]["attempts"][0]["shards"].is_null(), "{r2:#}");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(
        time(&r2["status"]["startedAt"]) >= time(&attempts[1]["finishedAt"]),
        "the second run started once the first one's tests were done: {r2:#}"
    );
    let third = create(&server, json!({"service": "sharded", "stand": "localhost"})).await;
    server.wait_finished(&third, RUN).await;
    let r3 = run(&server, &third).await;
    let shards = r3["status"]["attempts"][0]["shards"].as_array().unwrap().clone();
    let slow = shards
        .iter()
        .max_by_key(|s| s["expectedSeconds"].as_u64().unwrap_or(0))
        .unwrap();
    assert!(slow["expectedSeconds"].as_u64().unwrap() >= 3, "{r3:#}");
    assert_eq!(slow["tests"], 1, "the slow test is alone in its shard: {r3:#}");
}

#[tokio::test]
async fn shards_out_of_range_are_refused_with_the_field_named() {
    let cfg = config();
    let server = Server::start_with(Some(cfg.path()), &[]).await;
    let (code, body) = server
        .post_json(
            "/api/v1/runs",
            &json!({"spec": {"service": "sharded", "stand": "localhost", "shards": 65}}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("spec.shards"), "{body}");
}

#[tokio::test]
async fn tomato_run_follow_shows_a_line_per_shard_and_exits_with_the_verdict() {
    let cfg = config();
    let server = Server::start_with(Some(cfg.path()), &[]).await;
    let out = tokio::time::timeout(
        RUN,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tomato"))
            .args([
                "run",
                "sharded",
                "--stand",
                "localhost",
                "--shards",
                "2",
                "--follow",
            ])
            .env("TOMATO_URL", &server.url)
            .env_remove("TOMATO_TOKEN")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("the followed run ends in time")
    .expect("tomato runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Failed: test_always_fails still fails after the rerun.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "attempt 1 shard 0 started: ",
        "attempt 1 shard 1 started: ",
        "attempt 1 shard 0 ",
        "crashed: 0 passed",
        "crashed (exit code 3)",
        "attempt 1 finished in",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    let started = stdout.find("attempt 1 shard 0 started").unwrap();
    let ended = stdout.find("attempt 1 finished").unwrap();
    assert!(started < ended, "{stdout}");
}

/// Two shards, one rerun; `{eager}` is `rerun: {eager: true}` or nothing.
const EAGER_SERVICE: &str = r#"
stands: {pattern: localhost, concurrency: 2}
concurrency: 2
retries: 1
shards: 2
launch:
  runner: pytest
  env: {PYTHONDONTWRITEBYTECODE: "1"}
{eager}
packs:
  all: {tests: ["{dir}/tests"]}
"#;

/// Listed and split by id (no history): shard 0 gets `test_always_fails` and `test_slow`,
/// shard 1 only `test_flaky`, so shard 1 ends with a failure while shard 0 still runs.
fn eager_suite(dir: &std::path::Path, service: &str, eager: bool) {
    let text = EAGER_SERVICE.replace("{eager}", if eager { "rerun: {eager: true}" } else { "" });
    std::fs::write(dir.join(format!("{service}.yaml")), text).unwrap();
    let tests = dir.join(service).join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(
        tests.join("test_a.py"),
        "import os\n\n\
         def test_always_fails():\n    assert 1 == 2, 'expected 1 but was 2'\n\n\
         def test_flaky():\n    assert os.environ.get('TOMATO_ATTEMPT') != '1'\n",
    )
    .unwrap();
    std::fs::write(
        tests.join("test_b.py"),
        "import time\n\ndef test_slow():\n    time.sleep(8)\n",
    )
    .unwrap();
}

#[tokio::test]
async fn an_eager_rerun_starts_while_other_shards_run_and_the_verdicts_are_those_of_a_later_rerun() {
    let dir = tempfile::tempdir().unwrap();
    eager_suite(dir.path(), "eager", true);
    eager_suite(dir.path(), "lazy", false);
    let server = Server::start_with(Some(dir.path()), &[]).await;
    let eager = create(&server, json!({"service": "eager", "stand": "localhost"})).await;
    server.wait_finished(&eager, RUN).await;
    let lazy = create(&server, json!({"service": "lazy", "stand": "localhost"})).await;
    server.wait_finished(&lazy, RUN).await;

    let verdicts = server.verdicts(&eager).await;
    assert_eq!(
        verdicts,
        server.verdicts(&lazy).await,
        "eager or not, the same verdicts"
    );
    assert_eq!(verdicts["tests/test_a.py::test_flaky"], "flaky", "{verdicts:#?}");
    assert_eq!(verdicts["tests/test_a.py::test_always_fails"], "failed");
    assert_eq!(verdicts["tests/test_b.py::test_slow"], "passed");
    let (r, l) = (run(&server, &eager).await, run(&server, &lazy).await);
    assert_eq!(r["status"]["phase"], "Failed", "{r:#}");
    assert_eq!(r["status"]["summary"], l["status"]["summary"]);
    let attempts = r["status"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{r:#}");
    assert_eq!(
        attempts[1]["summary"]["total"], 2,
        "attempt 2 has both reruns: {r:#}"
    );

    // The flaky test's rerun ran during attempt 1, as attempt 2, in the slot shard 1 freed:
    // its report was written before the slow shard (and so attempt 1) ended.
    let eager_dir = server.data_dir.join(format!("runs/{eager}/attempt-1/eager-1"));
    let tests = std::fs::read_to_string(eager_dir.join("tests.txt")).unwrap();
    assert_eq!(tests, "tests/test_a.py::test_flaky");
    let written: chrono::DateTime<chrono::Utc> = std::fs::metadata(eager_dir.join("junit.xml"))
        .unwrap()
        .modified()
        .unwrap()
        .into();
    // Shard 0 holds the slow test: the eager rerun had ended before it did.
    let slow = &attempts[0]["shards"][0];
    assert_eq!(slow["tests"], 2, "{r:#}");
    let ended = chrono::DateTime::parse_from_rfc3339(slow["finishedAt"].as_str().unwrap()).unwrap();
    assert!(
        written < ended,
        "the eager rerun ended before the slow shard: {written} vs {ended}"
    );
    // Attempt 2's own process ran only the test not rerun early.
    let log =
        std::fs::read_to_string(server.data_dir.join(format!("runs/{eager}/attempt-2/output.log"))).unwrap();
    assert!(
        log.contains("test_always_fails") && !log.contains("test_flaky"),
        "{log}"
    );
    assert!(
        !server
            .data_dir
            .join(format!("runs/{lazy}/attempt-1/eager-1"))
            .exists()
    );
}
