//! Failure memory end to end (issue 17, item 2) in standalone mode: a real Node test service
//! run three times with its failures changing between runs. Each run's tests carry their
//! novelty in `/api/v1/runs/{id}/tests` (new, known, changed, fixed), the report email (to a
//! real SMTP server, aiosmtpd) leads with "n new, n known, ..." and the new failures, and the
//! run page leads with what is new. With `report.notify: newFailures` a run with nothing new
//! gets no email (Skipped, saying why); the others do.

mod report_support;
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use report_support::{SmtpSink, free_port, part};
use serde_json::{Value, json};
use support::Server;

const RUN: Duration = Duration::from_secs(90);

const FLIP: &str = r#"
description: A service whose failures change from run to run (state.json says how)
stands: {pattern: localhost}
launch: {command: [node, --test, --test-reporter=junit, "--test-reporter-destination={junit}", "{tests}"]}
retries: 0
packs: {basic: {tests: ["{dir}/flip.test.mjs"]}}
report: {emails: [qa@example.com], notify: newFailures}
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

/// Test id → its novelty kind (absent when it has none).
async fn novelty(server: &Server, id: &str) -> HashMap<String, Option<String>> {
    server.per_test(id, "/novelty/kind").await
}

/// The verdicts of a test history's runs, newest first.
fn verdicts(history: &Value) -> Vec<&str> {
    history["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect()
}

fn kinds(pairs: &[(&str, Option<&str>)]) -> HashMap<String, Option<String>> {
    pairs
        .iter()
        .map(|(t, k)| (format!("test::{t}"), k.map(str::to_string)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_known_changed_and_fixed_failures_show_in_the_api_the_email_and_the_run_page() {
    let sink = SmtpSink::start(free_port(), None);
    let config = support::config_with(&[("flip.yaml", FLIP)]);
    let dir = config.path().join("flip");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("flip.test.mjs"), TESTS).unwrap();
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let server = Server::start_with(
        Some(config.path()),
        &[
            ("TOMATO_SMTP_URL", &smtp),
            ("TOMATO_SMTP_FROM", "tomato@example.com"),
        ],
    )
    .await;

    // Run 1: two failures the service never had.
    set_state(
        &dir,
        json!({"login": "expected 200, got 500", "cart": "timed out after 30 s", "search": null}),
    );
    let first = server.run_now("service=flip&stand=localhost").await;
    let st = server.wait_finished(&first, RUN).await;
    assert_eq!(st["phase"], "Failed", "{st:#}");
    assert_eq!(
        novelty(&server, &first).await,
        kinds(&[("login", Some("new")), ("cart", Some("new")), ("search", None)])
    );

    // Run 2: login fails the same way (another status number: one signature), cart another
    // way, search for the first time.
    set_state(
        &dir,
        json!({"login": "expected 200, got 503", "cart": "element #buy not found", "search": "no results for shoes"}),
    );
    let second = server.run_now("service=flip&stand=localhost").await;
    server.wait_finished(&second, RUN).await;
    let (_, tests) = server.get(&format!("/api/v1/runs/{second}/tests")).await;
    let login = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "login")
        .unwrap();
    assert_eq!(login["novelty"]["kind"], "known", "{login:#}");
    assert_eq!(login["novelty"]["sinceRun"], first.as_str(), "{login:#}");
    assert_eq!(login["novelty"]["times"], 1, "{login:#}");
    assert_eq!(
        novelty(&server, &second).await,
        kinds(&[
            ("login", Some("known")),
            ("cart", Some("changed")),
            ("search", Some("new"))
        ])
    );

    // Run 3: cart and search pass again (fixed against run 2), login is still known.
    set_state(
        &dir,
        json!({"login": "expected 200, got 500", "cart": null, "search": null}),
    );
    let third = server.run_now("service=flip&stand=localhost").await;
    let st = server.wait_finished(&third, RUN).await;
    let email = st["report"]["email"].clone();
    assert_eq!(email["state"], "Skipped", "nothing new, no email: {st:#}");
    assert!(
        email["reason"]
            .as_str()
            .unwrap()
            .contains("report.notify: newFailures"),
        "{email:#}"
    );
    assert_eq!(
        novelty(&server, &third).await,
        kinds(&[
            ("login", Some("known")),
            ("cart", Some("fixed")),
            ("search", Some("fixed"))
        ])
    );
    // Asked again, an earlier run's tags are the same: only the runs before it count.
    assert_eq!(
        novelty(&server, &first).await,
        kinds(&[("login", Some("new")), ("cart", Some("new")), ("search", None)])
    );

    // The emails lead with the counts and list the new failures, new before changed.
    let messages = sink.wait_messages(2, RUN).await;
    assert_eq!(messages.len(), 2, "runs 1 and 2 had something new: {messages:#?}");
    let by_run = |id: &str| {
        messages
            .iter()
            .find(|m| m["subject"].as_str().unwrap().contains(id))
            .map(|m| part(m, "text/plain").to_string())
            .unwrap_or_else(|| panic!("no email for {id}: {messages:#?}"))
    };
    let text = by_run(&second);
    assert!(text.contains("History    1 new, 1 known, 1 changed"), "{text}");
    let (new, changed, by_category) = (
        text.find("    - test::search [new, failed]")
            .unwrap_or_else(|| panic!("{text}")),
        text.find("    - test::cart [changed, failed]")
            .unwrap_or_else(|| panic!("{text}")),
        text.find("Failures by category")
            .unwrap_or_else(|| panic!("{text}")),
    );
    assert!(new < changed && changed < by_category, "{text}");
    let text = by_run(&first);
    assert!(text.contains("History    2 new"), "{text}");

    // The run page leads with what is new.
    let (code, page) = server.get_text(&format!("/runs/{second}")).await;
    assert_eq!(code, 200);
    let lead = page.find("What is new").unwrap_or_else(|| panic!("{page}"));
    assert!(
        lead < page.find("Failures by category").unwrap(),
        "the lead comes first"
    );
    assert!(
        page.contains(r#"<span class="badge novelty-new">1 new</span>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<span class="badge novelty-changed">changed</span>"#),
        "{page}"
    );

    let (_, page) = server.get_text(&format!("/runs/{third}")).await;
    assert!(
        page.contains(r#"<span class="badge novelty-fixed">2 fixed</span>"#),
        "{page}"
    );
    assert!(page.contains("No new failures"), "{page}");

    // Each test's history (item 3): API and page, linked from the run page's test rows.
    let (code, login) = server.get("/api/v1/services/flip/tests/test%3A%3Alogin").await;
    assert_eq!(code, 200, "{login:#}");
    assert_eq!(verdicts(&login), ["failed", "failed", "failed"], "{login:#}");
    assert_eq!(login["runs"][0]["run"], third.as_str(), "newest first");
    assert_eq!(login["overall"]["failureRate"], 1.0, "{login:#}");
    let signatures = login["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 1, "one failure, three runs: {login:#}");
    assert_eq!(
        (
            &signatures[0]["runs"],
            &signatures[0]["firstRun"],
            &signatures[0]["lastRun"]
        ),
        (&json!(3), &json!(first), &json!(third))
    );
    let (_, cart) = server
        .get("/api/v1/services/flip/tests/test%3A%3Acart?stand=localhost&limit=2")
        .await;
    assert_eq!(
        verdicts(&cart),
        ["passed", "failed"],
        "the last two runs: {cart:#}"
    );
    assert_eq!(cart["signatures"].as_array().unwrap().len(), 1, "{cart:#}");
    let (code, err) = server.get("/api/v1/services/flip/tests/test%3A%3Anope").await;
    assert_eq!((code, err["parameter"].as_str()), (404, Some("id")), "{err:#}");
    let (code, err) = server
        .get("/api/v1/services/flip/tests/test%3A%3Acart?limit=0")
        .await;
    assert_eq!((code, err["parameter"].as_str()), (400, Some("limit")), "{err:#}");

    let (_, run_page) = server.get_text(&format!("/runs/{second}")).await;
    assert!(
        run_page.contains(r#"href="/services/flip/tests/test%3A%3Acart""#),
        "{run_page}"
    );
    let (code, page) = server.get_text("/services/flip/tests/test%3A%3Acart").await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(page.matches(r#"class="cell verdict-"#).count(), 3, "{page}");
    assert!(
        page.contains(r#"class="cell verdict-passed""#) && page.contains(r#"class="cell verdict-failed""#),
        "{page}"
    );
    assert!(page.contains(&format!(r#"href="/runs/{first}""#)), "{page}");

    // Two runs compared (item 4): by default with the previous comparable run.
    let tests_of = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["test"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, c) = server.get(&format!("/api/v1/runs/{third}/compare")).await;
    assert_eq!(code, 200, "{c:#}");
    assert_eq!(c["with"], second.as_str(), "{c:#}");
    assert_eq!(
        tests_of(&c, "newlyPassing"),
        ["test::cart", "test::search"],
        "{c:#}"
    );
    assert_eq!(tests_of(&c, "stillFailing"), ["test::login"], "{c:#}");
    assert_eq!(c["stillFailing"][0]["sameSignature"], true, "{c:#}");
    let (_, c) = server
        .get(&format!("/api/v1/runs/{second}/compare?with={first}"))
        .await;
    assert_eq!(tests_of(&c, "newlyFailing"), ["test::search"], "{c:#}");
    let mut same: Vec<(String, bool)> = c["stillFailing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["test"].as_str().unwrap().to_string(),
                s["sameSignature"].as_bool().unwrap(),
            )
        })
        .collect();
    same.sort();
    assert_eq!(
        same,
        [
            ("test::cart".to_string(), false),
            ("test::login".to_string(), true)
        ],
        "{c:#}"
    );
    let (code, err) = server.get(&format!("/api/v1/runs/{first}/compare")).await;
    assert_eq!(
        (code, err["parameter"].as_str()),
        (404, Some("with")),
        "the first run has none: {err:#}"
    );
    let (code, err) = server
        .get(&format!("/api/v1/runs/{third}/compare?slowerBy=0"))
        .await;
    assert_eq!(
        (code, err["parameter"].as_str()),
        (400, Some("slowerBy")),
        "{err:#}"
    );

    let (_, run_page) = server.get_text(&format!("/runs/{third}")).await;
    assert!(
        run_page.contains(&format!(r#"href="/runs/{third}/compare""#)),
        "{run_page}"
    );
    let (code, page) = server.get_text(&format!("/runs/{third}/compare")).await;
    assert_eq!(code, 200, "{page}");
    let passing = page.find("Passing again").unwrap_or_else(|| panic!("{page}"));
    assert!(page[passing..].contains("test::search"), "{page}");
    assert!(page.contains(&format!(r#"href="/runs/{second}""#)), "{page}");

    suggested_rules(&server).await;
}

/// Issue 17 item 6: flip has no categories, so every failure is unclassified. login failed the
/// same way in all three runs (one signature): with `min=3` it alone becomes a proposed rule,
/// back-tested on the window's failures; the API, the page and `tomato rules suggest` agree.
async fn suggested_rules(server: &Server) {
    let (code, answer) = server.get("/api/v1/services/flip/rules/suggestions?min=3").await;
    assert_eq!(code, 200, "{answer:#}");
    let list = answer["suggestions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{answer:#}");
    let s = &list[0];
    assert_eq!(
        (s["failures"].as_u64(), s["runs"].as_u64()),
        (Some(3), Some(3)),
        "{s:#}"
    );
    assert_eq!(s["tests"], json!(["test::login"]), "{s:#}");
    let regex = s["rule"]["messageRegex"].as_str().unwrap();
    assert!(regex.contains("expected") && regex.contains("got"), "{regex}");
    assert!(
        !regex.contains("500") && !regex.contains("503"),
        "values are not words: {regex}"
    );
    assert_eq!(
        (&s["backtest"]["matched"], &s["backtest"]["unclassified"]),
        (&json!(3), &json!(3)),
        "{s:#}"
    );
    // What it proposes is a rule a service's categories take.
    let rule: tomato::grep::CategoryRule = serde_json::from_value(s["rule"].clone()).unwrap();
    tomato::grep::RuleSet::from_rules(vec![rule]).expect("a valid rule");
    // Smaller clusters with min=1: cart's two failures differ (two signatures), search once.
    let (_, all) = server.get("/api/v1/services/flip/rules/suggestions?min=1").await;
    assert_eq!(all["suggestions"].as_array().unwrap().len(), 4, "{all:#}");
    for (query, parameter) in [("min=0", "min"), ("min=1001", "min"), ("days=91", "days")] {
        let (code, err) = server
            .get(&format!("/api/v1/services/flip/rules/suggestions?{query}"))
            .await;
        assert_eq!(
            (code, err["parameter"].as_str()),
            (400, Some(parameter)),
            "{err:#}"
        );
    }
    let (code, _) = server.get("/api/v1/services/nope/rules/suggestions").await;
    assert_eq!(code, 404);

    let (code, page) = server.get_text("/services/flip/rules?min=3").await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains(regex) && page.contains("data-copy"), "{page}");
    let (_, service_page) = server.get_text("/services/flip").await;
    assert!(
        service_page.contains(r#"href="/services/flip/rules""#),
        "{service_page}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tomato"))
        .args([
            "rules",
            "suggest",
            "--service",
            "flip",
            "--min",
            "3",
            "--server",
            &server.url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 rule(s) proposed") && text.contains(regex),
        "{text}"
    );
    assert!(text.contains("matches 3 of"), "{text}");
}
