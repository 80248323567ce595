//! A `Regression` applied in operator mode reconciles as in standalone mode: against a real
//! Kubernetes control plane (`tests/cluster/up`, started once for this binary; the test needs
//! it) with the operator on the token of `deploy/rbac.yaml`'s ServiceAccount, a real Kiwi TCMS
//! (see tests/tms_support), a real SMTP server (aiosmtpd), and an in-process server standing in
//! for Jira's REST API.

mod report_support;
mod support;
mod tms_support;

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, PostParams};
use report_support::{SmtpSink, free_port};
use serde_json::json;
use support::cluster::TestNs;
use support::operator::{demo_config, start_replica_with};
use tms_support::{ASSESSORS, FakeTracker, Kiwi, regression_plan, rpc};
use tomato::crd::{Regression, RegressionPhase, RegressionStatus};

const WAIT: Duration = Duration::from_secs(60);

async fn status_when(
    api: &Api<Regression>,
    what: &str,
    done: impl Fn(&RegressionStatus) -> bool,
) -> RegressionStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        let st = api.get("demo-3-0").await.unwrap().status.unwrap_or_default();
        if done(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "regression not {what} after {WAIT:?}: {st:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regression_resource_reconciles_to_completed_in_operator_mode() {
    let kiwi = Kiwi::start().await;
    let (_plan, _cases) = regression_plan(&kiwi, "demo", "demo regression", 6).await;
    let jira = FakeTracker::jira().await;
    let sink = SmtpSink::start(free_port(), None);
    let mut vars = kiwi.env();
    vars.extend(jira.env());
    vars.push((
        "TOMATO_SMTP_URL".into(),
        format!("smtp://127.0.0.1:{}", sink.port),
    ));
    vars.push(("TOMATO_SMTP_FROM".into(), "Tomato <tomato@example.com>".into()));
    vars.push(("TOMATO_TMS_POLL".into(), "300ms".into()));
    vars.push(("TOMATO_REPORT_RETRY_BASE".into(), "200ms".into()));

    let k = TestNs::new("reg").await;
    let (_dir, config) = demo_config(&k, "");
    let replica = start_replica_with(&k, config, "tomato-0", &vars).await;

    // What `kubectl apply -f regression.yaml` sends.
    let api: Api<Regression> = Api::namespaced(k.client(), &k.ns);
    let reg: Regression = serde_json::from_value(json!({
        "apiVersion": "tomato.dev/v1alpha1", "kind": "Regression",
        "metadata": {"name": "demo-3-0", "namespace": k.ns},
        "spec": {"service": "demo", "version": "3.0", "stand": "localhost", "assessors": ["alice", "bob"],
                 "deadline": "2099-01-01T18:00:00Z", "queue": "QA"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &reg).await.unwrap();

    let st = status_when(&api, "in progress", |st| st.phase == RegressionPhase::InProgress).await;
    let progress = st.progress.clone().unwrap();
    assert_eq!((progress.counts.total, progress.counts.idle), (6, 6), "{st:#?}");
    let assignments = st.assignments.clone();
    assert_eq!(assignments.len(), 2);
    assert!(
        assignments.iter().all(|a| a.executions.len() == 3),
        "{assignments:#?}"
    );
    assert_eq!(jira.issues().len(), 1, "one ticket");
    assert_eq!(
        sink.wait_messages(2, WAIT).await.len(),
        2,
        "one email per assessor"
    );
    let finalizers = api
        .get("demo-3-0")
        .await
        .unwrap()
        .metadata
        .finalizers
        .unwrap_or_default();
    assert_eq!(finalizers, vec!["tomato.dev/regression".to_string()]);

    // Tomato's API changes it through the Kubernetes API: the deadline can go (a field the
    // new spec leaves out is removed, not kept), the assessors cannot change.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/regressions/demo-3-0", replica.url);
    let r = http
        .patch(&url)
        .json(&json!({"spec": {"assessors": ["alice"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .patch(&url)
        .json(&json!({"spec": {"deadline": null, "emails": ["lead@example.com"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let changed = api.get("demo-3-0").await.unwrap();
    assert_eq!(changed.spec.deadline, None);
    assert_eq!(changed.spec.emails, ["lead@example.com"]);
    assert_eq!(changed.spec.assessors, ["alice", "bob"]);
    assert_eq!(
        changed.status.as_ref().map(|s| s.phase),
        Some(RegressionPhase::InProgress),
        "the status stays"
    );

    // The assessors give every case a verdict in Kiwi.
    for a in &assignments {
        let password = ASSESSORS.iter().find(|u| u.0 == a.assessor).unwrap().1;
        let c = kiwi.client((a.assessor.as_str(), password));
        let passed = rpc(&c, "TestExecutionStatus.filter", json!([{"name": "PASSED"}])).await;
        for e in &a.executions {
            rpc(
                &c,
                "TestExecution.update",
                json!([e, {"status": passed[0]["id"]}]),
            )
            .await;
        }
    }
    let st = status_when(&api, "completed", |st| st.phase == RegressionPhase::Completed).await;
    assert_eq!(st.progress.as_ref().unwrap().counts.passed, 6, "{st:#?}");
    assert_eq!(
        jira.issues()[0].comments.len(),
        1,
        "the summary is commented on the ticket"
    );

    // Deleting it runs the cleanup, then the object goes.
    api.delete("demo-3-0", &DeleteParams::default()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while api.get_opt("demo-3-0").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the regression was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
