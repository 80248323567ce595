//! Operator mode's API authorisation against the real control plane (`tests/cluster/up`):
//! bearer tokens of ServiceAccounts (from the TokenRequest API) are authenticated with
//! TokenReviews and each write authorised with a SubjectAccessReview, by the operator running
//! on the token of `deploy/rbac.yaml`'s ServiceAccount with `deploy/rbac-auth.yaml` bound. Who
//! may create a TestRun through `/api` is exactly who `kubectl auth can-i` says may.

mod support;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ListParams, PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::REPO;
use support::cluster::{TestNs, rbac_for};
use support::operator::*;
use tomato::api::{AuditLog, Auth, KubeAuth, Tokens};
use tomato::operator::Scope;

/// A writer of TestRuns (and nothing else of Tomato's) in the namespace, bound to `alice`;
/// `bob` has no binding at all.
fn people(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: alice\n  namespace: {ns}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: bob\n  namespace: {ns}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: testrun-writer\n  namespace: {ns}\n\
         rules:\n  - apiGroups: [tomato.dev]\n    resources: [testruns]\n    verbs: [get, list, create, patch]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: alice-writes-runs\n  namespace: {ns}\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: testrun-writer\n\
         subjects:\n  - kind: ServiceAccount\n    name: alice\n    namespace: {ns}\n"
    )
}

/// A bearer token for ServiceAccount `name`, from the TokenRequest API.
async fn token_of(k: &TestNs, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(k.client(), &k.ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .expect("a TokenRequest answers a token")
}

/// `kubectl auth can-i VERB testruns.tomato.dev` as ServiceAccount `who`.
fn kubectl_can(k: &TestNs, who: &str, verb: &str, resource: &str) -> bool {
    let out = k.cluster.kubectl(
        &[
            "auth",
            "can-i",
            verb,
            &format!("{resource}.tomato.dev"),
            "-n",
            &k.ns,
            &format!("--as=system:serviceaccount:{}:{who}", k.ns),
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

async fn send(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn run_names(k: &TestNs) -> Vec<String> {
    runs(k)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.metadata.name.unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_write_through_the_api_is_exactly_who_may_with_kubectl() {
    let k = TestNs::new("authz").await;
    // deploy/rbac-auth.yaml, its cluster-wide binding named after this namespace so that tests
    // running beside this one do not rebind it.
    let delegator = std::fs::read_to_string(format!("{REPO}/deploy/rbac-auth.yaml")).unwrap();
    let delegator = rbac_for(&delegator, &k.ns).replace(
        "name: tomato-auth-delegator\n",
        &format!("name: tomato-auth-delegator-{}\n", k.ns),
    );
    k.cluster.kubectl_ok(&["apply", "-f", "-"], Some(&delegator));
    k.cluster.kubectl_ok(&["apply", "-f", "-"], Some(&people(&k.ns)));
    assert!(kubectl_can(&k, "alice", "create", "testruns") && kubectl_can(&k, "alice", "patch", "testruns"));
    assert!(!kubectl_can(&k, "alice", "create", "nightlyschedules"));
    assert!(!kubectl_can(&k, "bob", "create", "testruns"));
    let alice = token_of(&k, "alice").await;
    let bob = token_of(&k, "bob").await;

    let kube = KubeAuth::new(k.operator_client.clone(), k.ns.clone());
    kube.check_permissions()
        .await
        .expect("deploy/rbac-auth.yaml grants both reviews");

    let audit_dir = tempfile::tempdir().unwrap();
    let audit_path = audit_dir.path().join("audit.jsonl");
    let auth = Auth::new(Tokens::default(), AuditLog::to_file(&audit_path).unwrap()).with_kubernetes(kube);
    let (_dir, config) = demo_config(&k, "");
    let replica =
        start_replica_authorized(&k, config, "tomato-0", &[], Scope::Namespace(k.ns.clone()), auth).await;
    let url = |path: &str| format!("{}{path}", replica.url);
    let spec = json!({"spec": {"service": "demo", "stand": "localhost", "category": "smoke"}});
    let post = reqwest::Method::POST;

    // No token, or one the API server does not know: 401, nothing created.
    let (s, body) = send(post.clone(), &url("/api/v1/runs"), None, Some(spec.clone())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let (s, body) = send(
        post.clone(),
        &url("/api/v1/runs"),
        Some("not-a-token"),
        Some(spec.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "the API token is not valid");
    // Bob is authenticated but may not create TestRuns: 403 naming what Kubernetes refused.
    let (s, body) = send(post.clone(), &url("/api/v1/runs"), Some(&bob), Some(spec.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("system:serviceaccount:{}:bob", k.ns)) && error.contains("create testruns"),
        "{error}"
    );
    let (s, body) = send(
        post.clone(),
        &url("/api/run_now?service=demo&stand=localhost"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(run_names(&k).await, Vec::<String>::new(), "nothing was created");

    // Alice may: through /api/v1 and the legacy handle, and she may re-prioritise and cancel.
    let (s, run) = send(
        post.clone(),
        &url("/api/v1/runs"),
        Some(&alice),
        Some(spec.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    let id = run["metadata"]["name"].as_str().unwrap().to_string();
    // Admitted (its Job waits at its gate) before the next one comes, which then waits behind it.
    let job = wait_job(&k, &format!("{id}-1")).await;
    let (s, legacy) = send(
        post.clone(),
        &url("/api/run_now?service=demo&stand=localhost"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{legacy}");
    let legacy_id = legacy["run_id"].as_str().unwrap().to_string();
    let mut names = run_names(&k).await;
    names.sort();
    let mut expected = vec![id.clone(), legacy_id.clone()];
    expected.sort();
    assert_eq!(names, expected, "both TestRuns exist");
    // The second waits behind the first (the demo runs one at a time), so it is still queued
    // and may be re-prioritised.
    let (s, body) = send(
        reqwest::Method::PATCH,
        &url(&format!("/api/v1/runs/{legacy_id}")),
        Some(&alice),
        Some(json!({"spec": {"priority": 1}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = send(
        reqwest::Method::DELETE,
        &url(&format!("/api/v1/runs/{id}")),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "bob may not cancel: {body}");
    // ... but not schedules, as kubectl would not let her.
    let schedule = json!({"metadata": {"name": "nightly"},
        "spec": {"service": "demo", "stand": "localhost", "schedule": "0 2 * * *"}});
    let (s, body) = send(
        post.clone(),
        &url("/api/v1/schedules"),
        Some(&alice),
        Some(schedule),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    // Reads stay open.
    let (s, _) = send(reqwest::Method::GET, &url("/api/v1/runs"), None, None).await;
    assert_eq!(s, StatusCode::OK);

    // The audit log: every write, allowed and refused, by the Kubernetes user; no token.
    let text = std::fs::read_to_string(&audit_path).unwrap();
    for token in [&alice, &bob] {
        assert!(!text.contains(token.as_str()), "no token in the audit log");
    }
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(String, String, u64, String)> = lines
        .iter()
        .map(|l| {
            (
                l["who"].as_str().unwrap().to_string(),
                l["verb"].as_str().unwrap_or_default().to_string(),
                l["status"].as_u64().unwrap(),
                l["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let sa = |n: &str| format!("system:serviceaccount:{}:{n}", k.ns);
    let t = |who: &str, verb: &str, status: u64, decision: &str| {
        (who.to_string(), verb.to_string(), status, decision.to_string())
    };
    assert_eq!(
        summary,
        vec![
            t("unauthenticated", "create", 401, "refused"),
            t("unauthenticated", "create", 401, "refused"),
            t(&sa("bob"), "create", 403, "refused"),
            t(&sa("bob"), "create", 403, "refused"),
            t(&sa("alice"), "create", 201, "allowed"),
            t(&sa("alice"), "create", 200, "allowed"),
            t(&sa("alice"), "patch", 200, "allowed"),
            t(&sa("bob"), "patch", 403, "refused"),
            t(&sa("alice"), "create", 403, "refused"),
        ]
    );
    let created = &lines[4];
    assert_eq!(
        (&created["via"], &created["resource"], &created["path"]),
        (&json!("kubernetes"), &json!("testruns"), &json!("/api/v1/runs"))
    );
    assert!(
        created["from"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{created}"
    );
    assert_eq!(lines[8]["resource"], "nightlyschedules");

    // A Job's `tomato exec` still uploads with its run's own token, no Kubernetes one.
    assert_eq!(run_job(&k, &job).await, 1, "the demo suite has a failing test");
    let upload = eventually("the upload's audit line", RUN_WAIT, || async {
        std::fs::read_to_string(&audit_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|l| l["via"] == "run-token")
    })
    .await;
    assert_eq!(
        (&upload["name"], &upload["decision"]),
        (&json!(id), &json!("allowed"))
    );
    assert!(
        upload["status"].as_u64().is_some_and(|s| (200..300).contains(&s)),
        "{upload}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_auth_delegator_binding_the_operator_says_what_to_bind_and_writes_are_503() {
    // deploy/rbac.yaml alone: the operator may not create TokenReviews.
    let k = TestNs::new("authz-unbound").await;
    k.cluster.kubectl_ok(&["apply", "-f", "-"], Some(&people(&k.ns)));
    let alice = token_of(&k, "alice").await;
    let kube = KubeAuth::new(k.operator_client.clone(), k.ns.clone());
    let err = kube.check_permissions().await.unwrap_err().to_string();
    assert!(
        err.contains("tokenreviews")
            && err.contains("system:auth-delegator")
            && err.contains("rbac-auth.yaml"),
        "{err}"
    );
    let auth = Auth::new(Tokens::default(), AuditLog::log_only()).with_kubernetes(kube);
    let (_dir, config) = demo_config(&k, "");
    let replica =
        start_replica_authorized(&k, config, "tomato-0", &[], Scope::Namespace(k.ns.clone()), auth).await;
    let spec = json!({"spec": {"service": "demo", "stand": "localhost", "category": "smoke"}});
    let (s, body) = send(
        reqwest::Method::POST,
        &format!("{}/api/v1/runs", replica.url),
        Some(&alice),
        Some(spec),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(run_names(&k).await, Vec::<String>::new(), "nothing was created");
}
