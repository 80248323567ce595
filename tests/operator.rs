//! Operator mode end to end, against the in-process Kubernetes API of `support::fake_kube`
//! (kube-fake-client plus watch; see its module documentation for what it does not cover:
//! admission and schema validation, and every cluster controller — these tests create a
//! Job's pod and mark the Job finished themselves). A Job's test container is run as a real
//! process here: the real `tomato exec` runs the real demo suite (Node's test runner) and
//! uploads to the operator's API on a real socket.

mod support;



use kube::ResourceExt;

use serde_json::Value;
use support::fake_kube::FakeKube;
use support::operator::*;

async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reruns_only_its_failed_tests_in_a_second_job_and_ends_failed_with_the_right_summary() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let replica = start_replica(&fake, config, "tomato-0").await;
    create_run(&fake, "demo-e2e", template("demo")).await;

    let first = wait_job(&fake, "demo-e2e-1").await;
    let run = wait_phase(&fake, "demo-e2e", "Running").await;
    assert!(run.finalizers().contains(&"tomato.dev/stop-jobs".to_string()));
    assert_eq!(run.status.as_ref().unwrap().attempts[0].launch.as_deref(), Some("demo-e2e-1"));
    assert_eq!(env(&first)["TOMATO_ATTEMPT"]["value"], "1");
    assert_eq!(run_job(&fake, &first).await, 1, "the demo suite has a failing test");

    let second = wait_job(&fake, "demo-e2e-2").await;
    let argv = container(&second).command.clone().unwrap();
    let patterns: Vec<&String> = argv.iter().filter(|a| a.starts_with("--test-name-pattern")).collect();
    assert_eq!(
        patterns,
        ["--test-name-pattern=^applies the discount$", "--test-name-pattern=^submits the order form$"],
        "attempt 2 selects exactly the two failed tests: {argv:?}"
    );
    assert_eq!(env(&second)["TOMATO_ATTEMPT"]["value"], "2");
    let run = runs(&fake).get("demo-e2e").await.unwrap();
    assert_eq!(run.status.as_ref().unwrap().phase.to_string(), "Running");
    run_job(&fake, &second).await;

    let run = wait_phase(&fake, "demo-e2e", "Failed").await;
    let st = run.status.clone().unwrap();
    let s = st.summary.unwrap();
    assert_eq!(
        (s.total, s.passed, s.failed, s.flaky, s.skipped, s.broken),
        (6, 3, 1, 1, 1, 0),
        "{s:?}"
    );
    assert_eq!(st.attempts.len(), 2);
    assert_eq!(st.attempts[1].summary.unwrap().total, 2, "attempt 2 ran the two failed tests only");
    assert_eq!(st.observed_generation, run.metadata.generation);
    assert!(st.conditions.iter().any(|c| c.type_ == "Complete" && c.reason == "Failed"));
    assert_eq!(job_names(&fake).await, ["demo-e2e-1", "demo-e2e-2"]);

    let reasons = event_reasons(&fake, "demo-e2e").await;
    for r in ["Admitted", "AttemptStarted", "AttemptFinished", "RerunScheduled", "Concluded", "Finished"] {
        assert!(reasons.contains(&r.to_string()), "no {r} event in {reasons:?}");
    }

    // Every replica serves the attempt's log, JUnit and the merged tests from the API.
    let (code, log) = get_text(&format!("{}/api/v1/runs/demo-e2e/attempts/1/log", replica.url)).await;
    assert_eq!(code, 200);
    assert!(log.contains("applies the discount"), "{log}");
    let (code, junit) = get_text(&format!("{}/api/v1/runs/demo-e2e/attempts/2/junit", replica.url)).await;
    assert_eq!(code, 200);
    assert!(junit.contains("<testcase"), "{junit}");
    let (_, tests) = get_json(&format!("{}/api/v1/runs/demo-e2e/tests?verdict=flaky", replica.url)).await;
    assert_eq!(tests[0]["name"], "submits the order form");
    let (_, status) = get_json(&format!("{}/api/status?run_id=demo-e2e", replica.url)).await;
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["summary"]["flaky"], 1);
}
