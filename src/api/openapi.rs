//! The OpenAPI document of `/api` and `/api/v1`, generated from the handlers' annotations.
//!
//! Resource schemas (TestRun and its parts) come from the same schemars derivation as the
//! CRDs, so the API document and `kubectl explain` never disagree.

use axum::Json;
use schemars::generate::SchemaSettings;
use utoipa::OpenApi;
use utoipa::openapi::{RefOr, Schema};

use super::{legacy, regressions, runs, schedules, uploads, v1};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tomato", description = "Runs a QA team's autotests: queue, launch, rerun failed tests, classify, report."),
    paths(
        legacy::runned, legacy::run_now, legacy::nightly, legacy::status,
        v1::index, v1::runs_list, v1::runs_create, v1::runs_get, v1::runs_cancel, v1::runs_patch, v1::runs_tests,
        v1::attempt_log, v1::attempt_junit, v1::services_list, v1::services_get, v1::services_queue,
        schedules::schedules_list, schedules::schedules_create, schedules::schedules_get, schedules::schedules_replace,
        schedules::schedules_patch, schedules::schedules_delete, schedules::schedules_trigger,
        regressions::regressions_list, regressions::regressions_create, regressions::regressions_get,
        regressions::regressions_patch, regressions::regressions_delete,
        uploads::attempt_results_upload,
    ),
    components(schemas(
        super::ErrorBody, legacy::RunId, legacy::RunIds, runs::QueueView, runs::QueueEntry, runs::ServiceQueue, runs::QueuedRun, super::FieldError, runs::LegacyStatus,
        runs::TestView, runs::TestAttempt, v1::ServiceView, v1::ApiIndex, schedules::Deleted, schedules::Triggered, uploads::Received,
    )),
    tags(
        (name = "legacy", description = "The old tool's four handles, kept byte for byte where its clients depend on them"),
        (name = "runs", description = "Test runs"),
        (name = "services", description = "Services from packs_config"),
        (name = "schedules", description = "Nightly schedules (CronJob semantics)"),
        (name = "regressions", description = "Manual regressions of a release, handed to assessors"),
    )
)]
struct ApiDoc;

/// The document, with the resource schemas added.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut generator = SchemaSettings::openapi3().into_generator();
    let _ = generator.subschema_for::<crate::crd::TestRun>();
    let _ = generator.subschema_for::<crate::crd::NightlySchedule>();
    let _ = generator.subschema_for::<crate::crd::Regression>();
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in generator.take_definitions(true) {
        // schemars writes JSON Schema; utoipa reads the same JSON. A schema utoipa cannot
        // represent is left out rather than failing the whole document.
        if let Ok(s) = serde_json::from_value::<RefOr<Schema>>(schema) {
            components.schemas.insert(name, s);
        }
    }
    doc
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path parameter appears in its path, every query parameter is optional unless the
    /// handler needs it: a client generated from the document calls the real routes.
    #[test]
    fn parameters_are_where_the_routes_take_them() {
        let doc = serde_json::to_value(document()).unwrap();
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
}
