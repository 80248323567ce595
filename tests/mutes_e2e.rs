//! Mutes end to end (issue 17, item 5) in standalone mode: a real Node test service whose
//! failures are muted through `/api/v1/mutes`. A muted failure is shown and counted as muted,
//! is not rerun and does not fail the verdict; a mute of one signature covers only that
//! failure; a muted test that passes is reported as such; the email (to a real SMTP server,
//! aiosmtpd) lists muted failures apart; a mute that lifts itself when its ticket closes is
//! lifted by the mute pass and stops counting; an expired mute stops counting; bad input is
//! refused naming the field, storing nothing.
//!
//! The tracker is the in-process stand-in of `tms_support` speaking Jira's REST API v2 (a
//! real Jira cannot run here): the mute pass reads `GET /rest/api/2/issue/{key}?fields=status`.

mod report_support;
mod support;
mod tms_support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use report_support::{SmtpSink, free_port, part};
use serde_json::{Value, json};
use support::Server;
use tms_support::FakeTracker;

const RUN: Duration = Duration::from_secs(90);

const FLIP: &str = r#"
description: A service whose failures change from run to run (state.json says how)
stands: {pattern: localhost}
launch: {command: [node, --test, --test-reporter=junit, "--test-reporter-destination={junit}", "{tests}"]}
retries: 2
packs: {basic: {tests: ["{dir}/flip.test.mjs"]}}
report: {emails: [qa@example.com]}
"#;

/// One test per entry of state.json: it fails with the entry's message, or passes on null.
const TESTS: &str = r#"
import { test } from 'node:test';
import assert from 'node:assert';
import { readFileSync } from 'node:fs';

const state = JSON.parse(readFileSync(new URL('./state.json', import.meta.url), 'utf8'));
for (const [name, failure] of Object.entries(state)) {
  test(name, () => {
    if (failure) assert.fail(failure);
  });
}
"#;

fn set_state(service_dir: &Path, state: Value) {
    std::fs::write(service_dir.join("state.json"), state.to_string()).unwrap();
}

fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}

async fn mute(server: &Server, spec: Value) -> (u16, Value) {
    server.post_json("/api/v1/mutes", &json!({"spec": spec})).await
}

/// Test id → the name of the mute covering it and whether it passed, from the run's tests.
async fn muted(server: &Server, id: &str) -> HashMap<String, (String, bool)> {
    let (code, tests) = server.get(&format!("/api/v1/runs/{id}/tests")).await;
    assert_eq!(code, 200, "{tests}");
    tests
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["muted"].is_null())
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                (
                    t["muted"]["mute"].as_str().unwrap().to_string(),
                    t["muted"]["passed"].as_bool().unwrap_or(false),
                ),
            )
        })
        .collect()
}

async fn wait_mute_state(server: &Server, name: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, m) = server.get(&format!("/api/v1/mutes/{name}")).await;
        assert_eq!(code, 200, "{m:#}");
        if m["status"]["state"] == state {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "mute {name} not {state}: {m:#}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_failures_do_not_fail_the_run_are_not_rerun_and_lift_when_their_ticket_closes() {
    let sink = SmtpSink::start(free_port(), None);
    let tracker = FakeTracker::jira().await;
    tracker.add_issue("QA-1");
    let config = support::config_with(&[("flip.yaml", FLIP)]);
    let dir = config.path().join("flip");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("flip.test.mjs"), TESTS).unwrap();
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let mut env: Vec<(String, String)> = tracker.env();
    env.extend([
        ("TOMATO_SMTP_URL".to_string(), smtp),
        ("TOMATO_SMTP_FROM".to_string(), "tomato@example.com".to_string()),
        ("TOMATO_MUTE_INTERVAL".to_string(), "1s".to_string()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(Some(config.path()), &env).await;

    // Bad input: every field at fault named, nothing stored.
    let (code, err) = mute(
        &server,
        json!({"service": "flip", "test": "test::login", "reason": " ", "signature": "XYZ",
            "ticket": "qa 1", "expires": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(code, 400, "{err:#}");
    let fields: Vec<&str> = err["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["spec.signature", "spec.reason", "spec.ticket", "spec.expires"],
        "{err:#}"
    );
    for (spec, field) in [
        (
            json!({"service": "nope", "test": "t", "reason": "r", "expires": in_days(1)}),
            "spec.service",
        ),
        (
            json!({"service": "flip", "test": "t", "reason": "r", "expires": in_days(400)}),
            "spec.expires",
        ),
        (
            json!({"service": "flip", "test": "t", "reason": "r", "expires": "tomorrow"}),
            "spec.expires",
        ),
        (
            json!({"service": "flip", "test": "t", "reason": "r", "expires": in_days(1), "liftWhenTicketClosed": true}),
            "spec.liftWhenTicketClosed",
        ),
        (
            json!({"service": "flip", "test": "t", "reason": "r", "expires": in_days(1), "until": "x"}),
            "spec.until",
        ),
        (
            json!({"service": "flip", "reason": "r", "expires": in_days(1)}),
            "spec.test",
        ),
    ] {
        let (code, err) = mute(&server, spec.clone()).await;
        assert_eq!(code, 400, "{spec}: {err:#}");
        assert_eq!(err["parameter"], field, "{spec}: {err:#}");
    }
    let (_, list) = server.get("/api/v1/mutes").await;
    assert_eq!(list["items"], json!([]), "nothing stored on bad input");

    // Run 1: login is muted (any failure, lifted when QA-1 closes), search (passing) too.
    set_state(
        &dir,
        json!({"login": "expected 200, got 500", "cart": "timed out after 30 s", "search": null}),
    );
    let (code, login_mute) = mute(
        &server,
        json!({"service": "flip", "test": "test::login", "reason": "payment stub is down",
            "ticket": "QA-1", "expires": in_days(14), "liftWhenTicketClosed": true}),
    )
    .await;
    assert_eq!(code, 201, "{login_mute:#}");
    let login_mute = login_mute["metadata"]["name"].as_str().unwrap().to_string();
    assert!(login_mute.starts_with("flip-mute-"), "{login_mute}");
    let (code, search_mute) = server
        .post_json(
            "/api/v1/mutes",
            &json!({"apiVersion": "tomato.dev/v1alpha1", "kind": "Mute", "metadata": {"name": "search-known"},
                "spec": {"service": "flip", "test": "test::search", "reason": "flaky index", "expires": in_days(3)}}),
        )
        .await;
    assert_eq!(code, 201, "{search_mute:#}");
    assert_eq!(search_mute["metadata"]["labels"]["tomato.dev/service"], "flip");
    let search_mute = search_mute["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(search_mute, "search-known");

    let first = server.run_now("service=flip&stand=localhost").await;
    let st = server.wait_finished(&first, RUN).await;
    assert_eq!(st["phase"], "Failed", "cart still fails: {st:#}");
    let (_, run) = server.get(&format!("/api/v1/runs/{first}")).await;
    let attempts = run["status"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{run:#}");
    for a in &attempts[1..] {
        assert_eq!(
            a["selection"]["tests"],
            json!(["test::cart"]),
            "the muted failure is not rerun: {run:#}"
        );
    }
    let summary = &run["status"]["summary"];
    assert_eq!(
        (&summary["failed"], &summary["muted"], &summary["passed"]),
        (&json!(1), &json!(1), &json!(1)),
        "{run:#}"
    );
    // The failures by category are the run's failures: the muted one is not among them.
    let categorized: Vec<&str> = run["status"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["tests"].as_array().unwrap())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(categorized, ["test::cart"], "{run:#}");
    assert_eq!(
        muted(&server, &first).await,
        HashMap::from([
            ("test::login".to_string(), (login_mute.clone(), false)),
            ("test::search".to_string(), (search_mute.clone(), true)),
        ])
    );

    // A mute of one signature covers only that failure: cart's own signature, from the run.
    let (_, tests) = server.get(&format!("/api/v1/runs/{first}/tests")).await;
    let cart_sig = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "test::cart")
        .unwrap()["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = mute(
        &server,
        json!({"service": "flip", "test": "test::cart", "signature": "0123456789abcdef",
            "reason": "another failure", "expires": in_days(1)}),
    )
    .await;
    assert_eq!(code, 201);
    let (code, cart_mute) = mute(
        &server,
        json!({"service": "flip", "test": "test::cart", "signature": cart_sig,
            "reason": "slow stand", "ticket": "QA-2", "expires": in_days(1)}),
    )
    .await;
    assert_eq!(code, 201, "{cart_mute:#}");
    let cart_mute = cart_mute["metadata"]["name"].as_str().unwrap().to_string();

    // Run 2: every failure is muted (cart with another number: the same signature).
    set_state(
        &dir,
        json!({"login": "expected 200, got 502", "cart": "timed out after 45 s", "search": null}),
    );
    let second = server.run_now("service=flip&stand=localhost").await;
    let st = server.wait_finished(&second, RUN).await;
    assert_eq!(st["phase"], "Succeeded", "{st:#}");
    let (_, run) = server.get(&format!("/api/v1/runs/{second}")).await;
    assert_eq!(
        run["status"]["attempts"].as_array().unwrap().len(),
        1,
        "no rerun: {run:#}"
    );
    assert_eq!(
        run["status"]["message"], "2 failing tests are muted (known failures)",
        "{run:#}"
    );
    assert_eq!(run["status"]["summary"]["muted"], 2, "{run:#}");
    assert_eq!(
        muted(&server, &second).await["test::cart"],
        (cart_mute.clone(), false)
    );

    // The email lists muted failures apart from the failures.
    let messages = sink.wait_messages(2, RUN).await;
    let text = messages
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains(&second))
        .map(|m| part(m, "text/plain").to_string())
        .unwrap_or_else(|| panic!("no email for {second}: {messages:#?}"));
    assert!(text.contains("Succeeded (1 passed, 2 muted)"), "{text}");
    assert!(
        text.contains("Muted (2 failing, 1 passed): known failures that do not fail the run"),
        "{text}"
    );
    assert!(
        text.contains("    - test::login: payment stub is down (QA-1)"),
        "{text}"
    );
    assert!(
        text.contains("    - test::search [passed: the mute may no longer be needed]: flaky index"),
        "{text}"
    );
    assert!(!text.contains("Failures by category"), "{text}");

    // The run page shows the muted tests and offers to mute nothing more; the service page
    // lists the mutes.
    let (_, page) = server.get_text(&format!("/runs/{second}")).await;
    assert!(page.contains(r#"<span class="l">muted</span>"#), "{page}");
    assert_eq!(
        page.matches(r#"<span class="badge mute-badge""#).count(),
        3,
        "{page}"
    );
    assert!(page.contains("muted, passed"), "{page}");
    assert!(!page.contains(r#"data-form="mute""#), "{page}");
    let (_, page) = server.get_text(&format!("/runs/{first}")).await;
    assert_eq!(
        page.matches(r#"data-form="mute""#).count(),
        1,
        "run 1 offers to mute cart, the failure no mute covered then: {page}"
    );
    let (_, service) = server.get_text("/services/flip").await;
    for name in [&login_mute, &search_mute, &cart_mute] {
        assert!(
            service.contains(&format!(r#"data-mute="{name}""#)),
            "{name}: {service}"
        );
    }

    // QA-1 closes: the mute pass lifts login's mute, and login fails the next run.
    tracker.set_status("QA-1", "Done", true);
    let lifted = wait_mute_state(&server, &login_mute, "Lifted").await;
    assert_eq!(
        lifted["status"]["message"], "lifted: ticket QA-1 is closed (Done)",
        "{lifted:#}"
    );
    assert!(
        tracker
            .requests()
            .contains(&("GET".to_string(), "/rest/api/2/issue/QA-1".to_string())),
        "{:?}",
        tracker.requests()
    );
    // The search mute expires (made to expire in a moment): it stops counting too.
    let (code, _) = server
        .send(server_delete(&server, &format!("/api/v1/mutes/{search_mute}")))
        .await;
    assert_eq!(code, 200);
    let (code, err) = server
        .send(server_delete(&server, &format!("/api/v1/mutes/{search_mute}")))
        .await;
    assert_eq!((code, err["parameter"].as_str()), (404, Some("name")), "{err:#}");
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (code, short) = mute(
        &server,
        json!({"service": "flip", "test": "test::search", "reason": "for a moment", "expires": soon}),
    )
    .await;
    assert_eq!(code, 201, "{short:#}");
    let short = short["metadata"]["name"].as_str().unwrap().to_string();
    let expired = wait_mute_state(&server, &short, "Expired").await;
    assert!(
        expired["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("expired on "),
        "{expired:#}"
    );

    let third = server.run_now("service=flip&stand=localhost").await;
    let st = server.wait_finished(&third, RUN).await;
    assert_eq!(st["phase"], "Failed", "login counts again: {st:#}");
    assert_eq!(
        muted(&server, &third).await,
        HashMap::from([("test::cart".to_string(), (cart_mute.clone(), false))])
    );
    let (_, page) = server.get_text(&format!("/runs/{third}")).await;
    assert_eq!(
        page.matches(r#"data-form="mute""#).count(),
        1,
        "login may be muted again: {page}"
    );
    let (_, service) = server.get_text("/services/flip").await;
    assert!(
        service.contains(r#"<span class="badge mute-lifted">Lifted</span>"#),
        "{service}"
    );
    assert!(
        service.contains(r#"<span class="badge mute-expired">Expired</span>"#),
        "{service}"
    );
}

fn server_delete(server: &Server, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().delete(format!("{}{path}", server.url))
}
