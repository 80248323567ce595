//! The CRDs of `crds/` enforce their schemas in a real API server (`tests/cluster/up`: every
//! test here needs it): one invalid object per constraint (enum, range, pattern, length,
//! item count, format, required field) and per CEL rule (create- and update-time) is refused
//! with a message naming the field or the rule, and every example of `deploy/examples/` is
//! accepted. Objects are sent with `kubectl create|patch --dry-run=server`, as a user would.
//! Beside them, what a user installs: `kubectl apply -f crds/` (client-side), `helm install`
//! of `charts/tomato`, and server dry runs of `helm template` and `kubectl apply -k deploy/`.

mod support;

use serde_json::{Value, json};
use support::REPO;
use support::cluster::TestNs;

/// `kind` with a valid spec for it, changed by `patch` (a JSON merge patch of the spec).
fn object(ns: &str, kind: &str, name: &str, patch: &Value) -> Value {
    let mut spec = match kind {
        "TestRun" => json!({"service": "demo", "stand": "localhost"}),
        "NightlySchedule" => json!({"service": "demo", "stand": "localhost", "schedule": "0 2 * * *"}),
        "Regression" => {
            json!({"service": "demo", "version": "3.0", "stand": "localhost", "assessors": ["alice"]})
        }
        "Mute" => json!({"service": "demo", "test": "cart > applies the discount", "reason": "known",
            "expires": "2030-01-01T00:00:00Z"}),
        other => panic!("no such kind {other}"),
    };
    merge(&mut spec, patch);
    json!({"apiVersion": "tomato.dev/v1alpha1", "kind": kind,
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// RFC 7386 merge: `null` removes a field.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The API server's answer to a dry-run create of `obj`: `Ok` or the refusal.
fn dry_run_create(k: &TestNs, obj: &Value) -> Result<(), String> {
    let out = k
        .cluster
        .kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&obj.to_string()));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_refuses_one_invalid_object_per_schema_constraint_and_cel_rule_naming_it() {
    let k = TestNs::new("crd").await;
    let long = "a".repeat(64);
    let env = |e: Value| json!({"env": [e]});
    // (kind, what is wrong, spec patch, what the refusal must say)
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        (
            "TestRun",
            "service missing",
            json!({"service": null}),
            vec!["spec.service", "Required value"],
        ),
        (
            "TestRun",
            "stand missing",
            json!({"stand": null}),
            vec!["spec.stand", "Required value"],
        ),
        (
            "TestRun",
            "service pattern",
            json!({"service": "Shop!"}),
            vec!["spec.service", "should match"],
        ),
        (
            "TestRun",
            "service length",
            json!({"service": long}),
            vec!["spec.service", "63"],
        ),
        (
            "TestRun",
            "stand empty",
            json!({"stand": ""}),
            vec!["spec.stand", "at least 1"],
        ),
        (
            "TestRun",
            "stand with a space",
            json!({"stand": "a b"}),
            vec!["spec.stand", "should match"],
        ),
        (
            "TestRun",
            "stand length",
            json!({"stand": "s".repeat(254)}),
            vec!["spec.stand", "253"],
        ),
        (
            "TestRun",
            "category pattern",
            json!({"category": "Smoke"}),
            vec!["spec.category", "should match"],
        ),
        (
            "TestRun",
            "pack pattern",
            json!({"packs": ["a b"]}),
            vec!["spec.packs[0]", "should match"],
        ),
        (
            "TestRun",
            "priority above 9",
            json!({"priority": 10}),
            vec!["spec.priority", "less than or equal to 9"],
        ),
        (
            "TestRun",
            "priority below 0",
            json!({"priority": -1}),
            vec!["spec.priority", "greater than or equal to 0"],
        ),
        (
            "TestRun",
            "retries above 9",
            json!({"retries": 10}),
            vec!["spec.retries", "less than or equal to 9"],
        ),
        (
            "TestRun",
            "retries below 0",
            json!({"retries": -1}),
            vec!["spec.retries", "greater than or equal to 0"],
        ),
        (
            "TestRun",
            "email pattern",
            json!({"emails": ["not-an-address"]}),
            vec!["spec.emails[0]", "should match"],
        ),
        (
            "TestRun",
            "email length",
            json!({"emails": [format!("{}@example.com", "a".repeat(250))]}),
            vec!["spec.emails[0]", "254"],
        ),
        (
            "TestRun",
            "too many emails",
            json!({"emails": (0..101).map(|i| format!("qa{i}@example.com")).collect::<Vec<_>>()}),
            vec!["spec.emails", "101"],
        ),
        (
            "TestRun",
            "issue key pattern",
            json!({"issueKey": "qa-1"}),
            vec!["spec.issueKey", "should match"],
        ),
        (
            "TestRun",
            "issue key length",
            json!({"issueKey": format!("Q{}-1", "A".repeat(63))}),
            vec!["spec.issueKey", "64"],
        ),
        (
            "TestRun",
            "version empty",
            json!({"version": ""}),
            vec!["spec.version", "at least 1"],
        ),
        (
            "TestRun",
            "version length",
            json!({"version": "v".repeat(256)}),
            vec!["spec.version", "255"],
        ),
        (
            "TestRun",
            "type enum",
            json!({"type": "Weekly"}),
            vec!["spec.type", "Unsupported value", "\"Regular\""],
        ),
        (
            "TestRun",
            "timeout pattern",
            json!({"timeout": "10 minutes"}),
            vec!["spec.timeout", "should match"],
        ),
        (
            "TestRun",
            "env name pattern",
            env(json!({"name": "1X", "value": "v"})),
            vec!["spec.env[0].name", "should match"],
        ),
        (
            "TestRun",
            "env TOMATO_ name",
            env(json!({"name": "TOMATO_RUN", "value": "v"})),
            vec!["spec.env[0]", "TOMATO_* variables are set by Tomato itself"],
        ),
        (
            "TestRun",
            "env value and secret both",
            env(json!({"name": "X", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})),
            vec![
                "spec.env[0]",
                "give either value or valueFrom.secretKeyRef, not both",
            ],
        ),
        (
            "TestRun",
            "env neither value nor secret",
            env(json!({"name": "X"})),
            vec![
                "spec.env[0]",
                "give either value or valueFrom.secretKeyRef, not both",
            ],
        ),
        (
            "TestRun",
            "env secret name pattern",
            env(json!({"name": "X", "valueFrom": {"secretKeyRef": {"name": "S!", "key": "k"}}})),
            vec!["spec.env[0].valueFrom.secretKeyRef.name", "should match"],
        ),
        (
            "TestRun",
            "env secret key pattern",
            env(json!({"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k k"}}})),
            vec!["spec.env[0].valueFrom.secretKeyRef.key", "should match"],
        ),
        (
            "NightlySchedule",
            "schedule empty",
            json!({"schedule": ""}),
            vec!["spec.schedule", "at least 1"],
        ),
        (
            "NightlySchedule",
            "concurrency policy enum",
            json!({"concurrencyPolicy": "Sometimes"}),
            vec!["spec.concurrencyPolicy", "Unsupported value"],
        ),
        (
            "NightlySchedule",
            "starting deadline below 0",
            json!({"startingDeadlineSeconds": -1}),
            vec!["spec.startingDeadlineSeconds", "greater than or equal to 0"],
        ),
        (
            "NightlySchedule",
            "successful history above 1000",
            json!({"successfulRunsHistoryLimit": 1001}),
            vec!["spec.successfulRunsHistoryLimit", "less than or equal to 1000"],
        ),
        (
            "NightlySchedule",
            "failed history below 0",
            json!({"failedRunsHistoryLimit": -1}),
            vec!["spec.failedRunsHistoryLimit", "greater than or equal to 0"],
        ),
        (
            "NightlySchedule",
            "priority above 9",
            json!({"priority": 10}),
            vec!["spec.priority", "less than or equal to 9"],
        ),
        (
            "NightlySchedule",
            "env TOMATO_ name",
            env(json!({"name": "TOMATO_STAND", "value": "v"})),
            vec!["spec.env[0]", "TOMATO_* variables are set by Tomato itself"],
        ),
        (
            "NightlySchedule",
            "env value and secret both",
            env(json!({"name": "X", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})),
            vec!["spec.env[0]", "not both"],
        ),
        (
            "NightlySchedule",
            "stand missing",
            json!({"stand": null}),
            vec!["spec.stand", "Required value"],
        ),
        (
            "Regression",
            "assessors empty",
            json!({"assessors": []}),
            vec!["spec.assessors", "at least 1"],
        ),
        (
            "Regression",
            "too many assessors",
            json!({"assessors": (0..101).map(|i| format!("qa{i}")).collect::<Vec<_>>()}),
            vec!["spec.assessors", "101"],
        ),
        (
            "Regression",
            "assessor empty",
            json!({"assessors": [""]}),
            vec!["spec.assessors[0]", "at least 1"],
        ),
        (
            "Regression",
            "assessor length",
            json!({"assessors": ["a".repeat(151)]}),
            vec!["spec.assessors[0]", "150"],
        ),
        (
            "Regression",
            "deadline format",
            json!({"deadline": "tomorrow"}),
            vec!["spec.deadline", "date-time"],
        ),
        (
            "Regression",
            "queue pattern",
            json!({"queue": "qa"}),
            vec!["spec.queue", "should match"],
        ),
        (
            "Regression",
            "issue key pattern",
            json!({"issueKey": "QA"}),
            vec!["spec.issueKey", "should match"],
        ),
        (
            "Regression",
            "email pattern",
            json!({"emails": ["nobody"]}),
            vec!["spec.emails[0]", "should match"],
        ),
        (
            "TestRun",
            "retention maxAge pattern",
            json!({"retention": {"maxAge": "30 days"}}),
            vec!["spec.retention.maxAge", "should match"],
        ),
        (
            "TestRun",
            "retention files maxAge pattern",
            json!({"retention": {"files": {"maxAge": "1w"}}}),
            vec!["spec.retention.files.maxAge", "should match"],
        ),
        (
            "TestRun",
            "retention keep with maxAge",
            json!({"retention": {"keep": true, "maxAge": "30d"}}),
            vec![
                "spec.retention",
                "keep: true keeps the run and its files for good",
            ],
        ),
        (
            "Regression",
            "version missing",
            json!({"version": null}),
            vec!["spec.version", "Required value"],
        ),
        (
            "Regression",
            "service pattern",
            json!({"service": "Shop"}),
            vec!["spec.service", "should match"],
        ),
        (
            "Mute",
            "signature pattern",
            json!({"signature": "XYZ"}),
            vec!["spec.signature", "should match"],
        ),
        (
            "Mute",
            "ticket pattern",
            json!({"ticket": "qa 1"}),
            vec!["spec.ticket", "should match"],
        ),
        (
            "Mute",
            "empty reason",
            json!({"reason": ""}),
            vec!["spec.reason", "at least 1"],
        ),
        (
            "Mute",
            "expires missing",
            json!({"expires": null}),
            vec!["spec.expires", "Required value"],
        ),
        (
            "Mute",
            "expires format",
            json!({"expires": "next week"}),
            vec!["spec.expires"],
        ),
        (
            "Mute",
            "lifting without a ticket",
            json!({"liftWhenTicketClosed": true}),
            vec!["spec.liftWhenTicketClosed needs spec.ticket"],
        ),
    ];
    let mut wrong = Vec::new();
    for (i, (kind, what, patch, expected)) in cases.iter().enumerate() {
        let obj = object(&k.ns, kind, &format!("case-{i}"), patch);
        match dry_run_create(&k, &obj) {
            Ok(()) => wrong.push(format!("{kind} with {what} was accepted")),
            Err(refusal) => {
                if let Some(missing) = expected.iter().find(|e| !refusal.contains(**e)) {
                    wrong.push(format!(
                        "{kind} with {what}: the refusal does not say {missing:?}: {refusal}"
                    ));
                }
            }
        }
    }
    // A schedule's name is a label value on its runs.
    let named = object(&k.ns, "NightlySchedule", &"n".repeat(64), &json!({}));
    match dry_run_create(&k, &named) {
        Ok(()) => wrong.push("a NightlySchedule named with 64 characters was accepted".into()),
        Err(refusal) if !refusal.contains("a NightlySchedule's name is at most 63 characters") => {
            wrong.push(format!("the long schedule name's refusal: {refusal}"))
        }
        Err(_) => {}
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_refuses_changing_what_cannot_change_and_resuming_a_cancelled_run() {
    let k = TestNs::new("crd").await;
    let create = |obj: &Value| {
        k.cluster
            .kubectl_ok(&["create", "-f", "-"], Some(&obj.to_string()));
    };
    let patch = |what: &str, patch: Value| {
        let out = k.cluster.kubectl(
            &[
                "patch",
                "--dry-run=server",
                "-n",
                &k.ns,
                what,
                "--type=merge",
                "-p",
                &patch.to_string(),
            ],
            None,
        );
        assert!(!out.status.success(), "patch of {what} with {patch} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let accepted = |what: &str, patch: Value| {
        k.cluster.kubectl_ok(
            &[
                "patch",
                "--dry-run=server",
                "-n",
                &k.ns,
                what,
                "--type=merge",
                "-p",
                &patch.to_string(),
            ],
            None,
        );
    };
    create(&object(&k.ns, "TestRun", "fixed", &json!({})));
    for change in [
        json!({"spec": {"service": "other"}}),
        json!({"spec": {"stand": "127.0.0.1"}}),
    ] {
        let refusal = patch("testrun/fixed", change);
        assert!(
            refusal.contains("spec.service and spec.stand cannot change once a run exists"),
            "{refusal}"
        );
    }
    accepted("testrun/fixed", json!({"spec": {"priority": 0}}));

    create(&object(&k.ns, "TestRun", "stopped", &json!({"cancel": true})));
    let refusal = patch("testrun/stopped", json!({"spec": {"cancel": false}}));
    assert!(refusal.contains("a cancelled run cannot be resumed"), "{refusal}");
    let refusal = patch("testrun/stopped", json!({"spec": {"cancel": null}}));
    assert!(refusal.contains("a cancelled run cannot be resumed"), "{refusal}");

    create(&object(&k.ns, "Regression", "release", &json!({})));
    for change in [
        json!({"spec": {"service": "other"}}),
        json!({"spec": {"version": "3.1"}}),
        json!({"spec": {"stand": "127.0.0.1"}}),
        json!({"spec": {"assessors": ["bob"]}}),
    ] {
        let refusal = patch("regression/release", change);
        assert!(
            refusal.contains("spec.service, spec.version, spec.stand and spec.assessors cannot change"),
            "{refusal}"
        );
    }
    accepted(
        "regression/release",
        json!({"spec": {"deadline": "2099-01-01T18:00:00Z"}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_in_deploy_examples_is_accepted_by_the_api_server() {
    let k = TestNs::new("crd").await;
    let mut names: Vec<_> = std::fs::read_dir(format!("{REPO}/deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let text = support::cluster::rbac_for(&text, &k.ns);
        let out = k
            .cluster
            .kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&text));
        assert!(
            out.status.success(),
            "{} refused: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_the_crds_helm_install_and_server_dry_runs_of_the_chart_and_deploy_succeed() {
    let k = TestNs::new("install").await;
    // Client-side apply of what `up`'s harness applied server-side: both managers accepted.
    let applied = k
        .cluster
        .kubectl_ok(&["apply", "-f", &format!("{REPO}/crds")], None);
    assert_eq!(
        applied.lines().count(),
        tomato::crd::all_crds().len(),
        "{applied}"
    );
    // A namespace of its own: the chart brings its own ServiceAccount.
    let release_ns = format!("{}-helm", k.ns);
    k.cluster.kubectl_ok(&["create", "namespace", &release_ns], None);
    let out = std::process::Command::new(k.cluster.bin.join("helm"))
        .args([
            "install",
            "tomato",
            &format!("{REPO}/charts/tomato"),
            "--namespace",
            &release_ns,
        ])
        .env("KUBECONFIG", &k.cluster.kubeconfig)
        .env("HELM_CACHE_HOME", k.gates.path().join("helm-cache"))
        .env("HELM_CONFIG_HOME", k.gates.path().join("helm-config"))
        .env("HELM_DATA_HOME", k.gates.path().join("helm-data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = k.cluster.kubectl_ok(
        &[
            "get",
            "deployment,serviceaccount,role,rolebinding,service,configmap",
            "-n",
            &release_ns,
            "-l",
            "app.kubernetes.io/name=tomato",
            "-o",
            "name",
        ],
        None,
    );
    for kind in [
        "deployment.apps/",
        "serviceaccount/",
        "role.rbac.authorization.k8s.io/",
        "rolebinding.rbac.authorization.k8s.io/",
        "service/",
        "configmap/",
    ] {
        assert!(installed.contains(kind), "no {kind} installed: {installed}");
    }
    // What the README's other install routes send, as a server dry run in `tomato`; the
    // template with the chart's optional roles file and results database, so that their
    // volume and variables are checked by the API server too.
    k.cluster.kubectl_ok(&["create", "namespace", "tomato"], None);
    let helm_template = std::process::Command::new(k.cluster.bin.join("helm"))
        .args([
            "template",
            "tomato",
            &format!("{REPO}/charts/tomato"),
            "--namespace",
            "tomato",
            "--set",
            "apiRoles.existingSecret=tomato-roles",
            "--set",
            "aqua.existingSecret=tomato-aqua",
            "--set",
            "database.existingSecret=tomato-database",
        ])
        .env("HELM_CACHE_HOME", k.gates.path().join("helm-cache"))
        .env("HELM_CONFIG_HOME", k.gates.path().join("helm-config"))
        .env("HELM_DATA_HOME", k.gates.path().join("helm-data"))
        .output()
        .unwrap();
    assert!(
        helm_template.status.success(),
        "{}",
        String::from_utf8_lossy(&helm_template.stderr)
    );
    let rendered = String::from_utf8_lossy(&helm_template.stdout);
    for expected in [
        "name: TOMATO_API_ROLES_FILE",
        "value: /etc/tomato/roles/roles.yaml",
        "mountPath: /etc/tomato/roles",
        "secretName: tomato-roles",
        "- secretRef: {name: tomato-aqua}",
        "name: TOMATO_DATABASE_URL",
        "valueFrom: {secretKeyRef: {name: tomato-database, key: url}}",
    ] {
        assert!(rendered.contains(expected), "no {expected:?} in:\n{rendered}");
    }
    k.cluster
        .kubectl_ok(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
    let kustomized = k.cluster.kubectl_ok(
        &["apply", "--dry-run=server", "-k", &format!("{REPO}/deploy")],
        None,
    );
    assert!(kustomized.contains("deployment.apps/tomato"), "{kustomized}");
}
