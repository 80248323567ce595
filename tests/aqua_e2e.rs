//! The `aqua` launcher end to end in standalone mode: the real `tomato` binary against the Aqua
//! stand-in (`tests/support/aqua.py`; Aqua itself cannot run here, the stand-in speaks its
//! HTTP API and serves real Allure 2 reports built by the Allure command line from real pytest
//! runs with allure-pytest).

#[path = "support/aqua.rs"]
mod aqua_support;
mod report_support;
mod support;

use std::time::Duration;

use aqua_support::{ALWAYS, AquaStandIn, MIXED};
use report_support::{SmtpSink, free_port, part};
use serde_json::{Value, json};
use support::Server;

const TOKEN: &str = "s3cret-aqua-token";
const LONG: Duration = Duration::from_secs(180);

/// An Aqua service over the stand-in: two packs, two reruns at most, polled every second.
fn service(aqua: &AquaStandIn, extra: &str) -> String {
    format!(
        r#"description: Packs run in Aqua
stands:
  pattern: 'stand-[a-z0-9]+'
retries: 2
launch:
  launcher: aqua
  aqua:
    url: {url}
    pollInterval: 1s
    requestTimeout: 3s
    errorRetries: 2
    auth:
      env: AQUA_TOKEN
    properties:
      webdriver.base.url: "https://{{stand}}/"
      tomato.run: "{{run}}"
      tomato.attempt: "{{attempt}}"
{extra}
packs:
  mixed:
    aqua:
      packId: {MIXED}
  always:
    aqua:
      packId: {ALWAYS}
      properties:
        suite.kind: always
presets:
  mixed: [mixed]
  always: [always]
"#,
        url = aqua.url
    )
}

/// The server over the shipped packs_config plus the Aqua service, with Aqua's token in its
/// environment; the config directory lives as long as the returned guard.
async fn start(aqua: &AquaStandIn, extra: &str) -> (Server, tempfile::TempDir) {
    start_with(aqua, extra, &[]).await
}

async fn start_with(aqua: &AquaStandIn, extra: &str, env: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let cfg = support::config_with(&[("farm.yaml", &service(aqua, extra))]);
    let token = format!("Bearer {TOKEN}");
    let mut env = env.to_vec();
    env.push(("AQUA_TOKEN", &token));
    let server = Server::start_with(Some(cfg.path()), &env).await;
    (server, cfg)
}

fn launches(st: &Value, attempt: usize) -> Vec<Value> {
    st["attempts"][attempt]["aqua"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The flaky test fails in the first launch and passes when Aqua restarts the failed suites:
/// one restart, the run Succeeded with that test flaky; every attempt names its launch.
#[tokio::test]
async fn a_flaky_pack_is_restarted_once_and_the_run_ends_right() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    let sink = SmtpSink::start(free_port(), None);
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let (server, _cfg) = start_with(
        &aqua,
        "",
        &[
            ("TOMATO_SMTP_URL", smtp.as_str()),
            ("TOMATO_SMTP_FROM", "tomato@example.com"),
        ],
    )
    .await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=mixed&emails=qa@example.com")
        .await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Succeeded", "{st:#}\n{}", server.log());
    let attempts = st["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{st:#}");
    let first = launches(&st, 0);
    let second = launches(&st, 1);
    assert_eq!((first.len(), second.len()), (1, 1), "{st:#}");
    assert_eq!(second[0]["restartOf"], first[0]["id"]);
    assert_ne!(second[0]["id"], first[0]["id"], "a restart is a new launch");
    assert_eq!(first[0]["failing"], 1);
    assert_eq!(second[0]["failing"], 0);
    assert!(
        first[0]["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/launch/{}", first[0]["id"].as_str().unwrap())),
        "{st:#}"
    );
    let summary = &st["summary"];
    assert_eq!(
        (
            &summary["passed"],
            &summary["flaky"],
            &summary["skipped"],
            &summary["failed"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(0)),
        "{st:#}"
    );
    let verdicts = server.verdicts(&id).await;
    assert_eq!(verdicts["test_mixed::test_flaky"], "flaky", "{verdicts:?}");
    assert_eq!(verdicts["test_mixed::test_passes"], "passed");
    assert_eq!(verdicts["test_mixed::test_skipped"], "skipped");

    // What Aqua was asked: one launch with the run's properties, one restart of failed suites.
    let seen = aqua.seen().await;
    let made = seen["launches"].as_array().unwrap();
    assert_eq!(made.len(), 2, "{seen:#}");
    let props: Vec<(String, String)> = serde_json::from_value(made[0]["properties"].clone()).unwrap();
    assert!(props.contains(&("webdriver.base.url".into(), "https://stand-qa1/".into())));
    assert!(props.contains(&("tomato.run".into(), id.clone())));
    assert!(props.contains(&("tomato.attempt".into(), "1".into())));
    assert_eq!(made[1]["restartOf"], made[0]["id"]);
    let requests = seen["requests"].as_array().unwrap();
    assert!(requests.iter().all(|r| r["auth"] == true), "{seen:#}");

    // The launch links are on every surface; the secret is on none.
    let (_, legacy) = server.get_text(&format!("/api/status?run_id={id}")).await;
    let (_, v1) = server.get_text(&format!("/api/v1/runs/{id}")).await;
    let (_, page) = server.get_text(&format!("/runs/{id}")).await;
    let page = page.replace("&#x2f;", "/");
    for url in [&first[0]["url"], &second[0]["url"]] {
        let url = url.as_str().unwrap();
        assert!(legacy.contains(url), "/api/status lacks {url}: {legacy}");
        assert!(v1.contains(url), "/api/v1 lacks {url}");
        assert!(page.contains(url), "the run page lacks {url}");
    }
    let messages = sink.wait_messages(1, LONG).await;
    let text = part(&messages[0], "text/plain").to_string();
    let html = part(&messages[0], "text/html").replace("&#x2f;", "/");
    for url in [&first[0]["url"], &second[0]["url"]] {
        let url = url.as_str().unwrap();
        assert!(text.contains(url), "the email's text lacks {url}: {text}");
        assert!(
            html.contains(&format!("href=\"{url}\"")),
            "the email's HTML lacks a link to {url}"
        );
    }
    for (what, text) in [
        ("api", &legacy),
        ("v1", &v1),
        ("page", &page),
        ("email", &html),
        ("email text", &text),
        ("log", &server.log()),
    ] {
        assert!(!text.contains(TOKEN), "the Aqua token leaked into the {what}");
    }
}

/// A pack that fails on every launch: restarted `retries` times, then Failed; its broken
/// test stays broken.
#[tokio::test]
async fn an_always_failing_pack_exhausts_its_retries() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    let (server, _cfg) = start(&aqua, "").await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=always")
        .await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Failed", "{st:#}");
    assert_eq!(st["attempts"].as_array().unwrap().len(), 3, "1 + retries: {st:#}");
    for a in 1..3 {
        assert_eq!(
            launches(&st, a)[0]["restartOf"],
            launches(&st, a - 1)[0]["id"],
            "{st:#}"
        );
    }
    let s = &st["summary"];
    assert_eq!(
        (&s["passed"], &s["failed"], &s["broken"]),
        (&json!(1), &json!(1), &json!(1)),
        "{st:#}"
    );
    let verdicts = server.verdicts(&id).await;
    assert_eq!(verdicts["test_always::test_always_fails"], "failed");
    assert_eq!(verdicts["test_always::test_broken"], "broken");
    // The stand-in reran only the failed tests: the passing one ran once.
    let seen = aqua.seen().await;
    assert_eq!(seen["launches"].as_array().unwrap().len(), 3);
}

/// `REPORT_FAILED`: polled again (bounded), then the attempt is an error naming it.
#[tokio::test]
async fn report_failed_ends_the_attempt_in_an_error_naming_it() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    aqua.knobs(json!({"report_failed": true})).await;
    let (server, _cfg) = start(&aqua, "").await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=mixed")
        .await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Error", "{st:#}");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("REPORT_FAILED") && msg.contains("after 3 tries"),
        "{msg}"
    );
    assert_eq!(launches(&st, 0)[0]["status"], "REPORT_FAILED");
}

/// Aqua answering 500 to every poll, then hanging on every poll: each retried with backoff,
/// then an attempt error naming the cause. A 500 that passes is only a warning.
#[tokio::test]
async fn a_500_or_a_hanging_poll_is_retried_then_named() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    let (server, _cfg) = start(&aqua, "").await;

    aqua.knobs(json!({"poll_500": 2})).await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=mixed")
        .await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Succeeded", "two 500s in a row are retried: {st:#}");

    aqua.knobs(json!({"poll_500": -1})).await;
    let id = server
        .run_now("service=farm&stand=stand-qa2&category=mixed")
        .await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Error", "{st:#}");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.contains("HTTP 500") && msg.contains("after 3 tries"), "{msg}");

    aqua.knobs(json!({"poll_500": 0, "poll_hang": -1})).await;
    let id = server
        .run_now("service=farm&stand=stand-qa3&category=mixed")
        .await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Error", "{st:#}");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("did not answer the poll of launch") && msg.contains("within 3s"),
        "{msg}"
    );
}

/// Tomato killed while its launch runs in Aqua: the next start polls the recorded launch
/// instead of launching the pack again.
#[tokio::test]
async fn a_restart_of_tomato_mid_launch_resumes_polling() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    aqua.knobs(json!({"delay": 6})).await;
    let (mut server, _cfg) = start(&aqua, "").await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=mixed")
        .await;
    server
        .wait_until(&id, "launched in Aqua", LONG, |st| {
            st["attempts"][0]["aqua"][0]["id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        })
        .await;
    server.restart().await;
    aqua.knobs(json!({"delay": 0})).await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Succeeded", "{st:#}\n{}", server.log());
    assert_eq!(st["attempts"].as_array().unwrap().len(), 2, "{st:#}");
    let seen = aqua.seen().await;
    assert_eq!(
        seen["launches"].as_array().unwrap().len(),
        2,
        "one launch and one restart, none twice: {seen:#}"
    );
    assert!(server.log().contains("resuming the Aqua attempt"));
}

/// Cancelled while Aqua runs the pack: with a revoke path the launch is revoked; the run says
/// so.
#[tokio::test]
async fn cancel_revokes_when_a_revoke_path_is_configured() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    aqua.knobs(json!({"delay": 30})).await;
    let (server, _cfg) = start(&aqua, "    revokePath: \"launch/{launch}/revoke\"").await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=mixed")
        .await;
    server
        .wait_until(&id, "launched in Aqua", LONG, |st| {
            st["attempts"][0]["aqua"][0]["id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        })
        .await;
    let (code, body) = server
        .send(server.client.delete(format!("{}/api/v1/runs/{id}", server.url)))
        .await;
    assert_eq!(code, 202, "{body}");
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Cancelled", "{st:#}");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.starts_with("cancelled; revoked in Aqua"), "{msg}");
    let seen = aqua.seen().await;
    assert_eq!(seen["launches"][0]["launchStatus"], "REVOKED", "{seen:#}");
}

/// Without a revoke path, cancel stops polling and the run says the launch goes on in Aqua.
#[tokio::test]
async fn cancel_without_a_revoke_path_says_the_launch_goes_on() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    aqua.knobs(json!({"delay": 30})).await;
    let (server, _cfg) = start(&aqua, "").await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=mixed")
        .await;
    server
        .wait_until(&id, "launched in Aqua", LONG, |st| {
            st["attempts"][0]["aqua"][0]["id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        })
        .await;
    server
        .send(server.client.delete(format!("{}/api/v1/runs/{id}", server.url)))
        .await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Cancelled", "{st:#}");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.contains("the launch goes on in Aqua"), "{msg}");
    assert!(
        msg.contains(launches(&st, 0)[0]["url"].as_str().unwrap()),
        "{msg}"
    );
}

/// Aqua unreachable when the pack is launched: tried again with backoff, then attempt 1
/// could not start, and the run's error names the pack and the cause.
#[tokio::test]
async fn an_unreachable_aqua_ends_the_run_in_an_error_naming_the_cause() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = service(&aqua, "").replace(&aqua.url, &format!("http://127.0.0.1:{closed}"));
    let cfg = support::config_with(&[("farm.yaml", &text)]);
    let server = Server::start_with(Some(cfg.path()), &[("AQUA_TOKEN", "Bearer x")]).await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=mixed")
        .await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Error", "{st:#}");
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.starts_with("attempt 1 could not start: pack mixed: Aqua did not answer the launch of pack")
            && msg.contains("cannot connect"),
        "{msg}"
    );
    assert_eq!(st["attempts"][0]["state"], "LaunchFailed");
    assert!(
        !server.log().contains("Bearer x"),
        "the auth header is never logged"
    );
}

/// A service whose packs run in two places (`packs.<name>.launcher`): `core` as a local pytest
/// process (packs_config/demo-py's suite), `farm` in Aqua (the stand-in's `mixed` pack).
fn mixed_service(aqua: &AquaStandIn) -> String {
    format!(
        r#"description: Some packs locally, one in Aqua
stands:
  pattern: 'stand-[a-z0-9]+'
retries: 2
launch:
  command: [python3, -m, pytest, -p, "no:cacheprovider", "--rootdir={{dir}}", -c, "{{dir}}/pytest.ini",
            "--junitxml={{junit}}", -o, junit_family=xunit1, "{{tests}}"]
  env:
    PYTHONDONTWRITEBYTECODE: "1"
  aqua:
    url: {url}
    pollInterval: 1s
    requestTimeout: 3s
    errorRetries: 2
    auth:
      env: AQUA_TOKEN
rerun:
  testId: pytest
  args: ["{{dir}}/{{id}}"]
packs:
  core:
    tests: ["{{dir}}/tests/test_core.py"]
  farm:
    launcher: aqua
    aqua:
      packId: {MIXED}
"#,
        url = aqua.url
    )
}

async fn start_mixed(aqua: &AquaStandIn) -> (Server, tempfile::TempDir) {
    let cfg = support::config_with(&[("mix.yaml", &mixed_service(aqua))]);
    std::os::unix::fs::symlink(
        format!("{}/packs_config/demo-py", env!("CARGO_MANIFEST_DIR")),
        cfg.path().join("mix"),
    )
    .unwrap();
    let token = format!("Bearer {TOKEN}");
    let server = Server::start_with(Some(cfg.path()), &[("AQUA_TOKEN", &token)]).await;
    (server, cfg)
}

/// One attempt runs the local pack as a process and the Aqua pack in Aqua side by side, and
/// their tests are one set: attempt 2 reruns only the local failed tests and restarts the
/// Aqua launch (which had a failure); attempt 3 reruns the still-failing local test alone and
/// restarts nothing in Aqua (its restart passed). Verdicts merge across both.
#[tokio::test]
async fn a_mixed_attempt_runs_both_parts_and_reruns_each_its_own_way() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    let (server, _cfg) = start_mixed(&aqua).await;
    let id = server.run_now("service=mix&stand=stand-qa1").await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Failed", "{st:#}\n{}", server.log());
    let attempts = st["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{st:#}");
    assert!(
        attempts[0]["launch"].as_str().unwrap().starts_with("pid "),
        "{st:#}"
    );
    let first = launches(&st, 0);
    let second = launches(&st, 1);
    assert_eq!((first.len(), second.len()), (1, 1), "{st:#}");
    assert!(
        launches(&st, 2).is_empty(),
        "a passed restart is not restarted again: {st:#}"
    );
    assert_eq!(first[0]["pack"], "farm");
    assert_eq!(second[0]["restartOf"], first[0]["id"]);
    assert_eq!(
        (&first[0]["failing"], &second[0]["failing"]),
        (&json!(1), &json!(0))
    );
    // The local rerun selected only the local failed tests, never Aqua's.
    let rerun: Vec<&str> = attempts[1]["selection"]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(rerun.len(), 3, "two local, one in Aqua: {rerun:?}");
    assert_eq!(
        attempts[2]["selection"]["tests"],
        json!(["tests/test_core.py::test_applies_coupon"]),
        "{st:#}"
    );
    let s = &attempts[1]["summary"];
    assert_eq!((&s["passed"], &s["failed"]), (&json!(2), &json!(1)), "{st:#}");

    let verdicts = server.verdicts(&id).await;
    let verdict = |suffix: &str| {
        verdicts
            .iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no test ending {suffix}: {verdicts:?}"))
    };
    assert_eq!(verdict("::test_applies_coupon"), "failed");
    assert_eq!(verdict("::test_flaky_payment_gateway"), "flaky");
    assert_eq!(verdict("::test_flaky"), "flaky", "Aqua's flaky test");
    assert_eq!(verdict("::test_passes"), "passed", "Aqua's passing test");
    assert_eq!(verdict("::test_adds_vat"), "passed");
    let summary = &st["summary"];
    assert_eq!(
        (
            &summary["passed"],
            &summary["flaky"],
            &summary["failed"],
            &summary["skipped"]
        ),
        (&json!(3), &json!(2), &json!(1), &json!(2)),
        "{st:#}"
    );
    let seen = aqua.seen().await;
    assert_eq!(
        seen["launches"].as_array().unwrap().len(),
        2,
        "one launch, one restart: {seen:#}"
    );
    // The launch links show on the run page beside the local attempts.
    let (_, page) = server.get_text(&format!("/runs/{id}")).await;
    let page = page.replace("&#x2f;", "/");
    assert!(
        page.contains(first[0]["url"].as_str().unwrap()),
        "the run page lacks the launch"
    );
}

/// Tomato killed (`kill -9`) after Aqua made the launch but before Tomato learnt its id (the
/// stand-in answers the launch late, and Tomato dies waiting): the intent it recorded first
/// makes the next start look the launch up by its `tomato.launch` marker and adopt it, so the
/// pack is launched exactly once, and the run ends as it would have.
#[tokio::test]
async fn a_crash_between_the_launch_and_its_record_never_launches_twice() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    aqua.knobs(json!({"answer_delay": 30})).await;
    let (mut server, _cfg) = start(&aqua, "").await;
    let id = server
        .run_now("service=farm&stand=stand-qa1&category=mixed")
        .await;
    // The stand-in made the launch; Tomato still waits for its answer.
    let deadline = std::time::Instant::now() + LONG;
    loop {
        if aqua.seen().await["launches"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no launch was made");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = server.status(&id).await;
    let intent = &before["attempts"][0]["aqua"][0];
    assert_eq!(intent["id"], "", "only the intent is recorded: {before:#}");
    assert_eq!(intent["marker"], format!("{id}/1/mixed"), "{before:#}");
    server.kill9();
    aqua.knobs(json!({"answer_delay": 0})).await;
    server.start_again().await;

    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Succeeded", "{st:#}\n{}", server.log());
    let seen = aqua.seen().await;
    let made = seen["launches"].as_array().unwrap();
    assert_eq!(
        made.len(),
        2,
        "one launch (adopted, not made again) and one restart: {seen:#}"
    );
    assert_eq!(
        launches(&st, 0)[0]["id"],
        made[0]["id"],
        "the launch made before the crash was adopted"
    );
    assert_eq!(launches(&st, 1)[0]["restartOf"], made[0]["id"]);
    let props: Vec<(String, String)> = serde_json::from_value(made[0]["properties"].clone()).unwrap();
    assert!(
        props.contains(&("tomato.launch".into(), format!("{id}/1/mixed"))),
        "{props:?}"
    );
    let looked_up = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"].as_str().unwrap().ends_with("launch/page/simple"));
    assert!(looked_up, "the launch was looked up by its marker: {seen:#}");
    assert!(
        server
            .log()
            .contains("found the launch made before Tomato stopped")
    );
}

/// Tomato killed while a mixed attempt runs: its process is gone, so the attempt is marked
/// interrupted and launched again, and the relaunch adopts the Aqua launch already made
/// (it goes on in Aqua) instead of launching the pack a second time.
#[tokio::test]
async fn a_mixed_attempt_interrupted_by_a_restart_relaunches_only_its_local_part() {
    let aqua = AquaStandIn::start(Some(TOKEN));
    aqua.knobs(json!({"delay": 8})).await;
    let (mut server, _cfg) = start_mixed(&aqua).await;
    let id = server.run_now("service=mix&stand=stand-qa1").await;
    server
        .wait_until(&id, "launched in Aqua", LONG, |st| {
            st["attempts"][0]["aqua"][0]["id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        })
        .await;
    server.restart().await;
    aqua.knobs(json!({"delay": 0})).await;
    let st = server.wait_finished(&id, LONG).await;
    assert_eq!(st["phase"], "Failed", "{st:#}\n{}", server.log());
    let attempts = st["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["state"], "Interrupted", "{st:#}");
    assert_eq!(attempts[1]["number"], 1, "the relaunch keeps its number: {st:#}");
    assert!(
        launches(&st, 0).is_empty(),
        "its launch moved to the relaunch: {st:#}"
    );
    let seen = aqua.seen().await;
    let made = seen["launches"].as_array().unwrap();
    assert_eq!(made.len(), 2, "one launch and one restart, none twice: {seen:#}");
    assert_eq!(launches(&st, 1)[0]["id"], made[0]["id"], "{st:#}");
    assert_eq!(launches(&st, 2)[0]["restartOf"], made[0]["id"], "{st:#}");
    let verdicts = server.verdicts(&id).await;
    assert!(
        verdicts
            .iter()
            .any(|(k, v)| k.ends_with("::test_flaky") && v == "flaky"),
        "{verdicts:?}"
    );
}
