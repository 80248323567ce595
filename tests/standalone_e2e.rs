//! End to end, standalone mode: the real `tomato` binary, real test runners (Node's built-in
//! runner, pytest) writing real JUnit, the legacy API as old clients call it.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, config_with, processes_with_env};

const RUN: Duration = Duration::from_secs(60);

/// Waits until the run's test process exists (the phase turns Running just before the launch).
async fn wait_for_process(run: &str) -> Vec<u32> {
    for _ in 0..100 {
        let pids = processes_with_env("TOMATO_RUN", Some(run));
        if !pids.is_empty() {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no test process of {run} appeared");
}

fn attempts(st: &Value) -> &Vec<Value> {
    st["attempts"].as_array().unwrap()
}

#[tokio::test]
async fn demo_reruns_only_failed_tests_and_reports_flaky_and_failed() {
    let server = Server::start().await;
    let id = server
        .run_now("service=demo&stand=localhost&category=smoke&emails=qa@example.com")
        .await;
    let st = server.wait_finished(&id, RUN).await;

    assert_eq!(st["phase"], "Failed", "{st:#}");
    assert_eq!(st["type"], "Regular");
    let s = &st["summary"];
    assert_eq!(
        (s["total"].as_u64(), s["passed"].as_u64()),
        (Some(6), Some(3)),
        "{st:#}"
    );
    assert_eq!(
        (s["failed"].as_u64(), s["flaky"].as_u64(), s["skipped"].as_u64()),
        (Some(1), Some(1), Some(1))
    );

    // Attempt 1 ran everything; attempt 2 only the two failed tests; attempts 3 and 4 only the
    // one still failing; never more than 1 + 3 attempts.
    let a = attempts(&st);
    assert_eq!(a.len(), 4, "{st:#}");
    assert_eq!(a[0]["selection"]["kind"], "All");
    assert_eq!(a[1]["selection"]["kind"], "Failed");
    let mut rerun: Vec<&str> = a[1]["selection"]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    rerun.sort();
    assert_eq!(
        rerun,
        vec!["cart > applies the discount", "submits the order form"]
    );
    assert_eq!(a[3]["selection"]["tests"], json!(["cart > applies the discount"]));
    assert_eq!(
        a[1]["summary"]["total"], 2,
        "attempt 2 counts only what it ran: {st:#}"
    );
    for (i, at) in a.iter().enumerate() {
        assert_eq!(at["number"], i + 1);
        assert_eq!(at["state"], "Finished");
    }

    let verdicts = server.verdicts(&id).await;
    assert_eq!(verdicts["submits the order form"], "flaky");
    assert_eq!(verdicts["cart > applies the discount"], "failed");
    assert_eq!(verdicts["exports to PDF"], "skipped");
    assert_eq!(verdicts["adds numbers"], "passed");

    // The rerun's command line names exactly the failed tests.
    let (code, log) = server
        .get_text(&format!("/api/v1/runs/{id}/attempts/2/log"))
        .await;
    assert_eq!(code, 200);
    let header = log.lines().next().unwrap();
    assert!(
        header.contains(r"--test-name-pattern=^applies the discount$"),
        "{header}"
    );
    assert!(
        header.contains(r"--test-name-pattern=^submits the order form$"),
        "{header}"
    );
    assert!(!header.contains("adds numbers"), "{header}");
    let (code, xml) = server
        .get_text(&format!("/api/v1/runs/{id}/attempts/1/junit"))
        .await;
    assert_eq!(code, 200);
    assert!(xml.contains("<testsuites"), "{xml}");
}

/// pytest reports a test whose fixture teardown also fails as two `<testcase>`s with one node
/// id: Tomato treats them as the one test they are, so the rerun hands pytest node ids it
/// knows and the flaky test beside it is still found flaky.
const TEARDOWN_SERVICE: &str = r#"
stands: {pattern: localhost}
retries: 1
launch:
  command: [python3, -m, pytest, -p, no:cacheprovider, "--rootdir={dir}", "--junitxml={junit}", -o, junit_family=xunit1, "{tests}"]
  env: {PYTHONDONTWRITEBYTECODE: "1"}
rerun:
  testId: pytest
  args: ["{dir}/{id}"]
packs:
  all: {tests: ["{dir}/test_td.py"]}
"#;

const TEARDOWN_TESTS: &str = r#"
import os
import pytest

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown boom")

def test_fails_and_its_teardown_too(bad_teardown):
    assert 1 == 2

def test_flaky():
    assert os.environ.get("TOMATO_ATTEMPT") != "1"

def test_ok():
    pass
"#;

#[tokio::test]
async fn a_pytest_test_reported_twice_by_its_teardown_is_one_test_for_the_rerun() {
    let config = config_with(&[("teardown.yaml", TEARDOWN_SERVICE)]);
    std::fs::create_dir(config.path().join("teardown")).unwrap();
    std::fs::write(config.path().join("teardown/test_td.py"), TEARDOWN_TESTS).unwrap();
    let server = Server::start_with(Some(config.path()), &[]).await;
    let id = server.run_now("service=teardown&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    let a = attempts(&st);
    assert_eq!(a.len(), 2, "{st:#}");
    let mut rerun: Vec<&str> = a[1]["selection"]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    rerun.sort();
    assert_eq!(
        rerun,
        [
            "test_td.py::test_fails_and_its_teardown_too",
            "test_td.py::test_flaky"
        ]
    );
    assert_eq!(a[1]["summary"]["total"], 2, "pytest knew both ids: {st:#}");
    let verdicts = server.verdicts(&id).await;
    assert_eq!(verdicts.len(), 3, "{verdicts:?}");
    assert_eq!(verdicts["test_td.py::test_flaky"], "flaky");
    assert_eq!(verdicts["test_td.py::test_fails_and_its_teardown_too"], "broken");
    assert_eq!(verdicts["test_td.py::test_ok"], "passed");
}

/// The same rerun selection on pytest's JUnit dialect (node ids from `file` + `classname`).
#[tokio::test]
async fn pytest_service_reruns_failed_node_ids() {
    let server = Server::start().await;
    let id = server.run_now("service=demo-py&stand=127.0.0.1").await;
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(st["phase"], "Failed", "{st:#}\n{}", server.log());
    let a = attempts(&st);
    assert_eq!(a.len(), 4);
    let mut rerun: Vec<&str> = a[1]["selection"]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    rerun.sort();
    assert_eq!(
        rerun,
        vec![
            "tests/test_accounts.py::TestProfile::test_changes_avatar",
            "tests/test_core.py::test_applies_coupon",
            "tests/test_core.py::test_flaky_payment_gateway",
        ]
    );
    assert_eq!(
        a[1]["summary"]["total"], 3,
        "pytest ran only the three node ids: {st:#}"
    );
    let verdicts = server.verdicts(&id).await;
    assert_eq!(
        verdicts["tests/test_core.py::test_flaky_payment_gateway"],
        "flaky"
    );
    assert_eq!(verdicts["tests/test_core.py::test_applies_coupon"], "failed");
    assert_eq!(
        verdicts["tests/test_accounts.py::TestProfile::test_changes_avatar"],
        "failed"
    );
    assert_eq!(verdicts["tests/test_core.py::test_gift_cards"], "skipped");
    assert_eq!(
        verdicts["tests/test_accounts.py::TestProfile::test_shows_name"],
        "passed"
    );
    let s = &st["summary"];
    assert_eq!((s["failed"].as_u64(), s["flaky"].as_u64()), (Some(2), Some(1)));
}

#[tokio::test]
async fn runned_lists_the_running_run_and_the_queue_in_priority_order() {
    let server = Server::start().await;
    let first = server
        .run_now("service=demo&stand=localhost&category=slow&priority=4")
        .await;
    server.wait_phase(&first, "Running", RUN).await;
    let low = server
        .run_now("service=demo&stand=localhost&category=slow&priority=5")
        .await;
    let urgent = server
        .run_now("service=demo&stand=localhost&category=slow&priority=0")
        .await;
    let mid = server.run_now("service=demo&stand=localhost&category=slow").await;

    let (code, q) = server.get("/api/runned?project=demo").await;
    assert_eq!(code, 200, "{q}");
    assert_eq!(q["service"], "demo");
    assert_eq!(q["running_count"], 1, "{q:#}");
    assert_eq!(q["queued_count"], 3, "{q:#}");
    assert_eq!(q["running"][0]["run_id"], first.as_str());
    let queued: Vec<(&str, u64, u64)> = q["queued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["run_id"].as_str().unwrap(),
                e["priority"].as_u64().unwrap(),
                e["position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        queued,
        vec![
            (urgent.as_str(), 0, 1),
            (mid.as_str(), 2, 2),
            (low.as_str(), 5, 3)
        ]
    );
    for e in q["queued"].as_array().unwrap() {
        assert_eq!(e["stand"], "localhost");
        assert!(e["created"].is_string());
    }
    // The driver keeps status.queuePosition in step, and says what the run waits for (the
    // reason is written by the admission pass, which may come a moment after the position
    // reads 3: readers compute the position from the queue).
    let st = server
        .wait_until(&low, "at position 3 with its reason", RUN, |s| {
            s["queue_position"] == 3 && !s["message"].is_null()
        })
        .await;
    assert_eq!(st["phase"], "Queued");
    // It says what it waits for, in its status and in the queue.
    assert_eq!(st["message"], "waiting: demo runs 1 at a time", "{st:#}");
    let (_, q) = server.get("/api/runned?project=demo").await;
    assert_eq!(
        q["queued"][2]["waiting_for"], "waiting: demo runs 1 at a time",
        "{q:#}"
    );
    // A demo-py run on the busy stand waits for the stand, not for its own idle service.
    let py = server.run_now("service=demo-py&stand=localhost").await;
    let st = server
        .wait_until(&py, "waiting for the stand", RUN, |s| {
            s["message"].as_str().is_some()
        })
        .await;
    assert_eq!(
        st["message"], "waiting for stand localhost: it takes 1 run at a time, of any service",
        "{st:#}"
    );
    let (code, _) = server
        .send(server.client.delete(format!("{}/api/v1/runs/{py}", server.url)))
        .await;
    assert_eq!(code, 202);

    // A fraction is no priority; `0.0` is the number 0 (JSON has one kind of number).
    let patch = |priority: Value| {
        server
            .client
            .patch(format!("{}/api/v1/runs/{low}", server.url))
            .json(&json!({"spec": {"priority": priority}}))
    };
    let (code, body) = server.send(patch(json!(0.5))).await;
    assert_eq!(
        (code, body["parameter"].as_str()),
        (400, Some("spec.priority")),
        "{body}"
    );

    // Re-prioritising takes effect at once: the low run jumps to the front.
    let (code, body) = server.send(patch(json!(0.0))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["spec"]["priority"], 0, "{body}");
    let (_, q) = server.get("/api/runned?project=demo").await;
    assert_eq!(
        q["queued"][0]["run_id"],
        low.as_str(),
        "equal priority: the older run first"
    );
    assert_eq!(q["queued"][1]["run_id"], urgent.as_str());

    // The queue drains in that order.
    let done = server.wait_finished(&mid, Duration::from_secs(90)).await;
    assert_eq!(done["phase"], "Succeeded");
    let started = |s: &Value| s["started"].as_str().unwrap().to_string();
    let (u, l, m) = (
        server.status(&urgent).await,
        server.status(&low).await,
        server.status(&mid).await,
    );
    assert!(
        started(&l) < started(&u) && started(&u) < started(&m),
        "{l:#}\n{u:#}\n{m:#}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_the_parameter_named_and_queues_nothing() {
    let server = Server::start().await;
    let cases: &[(&str, &str)] = &[
        ("/api/run_now?stand=localhost", "service"),
        ("/api/run_now?service=demo", "stand"),
        ("/api/run_now?service=nope&stand=localhost", "service"),
        ("/api/run_now?service=demo&stand=prod.example.com", "stand"),
        ("/api/run_now?service=demo&stand=localhost;reboot", "stand"),
        (
            "/api/run_now?service=demo&stand=localhost&category=nightly",
            "category",
        ),
        (
            "/api/run_now?service=demo&stand=localhost&packs=basic,nope",
            "packs",
        ),
        (
            "/api/run_now?service=demo&stand=localhost&priority=10",
            "priority",
        ),
        (
            "/api/run_now?service=demo&stand=localhost&priority=-1",
            "priority",
        ),
        (
            "/api/run_now?service=demo&stand=localhost&priority=high",
            "priority",
        ),
        (
            "/api/run_now?service=demo&stand=localhost&emails=qa@example.com,not-an-email",
            "emails",
        ),
        (
            "/api/run_now?service=demo&stand=localhost&issueKey=not a key",
            "issueKey",
        ),
        ("/api/nightly?service=nope", "service"),
        ("/api/nightly", "service"),
    ];
    for (url, parameter) in cases {
        let (code, body) = server.post(url).await;
        assert_eq!(code, 400, "{url} answered {code} {body}");
        assert_eq!(body["parameter"], *parameter, "{url}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{url}: {body}"
        );
    }
    for (url, parameter) in [
        ("/api/runned?project=nope", "project"),
        ("/api/runned", "project"),
        ("/api/status", "run_id"),
    ] {
        let (code, body) = server.get(url).await;
        assert_eq!(code, 400, "{url}: {body}");
        assert_eq!(body["parameter"], parameter);
    }
    let (code, body) = server.get("/api/status?run_id=demo-doesnotexist").await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["parameter"], "run_id");

    // Nothing was queued by any of it.
    let (_, q) = server.get("/api/runned?project=demo").await;
    assert_eq!(
        (q["running_count"].as_u64(), q["queued_count"].as_u64()),
        (Some(0), Some(0)),
        "{q}"
    );
    let (_, list) = server.get("/api/v1/runs").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn parameters_may_come_as_a_form_or_json_body() {
    let server = Server::start().await;
    let (code, body) = server
        .send(server.client.post(format!("{}/api/run_now", server.url)).form(&[
            ("service", "demo"),
            ("stand", "localhost"),
            ("category", "smoke"),
            ("testpalm", "mail-2.14"),
            ("issueKey", "QA-42"),
            ("priority", "7"),
        ]))
        .await;
    assert_eq!(code, 200, "{body}");
    let st = server.status(body["run_id"].as_str().unwrap()).await;
    assert_eq!(
        (
            st["testpalm"].as_str(),
            st["issueKey"].as_str(),
            st["priority"].as_u64()
        ),
        (Some("mail-2.14"), Some("QA-42"), Some(7))
    );

    let (code, body) = server
        .post_json("/api/run_now", &json!({"service": "demo", "stand": "localhost", "priority": 1, "emails": ["a@example.com", "b@example.com"]}))
        .await;
    assert_eq!(code, 200, "{body}");
    let st = server.status(body["run_id"].as_str().unwrap()).await;
    assert_eq!(st["emails"], json!(["a@example.com", "b@example.com"]));
    assert_eq!(st["priority"], 1);

    // As Python's `requests.post(url, data=json.dumps(...))` sends it: no JSON content type.
    for content_type in [None, Some("text/plain")] {
        let mut req = server
            .client
            .post(format!("{}/api/run_now", server.url))
            .body(r#"{"service": "demo", "stand": "localhost", "priority": 2}"#);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let (code, body) = server.send(req).await;
        assert_eq!(code, 200, "{content_type:?}: {body}");
        let st = server.status(body["run_id"].as_str().unwrap()).await;
        assert_eq!(st["priority"], 2);
    }

    let (code, body) = server
        .post_json(
            "/api/run_now",
            &json!({"service": "demo", "stand": "localhost", "priority": 12}),
        )
        .await;
    assert_eq!((code, body["parameter"].as_str()), (400, Some("priority")));
}

#[tokio::test]
async fn nightly_answers_an_empty_list_for_a_known_service() {
    let server = Server::start().await;
    let (code, body) = server.post("/api/nightly?service=demo").await;
    assert_eq!(code, 200, "{body}");
    assert!(body["run_ids"].is_array(), "{body}");
}

/// `kill -9` of the server while one run runs and two wait: after the restart nothing is
/// lost, the orphaned test process is killed, the attempt is marked interrupted and launched
/// again, and every run reaches its verdict.
#[tokio::test]
async fn kill_9_loses_nothing_and_leaves_no_orphan() {
    let mut server = Server::start().await;
    let running = server.run_now("service=demo&stand=localhost&category=slow").await;
    let waiting = [
        server
            .run_now("service=demo&stand=localhost&category=smoke&priority=3")
            .await,
        server
            .run_now("service=demo&stand=localhost&category=slow&priority=4")
            .await,
    ];
    server
        .wait_until(&running, "recorded as running", RUN, |s| {
            s["attempts"][0]["state"] == "Running"
        })
        .await;
    let orphans = wait_for_process(&running).await;

    server.kill9();
    // The test process outlived its server (it has its own process group).
    assert!(
        !processes_with_env("TOMATO_RUN", Some(&running)).is_empty(),
        "expected an orphan to clean up"
    );

    server.restart().await;
    let old: Vec<u32> = orphans
        .iter()
        .copied()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    let st = server.wait_finished(&running, RUN).await;
    assert_eq!(st["phase"], "Succeeded", "{st:#}\n{}", server.log());
    let a = attempts(&st);
    assert_eq!(a[0]["state"], "Interrupted", "{st:#}");
    assert_eq!(a[0]["number"], 1);
    assert_eq!(
        a[1]["number"], 1,
        "the interrupted attempt is launched again with its number"
    );
    assert_eq!(a[1]["state"], "Finished");
    for pid in old {
        let alive = processes_with_env("TOMATO_RUN", Some(&running)).contains(&pid);
        assert!(!alive, "orphan {pid} of the killed server is still running");
    }

    for id in &waiting {
        let st = server.wait_finished(id, RUN).await;
        assert!(
            matches!(st["phase"].as_str(), Some("Succeeded" | "Failed")),
            "{st:#}"
        );
        assert!(!attempts(&st).is_empty());
    }
    assert_eq!(server.status(&waiting[0]).await["summary"]["flaky"], 1);
}

#[tokio::test]
async fn cancelling_a_running_run_kills_its_tests_and_a_queued_one_ends_at_once() {
    let server = Server::start().await;
    let running = server.run_now("service=demo&stand=localhost&category=slow").await;
    let queued = server.run_now("service=demo&stand=localhost&category=slow").await;
    server.wait_phase(&running, "Running", RUN).await;
    wait_for_process(&running).await;

    let (code, body) = server
        .send(
            server
                .client
                .delete(format!("{}/api/v1/runs/{queued}", server.url)),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let st = server
        .wait_phase(&queued, "Cancelled", Duration::from_secs(5))
        .await;
    assert!(attempts(&st).is_empty());

    let (code, _) = server
        .send(
            server
                .client
                .delete(format!("{}/api/v1/runs/{running}", server.url)),
        )
        .await;
    assert_eq!(code, 202);
    let st = server
        .wait_phase(&running, "Cancelled", Duration::from_secs(10))
        .await;
    assert_eq!(attempts(&st)[0]["state"], "Cancelled");
    // The group got SIGKILL; the kernel may take a moment to tear its processes down.
    let mut left = processes_with_env("TOMATO_RUN", Some(&running));
    for _ in 0..40 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = processes_with_env("TOMATO_RUN", Some(&running));
    }
    assert!(left.is_empty(), "the test processes {left:?} were not killed");
}

const BROKEN: &str = r#"
description: A service whose runner is not installed
stands: {pattern: localhost}
launch: {command: [no-such-test-runner, "{tests}"]}
packs: {all: {tests: [x]}}
"#;

const NO_REPORT: &str = r#"
description: A runner that writes no JUnit
stands: {pattern: localhost}
launch: {command: [sh, -c, "echo collecting...; echo 'ImportError: no module named app' >&2; exit 2", sh, "{tests}"]}
packs: {all: {tests: []}}
"#;

#[tokio::test]
async fn a_launch_that_cannot_run_ends_in_error_with_the_reason() {
    let config = config_with(&[("broken.yaml", BROKEN), ("noreport.yaml", NO_REPORT)]);
    let server = Server::start_with(Some(config.path()), &[]).await;
    let id = server.run_now("service=broken&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(st["phase"], "Error", "{st:#}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("command not found: no-such-test-runner"),
        "{st:#}"
    );
    assert_eq!(attempts(&st)[0]["state"], "LaunchFailed");
    // It has its verdict: cancelling it is refused, and its page links no JUnit file it lacks.
    let (code, body) = server
        .send(server.client.delete(format!("{}/api/v1/runs/{id}", server.url)))
        .await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("already has its verdict"),
        "{body}"
    );
    let (code, _) = server
        .get_text(&format!("/api/v1/runs/{id}/attempts/1/junit"))
        .await;
    assert_eq!(code, 404);
    let (_, page) = server.get_text(&format!("/runs/{id}")).await;
    assert!(page.contains(">log</a>"), "{page}");
    assert!(!page.contains(">JUnit</a>"), "{page}");

    let id = server.run_now("service=noreport&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(st["phase"], "Error", "{st:#}");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("no JUnit report") && msg.contains("exit code 2"),
        "{msg}"
    );
    let (_, log) = server
        .get_text(&format!("/api/v1/runs/{id}/attempts/1/log"))
        .await;
    assert!(log.contains("ImportError: no module named app"), "{log}");
}

#[tokio::test]
async fn an_invalid_packs_config_stops_the_server_with_every_problem() {
    let config = config_with(&[(
        "bad.yaml",
        "stands: {pattern: '('}\nlaunch: {command: []}\npacks: {}\n",
    )]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tomato"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config.path())
        .env("TOMATO_DATA_DIR", config.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "bad.yaml: stands.pattern",
        "bad.yaml: launch.command",
        "bad.yaml: packs",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[tokio::test]
async fn writes_need_a_token_when_tokens_are_configured_and_the_token_is_never_logged() {
    let secret = "tok-Zq81-very-secret";
    let server = Server::start_with(None, &[("TOMATO_API_TOKENS", &format!("other,{secret}"))]).await;
    let url = format!(
        "{}/api/run_now?service=demo&stand=localhost&category=smoke",
        server.url
    );
    let (code, body) = server.send(server.client.post(&url)).await;
    assert_eq!(
        (code, body["parameter"].as_str()),
        (401, Some("Authorization")),
        "{body}"
    );
    let (code, _) = server.send(server.client.post(&url).bearer_auth("wrong")).await;
    assert_eq!(code, 401);
    let (code, body) = server.send(server.client.post(&url).bearer_auth(secret)).await;
    assert_eq!(code, 200, "{body}");
    let id = body["run_id"].as_str().unwrap().to_string();
    // Reads stay open.
    let (code, _) = server.get(&format!("/api/status?run_id={id}")).await;
    assert_eq!(code, 200);
    let (code, _) = server
        .send(server.client.delete(format!("{}/api/v1/runs/{id}", server.url)))
        .await;
    assert_eq!(code, 401);
    server.wait_finished(&id, RUN).await;
    // Neither the log nor the tests' environment ever saw it.
    assert!(!server.log().contains(secret), "the token leaked into the log");
    let (_, log) = server
        .get_text(&format!("/api/v1/runs/{id}/attempts/1/log"))
        .await;
    assert!(!log.contains(secret));
}

#[test]
fn a_bad_roles_file_stops_the_server_naming_the_entry_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.yaml");
    std::fs::write(
        &roles,
        "tokens:\n  - {name: ci, role: writer, token: s3cret-Hq2}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tomato"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(format!("{}/packs_config", env!("CARGO_MANIFEST_DIR")))
        .env("TOMATO_DATA_DIR", dir.path().join("data"))
        .env("TOMATO_API_ROLES_FILE", &roles)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TOMATO_API_ROLES_FILE") && err.contains("tokens[0]") && err.contains("unknown role"),
        "{err}"
    );
    assert!(!err.contains("s3cret-Hq2"), "{err}");
}

#[tokio::test]
async fn a_roles_file_gives_each_token_its_role_is_reloaded_on_change_and_every_write_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.yaml");
    let (ci, lead) = ("ci-Yw2-secret", "lead-Pq7-secret");
    std::fs::write(
        &roles,
        format!("tokens:\n  - {{name: ci, role: run, token: {ci}}}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("lead.token"), format!("{lead}\n")).unwrap();
    let server = Server::start_with(None, &[("TOMATO_API_ROLES_FILE", roles.to_str().unwrap())]).await;
    let nightly = format!("{}/api/nightly?service=demo", server.url);

    let (code, body) = server.send(server.client.post(&nightly).bearer_auth(ci)).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("needs the admin role"),
        "{body}"
    );
    // A bad change keeps the tokens that were; a good one takes effect within seconds.
    std::fs::write(&roles, "tokens:\n  - {name: ci, role: root, token: x}\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (code, _) = server.send(server.client.post(&nightly).bearer_auth(ci)).await;
    assert_eq!(code, 403, "the previous set stays");
    std::fs::write(
        &roles,
        format!("tokens:\n  - {{name: ci, role: run, token: {ci}}}\n  - {{name: qa-lead, role: admin, tokenFile: lead.token}}\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = server.send(server.client.post(&nightly).bearer_auth(lead)).await;
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the roles file was not reloaded: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    let lines: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let first = &lines[0];
    assert_eq!(
        (
            &first["who"],
            &first["path"],
            &first["status"],
            &first["decision"]
        ),
        (
            &json!("ci"),
            &json!("/api/nightly"),
            &json!(403),
            &json!("refused")
        )
    );
    assert!(
        first["from"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{first}"
    );
    let last = lines.last().unwrap();
    assert_eq!((&last["who"], &last["status"]), (&json!("qa-lead"), &json!(200)));
    let log = server.log();
    assert!(log.contains("tomato::audit"), "audit lines go to the log too");
    assert!(
        log.contains("unknown role") && log.contains("root"),
        "a bad reload is logged, naming the problem"
    );
    for secret in [ci, lead] {
        assert!(
            !audit.contains(secret) && !log.contains(secret),
            "no token in the audit log or the log"
        );
    }
}

#[tokio::test]
async fn v1_creates_lists_gets_and_describes_runs() {
    let server = Server::start().await;
    let body = json!({
        "apiVersion": "tomato.dev/v1alpha1",
        "kind": "TestRun",
        "metadata": {"name": "release-check", "labels": {"team": "mail"}},
        "spec": {"service": "demo", "stand": "localhost", "packs": ["basic"], "priority": 1, "retries": 1}
    });
    let (code, run) = server.post_json("/api/v1/runs", &body).await;
    assert_eq!(code, 201, "{run}");
    assert_eq!(run["metadata"]["name"], "release-check");
    assert_eq!(run["metadata"]["labels"]["team"], "mail");
    assert_eq!(run["metadata"]["labels"]["tomato.dev/service"], "demo");
    assert!(run["metadata"]["uid"].is_string() && run["metadata"]["creationTimestamp"].is_string());
    let (code, dup) = server.post_json("/api/v1/runs", &body).await;
    assert_eq!(code, 409, "{dup}");

    let st = server.wait_finished("release-check", RUN).await;
    assert_eq!(
        attempts(&st).len(),
        2,
        "retries: 1 means at most two attempts: {st:#}"
    );

    let (code, got) = server.get("/api/v1/runs/release-check").await;
    assert_eq!(code, 200);
    assert_eq!(got["status"]["phase"], "Failed");
    assert_eq!(got["spec"]["retries"], 1);
    let (_, list) = server.get("/api/v1/runs?service=demo&phase=Failed").await;
    assert_eq!(list["kind"], "TestRunList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = server.get("/api/v1/runs?phase=Queued").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let (code, err) = server.get("/api/v1/runs?phase=Sleeping").await;
    assert_eq!((code, err["parameter"].as_str()), (400, Some("phase")));
    let (_, failed) = server
        .get("/api/v1/runs/release-check/tests?verdict=failed,flaky")
        .await;
    assert_eq!(failed.as_array().unwrap().len(), 2, "{failed:#}");
    assert_eq!(failed[0]["verdict"], "failed", "failing tests come first");

    // Framework-level refusals are JSON naming the parameter too.
    let (code, err) = server.get("/api/v1/runs?limit=abc").await;
    assert_eq!((code, err["parameter"].as_str()), (400, Some("limit")), "{err}");
    // The path segment at fault is named (it was the whole "path" before).
    let (code, err) = server.get("/api/v1/runs/release-check/attempts/abc/log").await;
    assert_eq!((code, err["parameter"].as_str()), (400, Some("n")), "{err}");
    // The server answers 413 from Content-Length without reading the body and closes the
    // connection: a client of its own, so that no later request reuses that connection, and
    // a body just over the limit, so that it is sent whole before the answer comes.
    let (code, err) = server
        .send(
            reqwest::Client::new()
                .post(format!("{}/api/run_now", server.url))
                .header("content-type", "application/json")
                .header("connection", "close")
                .body(vec![b' '; (1 << 20) + 1]),
        )
        .await;
    assert_eq!((code, err["parameter"].as_str()), (413, Some("body")), "{err}");
    // Labels Tomato acts on are its own; a bad name is metadata's, not spec's.
    for (body, field) in [
        (
            json!({"metadata": {"labels": {"tomato.dev/schedule": "nightly"}},
                   "spec": {"service": "demo", "stand": "localhost"}}),
            "metadata.labels.tomato.dev/schedule",
        ),
        (
            json!({"metadata": {"labels": {"team": "<qa>"}}, "spec": {"service": "demo", "stand": "localhost"}}),
            "metadata.labels.team",
        ),
        (
            json!({"metadata": {"name": "Bad Name!"}, "spec": {"service": "demo", "stand": "localhost"}}),
            "metadata.name",
        ),
    ] {
        let (code, err) = server.post_json("/api/v1/runs", &body).await;
        assert_eq!(
            (code, err["parameter"].as_str()),
            (400, Some(field)),
            "{body}: {err}"
        );
    }
    let (code, err) = server
        .send(
            server
                .client
                .post(format!("{}/api/v1/runs", server.url))
                .header("content-type", "application/json")
                .body("{bad"),
        )
        .await;
    assert_eq!((code, err["parameter"].as_str()), (400, Some("body")), "{err}");

    for (spec, field) in [
        (json!({"service": "demo"}), "spec.stand"),
        (
            json!({"service": "demo", "stand": "localhost", "prority": 1}),
            "spec.prority",
        ),
        (
            json!({"service": "demo", "stand": "localhost", "priority": "high"}),
            "spec.priority",
        ),
        (
            json!({"service": "demo", "stand": "localhost", "timeout": "soon"}),
            "spec.timeout",
        ),
        (
            json!({"service": "demo", "stand": "localhost", "type": "Weekly"}),
            "spec.type",
        ),
        (
            json!({"service": "demo", "stand": "localhost", "env": [{"name": "A"}]}),
            "spec.env",
        ),
    ] {
        let (code, err) = server.post_json("/api/v1/runs", &json!({"spec": spec})).await;
        assert_eq!(code, 400, "{spec}: {err}");
        assert_eq!(err["parameter"], field, "{spec}: {err}");
    }

    let (code, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(code, 200);
    for path in [
        "/api/run_now",
        "/api/status",
        "/api/runned",
        "/api/nightly",
        "/api/v1/runs",
        "/api/v1/runs/{id}/tests",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(
        doc["components"]["schemas"]["TestRunSpec"].is_object(),
        "the resource schemas are included"
    );

    let (code, metrics) = server.get_text("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("tomato_runs{service=\"demo\",phase=\"Failed\"} 1"),
        "{metrics}"
    );
    let (code, _) = server.get_text("/readyz").await;
    assert_eq!(code, 200);
}
