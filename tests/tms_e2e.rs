//! End to end, test management: the real `tomato` binary runs the real `demo` suite and
//! records its verdicts in a real Kiwi TCMS (12.4 from PyPI, started per test from a
//! migrated database built once; see tests/tms_support).

mod support;
mod tms_support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::Server;
use tms_support::{Kiwi, TOMATO_USER, rpc};

const RUN: Duration = Duration::from_secs(180);

async fn start(env: &[(String, String)]) -> Server {
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(None, &refs).await
}

/// Kiwi executions of the run named after Tomato run `id`: case summary → (status, comments).
async fn kiwi_executions(kiwi: &Kiwi, id: &str) -> (Value, HashMap<String, (String, Vec<String>)>) {
    let c = kiwi.client(TOMATO_USER);
    let runs = rpc(
        &c,
        "TestRun.filter",
        json!([{"summary": format!("Tomato {id}: demo on localhost")}]),
    )
    .await;
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "exactly one Kiwi run: {runs:#}"
    );
    let run = runs[0].clone();
    let executions = rpc(&c, "TestExecution.filter", json!([{"run": run["id"]}])).await;
    let mut out = HashMap::new();
    for e in executions.as_array().unwrap() {
        let comments = rpc(&c, "TestExecution.get_comments", json!([e["id"]])).await;
        let comments = comments
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["comment"].as_str().unwrap().to_string())
            .collect();
        out.insert(
            e["case__summary"].as_str().unwrap().to_string(),
            (e["status__name"].as_str().unwrap().to_string(), comments),
        );
    }
    (run, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_run_with_a_version_becomes_a_kiwi_test_run_whose_executions_match_its_verdicts() {
    let kiwi = Kiwi::start().await;
    let server = start(&kiwi.env()).await;
    let id = server
        .run_now("service=demo&stand=localhost&category=smoke&testpalm=2.4.0")
        .await;
    let st = server
        .wait_until(&id, "reported to Kiwi", RUN, |st| {
            matches!(st["phase"].as_str(), Some("Failed" | "Succeeded" | "Error"))
        })
        .await;
    let tms = &st["report"]["tms"];
    assert_eq!(tms["state"], "Sent", "{st:#}\n{}", server.log());
    let verdicts = server.verdicts(&id).await;
    assert_eq!(verdicts.len(), 6, "{verdicts:?}");

    let (run, executions) = kiwi_executions(&kiwi, &id).await;
    assert_eq!(run["plan__product_version__value"], "2.4.0", "{run:#}");
    assert_eq!(run["build__name"], "2.4.0", "{run:#}");
    assert_eq!(run["plan__name"], "demo 2.4.0 — Tomato autotests");
    let run_url = format!("{}runs/{}/", kiwi.url, run["id"]);
    assert_eq!(tms["sentTo"], json!([run_url]), "{st:#}");
    let c = kiwi.client(TOMATO_USER);
    let full = rpc(&c, "TestRun.filter", json!([{"pk": run["id"]}])).await;
    assert!(
        full[0]["notes"]
            .as_str()
            .unwrap()
            .contains(&format!("{}/runs/{id}", server.url)),
        "the Kiwi run links back to Tomato: {full:#}"
    );

    let expected_status = |verdict: &str| match verdict {
        "passed" | "flaky" => "PASSED",
        "failed" => "FAILED",
        "broken" => "ERROR",
        "skipped" => "WAIVED",
        other => panic!("unknown verdict {other}"),
    };
    assert_eq!(executions.len(), verdicts.len(), "{executions:#?}");
    for (test, verdict) in &verdicts {
        let (status, comments) = executions
            .get(test)
            .unwrap_or_else(|| panic!("no execution for {test:?}: {executions:#?}"));
        assert_eq!(status, expected_status(verdict), "{test}");
        if verdict == "flaky" {
            assert_eq!(
                comments,
                &vec![format!(
                    "Flaky in Tomato run {id}: failed on attempt 1, passed on attempt 2."
                )],
                "{test}"
            );
        }
    }

    // A restart re-reads everything; nothing is recorded twice.
    let mut server = server;
    server.restart().await;
    let again = server.status(&id).await;
    assert_eq!(again["report"]["tms"]["attempts"], 1);
    let (_, after) = kiwi_executions(&kiwi, &id).await;
    assert_eq!(after, executions);
    let cases = rpc(&c, "TestCase.filter", json!([{"plan": run["plan"]}])).await;
    assert_eq!(cases.as_array().unwrap().len(), 6, "one automated case per test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_of_the_same_version_reuses_its_cases_and_a_run_without_version_skips_the_channel() {
    let kiwi = Kiwi::start().await;
    let server = start(&kiwi.env()).await;
    let first = server
        .run_now("service=demo&stand=localhost&category=smoke&testpalm=3.0&priority=1")
        .await;
    let plain = server
        .run_now("service=demo&stand=localhost&category=smoke")
        .await;
    let first_st = server.wait_finished(&first, RUN).await;
    assert_eq!(first_st["report"]["tms"]["state"], "Sent", "{first_st:#}");
    let plain_st = server.wait_finished(&plain, RUN).await;
    assert_eq!(plain_st["report"]["tms"]["state"], "Skipped");
    assert_eq!(plain_st["report"]["tms"]["reason"], "the run has no version");
    let second = server
        .run_now("service=demo&stand=localhost&category=smoke&testpalm=3.0")
        .await;
    let second_st = server.wait_finished(&second, RUN).await;
    assert_eq!(second_st["report"]["tms"]["state"], "Sent", "{second_st:#}");

    let c = kiwi.client(TOMATO_USER);
    let runs = rpc(
        &c,
        "TestRun.filter",
        json!([{"plan__name": "demo 3.0 — Tomato autotests"}]),
    )
    .await;
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs:#}");
    let cases = rpc(&c, "TestCase.filter", json!([{"plan": runs[0]["plan"]}])).await;
    assert_eq!(
        cases.as_array().unwrap().len(),
        6,
        "the second run reuses the cases"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_kiwi_is_retried_and_then_fails_the_channel_without_changing_the_verdict() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = vec![
        ("TOMATO_TMS_URL".to_string(), format!("http://127.0.0.1:{port}/")),
        ("TOMATO_TMS_USER".to_string(), "tomato".to_string()),
        ("TOMATO_TMS_PASSWORD".to_string(), "s3cret-kiwi-pw".to_string()),
        ("TOMATO_REPORT_RETRY_ATTEMPTS".to_string(), "2".to_string()),
        ("TOMATO_REPORT_RETRY_BASE".to_string(), "200ms".to_string()),
    ];
    let server = start(&env).await;
    let id = server
        .run_now("service=demo&stand=localhost&category=smoke&testpalm=1.0")
        .await;
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(st["phase"], "Failed", "the verdict stands: {st:#}");
    let tms = &st["report"]["tms"];
    assert_eq!(tms["state"], "Failed", "{st:#}");
    assert_eq!(tms["attempts"], 2);
    let reason = tms["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("gave up after 2 attempts: Kiwi TCMS at 127.0.0.1"),
        "{reason}"
    );
    assert!(!server.log().contains("s3cret-kiwi-pw") && !st.to_string().contains("s3cret-kiwi-pw"));
}
