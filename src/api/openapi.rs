//! The OpenAPI document of `/api` and `/api/v1`, generated from the handlers' annotations.
//!
//! Resource schemas (TestRun and its parts) come from the same schemars derivation as the
//! CRDs, so the API document and `kubectl explain` never disagree.

use axum::Json;
use axum::extract::State;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::{legacy, mutes, regressions, runs, schedules, stands, uploads, v1};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tomato", description = "Runs a QA team's autotests: queue, launch, rerun failed tests, classify, report."),
    paths(
        legacy::runned, legacy::run_now, legacy::nightly, legacy::status,
        v1::index, v1::runs_list, v1::runs_create, v1::runs_get, v1::runs_cancel, v1::runs_patch, v1::runs_tests, v1::runs_compare,
        v1::attempt_log, v1::attempt_junit, super::allure::attempt_attachment, v1::services_list, v1::services_get, v1::services_queue, v1::services_test_history, v1::services_rule_suggestions,
        schedules::schedules_list, schedules::schedules_create, schedules::schedules_get, schedules::schedules_replace,
        schedules::schedules_patch, schedules::schedules_delete, schedules::schedules_trigger,
        regressions::regressions_list, regressions::regressions_create, regressions::regressions_get,
        regressions::regressions_patch, regressions::regressions_delete,
        mutes::mutes_list, mutes::mutes_create, mutes::mutes_get, mutes::mutes_delete,
        stands::stands_list, stands::stands_resume,
        uploads::attempt_results_upload,
        uploads::attempt_launch,
    ),
    components(schemas(
        super::ErrorBody, legacy::RunId, legacy::RunIds, runs::QueueView, runs::QueueEntry, runs::ServiceQueue, runs::QueuedRun, super::FieldError, runs::LegacyStatus,
        runs::TestView, runs::TestAttempt, super::allure::AllureView, super::allure::StepView, super::allure::AttachmentView, v1::ServiceView, v1::TestHistoryView, v1::SuggestionsView, crate::history::rules::Suggestion, crate::history::rules::Backtest, v1::ComparisonView, crate::history::compare::Comparison, crate::history::compare::Change, crate::history::compare::StillFailing, crate::history::compare::Slower, crate::history::timeline::Timeline, crate::history::timeline::Rates, crate::history::timeline::RunOutcome, crate::history::timeline::SignatureSeen, v1::ApiIndex, schedules::Deleted, schedules::Triggered, stands::HeldStands, stands::Resumed, crate::outage::Hold, uploads::Received, crate::launch::job::ShardLaunch,
    )),
    tags(
        (name = "legacy", description = "The old tool's four handles, kept byte for byte where its clients depend on them"),
        (name = "runs", description = "Test runs"),
        (name = "services", description = "Services from packs_config"),
        (name = "schedules", description = "Nightly schedules (CronJob semantics)"),
        (name = "regressions", description = "Manual regressions of a release, handed to assessors"),
        (name = "mutes", description = "Known failures muted with a reason, a ticket and an expiry"),
        (name = "stands", description = "Stands held by an outage, and resuming them"),
    )
)]
struct ApiDoc;

/// The document as served by a server over `config`: [`document`] with the query parameters
/// that name a service limited to the services of `config` (the server refuses any other, so
/// the document says so).
pub fn document_for(config: &crate::packs::PacksConfig) -> Value {
    let mut doc = document();
    let services: Vec<Value> = config.services().map(|s| Value::from(s.name.as_str())).collect();
    for (_, _, op) in operations_mut(&mut doc) {
        for p in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if p["in"] == "query" && matches!(p["name"].as_str(), Some("service" | "project")) {
                p["schema"] = json!({"type": "string", "enum": services});
            }
        }
    }
    doc
}

/// The document: the handlers' annotations, the resource schemas (from the same schemars
/// derivation as the CRDs), the request and list schemas of the Kubernetes-shaped bodies, and
/// the answers every route shares because a layer gives them (see [`shared_responses`]).
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document is JSON");
    // JSON Schema 2020-12 is OpenAPI 3.1's own dialect; only the definitions' place differs.
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    // kube's resources are always inlined by schemars: they are named here.
    let resources = [
        ("TestRun", generator.subschema_for::<crate::crd::TestRun>()),
        (
            "NightlySchedule",
            generator.subschema_for::<crate::crd::NightlySchedule>(),
        ),
        ("Regression", generator.subschema_for::<crate::crd::Regression>()),
        ("Mute", generator.subschema_for::<crate::crd::Mute>()),
    ];
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas");
    schemas.extend(generator.take_definitions(true));
    for (name, schema) in resources {
        schemas.insert(name.to_string(), schema.to_value());
    }
    // A spec is checked field by field and an unknown field is refused (see `spec::parse_spec`).
    for spec in [
        "TestRunSpec",
        "NightlyScheduleSpec",
        "RegressionSpec",
        "MuteSpec",
        "RunRetention",
        "FilesRetention",
    ] {
        if let Some(s) = schemas.get_mut(spec) {
            s["additionalProperties"] = false.into();
        }
    }
    // Free text that reaches the tests' environment or the test-management system holds no
    // control character (`text::check_text`); the CRD schemas leave that to the API, so it
    // is said here only.
    const NO_CONTROLS: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
    for (schema, field) in [
        ("EnvVar", "value"),
        ("TestRunSpec", "version"),
        ("NightlyScheduleSpec", "version"),
        ("RegressionSpec", "version"),
    ] {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
        {
            p["pattern"] = NO_CONTROLS.into();
        }
    }
    schemas.extend(request_schemas());
    // TestView flattens a test's Allure extras into itself (`#[serde(flatten)]`, absent for a
    // test without them), which utoipa can only describe as an `allOf` that would move every
    // other field out of TestView's `properties`: its fields are added to TestView's own here,
    // optional, exactly as they are sent.
    let allure = schemas["AllureView"]["properties"].clone();
    if let (Some(view), Some(extra)) = (
        schemas
            .get_mut("TestView")
            .and_then(|v| v.get_mut("properties"))
            .and_then(Value::as_object_mut),
        allure.as_object(),
    ) {
        view.extend(extra.clone());
    }
    let phases: Vec<&str> = crate::crd::Phase::ALL.iter().map(|p| p.as_str()).collect();
    let verdicts = ["failed", "broken", "flaky", "passed", "skipped"];
    for (path, method, op) in operations_mut(&mut doc) {
        for p in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            match p["name"].as_str() {
                // Phases are matched ignoring case (`?phase=running`).
                Some("phase") => p["schema"]["pattern"] = list_pattern(&phases, true).into(),
                Some("verdict") => p["schema"]["pattern"] = list_pattern(&verdicts, false).into(),
                // An attempt's position: from 1; beyond int64 is refused as not a number.
                Some("n") if p["in"] == "path" => {
                    p["schema"] = json!({"type": "integer", "format": "int64", "minimum": 1})
                }
                _ => {}
            }
        }
        // Every handler that takes a body refuses a request without one.
        if let Some(body) = op.get_mut("requestBody") {
            body["required"] = true.into();
        }
        // Results uploads authenticate with the run's own token and say so themselves.
        let write = method != "get" && !path.ends_with("/results");
        let upload = path.ends_with("/results");
        if upload {
            op["requestBody"]["content"]["multipart/form-data"]["schema"] = upload_form();
        }
        shared_responses(op, write, !upload);
    }
    doc
}

/// The parts of a results upload (`tomato exec` sends them; `uploads::attempt_results_upload`
/// reads them and refuses any other part by name).
fn upload_form() -> Value {
    let file = json!({"type": "string", "contentMediaType": "application/octet-stream"});
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "exitCode": {"type": "integer", "format": "int32", "description": "The test command's exit code"},
            "signal": {"type": "integer", "format": "int32", "description": "The signal that ended it, instead of an exit code"},
            "junit": {"type": "array", "items": file, "description": "JUnit XML reports, plain or gzipped (`.gz` or application/gzip)"},
            "log": {"type": "string", "contentMediaType": "text/plain", "description": "The attempt's output"},
            "allure": {"type": "array", "items": file, "description": "The files of the Allure results, each under its plain file name"},
            "allureNote": {"type": "array", "items": {"type": "string"}, "description": "What could not be sent of the Allure results"},
        },
    })
}

/// The pattern of a comma-separated list of `names` as the list filters read it: entries
/// trimmed, empty entries ignored (so the empty string is no filter).
fn list_pattern(names: &[&str], ignore_case: bool) -> String {
    let name = |n: &str| -> String {
        if !ignore_case {
            return n.to_string();
        }
        n.chars()
            .map(|c| match c.is_ascii_alphabetic() {
                true => format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()),
                false => c.to_string(),
            })
            .collect()
    };
    let one = format!(
        "\\s*({})?\\s*",
        names.iter().map(|n| name(n)).collect::<Vec<_>>().join("|")
    );
    format!("^{one}(,{one})*$")
}

/// Every operation of `doc` with its path and method, mutably.
fn operations_mut(doc: &mut Value) -> impl Iterator<Item = (&String, &String, &mut Value)> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .flat_map(|(path, item)| {
            item.as_object_mut()
                .into_iter()
                .flat_map(move |i| i.iter_mut().map(move |(method, op)| (path, method, op)))
        })
        .filter(|(_, _, op)| op.get("responses").is_some())
}

/// The schemas of what clients send: Kubernetes-shaped objects (`apiVersion` and `kind` may be
/// left out; `metadata` is optional; `spec` is required) and the patch of a run; and the lists
/// the list endpoints answer.
fn request_schemas() -> serde_json::Map<String, Value> {
    let object = |kind: &str, spec: &str, what: &str| {
        json!({
            "type": "object",
            "description": what,
            "required": ["spec"],
            "properties": {
                "apiVersion": {"enum": ["tomato.dev/v1alpha1", null]},
                "kind": {"enum": [kind, null]},
                "metadata": {"$ref": "#/components/schemas/RequestMetadata"},
                "spec": {"$ref": format!("#/components/schemas/{spec}")},
            },
        })
    };
    let list = |kind: &str, item: &str| {
        json!({
            "type": "object",
            "required": ["apiVersion", "kind", "items"],
            "properties": {
                "apiVersion": {"const": "tomato.dev/v1alpha1"},
                "kind": {"const": kind},
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
                "metadata": {
                    "type": "object",
                    "properties": {
                        "continue": {
                            "type": "string",
                            "description": "Present when more items follow: pass it back as `continue` for the next page",
                        },
                    },
                },
            },
        })
    };
    let schemas = json!({
        "RequestMetadata": {
            "type": "object",
            "description": "The object's name (or a prefix to generate one from) and labels. Labels under tomato.dev/ are Tomato's own.",
            "properties": {
                "name": {"type": ["string", "null"], "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "generateName": {"type": ["string", "null"]},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "TestRunRequest": object("TestRun", "TestRunSpec", "A run to queue"),
        "NightlyScheduleRequest": object("NightlySchedule", "NightlyScheduleSpec", "A nightly schedule"),
        "RegressionRequest": object("Regression", "RegressionSpec", "A manual regression of a release"),
        "MuteRequest": object("Mute", "MuteSpec", "A known failure to mute"),
        "RunPatch": {
            "type": "object",
            "description": "What may change in a run: its priority (while queued) and cancel",
            "required": ["spec"],
            "additionalProperties": false,
            "properties": {"spec": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "priority": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
                    "cancel": {"type": ["boolean", "null"]},
                },
            }},
        },
        "SpecPatch": {
            "type": "object",
            "description": "An RFC 7396 JSON merge patch of the spec: objects merge, null removes a field",
            "required": ["spec"],
            "additionalProperties": false,
            "properties": {"spec": {"type": "object"}},
        },
        "TestRunList": list("TestRunList", "TestRun"),
        "NightlyScheduleList": list("NightlyScheduleList", "NightlySchedule"),
        "RegressionList": list("RegressionList", "Regression"),
        "MuteList": list("MuteList", "Mute"),
    });
    match schemas {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// Answers a layer gives on every route of a kind, added to each operation that does not
/// describe them itself, and a description for every answer that lacks one:
/// - a malformed query string, path segment or body: 400 (every operation that takes any);
/// - a write without a valid token when tokens are configured (always in operator mode): 401;
///   with a token whose role (or Kubernetes RBAC) does not allow it, or from another site: 403;
///   in operator mode when the API server cannot check the token: 503;
/// - a read without a valid token when reads are closed (`readsOpen: false`): 401;
/// - a body over the limit: 413;
/// - a write while the data directory is full: 507.
fn shared_responses(op: &mut Value, writes: bool, authorised: bool) {
    let has_body = op.get("requestBody").is_some();
    let takes_input = op
        .get("parameters")
        .is_some_and(|p| p.as_array().is_some_and(|a| !a.is_empty()))
        || has_body;
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let responses = op["responses"].as_object_mut().expect("responses is an object");
    let mut add = |status: &str| {
        responses
            .entry(status)
            .or_insert_with(|| json!({"description": "", "content": error.clone()}));
    };
    if takes_input {
        add("400");
    }
    if authorised {
        add("401");
    }
    if writes {
        add("403");
        add("503");
        add("507");
    }
    if has_body {
        add("413");
    }
    for (status, r) in op["responses"].as_object_mut().expect("responses").iter_mut() {
        if r.get("description")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            r["description"] = describe(status).into();
        }
    }
}

/// What an answer of `status` means, where the operation does not say more.
fn describe(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted: the change is under way",
        "400" => "Bad input: `parameter` names the query parameter, path segment or body field at fault",
        "401" => {
            "No valid API token: a write when tokens are configured (always in operator mode), a read when reads are closed"
        }
        "403" => {
            "A write the token's role (or, in operator mode, Kubernetes RBAC) does not allow, or one from another site's page"
        }
        "404" => "Not found: `parameter` names what was looked up",
        "409" => "Conflicts with the object's current state",
        "413" => "The request body is too large",
        "503" => "Operator mode: the Kubernetes API server could not check the token",
        "507" => "The data directory is full: nothing was changed",
        _ => "See the error",
    }
}

pub async fn openapi_json(State(state): State<super::AppState>) -> Json<Value> {
    Json(document_for(&state.config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path parameter appears in its path, every query parameter is optional unless the
    /// handler needs it: a client generated from the document calls the real routes.
    #[test]
    fn parameters_are_where_the_routes_take_them() {
        let doc = document();
        let mut queries = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    match p["in"].as_str().unwrap() {
                        "path" => assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path}: path parameter {name} is not in the path"
                        ),
                        "query" => {
                            queries += 1;
                            assert!(
                                !path.contains(&format!("{{{name}}}")),
                                "{method} {path}: {name} is a path segment"
                            );
                        }
                        other => panic!("{method} {path}: {name} in {other}"),
                    }
                }
            }
        }
        assert!(queries >= 6, "the list filters are query parameters ({queries})");
        let list = &doc["paths"]["/api/v1/runs"]["get"]["parameters"];
        let service = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "service")
            .unwrap();
        assert_eq!(
            (&service["in"], &service["required"]),
            (&"query".into(), &false.into())
        );
    }

    /// Every `$ref` of `value`, with where it is.
    fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => out.push((at.clone(), r)),
                        _ => refs(v, format!("{at}/{k}"), out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    refs(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    /// A test's Allure extras are in the tests API's schema (flattened into TestView), so
    /// clients generated from the document see `steps`, `parameters`, `labels`, `attachments`.
    #[test]
    fn the_test_view_documents_its_allure_fields() {
        let doc = document();
        let view = &doc["components"]["schemas"]["TestView"];
        for field in ["steps", "parameters", "labels", "attachments"] {
            assert!(
                view["properties"].get(field).is_some(),
                "TestView has no {field}: {view:#}"
            );
            let required = view["required"].as_array().cloned().unwrap_or_default();
            assert!(
                !required.contains(&Value::from(field)),
                "{field} is sent only with Allure results"
            );
        }
        assert!(
            view["properties"].get("signature").is_some(),
            "the other fields stay"
        );
        assert_eq!(
            view["properties"]["steps"]["items"]["$ref"],
            "#/components/schemas/StepView"
        );
        assert_eq!(
            view["properties"]["attachments"]["items"]["$ref"],
            "#/components/schemas/AttachmentView"
        );
    }

    #[test]
    fn every_reference_resolves_and_every_answer_is_described() {
        let doc = document();
        let mut all = Vec::new();
        refs(&doc, String::new(), &mut all);
        assert!(all.iter().any(|(_, r)| *r == "#/components/schemas/EnvVar"));
        for (at, r) in &all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{at}: {r} is not a component"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{at}: {r} is referenced but missing"
            );
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, r) in op["responses"].as_object().unwrap() {
                    let d = r["description"].as_str().unwrap_or_default();
                    assert!(!d.is_empty(), "{method} {path} {status} has no description");
                }
            }
        }
    }

    #[test]
    fn write_bodies_are_the_resource_schemas_and_writes_document_their_errors() {
        let doc = document();
        let body = |path: &str, method: &str| {
            doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            body("/api/v1/runs", "post"),
            "#/components/schemas/TestRunRequest"
        );
        assert_eq!(
            body("/api/v1/runs/{id}", "patch"),
            "#/components/schemas/RunPatch"
        );
        assert_eq!(
            body("/api/v1/schedules", "post"),
            "#/components/schemas/NightlyScheduleRequest"
        );
        let spec = &doc["components"]["schemas"]["TestRunRequest"]["properties"]["spec"]["$ref"];
        assert_eq!(spec, "#/components/schemas/TestRunSpec");
        let create = &doc["paths"]["/api/v1/runs"]["post"]["responses"];
        for status in ["201", "400", "401", "403", "409", "413", "503", "507"] {
            assert!(
                create.get(status).is_some(),
                "POST /api/v1/runs documents {status}"
            );
        }
        // Reads answer 401 when closed (`readsOpen: false`); uploads say their own answers.
        assert!(
            doc["paths"]["/api/v1/runs"]["get"]["responses"]
                .get("401")
                .is_some()
        );
        assert!(
            doc["paths"]["/api/v1/runs"]["get"]["responses"]
                .get("403")
                .is_none()
        );
        let tail = doc["paths"]["/api/v1/runs/{id}/attempts/{n}/log"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "tail")
            .unwrap()
            .clone();
        assert_eq!(tail["schema"]["minimum"], 0, "{tail}");
        assert_eq!(tail["schema"]["format"], "int64", "{tail}");
    }

    #[test]
    fn service_parameters_list_the_services_of_the_server() {
        let config = crate::packs::PacksConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packs_config"
        )))
        .expect("the shipped packs_config loads");
        let doc = document_for(&config);
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "query" && (p["name"] == "service" || p["name"] == "project") {
                        seen += 1;
                        assert_eq!(p["schema"]["enum"], json!(["demo", "demo-py"]), "{method} {path}");
                    }
                }
            }
        }
        assert!(seen >= 5, "{seen}");
    }
}
