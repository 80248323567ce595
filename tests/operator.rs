//! Operator mode end to end, against the in-process Kubernetes API of `support::fake_kube`
//! (kube-fake-client plus watch; see its module documentation for what it does not cover:
//! admission and schema validation, and every cluster controller — these tests create a
//! Job's pod and mark the Job finished themselves). A Job's test container is run as a real
//! process here: the real `tomato exec` runs the real demo suite (Node's test runner) and
//! uploads to the operator's API on a real socket.

mod support;

use kube::ResourceExt;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use std::time::Duration;
use support::fake_kube::FakeKube;
use support::operator::*;
use tomato::crd::TestRun;

/// A local webhook endpoint collecting the bodies posted to it.
async fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let posted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = posted.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, posted)
}

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
    let (hook_url, hooks) = webhook_receiver().await;
    let (_dir, config) = demo_config_with_webhook(&hook_url);
    let replica = start_replica(&fake, config, "tomato-0").await;
    create_run(&fake, "demo-e2e", template("demo")).await;

    let first = wait_job(&fake, "demo-e2e-1").await;
    let run = eventually("attempt 1 recorded", WAIT, || async {
        let r = runs(&fake).get("demo-e2e").await.unwrap();
        r.status
            .as_ref()
            .is_some_and(|s| s.attempts.len() == 1)
            .then_some(r)
    })
    .await;
    assert_eq!(run.status.as_ref().unwrap().phase.to_string(), "Running");
    assert!(run.finalizers().contains(&"tomato.dev/stop-jobs".to_string()));
    assert_eq!(
        run.status.as_ref().unwrap().attempts[0].launch.as_deref(),
        Some("demo-e2e-1")
    );
    assert_eq!(env(&first)["TOMATO_ATTEMPT"]["value"], "1");
    assert_eq!(
        run_job(&fake, &first).await,
        1,
        "the demo suite has a failing test"
    );

    let second = wait_job(&fake, "demo-e2e-2").await;
    let argv = container(&second).command.clone().unwrap();
    let patterns: Vec<&String> = argv
        .iter()
        .filter(|a| a.starts_with("--test-name-pattern"))
        .collect();
    assert_eq!(
        patterns,
        [
            "--test-name-pattern=^applies the discount$",
            "--test-name-pattern=^submits the order form$"
        ],
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
    assert_eq!(
        st.attempts[1].summary.unwrap().total,
        2,
        "attempt 2 ran the two failed tests only"
    );
    // kube-fake-client bumps `generation` on metadata-only writes too (a real API server does
    // not), and the finished run gives its finalizer back right after this phase: discount it.
    let generation = run
        .metadata
        .generation
        .map(|g| if run.finalizers().is_empty() { g - 1 } else { g });
    assert_eq!(st.observed_generation, generation);
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.reason == "Failed")
    );
    assert_eq!(job_names(&fake).await, ["demo-e2e-1", "demo-e2e-2"]);

    // The report went out through the shared reporting code; failures are classified.
    let webhook = st.report.as_ref().and_then(|r| r.webhook.clone()).unwrap();
    assert_eq!(webhook.state, tomato::crd::DeliveryState::Sent, "{webhook:?}");
    let posted = hooks.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "one webhook message");
    assert!(posted[0].contains("demo-e2e"), "{}", posted[0]);
    assert!(
        !st.categories.is_empty(),
        "failures classified: {:?}",
        st.categories
    );

    let reasons = event_reasons(&fake, "demo-e2e").await;
    for r in [
        "Admitted",
        "AttemptStarted",
        "AttemptFinished",
        "RerunScheduled",
        "Concluded",
        "ReportSent",
        "Finished",
    ] {
        assert!(reasons.contains(&r.to_string()), "no {r} event in {reasons:?}");
    }

    // Every replica serves the attempt's log, JUnit and the merged tests from the API.
    let (code, log) = get_text(&format!("{}/api/v1/runs/demo-e2e/attempts/1/log", replica.url)).await;
    assert_eq!(code, 200);
    assert!(log.contains("applies the discount"), "{log}");
    let (code, junit) = get_text(&format!("{}/api/v1/runs/demo-e2e/attempts/2/junit", replica.url)).await;
    assert_eq!(code, 200);
    assert!(junit.contains("<testcase"), "{junit}");
    let (_, tests) = get_json(&format!(
        "{}/api/v1/runs/demo-e2e/tests?verdict=flaky",
        replica.url
    ))
    .await;
    assert_eq!(tests[0]["name"], "submits the order form");
    let (_, status) = get_json(&format!("{}/api/status?run_id=demo-e2e", replica.url)).await;
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["summary"]["flaky"], 1);

    // Finished, it has no Jobs to stop: the finalizer goes, so deleting it needs no operator.
    eventually("the finalizer given back", WAIT, || async {
        let r = runs(&fake).get("demo-e2e").await.unwrap();
        (!r.finalizers().contains(&"tomato.dev/stop-jobs".to_string())).then_some(())
    })
    .await;
}

/// Names of the runs in phase `phase`.
async fn in_phase(fake: &FakeKube, phase: &str) -> Vec<String> {
    let mut names: Vec<String> = runs(fake)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|r| {
            r.status
                .as_ref()
                .map(|s| s.phase.to_string())
                .as_deref()
                .unwrap_or("Queued")
                == phase
        })
        .map(|r| r.name_any())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_runs_the_most_urgent_run_first_and_keeps_queue_positions_current() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    // Queued before the operator starts, so one pass sees all three.
    for (name, priority) in [("late", 5), ("urgent", 0), ("normal", 3)] {
        let mut t = template("demo");
        t.priority = priority;
        t.retries = Some(0);
        create_run(&fake, name, t).await;
    }
    let _replica = start_replica(&fake, config, "tomato-0").await;

    let urgent = wait_job(&fake, "urgent-1").await;
    let normal = wait_phase(&fake, "normal", "Queued").await;
    eventually("queue positions", WAIT, || async {
        let pos = |name: &str| {
            let fake = fake.clone();
            let name = name.to_string();
            async move {
                runs(&fake)
                    .get(&name)
                    .await
                    .unwrap()
                    .status
                    .and_then(|s| s.queue_position)
            }
        };
        (pos("normal").await == Some(1) && pos("late").await == Some(2)).then_some(())
    })
    .await;
    assert_eq!(normal.spec.template.priority, 3);
    assert_eq!(
        in_phase(&fake, "Running").await,
        ["urgent"],
        "concurrency 1: one run at a time"
    );
    assert_eq!(job_names(&fake).await, ["urgent-1"]);

    run_job(&fake, &urgent).await;
    let next = wait_job(&fake, "normal-1").await;
    let late = runs(&fake).get("late").await.unwrap();
    assert_eq!(late.status.as_ref().unwrap().phase.to_string(), "Queued");
    eventually("late moves up", WAIT, || async {
        let late = runs(&fake).get("late").await.unwrap();
        (late.status.and_then(|s| s.queue_position) == Some(1)).then_some(())
    })
    .await;
    run_job(&fake, &next).await;
    let last = wait_job(&fake, "late-1").await;
    run_job(&fake, &last).await;
    wait_phase(&fake, "late", "Failed").await;
    assert_eq!(job_names(&fake).await, ["late-1", "normal-1", "urgent-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_run_stops_its_job_before_the_run_goes() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let _replica = start_replica(&fake, config, "tomato-0").await;
    // The slow pack keeps the Job running (about 5 s) while the run is deleted.
    let slow = tomato::crd::RunTemplate {
        category: Some("slow".into()),
        ..template("demo")
    };
    create_run(&fake, "doomed", slow).await;
    wait_job(&fake, "doomed-1").await;
    wait_phase(&fake, "doomed", "Running").await;

    runs(&fake)
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the run to go", WAIT, || async {
        runs(&fake)
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(job_names(&fake).await.is_empty());
    let order: Vec<String> = fake
        .deletions()
        .into_iter()
        .filter(|d| d == "Job doomed-1" || d == "TestRun doomed")
        .collect();
    assert_eq!(
        order,
        ["Job doomed-1", "TestRun doomed"],
        "the finalizer stopped the Job before the run went"
    );
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(fake.client(), NS);
    assert!(
        secrets.get_opt("doomed-upload-token").await.unwrap().is_none(),
        "owned objects go with the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_run_deletes_its_job_and_keeps_the_run_as_cancelled() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let replica = start_replica(&fake, config, "tomato-0").await;
    create_run(&fake, "stopme", template("demo")).await;
    let job = wait_job(&fake, "stopme-1").await;
    // A Job of the run that no attempt names: its launch's status write lost to the cancel.
    let mut orphan = job.clone();
    orphan.metadata = kube::api::ObjectMeta {
        name: Some("stopme-2".into()),
        namespace: job.metadata.namespace.clone(),
        labels: job.metadata.labels.clone(),
        owner_references: job.metadata.owner_references.clone(),
        ..Default::default()
    };
    orphan.status = None;
    jobs(&fake).create(&PostParams::default(), &orphan).await.unwrap();
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/runs/stopme", replica.url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let run = wait_phase(&fake, "stopme", "Cancelled").await;
    assert_eq!(
        run.status.unwrap().attempts[0].state,
        tomato::crd::AttemptState::Cancelled
    );
    assert!(job_names(&fake).await.is_empty());
}

/// `kubectl apply` passes only the schema, which cannot hold packs_config: a run whose stand
/// the service does not allow, or of a service that does not exist, must end `Error` naming
/// the field, with nothing launched against the stand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_applied_with_kubectl_that_packs_config_refuses_ends_in_error_and_launches_nothing() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let _replica = start_replica(&fake, config, "tomato-0").await;
    let mut prod = template("demo");
    prod.stand = "prod.example.com".into();
    create_run(&fake, "to-prod", prod).await;
    create_run(&fake, "no-such", template("nope")).await;
    let run = wait_phase(&fake, "to-prod", "Error").await;
    let message = run.status.unwrap().message.unwrap_or_default();
    assert!(
        message.starts_with("spec.stand: \"prod.example.com\" is not a stand of demo"),
        "{message}"
    );
    let run = wait_phase(&fake, "no-such", "Error").await;
    let message = run.status.unwrap().message.unwrap_or_default();
    assert!(message.starts_with("spec.service: unknown service"), "{message}");
    assert!(job_names(&fake).await.is_empty(), "nothing was launched");
}

/// With `--all-namespaces` a run lives outside the operator's namespace: its Job's upload
/// must reach it (and its token and results) there, not in the operator's own namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_all_namespaces_a_run_in_another_namespace_receives_its_jobs_upload() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let _replica = start_replica_scoped(&fake, config, "tomato-0", &[], tomato::operator::Scope::All).await;
    let team: Api<TestRun> = Api::namespaced(fake.client(), "team-a");
    let mut run = TestRun::new(
        "elsewhere",
        tomato::crd::TestRunSpec {
            template: template("demo"),
            run_type: tomato::crd::RunType::Regular,
            timeout: None,
            cancel: false,
        },
    );
    run.metadata.namespace = Some("team-a".into());
    team.create(&PostParams::default(), &run).await.unwrap();
    let job_api: Api<Job> = Api::namespaced(fake.client(), "team-a");
    let job = eventually("the Job in team-a", WAIT, || async {
        job_api.get_opt("elsewhere-1").await.unwrap()
    })
    .await;
    assert!(
        env(&job)["TOMATO_UPLOAD_URL"]["value"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/runs/elsewhere/attempts/1/results?namespace=team-a"),
        "{:?}",
        env(&job)["TOMATO_UPLOAD_URL"]
    );
    run_job(&fake, &job).await;
    let run = eventually("attempt 1 read from the upload", WAIT, || async {
        let r = team.get("elsewhere").await.unwrap();
        r.status
            .as_ref()
            .and_then(|s| s.attempts.first())
            .is_some_and(|a| a.summary.is_some())
            .then_some(r)
    })
    .await;
    let attempt = &run.status.unwrap().attempts[0];
    assert!(
        !attempt.message.as_deref().unwrap_or_default().contains("pod"),
        "the results came by upload, not from the pod log: {attempt:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_adopts_the_existing_job_and_creates_no_duplicate() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let mut first = start_replica(&fake, config.clone(), "tomato-0").await;
    create_run(&fake, "survivor", template("demo")).await;
    let job = wait_job(&fake, "survivor-1").await;
    let run = eventually("attempt 1 recorded", WAIT, || async {
        let r = runs(&fake).get("survivor").await.unwrap();
        (r.status.as_ref().is_some_and(|s| s.attempts.len() == 1)).then_some(r)
    })
    .await;
    first.stop().await;

    // The worst moment to die: the Job exists but its attempt was never recorded.
    let mut lost = run.clone();
    lost.status.as_mut().unwrap().attempts.clear();
    runs(&fake)
        .replace_status("survivor", &PostParams::default(), &lost)
        .await
        .unwrap();

    let second = start_replica(&fake, config, "tomato-1").await;
    let adopted = eventually("the attempt re-recorded", WAIT, || async {
        let r = runs(&fake).get("survivor").await.unwrap();
        (r.status.as_ref().is_some_and(|s| s.attempts.len() == 1)).then_some(r)
    })
    .await;
    assert_eq!(
        adopted.status.unwrap().attempts[0].launch.as_deref(),
        Some("survivor-1")
    );
    assert_eq!(job_names(&fake).await, ["survivor-1"], "no duplicate Job");
    assert_eq!(
        jobs(&fake).get("survivor-1").await.unwrap().metadata.uid,
        job.metadata.uid,
        "the same Job"
    );

    run_job_via(&fake, &job, Some(&second.url)).await;
    let rerun = wait_job(&fake, "survivor-2").await;
    run_job(&fake, &rerun).await;
    wait_phase(&fake, "survivor", "Failed").await;
    assert_eq!(job_names(&fake).await, ["survivor-1", "survivor-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_lease_holder_reconciles_and_the_other_takes_over() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let mut a = start_replica(&fake, config.clone(), "tomato-a").await;
    eventually("a leader", WAIT, || async { a.is_leader().then_some(()) }).await;
    let mut b = start_replica(&fake, config, "tomato-b").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(a.is_leader() && !b.is_leader(), "exactly one leader");

    create_run(&fake, "ha", template("demo")).await;
    let job = wait_job(&fake, "ha-1").await;
    // Both serve reads; only the leader wrote (events carry the reporting replica).
    let (code, status) = get_json(&format!("{}/api/status?run_id=ha", b.url)).await;
    assert_eq!(code, 200, "{status}");
    let instances = reporting_instances(&fake).await;
    assert_eq!(instances, ["tomato-a"], "only the leader reconciled");

    a.stop().await;
    eventually("b takes over", WAIT, || async { b.is_leader().then_some(()) }).await;
    run_job_via(&fake, &job, Some(&b.url)).await;
    let rerun = wait_job(&fake, "ha-2").await;
    run_job(&fake, &rerun).await;
    wait_phase(&fake, "ha", "Failed").await;
    assert_eq!(job_names(&fake).await, ["ha-1", "ha-2"]);
    assert!(reporting_instances(&fake).await.contains(&"tomato-b".to_string()));
    b.stop().await;
}

async fn reporting_instances(fake: &FakeKube) -> Vec<String> {
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(fake.client(), NS);
    let mut ids: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reporting_instance)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_api_creates_a_testrun_with_the_asked_spec_and_answers_status_from_it() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let replica = start_replica(&fake, config, "tomato-0").await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/run_now?service=demo&stand=localhost:3000&category=smoke&emails=qa@example.com,lead@example.com&testpalm=2.14.0&issueKey=QA-42&priority=4",
            replica.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();

    let run = runs(&fake).get(&id).await.unwrap();
    let t = &run.spec.template;
    assert_eq!(
        (t.service.as_str(), t.stand.as_str(), t.priority),
        ("demo", "localhost:3000", 4)
    );
    assert_eq!(t.category.as_deref(), Some("smoke"));
    assert_eq!(t.emails, ["qa@example.com", "lead@example.com"]);
    assert_eq!(t.version.as_deref(), Some("2.14.0"));
    assert_eq!(t.issue_key.as_deref(), Some("QA-42"));
    assert_eq!(run.labels()["tomato.dev/service"], "demo");
    assert_eq!(run.namespace().as_deref(), Some(NS));

    let (code, status) = get_json(&format!("{}/api/status?run_id={id}", replica.url)).await;
    assert_eq!(code, 200);
    assert_eq!(status["run_id"], id.as_str());
    assert_eq!(status["testpalm"], "2.14.0");
    assert_eq!(status["issueKey"], "QA-42");
    let job = wait_job(&fake, &format!("{id}-1")).await;
    let (_, status) = get_json(&format!("{}/api/status?run_id={id}", replica.url)).await;
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["attempts"][0]["launch"], job.name_any());
    let (_, queue) = get_json(&format!("{}/api/runned?project=demo", replica.url)).await;
    assert_eq!(queue["running"][0]["run_id"], id.as_str());

    let (code, body) = get_json(&format!("{}/api/status?run_id=nope", replica.url)).await;
    assert_eq!(code, 404, "{body}");
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/run_now?service=demo&stand=prod.example.com",
            replica.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["parameter"], "stand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_upload_the_pod_log_is_read_and_the_attempt_says_so() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let replica = start_replica(&fake, config, "tomato-0").await;
    create_run(&fake, "silent", template("demo")).await;
    let job = wait_job(&fake, "silent-1").await;
    fail_job_silently(&fake, &job, "node: out of memory\n", 137).await;

    let run = wait_phase(&fake, "silent", "Error").await;
    let st = run.status.unwrap();
    let attempt = &st.attempts[0];
    assert_eq!(attempt.exit_code, Some(137));
    assert!(
        attempt
            .message
            .as_deref()
            .unwrap()
            .contains("log was read from the pod"),
        "{attempt:?}"
    );
    assert!(st.message.unwrap().contains("produced no results"));
    let (code, log) = get_text(&format!("{}/api/v1/runs/silent/attempts/1/log", replica.url)).await;
    assert_eq!((code, log.as_str()), (200, "node: out of memory\n"));
    let (code, _) = get_text(&format!("{}/api/v1/runs/silent/attempts/1/junit", replica.url)).await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tomato_exec_uploads_only_with_the_runs_token_and_only_once() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let replica = start_replica(&fake, config, "tomato-0").await;
    create_run(&fake, "tokened", template("demo")).await;
    wait_job(&fake, "tokened-1").await;
    wait_phase(&fake, "tokened", "Running").await;
    let work = tempfile::tempdir().unwrap();
    let junit = work.path().join("junit.xml");
    let exec = |token: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tomato"));
        cmd.args(["exec", "--junit"])
            .arg(&junit)
            .arg("--log")
            .arg(work.path().join("output.log"))
            .args(["--", "node", "--test", "--test-reporter=junit"])
            .arg(format!("--test-reporter-destination={}", junit.display()))
            .arg(format!("{}/packs_config/demo/basic.test.mjs", support::REPO))
            .env(
                "TOMATO_UPLOAD_URL",
                format!("{}/api/v1/runs/tokened/attempts/1/results", replica.url),
            )
            .env("TOMATO_UPLOAD_TOKEN", token)
            .env("TOMATO_LOG", "warn");
        cmd.output().unwrap()
    };

    let refused = exec("not-the-token");
    assert_eq!(refused.status.code(), Some(1), "the tests' own exit status");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("not-the-token"), "the token is never printed");
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(fake.client(), NS);
    assert!(cms.get_opt("tokened-results-1").await.unwrap().is_none());

    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(fake.client(), NS);
    let secret = secrets.get("tokened-upload-token").await.unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let accepted = exec(&token);
    let stderr = String::from_utf8_lossy(&accepted.stderr);
    assert!(stderr.contains("uploaded 1 JUnit report"), "{stderr}");
    let cm = cms.get("tokened-results-1").await.unwrap();
    assert_eq!(cm.owner_references()[0].name, "tokened");
    assert_eq!(cm.immutable, Some(true));
    let again = exec(&token);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already recorded"));
    let run = eventually("attempt 1 recorded from the upload", WAIT, || async {
        let r = runs(&fake).get("tokened").await.unwrap();
        r.status.clone().filter(|s| s.attempts[0].summary.is_some())
    })
    .await;
    assert_eq!(run.attempts[0].summary.unwrap().total, 6);
    assert_eq!(run.attempts[0].exit_code, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_schedule_starts_one_nightly_run_owned_by_it_and_a_suspended_or_invalid_one_none() {
    let fake = FakeKube::new().await;
    let (_dir, config) = demo_config("");
    let schedules: kube::Api<tomato::crd::NightlySchedule> = kube::Api::namespaced(fake.client(), NS);
    // Created (as its precise creation annotation says) three minutes ago: a time is due now.
    let three_minutes_ago = tomato::store::precise_time(chrono::Utc::now() - chrono::Duration::minutes(3));
    for (name, schedule, suspend) in [
        ("every-minute", "* * * * *", false),
        ("paused", "* * * * *", true),
        ("broken", "61 * * * *", false),
    ] {
        let s: tomato::crd::NightlySchedule = serde_json::from_value(json!({
            "apiVersion": "tomato.dev/v1alpha1", "kind": "NightlySchedule",
            "metadata": {"name": name, "namespace": NS, "annotations": {"tomato.dev/created": three_minutes_ago}},
            "spec": {"service": "demo", "stand": "localhost", "category": "smoke", "schedule": schedule,
                     "timeZone": "Europe/Moscow", "suspend": suspend}
        }))
        .unwrap();
        schedules.create(&PostParams::default(), &s).await.unwrap();
    }
    let _replica = start_replica(&fake, config, "tomato-0").await;

    let status = eventually("every-minute fired", WAIT, || async {
        schedules
            .get("every-minute")
            .await
            .unwrap()
            .status
            .filter(|s| s.last_run.is_some())
    })
    .await;
    let run_name = status.last_run.clone().unwrap();
    let run = runs(&fake).get(&run_name).await.unwrap();
    assert_eq!(run.spec.run_type, tomato::crd::RunType::Nightly);
    assert_eq!(run.labels()["tomato.dev/schedule"], "every-minute");
    let owner = &run.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("NightlySchedule", "every-minute")
    );
    assert!(status.next_schedule_time.unwrap() > chrono::Utc::now() - chrono::Duration::seconds(1));
    assert_eq!(status.active, std::slice::from_ref(&run_name));
    wait_job(&fake, &format!("{run_name}-1")).await;

    let paused = eventually("paused reconciled", WAIT, || async {
        schedules
            .get("paused")
            .await
            .unwrap()
            .status
            .filter(|s| !s.conditions.is_empty())
    })
    .await;
    assert!(paused.last_run.is_none() && paused.next_schedule_time.is_none());
    let skipped = paused.conditions.iter().find(|c| c.type_ == "Skipped").unwrap();
    assert!(skipped.message.contains("suspended"), "{}", skipped.message);
    let broken = eventually("broken reconciled", WAIT, || async {
        let s = schedules.get("broken").await.unwrap().status?;
        s.conditions.into_iter().find(|c| c.type_ == "Ready")
    })
    .await;
    assert_eq!(broken.status, tomato::crd::ConditionStatus::False);
    assert!(broken.message.starts_with("spec.schedule:"), "{}", broken.message);

    // Reconciling again within the minute starts nothing more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let nightly: Vec<String> = runs(&fake)
        .list(&ListParams::default().labels("tomato.dev/schedule"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.name_any())
        .collect();
    assert_eq!(nightly, [run_name]);
}
