//! End to end, reporting: the real `tomato` binary runs the real `demo` suite (Node's test
//! runner) and reports it to a real SMTP server (aiosmtpd, from PyPI) and to in-process HTTP
//! servers standing in for Jira, Yandex Tracker and chat webhooks, which cannot run here:
//! they speak the same wire format (paths, headers, JSON bodies) and record every request
//! so the tests can check it exactly.

mod report_support;
mod support;

use std::time::Duration;

use report_support::{FakeHttp, SmtpSink, artifacts, free_port, part, screenshot};
use serde_json::{Value, json};
use support::{REPO, Server, config_with};
use tomato::integrations::redact::base64;
use tomato::integrations::tracker::escape_jira;

const RUN: Duration = Duration::from_secs(120);
const FROM: &str = "Tomato <tomato@example.com>";

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

async fn start(config: Option<&std::path::Path>, env: &[(String, String)]) -> Server {
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(config, &refs).await
}

/// Creates a demo smoke run through `/api/v1/runs` with one rerun (a flaky test passes on
/// it, a failing one fails again), plus the extra spec fields.
async fn demo_run(server: &Server, extra: Value) -> String {
    let mut spec = json!({"service": "demo", "stand": "localhost", "category": "smoke", "retries": 1});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let (code, run) = server.post_json("/api/v1/runs", &json!({ "spec": spec })).await;
    assert!(code == 201 || code == 200, "{code} {run}");
    run["metadata"]["name"].as_str().unwrap().to_string()
}

fn report<'a>(st: &'a Value, channel: &str) -> &'a Value {
    &st["report"][channel]
}

/// The merged counts of a demo smoke run: one test still failing, one flaky, one skipped.
fn assert_demo_summary(st: &Value) {
    let s = &st["summary"];
    assert_eq!(
        (s["total"].as_u64(), s["passed"].as_u64(), s["failed"].as_u64()),
        (Some(6), Some(3), Some(1)),
        "{st:#}"
    );
    assert_eq!(
        (s["flaky"].as_u64(), s["skipped"].as_u64(), s["broken"].as_u64()),
        (Some(1), Some(1), Some(0)),
        "{st:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_email_reaches_a_real_smtp_server_once_with_subject_recipients_categories_and_flaky_test() {
    let sink = SmtpSink::start(free_port(), None);
    let server = start(
        None,
        &env(&[
            ("TOMATO_SMTP_URL", format!("smtp://127.0.0.1:{}", sink.port)),
            ("TOMATO_SMTP_FROM", FROM.to_string()),
        ]),
    )
    .await;
    let id = server
        .run_now("service=demo&stand=localhost&category=smoke&emails=qa@example.com,lead@example.com")
        .await;
    let st = server.wait_finished(&id, RUN).await;

    assert_eq!(st["phase"], "Failed", "{st:#}");
    assert_demo_summary(&st);
    let email = report(&st, "email");
    assert_eq!(email["state"], "Sent", "{st:#}");
    assert_eq!(email["attempts"], 1);
    assert_eq!(email["sentTo"], json!(["qa@example.com", "lead@example.com"]));
    assert_eq!(report(&st, "tracker")["state"], "Skipped");
    assert_eq!(report(&st, "tracker")["reason"], "the run has no issueKey");
    assert_eq!(report(&st, "webhook")["state"], "Skipped");

    let messages = sink.wait_messages(1, RUN).await;
    assert_eq!(messages.len(), 1, "exactly one message: {messages:#?}");
    let m = &messages[0];
    assert_eq!(m["rcpt_tos"], json!(["qa@example.com", "lead@example.com"]));
    assert_eq!(m["to"], "qa@example.com, lead@example.com");
    assert_eq!(m["from"], FROM);
    assert_eq!(
        m["subject"],
        format!("[Tomato] demo smoke on localhost: 1 failed, 1 flaky — run {id}")
    );
    assert_eq!(m["message_id"], format!("<{id}.report@example.com>"));
    assert_eq!(m["content_type"], "multipart/alternative");

    let text = part(m, "text/plain");
    let link = format!("{}/runs/{id}", server.url);
    for expected in [
        "demo smoke on localhost: Failed (1 failed, 1 flaky)",
        "1 test still failing after 4 attempts",
        "Stand      localhost",
        "Category   smoke",
        "Priority   2",
        "Summary    6 tests: 3 passed, 1 failed, 0 broken, 1 flaky, 1 skipped",
        "  1. all tests of basic: Finished, 6 tests",
        "  2. 2 failed tests of attempt 1: Finished",
        "Failures by category (1)",
        "  Product defects (1)",
        "    - cart > applies the discount [failed, attempt 4]",
        "Flaky tests (1)",
        "    - submits the order form (failed on attempt 1, passed on attempt 2)",
        "TimeoutError: waiting for selector",
        &link,
    ] {
        assert!(
            text.contains(expected),
            "missing {expected:?} in the text part:\n{text}"
        );
    }
    let html = part(m, "text/html").replace("&#x2f;", "/");
    for expected in [
        "Failures by category",
        "Product defects",
        "cart &gt; applies the discount",
        "submits the order form",
        "failed on attempt 1, passed on attempt 2",
        &format!("href=\"{link}\""),
    ] {
        assert!(
            html.contains(expected),
            "missing {expected:?} in the HTML part:\n{html}"
        );
    }
}

/// One recipient's mailbox does not exist (the server answers 550 for it): everyone else still
/// gets the report, and the channel says which address was refused.
#[tokio::test]
async fn a_refused_recipient_stops_nobody_elses_email_and_is_named() {
    let sink = SmtpSink::start_refusing(free_port(), None, &["gone@example.com"]);
    let server = start(
        None,
        &env(&[
            ("TOMATO_SMTP_URL", format!("smtp://127.0.0.1:{}", sink.port)),
            ("TOMATO_SMTP_FROM", FROM.to_string()),
        ]),
    )
    .await;
    let id = server
        .run_now("service=demo&stand=localhost&category=smoke&emails=lead@example.com,gone@example.com")
        .await;
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(st["phase"], "Failed", "the verdict stands: {st:#}");
    let email = report(&st, "email");
    assert_eq!(email["state"], "Failed", "{st:#}");
    assert_eq!(email["sentTo"], json!(["lead@example.com"]), "{st:#}");
    let reason = email["reason"].as_str().unwrap();
    assert!(
        reason.contains("gone@example.com") && reason.contains("550") && !reason.contains("lead@"),
        "{reason}"
    );
    let messages = sink.wait_messages(1, RUN).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["rcpt_tos"], json!(["lead@example.com"]));
    assert_eq!(
        messages[0]["to"], "lead@example.com, gone@example.com",
        "the message itself still names everyone it was for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_arrives_after_retries_when_the_smtp_server_comes_up_late() {
    let port = free_port();
    let server = start(
        None,
        &env(&[
            ("TOMATO_SMTP_URL", format!("smtp://127.0.0.1:{port}")),
            ("TOMATO_SMTP_FROM", FROM.to_string()),
            ("TOMATO_REPORT_RETRY_ATTEMPTS", "20".into()),
            ("TOMATO_REPORT_RETRY_BASE", "300ms".into()),
            ("TOMATO_REPORT_RETRY_MAX", "1s".into()),
        ]),
    )
    .await;
    let id = demo_run(&server, json!({"emails": ["qa@example.com"]})).await;
    let st = server
        .wait_until(&id, "retrying its email", RUN, |st| {
            report(st, "email")["attempts"].as_u64() >= Some(2)
        })
        .await;
    let email = report(&st, "email");
    assert_eq!(email["state"], "Pending", "{st:#}");
    assert_eq!(
        st["phase"], "Reporting",
        "the verdict is final, the report is not: {st:#}"
    );
    let reason = email["reason"].as_str().unwrap();
    assert!(
        reason.contains("of 20 failed: SMTP smtp://127.0.0.1:"),
        "{reason}"
    );
    assert!(reason.to_lowercase().contains("connection refused"), "{reason}");
    assert!(email["nextAt"].is_string(), "{st:#}");

    let sink = SmtpSink::start(port, None);
    let st = server.wait_finished(&id, RUN).await;
    let email = report(&st, "email");
    assert_eq!(email["state"], "Sent", "{st:#}");
    assert!(email["attempts"].as_u64() >= Some(3), "{st:#}");
    assert_eq!(st["phase"], "Failed");
    assert_eq!(sink.wait_messages(1, RUN).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_that_never_gets_through_fails_with_a_readable_reason_and_the_verdict_stands() {
    let port = free_port(); // nothing listens there
    let server = start(
        None,
        &env(&[
            ("TOMATO_SMTP_URL", format!("smtp://127.0.0.1:{port}")),
            ("TOMATO_SMTP_FROM", FROM.to_string()),
            ("TOMATO_REPORT_RETRY_ATTEMPTS", "3".into()),
            ("TOMATO_REPORT_RETRY_BASE", "100ms".into()),
        ]),
    )
    .await;
    let id = server
        .run_now("service=demo&stand=localhost&category=smoke&emails=qa@example.com")
        .await;
    let st = server.wait_finished(&id, RUN).await;

    assert_eq!(st["phase"], "Failed", "{st:#}");
    assert_eq!(st["message"], "1 test still failing after 4 attempts");
    assert_demo_summary(&st);
    let email = report(&st, "email");
    assert_eq!(email["state"], "Failed", "{st:#}");
    assert_eq!(email["attempts"], 3);
    let reason = email["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "gave up after 3 attempts: SMTP smtp://127.0.0.1:{port}: "
        )),
        "{reason}"
    );
    assert!(reason.to_lowercase().contains("connection refused"), "{reason}");
    assert!(email.get("nextAt").is_none(), "{st:#}");
}

/// Jira's REST API v2 as Jira Cloud and Server speak it, played by an in-process server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_gets_one_wiki_markup_comment_on_the_issue_with_basic_auth() {
    let jira = FakeHttp::start(201).await;
    let server = start(
        None,
        &env(&[
            ("TOMATO_TRACKER", "jira".into()),
            ("TOMATO_TRACKER_URL", format!("{}/jira", jira.url)),
            ("TOMATO_TRACKER_USER", "bot@example.com".into()),
            ("TOMATO_TRACKER_TOKEN", "jira-api-token".into()),
        ]),
    )
    .await;
    let id = demo_run(&server, json!({"issueKey": "QA-42"})).await;
    let st = server.wait_finished(&id, RUN).await;

    let tracker = report(&st, "tracker");
    assert_eq!(tracker["state"], "Sent", "{st:#}");
    assert_eq!(tracker["sentTo"], json!(["QA-42"]));
    assert_eq!(
        report(&st, "email")["reason"],
        "no recipients: the run has no emails and its service no report.emails"
    );
    let requests = jira.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/jira/rest/api/2/issue/QA-42/comment")
    );
    assert_eq!(
        r.headers["authorization"],
        format!("Basic {}", base64(b"bot@example.com:jira-api-token"))
    );
    assert_eq!(r.headers["content-type"], "application/json");
    let body = r.body["body"].as_str().unwrap();
    assert_eq!(
        r.body.as_object().unwrap().len(),
        1,
        "only the body field: {}",
        r.body
    );
    for expected in [
        "h3. (x) Tomato: demo smoke on localhost — Failed\n",
        "*1 failed, 1 flaky*",
        "||Total||Passed||Failed||Broken||Flaky||Skipped||\n|6|3|1|0|1|1|",
        "h4. Failures by category\n* *Product defects* (1)\n** cart > applies the discount — _",
        "h4. Flaky tests\n* submits the order form (failed on attempt 1, passed on attempt 2)",
        &format!("[Run {}|{}/runs/{id}]", escape_jira(&id), server.url),
    ] {
        assert!(body.contains(expected), "missing {expected:?} in:\n{body}");
    }
}

/// Yandex Tracker's API v2, played by an in-process server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yandex_tracker_gets_one_markdown_comment_with_oauth_and_the_organisation_header() {
    let yandex = FakeHttp::start(201).await;
    let server = start(
        None,
        &env(&[
            ("TOMATO_TRACKER", "yandex".into()),
            ("TOMATO_TRACKER_URL", yandex.url.clone()),
            ("TOMATO_TRACKER_TOKEN", "y0_oauth-token".into()),
            ("TOMATO_TRACKER_ORG", "7654321".into()),
            ("TOMATO_TRACKER_ORG_HEADER", "X-Cloud-Org-ID".into()),
        ]),
    )
    .await;
    let id = demo_run(&server, json!({"issueKey": "QA-42"})).await;
    let st = server.wait_finished(&id, RUN).await;

    assert_eq!(report(&st, "tracker")["state"], "Sent", "{st:#}");
    let requests = yandex.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v2/issues/QA-42/comments")
    );
    assert_eq!(r.headers["authorization"], "OAuth y0_oauth-token");
    assert_eq!(r.headers["x-cloud-org-id"], "7654321");
    assert!(!r.headers.contains_key("x-org-id"));
    assert_eq!(r.headers["content-type"], "application/json");
    let text = r.body["text"].as_str().unwrap();
    for expected in [
        "**Tomato: demo smoke on localhost — Failed**",
        "**1 failed, 1 flaky**",
        "| 6 | 3 | 1 | 0 | 1 | 1 |",
        "#### Failures by category\n\n- **Product defects** (1)\n  - cart \\> applies the discount — _",
        "- submits the order form (failed on attempt 1, passed on attempt 2)",
        &format!("({}/runs/{id})", server.url),
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// Slack-compatible incoming webhooks, played by an in-process server: a global one that
/// fails twice before taking the message, and the service's own one that takes it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_slack_json_once_each_even_when_one_needs_retries() {
    let hooks = FakeHttp::start(200).await;
    let global = "/services/T000/B000/global-secret";
    let team = "/hooks/team-secret";
    hooks.script(global, &[503, 503]);
    let demo = std::fs::read_to_string(format!("{REPO}/packs_config/demo.yaml"))
        .unwrap()
        .replace(
            "report:\n  emails: []",
            &format!("report:\n  emails: []\n  webhooks: ['{}{team}']", hooks.url),
        );
    let config = config_with(&[("demo.yaml", &demo)]);
    let server = start(
        Some(config.path()),
        &env(&[
            ("TOMATO_WEBHOOK_URLS", format!("{}{global}", hooks.url)),
            ("TOMATO_REPORT_RETRY_BASE", "200ms".into()),
        ]),
    )
    .await;
    let id = demo_run(&server, json!({})).await;
    let st = server.wait_finished(&id, RUN).await;

    let webhook = report(&st, "webhook");
    assert_eq!(webhook["state"], "Sent", "{st:#}");
    assert_eq!(webhook["attempts"], 3);
    let labels = webhook["sentTo"].as_array().unwrap();
    assert_eq!(labels.len(), 2, "{st:#}");
    assert!(
        labels
            .iter()
            .all(|l| l.as_str().unwrap().starts_with("127.0.0.1#")),
        "{st:#}"
    );
    assert!(
        !st.to_string().contains("secret"),
        "webhook URLs are secrets: {st:#}"
    );

    let to_global = hooks.requests_to(global);
    assert_eq!(
        to_global.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![503, 503, 200]
    );
    let to_team = hooks.requests_to(team);
    assert_eq!(
        to_team.len(),
        1,
        "the service's webhook took it at once and only once"
    );
    for r in to_global.iter().chain(&to_team) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(!r.headers.contains_key("authorization"));
        let text = r.body["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!(
                ":x: *demo smoke on localhost*: 1 failed, 1 flaky — <{}/runs/{id}|run {id}>",
                server.url
            )),
            "{text}"
        );
        let blocks = r.body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "❌ demo smoke on localhost: Failed");
        let all = r.body.to_string();
        assert!(
            all.contains("*Product defects* (1)") && all.contains("cart &gt; applies the discount"),
            "{all}"
        );
        assert!(
            all.contains("`submits the order form` (failed on attempt 1)"),
            "{all}"
        );
        assert_eq!(
            blocks.last().unwrap()["elements"][0]["url"],
            format!("{}/runs/{id}", server.url)
        );
    }
}

/// A graceful stop (SIGTERM) while a webhook delivery is in flight — the receiver has the
/// request but has not answered — waits for the answer and records it, so the restarted
/// server does not send the report again.
#[tokio::test]
async fn a_graceful_stop_during_a_delivery_records_it_and_the_restart_does_not_resend() {
    let hooks = FakeHttp::start(200).await;
    hooks.set_delay(Duration::from_secs(3));
    let mut server = start(
        None,
        &env(&[("TOMATO_WEBHOOK_URLS", format!("{}/hooks/slow", hooks.url))]),
    )
    .await;
    let id = demo_run(&server, json!({})).await;
    let deadline = std::time::Instant::now() + RUN;
    while hooks.requests_to("/hooks/slow").is_empty() {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.terminate().await;
    assert!(
        server
            .log()
            .contains("waiting for the report deliveries in flight"),
        "{}",
        server.log()
    );
    server.start_again().await;
    let st = server.wait_finished(&id, RUN).await;
    let webhook = report(&st, "webhook");
    assert_eq!(
        (&webhook["state"], &webhook["attempts"]),
        (&json!("Sent"), &json!(1)),
        "{st:#}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hooks.requests_to("/hooks/slow").len(), 1, "sent once");
}

/// A restart in the middle of reporting: the email went out, the tracker (Jira, played by an
/// in-process server) was failing; Tomato is killed with `kill -9`, the tracker recovers, and
/// the restarted Tomato comments once and does not send the email again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_report_neither_resends_the_email_nor_skips_the_tracker() {
    let sink = SmtpSink::start(free_port(), None);
    let jira = FakeHttp::start(503).await;
    let mut server = start(
        None,
        &env(&[
            ("TOMATO_SMTP_URL", format!("smtp://127.0.0.1:{}", sink.port)),
            ("TOMATO_SMTP_FROM", FROM.to_string()),
            ("TOMATO_TRACKER", "jira".into()),
            ("TOMATO_TRACKER_URL", jira.url.clone()),
            ("TOMATO_TRACKER_TOKEN", "pat".into()),
            ("TOMATO_REPORT_RETRY_ATTEMPTS", "20".into()),
            ("TOMATO_REPORT_RETRY_BASE", "300ms".into()),
            ("TOMATO_REPORT_RETRY_MAX", "1s".into()),
        ]),
    )
    .await;
    let id = demo_run(&server, json!({"emails": ["qa@example.com"], "issueKey": "QA-7"})).await;
    let st = server
        .wait_until(&id, "emailed with the tracker failing", RUN, |st| {
            report(st, "email")["state"] == "Sent" && report(st, "tracker")["attempts"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(report(&st, "tracker")["state"], "Pending", "{st:#}");
    assert!(
        report(&st, "tracker")["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 503 Service Unavailable"),
        "{st:#}"
    );

    server.kill9();
    let failed_before = jira.requests().len();
    jira.set_status(201);
    server.restart().await;
    let st = server.wait_finished(&id, RUN).await;

    assert_eq!(st["phase"], "Failed", "{st:#}");
    assert_eq!(report(&st, "tracker")["state"], "Sent", "{st:#}");
    assert_eq!(report(&st, "email")["attempts"], 1, "{st:#}");
    let after: Vec<u16> = jira.requests()[failed_before..]
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(after, vec![201], "one comment after the restart");
    assert_eq!(
        sink.wait_messages(1, RUN).await.len(),
        1,
        "the email was not sent again"
    );
}

/// Credentials never show: not in the log, not in `/api/status` or `/api/v1`, not in a
/// channel's reason — even when the SMTP URL carries the password, the tracker (Jira, played
/// by an in-process server) echoes the `Authorization` header in its error, and the webhook's
/// secret path is in the failing URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log_the_status_or_a_reason() {
    const SMTP_PASSWORD: &str = "smtp-Pa55-7d3f";
    const TOKEN: &str = "jira-T0k3n-9c1e";
    const HOOK_SECRET: &str = "hook-s3cret-77";
    let port = free_port();
    let jira = FakeHttp::start(401).await;
    jira.echo_authorization();
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("jira-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let server = start(
        None,
        &env(&[
            (
                "TOMATO_SMTP_URL",
                format!("smtp://tomato:{SMTP_PASSWORD}@127.0.0.1:{port}"),
            ),
            ("TOMATO_SMTP_FROM", FROM.to_string()),
            ("TOMATO_TRACKER", "jira".into()),
            ("TOMATO_TRACKER_URL", jira.url.clone()),
            ("TOMATO_TRACKER_USER", "bot@example.com".into()),
            ("TOMATO_TRACKER_TOKEN_FILE", token_file.display().to_string()),
            (
                "TOMATO_WEBHOOK_URLS",
                format!("http://127.0.0.1:{}/services/T1/B1/{HOOK_SECRET}", free_port()),
            ),
            ("TOMATO_REPORT_RETRY_ATTEMPTS", "20".into()),
            ("TOMATO_REPORT_RETRY_BASE", "300ms".into()),
            ("TOMATO_REPORT_RETRY_MAX", "1s".into()),
        ]),
    )
    .await;
    let id = demo_run(&server, json!({"emails": ["qa@example.com"], "issueKey": "QA-9"})).await;
    // The SMTP server (requiring that user and password) comes up only after a failed attempt,
    // so that an error with the SMTP URL in hand is made and logged.
    server
        .wait_until(&id, "failing its email once", RUN, |st| {
            report(st, "email")["attempts"].as_u64() >= Some(1)
        })
        .await;
    let sink = SmtpSink::start(port, Some(("tomato", SMTP_PASSWORD)));
    let st = server
        .wait_until(&id, "emailed", RUN, |st| report(st, "email")["state"] == "Sent")
        .await;
    let messages = sink.wait_messages(1, RUN).await;
    assert_eq!(messages[0]["auth_user"], "tomato", "the password was used");

    let tracker = report(&st, "tracker");
    assert_eq!(tracker["state"], "Failed", "a 401 is not retried: {st:#}");
    let reason = tracker["reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 401 Unauthorized") && reason.contains("credentials Basic ***"),
        "{reason}"
    );
    let webhook = report(&st, "webhook");
    assert!(webhook["attempts"].as_u64() >= Some(1), "{st:#}");
    assert!(
        webhook["reason"].as_str().unwrap().contains("127.0.0.1#"),
        "{st:#}"
    );

    let basic = base64(format!("bot@example.com:{TOKEN}").as_bytes());
    let (_, v1_run) = server.get(&format!("/api/v1/runs/{id}")).await;
    let (_, v1_list) = server.get("/api/v1/runs").await;
    let texts = [
        ("the log", server.log()),
        ("/api/status", server.status(&id).await.to_string()),
        ("/api/v1/runs/{id}", v1_run.to_string()),
        ("/api/v1/runs", v1_list.to_string()),
    ];
    assert!(
        texts[0].1.contains("report delivery failed"),
        "failures were logged:\n{}",
        texts[0].1
    );
    for (place, text) in &texts {
        for secret in [SMTP_PASSWORD, TOKEN, basic.as_str(), HOOK_SECRET] {
            assert!(!text.contains(secret), "{secret:?} appears in {place}:\n{text}");
        }
    }
}

/// The HTML email as a person sees it: rendered by headless Chromium into
/// `tests/artifacts/report-email.png` (next to the HTML itself) for a look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_email_renders_in_headless_chromium() {
    let sink = SmtpSink::start(free_port(), None);
    let server = start(
        None,
        &env(&[
            ("TOMATO_SMTP_URL", format!("smtp://127.0.0.1:{}", sink.port)),
            ("TOMATO_SMTP_FROM", FROM.to_string()),
        ]),
    )
    .await;
    let id = demo_run(
        &server,
        json!({"emails": ["qa@example.com"], "issueKey": "QA-42", "version": "2.7.0"}),
    )
    .await;
    server.wait_finished(&id, RUN).await;
    let messages = sink.wait_messages(1, RUN).await;
    let html = part(&messages[0], "text/html");

    let dir = artifacts();
    let html_path = dir.join("report-email.html");
    let png_path = dir.join("report-email.png");
    std::fs::write(&html_path, html).unwrap();
    screenshot(&html_path, &png_path, 1000, 1400);
    let png = std::fs::read(&png_path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "the screenshot looks empty ({} bytes)",
        png.len()
    );
}
