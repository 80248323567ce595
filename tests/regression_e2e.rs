//! End to end, regressions: the real `tomato` binary hands a regression plan of a real Kiwi
//! TCMS (12.4 from PyPI, see tests/tms_support) to assessors, emails them through a real SMTP
//! server (aiosmtpd), and keeps the ticket in an in-process server standing in for Jira's
//! REST API (which cannot run here; it speaks the same paths and JSON). The test then marks
//! the executions in Kiwi as the assessors would, signed in as them.

mod report_support;
mod support;
mod tms_support;

use std::time::{Duration, Instant};

use report_support::{SmtpSink, free_port, part};
use serde_json::{Value, json};
use support::Server;
use tms_support::{ASSESSORS, FakeTracker, Kiwi, TOMATO_USER, regression_plan, rpc};

const WAIT: Duration = Duration::from_secs(60);

async fn start(envs: &[Vec<(String, String)>]) -> Server {
    let mut all: Vec<(String, String)> = envs.iter().flatten().cloned().collect();
    all.push(("TOMATO_TMS_POLL".into(), "300ms".into()));
    all.push(("TOMATO_REPORT_RETRY_BASE".into(), "200ms".into()));
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_with(None, &refs).await
}

fn smtp_env(sink: &SmtpSink) -> Vec<(String, String)> {
    vec![
        (
            "TOMATO_SMTP_URL".into(),
            format!("smtp://127.0.0.1:{}", sink.port),
        ),
        ("TOMATO_SMTP_FROM".into(), "Tomato <tomato@example.com>".into()),
    ]
}

async fn create(server: &Server, spec: Value) -> (u16, Value) {
    server
        .post_json(
            "/api/v1/regressions",
            &json!({"metadata": {"name": "demo-2-0"}, "spec": spec}),
        )
        .await
}

/// Polls the regression until `done(status)`.
async fn wait_for(server: &Server, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, reg) = server.get(&format!("/api/v1/regressions/{name}")).await;
        assert_eq!(code, 200, "{reg}");
        if done(&reg["status"]) {
            return reg;
        }
        assert!(
            Instant::now() < deadline,
            "regression {name} not {what} after {WAIT:?}: {reg:#}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_phase(server: &Server, name: &str, phase: &str) -> Value {
    wait_for(server, name, phase, |st| st["phase"] == phase).await
}

/// Marks an execution as its assessor would: signed in as them.
async fn mark(kiwi: &Kiwi, assessor: &str, execution: u64, status: &str) {
    let password = ASSESSORS.iter().find(|a| a.0 == assessor).unwrap().1;
    let c = kiwi.client((assessor, password));
    let statuses = rpc(&c, "TestExecutionStatus.filter", json!([{"name": status}])).await;
    rpc(
        &c,
        "TestExecution.update",
        json!([execution, {"status": statuses[0]["id"]}]),
    )
    .await;
}

fn executions_of(reg: &Value, assessor: &str) -> Vec<u64> {
    reg["status"]["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["assessor"] == assessor)
        .unwrap()["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regression_of_six_cases_goes_to_two_assessors_and_completes_with_the_ticket_commented() {
    let kiwi = Kiwi::start().await;
    let (plan, cases) = regression_plan(&kiwi, "demo", "demo regression", 6).await;
    let jira = FakeTracker::jira().await;
    let sink = SmtpSink::start(free_port(), None);
    let server = start(&[kiwi.env(), jira.env(), smtp_env(&sink)]).await;

    // No plan in the spec: the service's default (regression.plan in packs_config).
    let (code, created) = create(
        &server,
        json!({"service": "demo", "version": "2.0", "stand": "localhost", "assessors": ["alice", "bob"],
               "deadline": "2099-01-01T18:00:00Z", "queue": "QA", "emails": ["lead@example.com"]}),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["metadata"]["finalizers"],
        json!(["tomato.dev/regression"])
    );

    let reg = wait_phase(&server, "demo-2-0", "InProgress").await;
    let st = &reg["status"];
    assert_eq!(st["tms"]["planId"], plan, "{st:#}");
    assert_eq!(st["progress"]["total"], 6, "{st:#}");
    assert_eq!(st["progress"]["idle"], 6);
    let alice = executions_of(&reg, "alice");
    let bob = executions_of(&reg, "bob");
    assert_eq!((alice.len(), bob.len()), (3, 3), "{st:#}");
    assert_eq!(
        st["progress"]["assessors"][0],
        json!({"assessor": "alice", "total": 3, "idle": 3, "passed": 0, "failed": 0, "blocked": 0})
    );

    // Kiwi: version 2.0 and its build, a child plan of that version, a run with the six
    // confirmed cases (not the draft), each assigned to its assessor.
    let c = kiwi.client(TOMATO_USER);
    let run_id = st["tms"]["runId"].as_u64().unwrap();
    let run = rpc(&c, "TestRun.filter", json!([{"pk": run_id}])).await;
    assert_eq!(run[0]["build__name"], "2.0", "{run:#}");
    assert_eq!(run[0]["plan__product_version__value"], "2.0");
    assert_eq!(run[0]["plan__name"], "demo regression 2.0");
    let executions = rpc(&c, "TestExecution.filter", json!([{"run": run_id}])).await;
    let executions = executions.as_array().unwrap();
    assert_eq!(executions.len(), 6);
    let mut in_run: Vec<u64> = executions.iter().map(|e| e["case"].as_u64().unwrap()).collect();
    in_run.sort();
    assert_eq!(in_run, cases);
    for e in executions {
        let mine = if alice.contains(&e["id"].as_u64().unwrap()) {
            "alice"
        } else {
            "bob"
        };
        assert_eq!(e["assignee__username"], mine, "{e:#}");
    }
    let created_list = st["created"].as_array().unwrap();
    assert!(
        created_list
            .iter()
            .any(|c| c.as_str().unwrap().starts_with("version 2.0 of demo")),
        "{st:#}"
    );
    assert!(created_list.iter().any(|c| c == "ticket QA-1"), "{st:#}");

    // The ticket: created in QA with the release version, labelled for this regression.
    assert_eq!(st["ticket"]["key"], "QA-1", "{st:#}");
    assert_eq!(jira.versions(), vec![("QA".to_string(), "2.0".to_string())]);
    let issue = &jira.issues()[0];
    assert_eq!(issue.fields["summary"], "Regression of demo 2.0 on localhost");
    assert_eq!(issue.fields["fixVersions"], json!([{"name": "2.0"}]));
    assert_eq!(
        issue.fields["labels"],
        json!([format!("tomato-{}", created["metadata"]["uid"].as_str().unwrap())])
    );

    // Each assessor got one email with their three cases.
    let messages = sink.wait_messages(2, WAIT).await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    for (who, mine) in [("alice", &alice), ("bob", &bob)] {
        let m = messages
            .iter()
            .find(|m| m["rcpt_tos"] == json!([format!("{who}@example.com")]))
            .unwrap_or_else(|| panic!("no email to {who}: {messages:#?}"));
        assert_eq!(
            m["subject"],
            "[Tomato] Regression of demo 2.0: 3 cases for you by 2099-01-01 18:00 UTC"
        );
        let text = part(m, "text/plain");
        let listed = text
            .lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .count();
        assert_eq!(listed, 3, "{text}");
        for e in executions
            .iter()
            .filter(|e| mine.contains(&e["id"].as_u64().unwrap()))
        {
            assert!(
                text.contains(&format!("{}case/{}/", kiwi.url, e["case"])),
                "{text}"
            );
        }
        assert!(text.contains("Manual check"), "{text}");
        assert!(
            part(m, "text/html").contains("&lt;b&gt;&amp;"),
            "case names are escaped in HTML"
        );
    }
    assert_eq!(reg["status"]["assessorEmails"]["sentTo"], json!(["alice", "bob"]));

    // A kill -9 and restart mid-campaign: it carries on, and nothing is sent or made twice.
    let mut server = server;
    server.restart().await;
    let reg = wait_phase(&server, "demo-2-0", "InProgress").await;
    assert_eq!(executions_of(&reg, "alice"), alice);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.messages().len(), 2);
    assert_eq!((jira.issues().len(), jira.versions().len()), (1, 1));
    let again = rpc(&c, "TestExecution.filter", json!([{"run": run_id}])).await;
    assert_eq!(again.as_array().unwrap().len(), 6);

    // The assessors work: alice passes two and fails one; progress follows.
    mark(&kiwi, "alice", alice[0], "PASSED").await;
    mark(&kiwi, "alice", alice[1], "PASSED").await;
    mark(&kiwi, "alice", alice[2], "FAILED").await;
    let reg = wait_for(&server, "demo-2-0", "following alice's verdicts", |st| {
        st["progress"]["idle"] == 3
    })
    .await;
    assert_eq!(reg["status"]["phase"], "InProgress");
    assert_eq!(
        reg["status"]["progress"]["assessors"][0],
        json!({"assessor": "alice", "total": 3, "idle": 0, "passed": 2, "failed": 1, "blocked": 0})
    );
    assert_eq!(
        reg["status"]["message"],
        "3 of 6 cases have a verdict: 2 passed, 1 failed, 0 blocked"
    );

    // Bob finishes: every case has a verdict.
    mark(&kiwi, "bob", bob[0], "PASSED").await;
    mark(&kiwi, "bob", bob[1], "BLOCKED").await;
    mark(&kiwi, "bob", bob[2], "PASSED").await;
    let reg = wait_phase(&server, "demo-2-0", "Completed").await;
    let st = &reg["status"];
    assert_eq!(
        (
            &st["progress"]["passed"],
            &st["progress"]["failed"],
            &st["progress"]["blocked"],
            &st["progress"]["idle"]
        ),
        (&json!(4), &json!(1), &json!(1), &json!(0)),
        "{st:#}"
    );
    assert_eq!(st["summaryComment"]["state"], "Sent", "{st:#}");
    assert_eq!(st["reportEmail"]["state"], "Sent", "{st:#}");
    let issue = &jira.issues()[0];
    assert_eq!(issue.comments.len(), 1, "{:#?}", issue.comments);
    let comment = &issue.comments[0];
    assert!(
        comment.starts_with("h3. Regression of demo 2.0: completed\n6 cases — 4 passed, 1 failed, 1 blocked"),
        "{comment}"
    );
    assert!(
        comment.contains("- alice: 3 cases — 2 passed, 1 failed, 0 blocked"),
        "{comment}"
    );
    assert!(comment.contains("- BLOCKED: [Manual check"), "{comment}");

    let messages = sink.wait_messages(3, WAIT).await;
    let report = &messages[2];
    assert_eq!(
        report["subject"],
        "[Tomato] Regression of demo 2.0 completed: 4 passed, 1 failed, 1 blocked"
    );
    assert_eq!(
        report["rcpt_tos"],
        json!(["alice@example.com", "bob@example.com", "lead@example.com"])
    );

    // A restart changes nothing: no second ticket, comment or email.
    server.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = server.get("/api/v1/regressions/demo-2-0").await;
    assert_eq!(after["status"]["phase"], "Completed");
    assert_eq!(jira.issues().len(), 1);
    assert_eq!(jira.issues()[0].comments.len(), 1);
    assert_eq!(sink.messages().len(), 3);

    // Deleting it stops the Kiwi test run.
    let (code, _) = server
        .send(
            server
                .client
                .delete(format!("{}/api/v1/regressions/demo-2-0", server.url)),
        )
        .await;
    assert_eq!(code, 202);
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, _) = server.get("/api/v1/regressions/demo-2-0").await;
        if code == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "not deleted:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = rpc(&c, "TestRun.filter", json!([{"pk": run_id}])).await;
    assert!(
        run[0]["stop_date"].is_string(),
        "the Kiwi run is stopped: {run:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regression_past_its_deadline_is_overdue_naming_who_has_open_cases_until_the_deadline_moves() {
    let kiwi = Kiwi::start().await;
    regression_plan(&kiwi, "demo", "demo regression", 3).await;
    let jira = FakeTracker::jira().await;
    jira.add_issue("QA-77");
    let server = start(&[kiwi.env(), jira.env()]).await;
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(6);
    let (code, body) = create(
        &server,
        json!({"service": "demo", "version": "2.0", "stand": "localhost", "plan": "demo regression",
               "assessors": ["alice", "bob"], "deadline": deadline.to_rfc3339(), "issueKey": "QA-77"}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let reg = wait_phase(&server, "demo-2-0", "InProgress").await;
    assert_eq!(
        reg["status"]["ticket"],
        json!({"key": "QA-77", "url": format!("{}/browse/QA-77", jira.url), "created": false})
    );
    assert_eq!(
        reg["status"]["assessorEmails"]["reason"],
        "email is not configured (set TOMATO_SMTP_URL and TOMATO_SMTP_FROM)"
    );
    let bob = executions_of(&reg, "bob");
    mark(&kiwi, "bob", bob[0], "PASSED").await;

    let reg = wait_phase(&server, "demo-2-0", "Overdue").await;
    let st = &reg["status"];
    assert_eq!(
        st["message"],
        "past the deadline; alice has 2 open cases. 1 of 3 cases have a verdict: 1 passed, 0 failed, 0 blocked",
        "{st:#}"
    );
    let overdue = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Overdue")
        .unwrap();
    assert_eq!(
        (&overdue["status"], &overdue["message"]),
        (&json!("True"), &json!("alice has 2 open cases"))
    );
    assert!(
        jira.issues()[0].comments.is_empty(),
        "no summary before every case has a verdict"
    );
    assert_eq!(jira.issues().len(), 1, "the given ticket is used, none created");

    // The release slips: what was handed out cannot change, the deadline can.
    let patch = |body: Value| {
        server.send(
            server
                .client
                .patch(format!("{}/api/v1/regressions/demo-2-0", server.url))
                .json(&body),
        )
    };
    let (code, body) = patch(json!({"spec": {"assessors": ["alice"]}})).await;
    assert_eq!(
        (code, &body["parameter"]),
        (400, &json!("spec.assessors")),
        "{body}"
    );
    let earlier = deadline - chrono::Duration::seconds(60);
    let (code, body) = patch(json!({"spec": {"deadline": earlier.to_rfc3339()}})).await;
    assert_eq!(
        (code, &body["parameter"]),
        (400, &json!("spec.deadline")),
        "{body}"
    );
    let (_, unchanged) = server.get("/api/v1/regressions/demo-2-0").await;
    assert_eq!(unchanged["spec"]["assessors"], json!(["alice", "bob"]));
    assert_eq!(unchanged["status"]["phase"], "Overdue");

    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let (code, body) =
        patch(json!({"spec": {"deadline": later.to_rfc3339(), "emails": ["lead@example.com"]}})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["spec"]["emails"], json!(["lead@example.com"]));
    let reg = wait_phase(&server, "demo-2-0", "InProgress").await;
    let overdue = reg["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Overdue")
        .unwrap()
        .clone();
    assert_eq!(overdue["status"], "False", "{overdue}");
    assert_eq!(
        reg["spec"]["deadline"]
            .as_str()
            .map(|d| chrono::DateTime::parse_from_rfc3339(d).unwrap().timestamp()),
        Some(later.timestamp())
    );
}

/// The same campaign with Yandex Tracker (the old tool's tracker) instead of Jira: the release
/// version is created in the queue, the ticket names it by id and carries the regression's
/// `unique` and tag, and the summary is commented in Yandex's markup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_yandex_tracker_the_ticket_carries_the_release_version_and_gets_the_summary() {
    let kiwi = Kiwi::start().await;
    regression_plan(&kiwi, "demo", "demo regression", 2).await;
    let tracker = FakeTracker::yandex().await;
    let server = start(&[kiwi.env(), tracker.env()]).await;
    let (code, created) = create(
        &server,
        json!({"service": "demo", "version": "2.0", "stand": "localhost", "assessors": ["alice"], "queue": "QA"}),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let reg = wait_phase(&server, "demo-2-0", "InProgress").await;
    let st = &reg["status"];
    assert_eq!(st["ticket"]["key"], "QA-1", "{st:#}");
    assert_eq!(st["ticket"]["created"], true, "{st:#}");
    assert_eq!(tracker.versions(), vec![("QA".to_string(), "2.0".to_string())]);
    let issues = tracker.issues();
    assert_eq!(issues.len(), 1);
    let tag = format!("tomato-{}", created["metadata"]["uid"].as_str().unwrap());
    let fields = &issues[0].fields;
    assert_eq!(fields["queue"], "QA");
    assert_eq!(fields["summary"], "Regression of demo 2.0 on localhost");
    assert_eq!(fields["fixVersions"], json!(["1"]), "the version by its id");
    assert_eq!((&fields["unique"], &fields["tags"]), (&json!(tag), &json!([tag])));

    for e in executions_of(&reg, "alice") {
        mark(&kiwi, "alice", e, "PASSED").await;
    }
    let reg = wait_phase(&server, "demo-2-0", "Completed").await;
    assert_eq!(reg["status"]["summaryComment"]["state"], "Sent", "{reg:#}");
    let comments = &tracker.issues()[0].comments;
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].starts_with("**Regression of demo 2.0: completed**")
            && comments[0].contains("2 cases — 2 passed"),
        "{}",
        comments[0]
    );
    assert!(
        tracker
            .requests()
            .iter()
            .all(|(_, path)| path.starts_with("/v2/")),
        "only Yandex Tracker's API was called: {:?}",
        tracker.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_ends_in_a_clear_condition_and_lists_what_was_created() {
    let kiwi = Kiwi::start().await;
    regression_plan(&kiwi, "demo", "demo regression", 2).await;
    // A plan whose only case is a draft (PROPOSED).
    regression_plan(&kiwi, "other", "drafts only", 0).await;
    let server = start(&[kiwi.env()]).await;
    let base = json!({"service": "demo", "version": "2.0", "stand": "localhost", "assessors": ["alice"]});
    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        s
    };
    let cases = [
        (
            "unknown-plan",
            with("plan", json!("no such plan")),
            "UnknownPlan",
            "plan \"no such plan\" is not in Kiwi TCMS at",
        ),
        (
            "unknown-plan-id",
            with("plan", json!(999)),
            "UnknownPlan",
            "plan #999 is not in Kiwi TCMS at",
        ),
        (
            "unknown-assessor",
            with("assessors", json!(["alice", "zed", "yan"])),
            "UnknownAssessor",
            "unknown assessors zed, yan: no such user in Kiwi TCMS at",
        ),
        (
            "empty-plan",
            with("plan", json!("drafts only")),
            "EmptyPlan",
            "plan \"drafts only\" has no confirmed case (1 case in all); only CONFIRMED cases can join a test run",
        ),
    ];
    for (name, spec, _, _) in &cases {
        let (code, body) = server
            .post_json(
                "/api/v1/regressions",
                &json!({"metadata": {"name": name}, "spec": spec}),
            )
            .await;
        assert_eq!(code, 201, "{body}");
    }
    for (name, _, reason, message) in &cases {
        let reg = wait_phase(&server, name, "Failed").await;
        let ready = reg["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(
            (&ready["status"], &ready["reason"]),
            (&json!("False"), &json!(reason)),
            "{name}: {reg:#}"
        );
        assert!(
            ready["message"].as_str().unwrap().starts_with(message),
            "{name}: {ready:#}"
        );
    }
    // Nothing was created for any of them.
    for (name, ..) in &cases {
        let (_, reg) = server.get(&format!("/api/v1/regressions/{name}")).await;
        assert!(reg["status"]["created"].is_null(), "{reg:#}");
    }

    // Bad input the API sees is refused with the field, and nothing is stored.
    for (spec, field) in [
        (with("service", json!("nope")), "spec.service"),
        (with("stand", json!("prod.example.com")), "spec.stand"),
        (with("assessors", json!([])), "spec.assessors"),
        (with("plan", json!(true)), "spec.plan"),
        (with("deadline", json!("2001-01-01T00:00:00Z")), "spec.deadline"),
        (with("queue", json!("qa")), "spec.queue"),
        (with("assesors", json!(["a"])), "spec.assesors"),
        (
            json!({"service": "demo-py", "version": "1", "stand": "localhost", "assessors": ["a"]}),
            "spec.plan",
        ),
    ] {
        let (code, body) = server
            .post_json(
                "/api/v1/regressions",
                &json!({"metadata": {"name": "refused"}, "spec": spec}),
            )
            .await;
        assert_eq!((code, body["parameter"].as_str()), (400, Some(field)), "{body}");
    }
    let (_, list) = server.get("/api/v1/regressions").await;
    assert_eq!(list["items"].as_array().unwrap().len(), cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_kiwi_fails_the_regression_after_the_retries_with_the_reason() {
    let port = free_port();
    let env = vec![
        ("TOMATO_TMS_URL".to_string(), format!("http://127.0.0.1:{port}/")),
        ("TOMATO_TMS_USER".to_string(), "tomato".to_string()),
        ("TOMATO_TMS_PASSWORD".to_string(), "pw-never-shown".to_string()),
        ("TOMATO_REPORT_RETRY_ATTEMPTS".to_string(), "3".to_string()),
    ];
    let server = start(&[env]).await;
    let (code, body) = create(
        &server,
        json!({"service": "demo", "version": "2.0", "stand": "localhost", "assessors": ["alice"]}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let reg = wait_phase(&server, "demo-2-0", "Failed").await;
    let ready = reg["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["reason"], "TmsUnreachable", "{reg:#}");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.starts_with("gave up after 3 attempts: Kiwi TCMS at 127.0.0.1"),
        "{message}"
    );
    assert!(!server.log().contains("pw-never-shown"));
}
