//! Operator mode end to end against a real Kubernetes control plane (`tests/cluster/up`: etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler and the process kubelet, started once
//! for this test binary; every test here needs it and has its own namespace). The operator
//! runs with the token of `deploy/rbac.yaml`'s ServiceAccount. The operator creates each
//! attempt's Job, the real Job controller its pod, the real scheduler binds it and the process
//! kubelet runs it: the real `tomato exec` runs the real demo suite (Node's test runner) and
//! uploads to the operator's API on a real socket. Each pod waits at a gate until its test
//! lets it run (`run_job`), so a test sees a run while its attempt is still running.

#[path = "support/aqua.rs"]
mod aqua_support;
mod support;

use kube::ResourceExt;

use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use std::time::Duration;
use support::cluster::TestNs;
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
    let k = TestNs::new("op").await;
    let (hook_url, hooks) = webhook_receiver().await;
    let (_dir, config) = demo_config_with_webhook(&k, &hook_url);
    let replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "demo-e2e", template("demo")).await;

    let first = wait_job(&k, "demo-e2e-1").await;
    let run = eventually("attempt 1 recorded", WAIT, || async {
        let r = runs(&k).get("demo-e2e").await.unwrap();
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
    assert_eq!(run_job(&k, &first).await, 1, "the demo suite has a failing test");

    let second = wait_job(&k, "demo-e2e-2").await;
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
    let run = runs(&k).get("demo-e2e").await.unwrap();
    assert_eq!(run.status.as_ref().unwrap().phase.to_string(), "Running");
    run_job(&k, &second).await;

    let run = wait_phase(&k, "demo-e2e", "Failed").await;
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
    // The API server bumps `generation` for spec changes only: the finalizer's writes do not count.
    assert_eq!(st.observed_generation, run.metadata.generation);
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.reason == "Failed")
    );
    assert_eq!(job_names(&k).await, ["demo-e2e-1", "demo-e2e-2"]);

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

    let reasons = event_reasons(&k, "demo-e2e").await;
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
    // One classification, recorded when the last attempt ended (an immutable ConfigMap owned by
    // the run): the tests API agrees with status.categories, with the same rules and logs.
    let (_, all) = get_json(&format!("{}/api/v1/runs/demo-e2e/tests", replica.url)).await;
    let mut listed = 0;
    for c in &st.categories {
        for t in &c.tests {
            let test = all
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == t.name.as_str());
            assert_eq!(
                test.map(|x| x["category"].clone()),
                Some(json!(c.name)),
                "{t:?} in {all:#}"
            );
            listed += 1;
        }
    }
    assert!(listed >= 2, "{:?}", st.categories);
    k.cluster
        .kubectl_ok(&["get", "configmap", "demo-e2e-categories-2", "-n", &k.ns], None);
    let (_, status) = get_json(&format!("{}/api/status?run_id=demo-e2e", replica.url)).await;
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["summary"]["flaky"], 1);

    // What a person sees with kubectl: the printer columns and the run's Events.
    let table = k.cluster.kubectl_ok(&["get", "tr", "-n", &k.ns], None);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "SERVICE", "STAND", "PRIORITY", "PHASE", "PASSED", "FAILED", "FLAKY", "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..8],
        ["demo-e2e", "demo", "localhost", "2", "Failed", "3", "1", "1"],
        "{table}"
    );
    let described = k
        .cluster
        .kubectl_ok(&["describe", "tr", "demo-e2e", "-n", &k.ns], None);
    let events = described.split("Events:").nth(1).unwrap_or_default();
    for reason in [
        "Admitted",
        "AttemptStarted",
        "RerunScheduled",
        "ReportSent",
        "Finished",
    ] {
        assert!(
            events.contains(reason),
            "no {reason} in kubectl describe's Events:\n{described}"
        );
    }

    // Finished, it has no Jobs to stop: the finalizer goes, so deleting it needs no operator.
    eventually("the finalizer given back", WAIT, || async {
        let r = runs(&k).get("demo-e2e").await.unwrap();
        (!r.finalizers().contains(&"tomato.dev/stop-jobs".to_string())).then_some(())
    })
    .await;
}

/// Names of the runs in phase `phase`.
async fn in_phase(k: &TestNs, phase: &str) -> Vec<String> {
    let mut names: Vec<String> = runs(k)
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
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    // Queued before the operator starts, so one pass sees all three.
    for (name, priority) in [("late", 5), ("urgent", 0), ("normal", 3)] {
        let mut t = template("demo");
        t.priority = tomato::crd::Priority::new(priority).unwrap();
        t.retries = Some(0);
        create_run(&k, name, t).await;
    }
    let _replica = start_replica(&k, config, "tomato-0").await;

    let urgent = wait_job(&k, "urgent-1").await;
    let normal = wait_phase(&k, "normal", "Queued").await;
    eventually("queue positions", WAIT, || async {
        let pos = |name: &str| {
            let name = name.to_string();
            let k = &k;
            async move {
                runs(k)
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
        in_phase(&k, "Running").await,
        ["urgent"],
        "concurrency 1: one run at a time"
    );
    assert_eq!(job_names(&k).await, ["urgent-1"]);

    run_job(&k, &urgent).await;
    let next = wait_job(&k, "normal-1").await;
    let late = runs(&k).get("late").await.unwrap();
    assert_eq!(late.status.as_ref().unwrap().phase.to_string(), "Queued");
    eventually("late moves up", WAIT, || async {
        let late = runs(&k).get("late").await.unwrap();
        (late.status.and_then(|s| s.queue_position) == Some(1)).then_some(())
    })
    .await;
    run_job(&k, &next).await;
    let last = wait_job(&k, "late-1").await;
    run_job(&k, &last).await;
    wait_phase(&k, "late", "Failed").await;
    assert_eq!(job_names(&k).await, ["late-1", "normal-1", "urgent-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_run_stops_its_job_before_the_run_goes() {
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let _replica = start_replica(&k, config, "tomato-0").await;
    // The Job's pod waits at its gate (never opened): it is running while the run is deleted.
    let slow = tomato::crd::RunTemplate {
        category: Some("slow".into()),
        ..template("demo")
    };
    create_run(&k, "doomed", slow).await;
    wait_job(&k, "doomed-1").await;
    wait_phase(&k, "doomed", "Running").await;

    let deletions = record_deletions(&k, "doomed-1", "doomed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    runs(&k).delete("doomed", &DeleteParams::default()).await.unwrap();
    eventually("the run to go", WAIT, || async {
        runs(&k).get_opt("doomed").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(job_names(&k).await.is_empty());
    let mut order = deletions.lock().unwrap().clone();
    order.sort();
    let order: Vec<&str> = order.iter().map(|(_, what)| what.as_str()).collect();
    assert_eq!(
        order,
        ["Job doomed-1", "TestRun doomed"],
        "the finalizer stopped the Job before the run went"
    );
    // The garbage collector removes what the run owned, and the Job's pod with the Job.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(k.client(), &k.ns);
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(k.client(), &k.ns);
    // The garbage collector watches a kind only after its discovery resync (30 s) has seen
    // the CRD: on a cluster started for this test alone, that can be after the run went.
    eventually(
        "the run's upload token Secret to go with it",
        RUN_WAIT,
        || async {
            secrets
                .get_opt("doomed-upload-token")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    // A deleted pod goes once its processes have stopped (SIGTERM, then SIGKILL after the
    // pod's 30 s grace period).
    eventually("the Job's pod to go with it", RUN_WAIT, || async {
        let pods = pods
            .list(&ListParams::default().labels("job-name=doomed-1"))
            .await
            .unwrap();
        pods.items.is_empty().then_some(())
    })
    .await;
}

/// Records when Job `job` began to go (its deletion was asked) and when TestRun `run` went,
/// each with the resource version of that write: one etcd's resource versions are its
/// revisions, so they order writes across kinds.
fn record_deletions(
    k: &TestNs,
    job: &str,
    run: &str,
) -> std::sync::Arc<std::sync::Mutex<Vec<(u64, String)>>> {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rv = |meta: &kube::api::ObjectMeta| {
        meta.resource_version
            .as_deref()
            .unwrap_or("0")
            .parse::<u64>()
            .unwrap()
    };
    let (jobs_api, job_name, into) = (jobs(k), job.to_string(), seen.clone());
    tokio::spawn(async move {
        let mut stream = jobs_api
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        while let Some(Ok(event)) = stream.next().await {
            let (going, j) = match event {
                WatchEvent::Deleted(j) => (true, j),
                WatchEvent::Modified(j) => (j.metadata.deletion_timestamp.is_some(), j),
                _ => continue,
            };
            if going && j.name_any() == job_name {
                into.lock()
                    .unwrap()
                    .push((rv(&j.metadata), format!("Job {job_name}")));
                return;
            }
        }
    });
    let (runs_api, run_name, into) = (runs(k), run.to_string(), seen.clone());
    tokio::spawn(async move {
        let mut stream = runs_api
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        while let Some(Ok(event)) = stream.next().await {
            if let WatchEvent::Deleted(r) = event
                && r.name_any() == run_name
            {
                into.lock()
                    .unwrap()
                    .push((rv(&r.metadata), format!("TestRun {run_name}")));
                return;
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_run_deletes_its_job_and_keeps_the_run_as_cancelled() {
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "stopme", template("demo")).await;
    let job = wait_job(&k, "stopme-1").await;
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
    // What the API server generated for the first Job (its selector and the labels matching
    // it) would not be accepted for another.
    let spec = orphan.spec.as_mut().unwrap();
    spec.selector = None;
    if let Some(labels) = spec.template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.retain(|key, _| !key.ends_with("controller-uid") && !key.ends_with("job-name"));
    }
    jobs(&k).create(&PostParams::default(), &orphan).await.unwrap();
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/runs/stopme", replica.url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let run = wait_phase(&k, "stopme", "Cancelled").await;
    assert_eq!(
        run.status.unwrap().attempts[0].state,
        tomato::crd::AttemptState::Cancelled
    );
    // Deleted Jobs go once the garbage collector has removed their pods.
    eventually("both Jobs deleted", WAIT, || async {
        job_names(&k).await.is_empty().then_some(())
    })
    .await;
}

/// `kubectl apply` passes only the schema, which cannot hold packs_config: a run whose stand
/// the service does not allow, or of a service that does not exist, must end `Error` naming
/// the field, with nothing launched against the stand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_applied_with_kubectl_that_packs_config_refuses_ends_in_error_and_launches_nothing() {
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let _replica = start_replica(&k, config, "tomato-0").await;
    let mut prod = template("demo");
    prod.stand = "prod.example.com".into();
    create_run(&k, "to-prod", prod).await;
    create_run(&k, "no-such", template("nope")).await;
    let run = wait_phase(&k, "to-prod", "Error").await;
    let message = run.status.unwrap().message.unwrap_or_default();
    assert!(
        message.starts_with("spec.stand: \"prod.example.com\" is not a stand of demo"),
        "{message}"
    );
    let run = wait_phase(&k, "no-such", "Error").await;
    let message = run.status.unwrap().message.unwrap_or_default();
    assert!(message.starts_with("spec.service: unknown service"), "{message}");
    assert!(job_names(&k).await.is_empty(), "nothing was launched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_adopts_the_existing_job_and_creates_no_duplicate() {
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let mut first = start_replica(&k, config.clone(), "tomato-0").await;
    create_run(&k, "survivor", template("demo")).await;
    let job = wait_job(&k, "survivor-1").await;
    let run = eventually("attempt 1 recorded", WAIT, || async {
        let r = runs(&k).get("survivor").await.unwrap();
        (r.status.as_ref().is_some_and(|s| s.attempts.len() == 1)).then_some(r)
    })
    .await;
    first.stop().await;

    // The worst moment to die: the Job exists but its attempt was never recorded.
    let mut lost = runs(&k).get(&run.name_any()).await.unwrap();
    lost.status.as_mut().unwrap().attempts.clear();
    runs(&k)
        .replace_status("survivor", &PostParams::default(), &lost)
        .await
        .unwrap();

    let second = start_replica(&k, config, "tomato-1").await;
    let adopted = eventually("the attempt re-recorded", WAIT, || async {
        let r = runs(&k).get("survivor").await.unwrap();
        (r.status.as_ref().is_some_and(|s| s.attempts.len() == 1)).then_some(r)
    })
    .await;
    assert_eq!(
        adopted.status.unwrap().attempts[0].launch.as_deref(),
        Some("survivor-1")
    );
    assert_eq!(job_names(&k).await, ["survivor-1"], "no duplicate Job");
    assert_eq!(
        jobs(&k).get("survivor-1").await.unwrap().metadata.uid,
        job.metadata.uid,
        "the same Job"
    );

    run_job_via(&k, &job, Some(&second.url)).await;
    let rerun = wait_job(&k, "survivor-2").await;
    run_job(&k, &rerun).await;
    wait_phase(&k, "survivor", "Failed").await;
    assert_eq!(job_names(&k).await, ["survivor-1", "survivor-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_lease_holder_reconciles_and_the_other_takes_over() {
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let mut a = start_replica(&k, config.clone(), "tomato-a").await;
    eventually("a leader", WAIT, || async { a.is_leader().then_some(()) }).await;
    let mut b = start_replica(&k, config, "tomato-b").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(a.is_leader() && !b.is_leader(), "exactly one leader");

    create_run(&k, "ha", template("demo")).await;
    let job = wait_job(&k, "ha-1").await;
    // Both serve reads; only the leader wrote (events carry the reporting replica).
    let (code, status) = get_json(&format!("{}/api/status?run_id=ha", b.url)).await;
    assert_eq!(code, 200, "{status}");
    let instances = reporting_instances(&k).await;
    assert_eq!(instances, ["tomato-a"], "only the leader reconciled");

    a.stop().await;
    eventually("b takes over", WAIT, || async { b.is_leader().then_some(()) }).await;
    run_job_via(&k, &job, Some(&b.url)).await;
    let rerun = wait_job(&k, "ha-2").await;
    run_job(&k, &rerun).await;
    wait_phase(&k, "ha", "Failed").await;
    assert_eq!(job_names(&k).await, ["ha-1", "ha-2"]);
    assert!(reporting_instances(&k).await.contains(&"tomato-b".to_string()));
    b.stop().await;
}

async fn reporting_instances(k: &TestNs) -> Vec<String> {
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(k.client(), &k.ns);
    let mut ids: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        // The cluster's own controllers (the scheduler, the Job controller) report on pods and Jobs.
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("TestRun"))
        .filter_map(|e| e.reporting_instance)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_api_creates_a_testrun_with_the_asked_spec_and_answers_status_from_it() {
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let replica = start_replica(&k, config, "tomato-0").await;
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

    let run = runs(&k).get(&id).await.unwrap();
    let t = &run.spec.template;
    assert_eq!(
        (t.service.as_str(), t.stand.as_str(), t.priority.get()),
        ("demo", "localhost:3000", 4)
    );
    assert_eq!(t.category.as_deref(), Some("smoke"));
    assert_eq!(t.emails, ["qa@example.com", "lead@example.com"]);
    assert_eq!(t.version.as_deref(), Some("2.14.0"));
    assert_eq!(t.issue_key.as_deref(), Some("QA-42"));
    assert_eq!(run.labels()["tomato.dev/service"], "demo");
    assert_eq!(run.namespace().as_deref(), Some(k.ns.as_str()));

    let (code, status) = get_json(&format!("{}/api/status?run_id={id}", replica.url)).await;
    assert_eq!(code, 200);
    assert_eq!(status["run_id"], id.as_str());
    assert_eq!(status["testpalm"], "2.14.0");
    assert_eq!(status["issueKey"], "QA-42");
    let job = wait_job(&k, &format!("{id}-1")).await;
    // The Job is created before the attempt is recorded in the run's status.
    let status = eventually("attempt 1 in the legacy status", WAIT, || async {
        let (_, status) = get_json(&format!("{}/api/status?run_id={id}", replica.url)).await;
        (!status["attempts"][0]["launch"].is_null()).then_some(status)
    })
    .await;
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
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "silent", template("demo")).await;
    let job = wait_job(&k, "silent-1").await;
    fail_job_silently(&k, &job, "node: out of memory\n", 137).await;

    let run = wait_phase(&k, "silent", "Error").await;
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
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "tokened", template("demo")).await;
    wait_job(&k, "tokened-1").await;
    wait_phase(&k, "tokened", "Running").await;
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
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(k.client(), &k.ns);
    assert!(cms.get_opt("tokened-results-1").await.unwrap().is_none());

    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(k.client(), &k.ns);
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
        let r = runs(&k).get("tokened").await.unwrap();
        r.status.clone().filter(|s| s.attempts[0].summary.is_some())
    })
    .await;
    assert_eq!(run.attempts[0].summary.unwrap().total, 6);
    assert_eq!(run.attempts[0].exit_code, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_schedule_starts_one_nightly_run_owned_by_it_and_a_suspended_or_invalid_one_none() {
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let schedules: kube::Api<tomato::crd::NightlySchedule> = kube::Api::namespaced(k.client(), &k.ns);
    // Created (as its precise creation annotation says) three minutes ago: a time is due now.
    let three_minutes_ago = tomato::crd::precise_time(chrono::Utc::now() - chrono::Duration::minutes(3));
    for (name, schedule, suspend) in [
        ("every-minute", "* * * * *", false),
        ("paused", "* * * * *", true),
        ("broken", "61 * * * *", false),
    ] {
        let s: tomato::crd::NightlySchedule = serde_json::from_value(json!({
            "apiVersion": "tomato.dev/v1alpha1", "kind": "NightlySchedule",
            "metadata": {"name": name, "namespace": k.ns, "annotations": {"tomato.dev/created": three_minutes_ago}},
            "spec": {"service": "demo", "stand": "localhost", "category": "smoke", "schedule": schedule,
                     "timeZone": "Europe/Moscow", "suspend": suspend}
        }))
        .unwrap();
        schedules.create(&PostParams::default(), &s).await.unwrap();
    }
    let _replica = start_replica(&k, config, "tomato-0").await;

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
    let run = runs(&k).get(&run_name).await.unwrap();
    assert_eq!(run.spec.run_type, tomato::crd::RunType::Nightly);
    assert_eq!(run.labels()["tomato.dev/schedule"], "every-minute");
    let owner = &run.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("NightlySchedule", "every-minute")
    );
    assert!(status.next_schedule_time.unwrap() > chrono::Utc::now() - chrono::Duration::seconds(1));
    assert_eq!(status.active, std::slice::from_ref(&run_name));
    wait_job(&k, &format!("{run_name}-1")).await;

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
    let nightly: Vec<String> = runs(&k)
        .list(&ListParams::default().labels("tomato.dev/schedule"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.name_any())
        .collect();
    assert_eq!(nightly, [run_name]);
}

/// Waits for a run of schedule `minutely` not in `seen`, lets its only attempt run, and answers
/// its name once it has failed (the demo suite has a failing test).
async fn finish_next_nightly(k: &TestNs, seen: &mut Vec<String>) -> String {
    let name = eventually("the schedule's next run", Duration::from_secs(90), || async {
        runs(k)
            .list(&ListParams::default().labels("tomato.dev/schedule=minutely"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.name_any())
            .find(|n| !seen.contains(n))
    })
    .await;
    seen.push(name.clone());
    let job = wait_job(k, &format!("{name}-1")).await;
    run_job(k, &job).await;
    wait_phase(k, &name, "Failed").await;
    name
}

/// A schedule firing every minute for real: each firing's run is owned by it, and a finished
/// run beyond `failedRunsHistoryLimit` is deleted (pruned). Takes about a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_every_minute_fires_each_minute_and_prunes_runs_beyond_its_history_limit() {
    let k = TestNs::new("op").await;
    let (_dir, config) = demo_config(&k, "");
    let schedules: kube::Api<tomato::crd::NightlySchedule> = kube::Api::namespaced(k.client(), &k.ns);
    let s: tomato::crd::NightlySchedule = serde_json::from_value(json!({
        "apiVersion": "tomato.dev/v1alpha1", "kind": "NightlySchedule",
        "metadata": {"name": "minutely", "namespace": k.ns},
        "spec": {"service": "demo", "stand": "localhost", "category": "smoke", "schedule": "* * * * *",
                 "retries": 0, "failedRunsHistoryLimit": 1}
    }))
    .unwrap();
    schedules.create(&PostParams::default(), &s).await.unwrap();
    let _replica = start_replica(&k, config, "tomato-0").await;

    let mut seen = Vec::new();
    let first = finish_next_nightly(&k, &mut seen).await;
    let run = runs(&k).get(&first).await.unwrap();
    assert_eq!(run.spec.run_type, tomato::crd::RunType::Nightly);
    assert_eq!(run.owner_references()[0].name, "minutely");
    let fired_first = schedules
        .get("minutely")
        .await
        .unwrap()
        .status
        .and_then(|s| s.last_schedule_time)
        .unwrap();

    let second = finish_next_nightly(&k, &mut seen).await;
    let status = schedules.get("minutely").await.unwrap().status.unwrap();
    let fired_second = status.last_schedule_time.unwrap();
    assert_eq!(
        (fired_second - fired_first).num_seconds() % 60,
        0,
        "{fired_first} then {fired_second}: on the minute"
    );
    assert!(fired_second > fired_first);
    assert_eq!(status.last_run.as_deref(), Some(second.as_str()));
    eventually("the older failed run pruned", WAIT, || async {
        runs(&k).get_opt(&first).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        runs(&k).get_opt(&second).await.unwrap().is_some(),
        "the limit keeps one"
    );
}

/// An Aqua service (`farm`, pack `mixed`) in a fresh packs_config for operator mode, against
/// the Aqua stand-in; `extra` adds lines to its `launch.aqua` block.
fn aqua_config(
    aqua: &aqua_support::AquaStandIn,
    extra: &str,
) -> (tempfile::TempDir, std::sync::Arc<tomato::packs::PacksConfig>) {
    let text = format!(
        "stands:\n  pattern: 'stand-[a-z0-9]+'\nretries: 2\nlaunch:\n  launcher: aqua\n  aqua:\n    url: {}\n    pollInterval: 1s\n    \
         errorRetries: 2\n{extra}packs:\n  mixed:\n    aqua:\n      packId: {}\n",
        aqua.url,
        aqua_support::MIXED
    );
    operator_config("farm.yaml", &text)
}

fn farm_template() -> tomato::crd::RunTemplate {
    let mut t = template("farm");
    t.stand = "stand-qa1".into();
    t.category = None;
    t.retries = Some(2);
    t
}

/// Operator mode, cancelled while Aqua runs the pack (the stand-in holds it 30 s): the
/// controller stops polling and, with a revoke path configured, revokes the launch; the run
/// ends Cancelled saying so. Aqua cannot run here: `tests/support/aqua.py` speaks its API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_aqua_run_revokes_its_launch_in_operator_mode() {
    let k = TestNs::new("aquacancel").await;
    let aqua = aqua_support::AquaStandIn::start(None);
    aqua.knobs(json!({"delay": 30})).await;
    let (_dir, config) = aqua_config(&aqua, "    revokePath: \"launch/{launch}/revoke\"\n");
    let _replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "farm-c", farm_template()).await;
    eventually("farm-c launched in Aqua", Duration::from_secs(120), || async {
        let r = runs(&k).get("farm-c").await.unwrap();
        r.status
            .as_ref()
            .and_then(|s| s.attempts.first())
            // Its id recorded, not only the intent written before Aqua is asked.
            .is_some_and(|a| a.aqua.iter().any(|l| !tomato::launch::aqua::is_intent(l)))
            .then_some(())
    })
    .await;
    runs(&k)
        .patch(
            "farm-c",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .unwrap();
    let run = wait_phase(&k, "farm-c", "Cancelled").await;
    let msg = run.status.unwrap().message.unwrap_or_default();
    assert!(msg.starts_with("cancelled; revoked in Aqua"), "{msg}");
    let seen = aqua.seen().await;
    assert_eq!(seen["launches"][0]["launchStatus"], "REVOKED", "{seen:#}");
}

/// Operator mode, `REPORT_FAILED`: polled again up to `errorRetries`, then the attempt is an
/// error naming it, and the run ends Error. Aqua cannot run here: `tests/support/aqua.py`
/// speaks its API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_failed_ends_an_aqua_run_in_an_error_naming_it_in_operator_mode() {
    let k = TestNs::new("aquafail").await;
    let aqua = aqua_support::AquaStandIn::start(None);
    aqua.knobs(json!({"report_failed": true})).await;
    let (_dir, config) = aqua_config(&aqua, "");
    let _replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "farm-f", farm_template()).await;
    let run = wait_phase(&k, "farm-f", "Error").await;
    let st = run.status.unwrap();
    let msg = st.message.clone().unwrap_or_default();
    assert!(msg.contains("REPORT_FAILED"), "{msg}");
    assert_eq!(
        st.attempts[0].aqua[0].status.as_deref(),
        Some("REPORT_FAILED"),
        "{st:#?}"
    );
}

/// An Aqua service in operator mode: no Job is created; the controller launches the pack in
/// the Aqua stand-in (`tests/support/aqua.py`: Aqua cannot run here; the stand-in speaks its
/// HTTP API and serves real Allure reports of real pytest runs), polls it, restarts the failed
/// suites once for the flaky test, and ends Succeeded with the launches in the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aqua_service_runs_without_a_job_and_its_flaky_pack_is_restarted_once() {
    let k = TestNs::new("aqua").await;
    let aqua = aqua_support::AquaStandIn::start(None);
    let props = "    properties:\n      webdriver.base.url: 'https://{stand}/'\n";
    let (_dir, config) = aqua_config(&aqua, props);
    let _replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "farm-1", farm_template()).await;

    let st = wait_finished(&k, "farm-1", Duration::from_secs(180)).await;
    assert_eq!(st.phase.to_string(), "Succeeded", "{st:#?}");
    assert_eq!(st.attempts.len(), 2, "{st:#?}");
    let (first, second) = (&st.attempts[0].aqua, &st.attempts[1].aqua);
    assert_eq!((first.len(), second.len()), (1, 1), "{st:#?}");
    assert_eq!(second[0].restart_of.as_ref(), Some(&first[0].id));
    assert_eq!((first[0].failing, second[0].failing), (Some(1), Some(0)));
    assert!(first[0].url.as_deref().unwrap().ends_with(&first[0].id));
    let s = st.summary.unwrap();
    assert_eq!(
        (s.total, s.passed, s.flaky, s.skipped, s.failed, s.broken),
        (3, 1, 1, 1, 0, 0),
        "{s:?}"
    );
    assert!(
        jobs(&k)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "an Aqua attempt creates no Job"
    );
    let seen = aqua.seen().await;
    let made = seen["launches"].as_array().unwrap();
    assert_eq!(made.len(), 2, "one launch, one restart: {seen:#}");
    assert!(
        made[0]["properties"].to_string().contains("https://stand-qa1/"),
        "{seen:#}"
    );
}

/// A service whose packs run in two places, in operator mode: `core` as the attempt's Job
/// (packs_config/demo-py's pytest suite, which the process kubelet runs in `workingDir`),
/// `farm` in Aqua (the stand-in's `mixed` pack: Aqua cannot run here; `tests/support/aqua.py`
/// speaks its HTTP API and serves real Allure reports of real pytest runs).
fn mixed_config(
    aqua: &aqua_support::AquaStandIn,
) -> (tempfile::TempDir, std::sync::Arc<tomato::packs::PacksConfig>) {
    let text = format!(
        "stands:\n  pattern: 'stand-[a-z0-9]+'\nretries: 2\nlaunch:\n  runner: pytest\n  image: python:3.11-slim\n  \
         workingDir: {}/packs_config/demo-py\n  env: {{PYTHONDONTWRITEBYTECODE: '1'}}\n  aqua:\n    url: {}\n    \
         pollInterval: 1s\n    errorRetries: 2\npacks:\n  core:\n    tests: ['{{dir}}/tests/test_core.py']\n  farm:\n    \
         launcher: aqua\n    aqua:\n      packId: {}\n",
        support::REPO,
        aqua.url,
        aqua_support::MIXED
    );
    operator_config("mix.yaml", &text)
}

/// One attempt runs the local pack as a Job and the Aqua pack in Aqua side by side, their
/// results kept apart and merged into one set: attempt 2 reruns only the local failed tests in
/// its Job and restarts the Aqua launch (which had a failure); attempt 3 reruns the
/// still-failing local test alone, as a plain Job, restarting nothing in Aqua. Verdicts merge
/// across both, as in standalone mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_attempt_runs_its_job_and_its_aqua_launch_side_by_side_in_operator_mode() {
    let k = TestNs::new("aquamix").await;
    let aqua = aqua_support::AquaStandIn::start(None);
    let (_dir, config) = mixed_config(&aqua);
    let replica = start_replica(&k, config, "tomato-0").await;
    let mut t = farm_template();
    t.service = "mix".into();
    create_run(&k, "mix-1", t).await;

    let st = wait_finished(&k, "mix-1", Duration::from_secs(240)).await;
    assert_eq!(st.phase.to_string(), "Failed", "{st:#?}");
    let a = &st.attempts;
    assert_eq!(a.len(), 3, "{st:#?}");
    assert_eq!(
        (a[0].mixed, a[1].mixed, a[2].mixed),
        (true, true, false),
        "attempt 3 has nothing to restart in Aqua: {st:#?}"
    );
    assert_eq!(a[0].launch.as_deref(), Some("mix-1-1"));
    let (first, second) = (&a[0].aqua, &a[1].aqua);
    assert_eq!((first.len(), second.len(), a[2].aqua.len()), (1, 1, 0), "{st:#?}");
    assert_eq!(first[0].pack, "farm");
    assert_eq!(second[0].restart_of.as_ref(), Some(&first[0].id));
    assert_eq!((first[0].failing, second[0].failing), (Some(1), Some(0)));
    // Attempt 1: the Job's five tests and Aqua's three, one set.
    let s1 = a[0].summary.unwrap();
    assert_eq!(
        (s1.total, s1.passed, s1.failed, s1.skipped),
        (8, 3, 3, 2),
        "{s1:?}"
    );
    // The local rerun selected the local failed tests (and the Aqua one, restarted in Aqua).
    assert_eq!(a[1].selection.tests.len(), 3, "{st:#?}");
    assert_eq!(
        a[2].selection.tests,
        ["tests/test_core.py::test_applies_coupon"],
        "{st:#?}"
    );
    let s2 = a[1].summary.unwrap();
    assert_eq!((s2.passed, s2.failed), (2, 1), "{s2:?}");

    let (_, tests) = get_json(&format!("{}/api/v1/runs/mix-1/tests", replica.url)).await;
    let verdict = |suffix: &str| {
        tests
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"].as_str().unwrap().ends_with(suffix))
            .map(|t| t["verdict"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no test ending {suffix}: {tests:#}"))
    };
    assert_eq!(verdict("::test_applies_coupon"), "failed");
    assert_eq!(verdict("::test_flaky_payment_gateway"), "flaky");
    assert_eq!(verdict("::test_flaky"), "flaky", "Aqua's flaky test");
    assert_eq!(verdict("::test_passes"), "passed", "Aqua's passing test");
    assert_eq!(verdict("::test_adds_vat"), "passed");
    let s = st.summary.unwrap();
    assert_eq!((s.passed, s.flaky, s.failed, s.skipped), (3, 2, 1, 2), "{s:?}");
    let seen = aqua.seen().await;
    assert_eq!(
        seen["launches"].as_array().unwrap().len(),
        2,
        "one launch, one restart: {seen:#}"
    );
    // One Job per attempt, each running only the local pack's tests.
    assert_eq!(job_names(&k).await, ["mix-1-1", "mix-1-2", "mix-1-3"]);
    let job = jobs(&k).get("mix-1-1").await.unwrap();
    let command = container(&job).command.clone().unwrap().join(" ");
    assert!(
        command.contains("test_core.py") && !command.contains("farm"),
        "{command}"
    );
    assert_eq!(job.metadata.labels.as_ref().unwrap()["tomato.dev/part"], "local");
    // The attempt's log holds the Job's output, then Aqua's launch links.
    let (_, log) = get_text(&format!("{}/api/v1/runs/mix-1/attempts/1/log", replica.url)).await;
    assert!(
        log.contains("test_core.py")
            && log.contains("===== the packs run in Aqua =====")
            && log.contains(&first[0].id),
        "{log}"
    );
}

/// A mixed attempt whose Aqua part cannot go on (the stand-in holds its launch 25 s, then
/// answers `REPORT_FAILED` past `errorRetries`), after its Job's tests are in: the attempt ends
/// in an error naming it, as an Aqua attempt would, and the Job's tests are kept. Aqua cannot
/// run here: `tests/support/aqua.py` speaks its API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_attempt_whose_aqua_part_fails_keeps_its_jobs_tests_and_names_the_error() {
    let k = TestNs::new("aquamixfail").await;
    let aqua = aqua_support::AquaStandIn::start(None);
    aqua.knobs(json!({"report_failed": true, "delay": 25})).await;
    let (_dir, config) = mixed_config(&aqua);
    let replica = start_replica(&k, config, "tomato-0").await;
    let mut t = farm_template();
    t.service = "mix".into();
    create_run(&k, "mix-f", t).await;
    let st = wait_finished(&k, "mix-f", RUN_WAIT).await;
    assert_eq!(st.phase.to_string(), "Error", "{st:#?}");
    let msg = st.message.clone().unwrap_or_default();
    assert!(msg.contains("REPORT_FAILED"), "{msg}");
    assert_eq!(st.attempts.len(), 1, "{st:#?}");
    assert!(st.attempts[0].mixed, "{st:#?}");
    let (_, tests) = get_json(&format!("{}/api/v1/runs/mix-f/tests", replica.url)).await;
    let ids: Vec<&str> = tests
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "the Job's five tests, kept: {tests:#}");
    assert!(
        ids.iter().all(|id| id.starts_with("tests/test_core.py::")),
        "{ids:?}"
    );
}

/// Operator mode after a crash between Aqua's launch answer and the status write that would
/// have recorded it: the run's status holds only the intent (pack, `tomato.launch` marker, no
/// id) and Aqua holds the launch made with that marker. The controller looks it up by the
/// marker and adopts it: the pack is launched once, and the run ends as it would have. Aqua
/// cannot run here: `tests/support/aqua.py` speaks its API (its list is newest first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aqua_launch_made_before_a_crash_is_found_by_its_marker_not_made_again() {
    let k = TestNs::new("aquaadopt").await;
    let aqua = aqua_support::AquaStandIn::start(None);
    let (_dir, config) = aqua_config(&aqua, "");
    create_run(&k, "farm-a", farm_template()).await;
    // What the crashed controller left: Aqua made the launch, the status has its intent.
    let marker = "farm-a/1/mixed";
    let made: serde_json::Value = reqwest::get(format!(
        "{}/aqua-api/services/launch/pack/{}?tomato.launch={}",
        aqua.url,
        aqua_support::MIXED,
        marker.replace('/', "%2F")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    runs(&k)
        .patch_status(
            "farm-a",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {
                "phase": "Running",
                "startedAt": now,
                "attempts": [{
                    "number": 1,
                    "selection": {"kind": "All", "packs": ["mixed"]},
                    "state": "Running",
                    "launch": "aqua",
                    "startedAt": now,
                    "aqua": [{"pack": "mixed", "id": "", "marker": marker}],
                }],
            }})),
        )
        .await
        .unwrap();
    let _replica = start_replica(&k, config, "tomato-0").await;
    let st = wait_finished(&k, "farm-a", Duration::from_secs(180)).await;
    assert_eq!(st.phase.to_string(), "Succeeded", "{st:#?}");
    assert_eq!(
        st.attempts[0].aqua[0].id,
        made["id"].as_str().unwrap(),
        "adopted: {st:#?}"
    );
    assert_eq!(st.attempts[0].aqua[0].marker.as_deref(), Some(marker));
    let seen = aqua.seen().await;
    let launches = seen["launches"].as_array().unwrap();
    assert_eq!(
        launches.len(),
        2,
        "the launch made before, and one restart: {seen:#}"
    );
    assert_eq!(launches[1]["restartOf"], made["id"], "{seen:#}");
    assert!(
        seen["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"].as_str().unwrap().ends_with("launch/page/simple")),
        "{seen:#}"
    );
}

/// Issue 16 in operator mode: the Job's real `tomato exec` runs the real pytest +
/// allure-pytest suite of tests/allure_shop writing JUnit *and* Allure results and uploads
/// both; each attempt's tests are one set (4, not 8), the rerun selects the failed test by
/// its id, and the API serves steps, parameters and the failure screenshot from the stored
/// upload, with the service's 64 KB per-test limit applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allure_results_uploaded_by_tomato_exec_are_one_set_with_the_junit_and_shown_by_the_api() {
    let k = TestNs::new("op").await;
    let dir = tempfile::tempdir().unwrap();
    let service = include_str!("allure_shop/service.yaml")
        .replace(
            "  timeout: 5m\n",
            &format!(
                "  timeout: 5m\n  image: python:3-slim\n  workingDir: {}/tests/allure_shop\n",
                support::REPO
            ),
        )
        .replace(
            "    - \"--alluredir={allure}\"\n",
            "    - \"--alluredir={allure}\"\n    - --junitxml={junit}\n    - -o\n    - junit_family=xunit1\n",
        );
    assert!(service.contains("--junitxml={junit}"));
    std::fs::write(dir.path().join("allure-shop.yaml"), service).unwrap();
    std::os::unix::fs::symlink(
        format!("{}/tests/allure_shop", support::REPO),
        dir.path().join("allure-shop"),
    )
    .unwrap();
    let config = std::sync::Arc::new(tomato::packs::PacksConfig::load(dir.path()).unwrap());
    config.check_operator().unwrap();
    let replica = start_replica(&k, config, "tomato-0").await;
    let mut t = template("allure-shop");
    t.category = None;
    create_run(&k, "shop", t).await;

    let run = wait_phase(&k, "shop", "Failed").await;
    let st = run.status.unwrap();
    assert_eq!(st.attempts.len(), 2, "{st:?}");
    assert_eq!(
        st.attempts[0].summary.unwrap().total,
        4,
        "JUnit and Allure are one set of tests"
    );
    assert_eq!(
        st.attempts[1].selection.tests,
        ["tests/test_shop.py::TestCheckout::test_declined_card"]
    );
    assert_eq!(st.attempts[1].summary.unwrap().total, 1);

    let (code, tests) = get_json(&format!("{}/api/v1/runs/shop/tests", replica.url)).await;
    assert_eq!(code, 200, "{tests}");
    let find = |id: &str| {
        tests
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap()
    };
    let total = find("tests/test_shop.py::test_total[1]");
    assert_eq!(total["parameters"], json!([{"name": "qty", "value": "1"}]));
    assert_eq!(total["steps"][0]["steps"][1]["name"], "check the total");
    let declined = find("tests/test_shop.py::TestCheckout::test_declined_card");
    assert!(
        declined["trace"]
            .as_str()
            .unwrap()
            .contains("self = <tests.test_shop.TestCheckout"),
        "JUnit's verdict and trace: {declined}"
    );
    let shot = &declined["attachments"][0];
    assert_eq!(shot["name"], "failure screenshot", "{declined}");
    let url = shot["url"].as_str().unwrap();
    assert!(
        url.starts_with("/api/v1/runs/shop/attempts/2/attachments/"),
        "{url}"
    );
    let r = reqwest::get(format!("{}{url}", replica.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let receipt = find("tests/test_shop.py::TestCheckout::test_receipt_download");
    let big = &receipt["steps"][0]["attachments"][0];
    assert!(big["url"].is_null(), "{big}");
    assert!(
        big["refused"]
            .as_str()
            .unwrap()
            .contains("64.0 KB of attachments per test"),
        "{big}"
    );
    let (code, _) = get_text(&format!(
        "{}/api/v1/runs/shop/attempts/1/attachments/..%2Fjunit.xml",
        replica.url
    ))
    .await;
    assert_eq!(code, 404);
}

/// Issue 17 item 5 in operator mode: a Mute made with kubectl (no service label) covers the
/// demo suite's always-failing test, so it is not rerun (only the flaky one is) and the run
/// Succeeds with it counted as muted; the API lists that Mute and makes another, refusing a bad one; the leader's mute pass
/// writes an expired mute's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_made_with_kubectl_keeps_a_known_failure_from_failing_the_run() {
    use tomato::crd::{Mute, MuteSpec};
    let k = TestNs::new("mute").await;
    let (_dir, config) = demo_config(&k, "");
    let replica = start_replica(&k, config, "tomato-0").await;
    let mutes: kube::Api<Mute> = kube::Api::namespaced(k.client(), &k.ns);
    let mut known = Mute::new(
        "discount-known",
        MuteSpec {
            service: "demo".into(),
            test: "cart > applies the discount".into(),
            signature: None,
            reason: "the discount rule changes in 2.0".into(),
            ticket: Some("QA-12".into()),
            expires: chrono::Utc::now() + chrono::Duration::days(7),
            lift_when_ticket_closed: false,
            author: None,
        },
    );
    known.metadata.namespace = Some(k.ns.clone());
    mutes.create(&PostParams::default(), &known).await.unwrap();

    create_run(&k, "demo-muted", template("demo")).await;
    let first = wait_job(&k, "demo-muted-1").await;
    assert_eq!(run_job(&k, &first).await, 1, "the demo suite has a failing test");
    let second = wait_job(&k, "demo-muted-2").await;
    let argv = container(&second).command.clone().unwrap();
    let patterns: Vec<&String> = argv
        .iter()
        .filter(|a| a.starts_with("--test-name-pattern"))
        .collect();
    assert_eq!(
        patterns,
        ["--test-name-pattern=^submits the order form$"],
        "the muted failure is not rerun: {argv:?}"
    );
    run_job(&k, &second).await;
    let run = wait_phase(&k, "demo-muted", "Succeeded").await;
    let st = run.status.clone().unwrap();
    assert_eq!(st.summary.unwrap().muted, 1, "{st:?}");
    assert_eq!(st.summary.unwrap().failed, 0, "{st:?}");
    assert_eq!(st.muted.len(), 1, "{st:?}");
    assert_eq!(
        (
            st.muted[0].test.as_str(),
            st.muted[0].mute.as_str(),
            st.muted[0].passed
        ),
        ("cart > applies the discount", "discount-known", false)
    );
    let (_, tests) = get_json(&format!("{}/api/v1/runs/demo-muted/tests", replica.url)).await;
    let muted: Vec<&Value> = tests
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["muted"].is_null())
        .collect();
    assert_eq!(muted.len(), 1, "{tests:#}");
    assert_eq!(muted[0]["muted"]["ticket"], "QA-12", "{tests:#}");

    // The API lists the kubectl-made mute under its service, and makes one of its own.
    let (code, list) = get_json(&format!("{}/api/v1/mutes?service=demo", replica.url)).await;
    assert_eq!(code, 200, "{list:#}");
    assert_eq!(list["items"][0]["metadata"]["name"], "discount-known", "{list:#}");
    let http = reqwest::Client::new();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let r = http
        .post(format!("{}/api/v1/mutes", replica.url))
        .json(&json!({"spec": {"service": "demo", "test": "submits the order form", "reason": "for a moment", "expires": soon}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let made: Value = r.json().await.unwrap();
    let name = made["metadata"]["name"].as_str().unwrap().to_string();
    let r = http
        .post(format!("{}/api/v1/mutes", replica.url))
        .json(&json!({"spec": {"service": "demo", "test": "x", "reason": "r", "expires": soon, "ticket": "nope"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["parameter"], "spec.ticket", "{err:#}");

    // The leader's pass marks the short mute expired.
    let expired = eventually("the short mute expired", WAIT, || async {
        let m = mutes.get(&name).await.unwrap();
        m.status
            .as_ref()
            .is_some_and(|s| s.state == tomato::crd::MuteState::Expired)
            .then_some(m)
    })
    .await;
    assert!(
        expired
            .status
            .unwrap()
            .message
            .unwrap()
            .starts_with("expired on "),
        "the pass says why"
    );
    let r = http
        .delete(format!("{}/api/v1/mutes/{name}", replica.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(mutes.get_opt(&name).await.unwrap().is_none());
    drop(replica);
}

/// Issue 17 item 7 in operator mode: with a rule that calls the demo suite's two failures
/// infrastructure (`outage.min: 2`), attempt 1 finds the stand down: the run ends `Error` without
/// a rerun and holds `localhost`; the next run waits queued with that reason and gets no Job
/// until a person resumes the stand through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_found_down_holds_the_next_run_until_it_is_resumed() {
    let k = TestNs::new("outage").await;
    let text = demo_text(&k).replace(
        "categoriesFile: demo/categories.json",
        "categories:\n  - name: Stand down\n    matchedStatuses: [failed, broken]\n    \
         messageRegex: '.*(TimeoutError|expected total).*'\n    infrastructure: true\n\
         outage: {share: 0.8, min: 2}",
    );
    let (_dir, config) = demo_config_text(text);
    let replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "demo-down", template("demo")).await;
    let first = wait_job(&k, "demo-down-1").await;
    run_job(&k, &first).await;
    let run = wait_phase(&k, "demo-down", "Error").await;
    let st = run.status.clone().unwrap();
    assert_eq!(
        st.message.as_deref(),
        Some("stand localhost looks down: Stand down, 2 of 2 failures"),
        "{st:?}"
    );
    assert_eq!(st.attempts.len(), 1, "no rerun: {st:?}");
    assert_eq!(
        st.stand_down.as_ref().map(|d| d.stand.as_str()),
        Some("localhost")
    );

    create_run(&k, "demo-after", template("demo")).await;
    let waiting = eventually("the next run held", WAIT, || async {
        let r = runs(&k).get("demo-after").await.unwrap();
        r.status
            .as_ref()
            .and_then(|s| s.message.clone())
            .filter(|m| m.starts_with("held: stand localhost looks down"))
            .map(|_| r)
    })
    .await;
    assert_eq!(waiting.status.unwrap().phase.to_string(), "Queued");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job_names(&k).await, ["demo-down-1"], "no Job on a held stand");
    let (code, holds) = get_json(&format!("{}/api/v1/stands", replica.url)).await;
    assert_eq!(code, 200, "{holds:#}");
    assert_eq!(holds["items"][0]["runs"], json!(["demo-down"]), "{holds:#}");

    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/stands/localhost/resume", replica.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    wait_job(&k, "demo-after-1").await;
    let resolved = runs(&k).get("demo-down").await.unwrap();
    let record = resolved.status.unwrap().stand_down.unwrap();
    assert_eq!(record.resolved_by.as_deref(), Some("resumed through the API"));
    drop(replica);
}
