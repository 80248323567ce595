//! The Kubernetes artefacts, checked offline (no cluster runs here): every manifest in
//! `deploy/` parses as the Kubernetes type its `kind` names, the Deployment has the probes and
//! the hardening it should, the RBAC grants exactly what the operator's code uses, the
//! examples are valid TestRun / NightlySchedule / Mute objects that fit the example packs_config,
//! and the Helm chart carries the same CRDs and only uses values it defines. The chart is
//! rendered and installed on the real control plane by `tests/crd_validation.rs` (helm is built
//! from its Go module by `tests/cluster/build`); when `kubectl` is on the PATH,
//! `kubectl kustomize deploy/` must build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Every YAML document of a file.
fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(REPO).join(path)).unwrap();
    text.split("\n---\n")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn deploy_documents() -> Vec<(String, Value)> {
    [
        "namespace.yaml",
        "rbac.yaml",
        "rbac-auth.yaml",
        "rbac-cluster.yaml",
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
    ]
    .iter()
    .flat_map(|f| {
        documents(&format!("deploy/{f}"))
            .into_iter()
            .map(move |d| (f.to_string(), d))
    })
    .collect()
}

/// Parses a manifest as the k8s-openapi type of its kind (a wrong field type fails).
fn check_typed(file: &str, doc: &Value) {
    let kind = doc["kind"].as_str().unwrap_or_else(|| panic!("{file}: no kind"));
    let v = doc.clone();
    let ok = match kind {
        "Namespace" => serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(v).map(|_| ()),
        "ServiceAccount" => {
            serde_json::from_value::<k8s_openapi::api::core::v1::ServiceAccount>(v).map(|_| ())
        }
        "ConfigMap" => serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(v).map(|_| ()),
        "Service" => serde_json::from_value::<k8s_openapi::api::core::v1::Service>(v).map(|_| ()),
        "Deployment" => serde_json::from_value::<Deployment>(v).map(|_| ()),
        "Role" => serde_json::from_value::<Role>(v).map(|_| ()),
        "ClusterRole" => serde_json::from_value::<ClusterRole>(v).map(|_| ()),
        "RoleBinding" => serde_json::from_value::<k8s_openapi::api::rbac::v1::RoleBinding>(v).map(|_| ()),
        "ClusterRoleBinding" => {
            serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(v).map(|_| ())
        }
        other => panic!("{file}: unexpected kind {other}"),
    };
    ok.unwrap_or_else(|e| panic!("{file}: {kind} does not parse: {e}"));
}

#[test]
fn every_manifest_is_a_valid_object_of_its_kind_in_the_tomato_namespace() {
    let docs = deploy_documents();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|(_, d)| d["kind"].as_str()).collect();
    for k in [
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    ] {
        assert!(kinds.contains(k), "deploy/ has no {k}");
    }
    for (file, doc) in &docs {
        check_typed(file, doc);
        let kind = doc["kind"].as_str().unwrap();
        if !matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding") {
            assert_eq!(doc["metadata"]["namespace"], "tomato", "{file}: {kind}");
        }
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/name"], "tomato",
            "{file}: {kind}"
        );
    }
}

#[test]
fn the_deployment_is_probed_limited_and_hardened() {
    let doc = documents("deploy/deployment.yaml").remove(0);
    let d: Deployment = serde_json::from_value(doc).unwrap();
    let spec = d.spec;
    assert!(
        spec.replicas.unwrap() >= 2,
        "several replicas: the lease picks the leader"
    );
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("tomato"));
    assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
    let c = &pod.containers[0];
    assert_eq!(c.args.as_deref(), Some(&["operator".to_string()][..]));
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let res = c.resources.as_ref().unwrap();
    assert!(res.requests.is_some() && res.limits.as_ref().unwrap().contains_key("memory"));
    let env: BTreeMap<String, Option<String>> = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert_eq!(
        env["TOMATO_EXEC_IMAGE"], c.image,
        "Jobs copy tomato from the operator's own image"
    );
    assert_eq!(
        env["TOMATO_IN_CLUSTER_URL"].as_deref(),
        Some("http://tomato.tomato.svc:8080")
    );
    assert_eq!(env["TOMATO_CONFIG"].as_deref(), Some("/etc/tomato/packs_config"));
}

/// What the operator's code calls, as `(apiGroup, resource, verb)`: reflectors list and watch,
/// the controller and the backend get, create, patch, replace (update) and delete.
fn needed(lease: bool) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut add = |group: &str, resources: &[&str], verbs: &[&str]| {
        for r in resources {
            for v in verbs {
                out.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    };
    add(
        "tomato.dev",
        &["testruns", "nightlyschedules"],
        &["get", "list", "watch", "create", "patch", "update", "delete"],
    );
    add(
        "tomato.dev",
        &["regressions"],
        &["get", "list", "watch", "create", "patch", "update", "delete"],
    );
    add("tomato.dev", &["mutes"], &["get", "list", "create", "delete"]);
    add(
        "tomato.dev",
        &[
            "testruns/status",
            "nightlyschedules/status",
            "regressions/status",
            "mutes/status",
        ],
        &["get", "update", "patch"],
    );
    add(
        "tomato.dev",
        &[
            "testruns/finalizers",
            "nightlyschedules/finalizers",
            "regressions/finalizers",
        ],
        &["update"],
    );
    add(
        "batch",
        &["jobs"],
        &["get", "list", "watch", "create", "patch", "delete"],
    );
    add("", &["pods"], &["get", "list"]);
    add("", &["pods/log"], &["get"]);
    add("", &["configmaps"], &["get", "list", "watch", "create"]);
    add("", &["secrets"], &["get", "create"]);
    add("events.k8s.io", &["events"], &["create", "patch"]);
    if lease {
        add("coordination.k8s.io", &["leases"], &["get", "create", "update"]);
    }
    out
}

fn granted(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    assert!(g != "*" && res != "*" && v != "*", "no wildcards: {r:?}");
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_what_the_operator_uses() {
    let docs = documents("deploy/rbac.yaml");
    let role: Role =
        serde_json::from_value(docs.iter().find(|d| d["kind"] == "Role").unwrap().clone()).unwrap();
    assert_eq!(granted(role.rules.as_deref().unwrap_or_default()), needed(true));

    let docs = documents("deploy/rbac-cluster.yaml");
    let cluster: ClusterRole =
        serde_json::from_value(docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap().clone()).unwrap();
    assert_eq!(
        granted(cluster.rules.as_deref().unwrap_or_default()),
        needed(false)
    );
    let lease: Role =
        serde_json::from_value(docs.iter().find(|d| d["kind"] == "Role").unwrap().clone()).unwrap();
    assert_eq!(
        granted(lease.rules.as_deref().unwrap_or_default()),
        needed(true).difference(&needed(false)).cloned().collect()
    );
}

#[test]
fn the_service_account_may_review_tokens_and_access_and_nothing_more() {
    let docs = documents("deploy/rbac-auth.yaml");
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "ClusterRoleBinding")
            .unwrap()
            .clone(),
    )
    .unwrap();
    assert_eq!(
        (binding.role_ref.kind.as_str(), binding.role_ref.name.as_str()),
        ("ClusterRole", "system:auth-delegator")
    );
    let subject = &binding.subjects.as_deref().unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "tomato", Some("tomato"))
    );
    let chart = std::fs::read_to_string(format!("{REPO}/charts/tomato/templates/rbac.yaml")).unwrap();
    assert!(
        chart.contains("name: system:auth-delegator"),
        "the chart binds system:auth-delegator too"
    );
}

#[test]
fn the_examples_are_valid_resources_that_fit_the_example_packs_config() {
    let cm = documents("deploy/configmap.yaml").remove(0);
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in cm["data"].as_object().unwrap() {
        std::fs::write(dir.path().join(file), text.as_str().unwrap()).unwrap();
    }
    let config = tomato::packs::PacksConfig::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    config.check_operator().unwrap();

    let run: tomato::crd::TestRun =
        serde_json::from_value(documents("deploy/examples/testrun.yaml").remove(0)).unwrap();
    config.check_run(&run.spec.template).unwrap();
    let schedule: tomato::crd::NightlySchedule =
        serde_json::from_value(documents("deploy/examples/nightlyschedule.yaml").remove(0)).unwrap();
    config.check_run(&schedule.spec.template).unwrap();
    tomato::schedule::check_spec(&schedule.spec).unwrap();
    let mute: tomato::crd::Mute =
        serde_json::from_value(documents("deploy/examples/mute.yaml").remove(0)).unwrap();
    assert!(config.service(&mute.spec.service).is_some(), "{mute:?}");
    assert!(tomato::mute::is_ticket_key(mute.spec.ticket.as_deref().unwrap()));
}

#[test]
fn the_chart_carries_the_same_crds_and_uses_only_values_it_defines() {
    for (name, yaml) in tomato::crd::crd_files() {
        let in_chart = std::fs::read_to_string(Path::new(REPO).join("charts/tomato/crds").join(&name))
            .unwrap_or_default();
        assert!(
            in_chart == yaml,
            "charts/tomato/crds/{name} is out of date: copy crds/{name}"
        );
    }
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(format!("{REPO}/charts/tomato/Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        (chart["apiVersion"].as_str(), chart["name"].as_str()),
        (Some("v2"), Some("tomato"))
    );
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(format!("{REPO}/charts/tomato/values.yaml")).unwrap(),
    )
    .unwrap();
    for key in ["image", "replicaCount", "scope", "smtp", "tracker", "packsConfig"] {
        assert!(!values[key].is_null(), "values.yaml has no {key}");
    }
    let used = regex::Regex::new(r"\.Values\.([A-Za-z0-9_.]+)").unwrap();
    for entry in std::fs::read_dir(format!("{REPO}/charts/tomato/templates")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for cap in used.captures_iter(&text) {
            let mut v = &values;
            for part in cap[1].split('.') {
                v = &v[part];
            }
            assert!(
                !v.is_null(),
                "{}: .Values.{} is not in values.yaml",
                path.display(),
                &cap[1]
            );
        }
    }
}

#[test]
fn kubectl_builds_the_plain_manifests_when_it_is_installed() {
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["kustomize", &format!("{REPO}/deploy")])
        .output()
    else {
        eprintln!("kubectl is not installed; skipped (the typed checks above still ran)");
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("\nkind: ").count() + usize::from(text.starts_with("kind: ")),
        9,
        "{text}"
    );
    assert!(
        text.contains("grafana_dashboard: \"1\""),
        "the dashboard ConfigMap carries the sidecar's label: {text}"
    );
}
