//! Nightly schedules end to end: the real binary, real time, real restarts.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Server;

fn schedule(name: &str, cron: &str, suspend: bool) -> Value {
    json!({
        "apiVersion": "tomato.dev/v1alpha1",
        "kind": "NightlySchedule",
        "metadata": {"name": name},
        "spec": {"service": "demo", "stand": "localhost", "category": "smoke", "schedule": cron,
                 "timeZone": "Europe/Moscow", "suspend": suspend, "emails": ["qa@example.com"]}
    })
}

async fn runs_of(server: &Server, schedule: &str) -> Vec<Value> {
    let (code, list) = server.get(&format!("/api/v1/runs?schedule={schedule}")).await;
    assert_eq!(code, 200, "{list}");
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn nightly_queues_one_run_per_active_schedule_of_the_service() {
    let server = Server::start().await;
    for (name, suspend) in [("nightly-a", false), ("nightly-b", false), ("nightly-off", true)] {
        let (code, body) = server
            .post_json("/api/v1/schedules", &schedule(name, "0 2 * * *", suspend))
            .await;
        assert_eq!(code, 201, "{body}");
        assert_eq!(
            body["spec"]["concurrencyPolicy"], "Forbid",
            "defaults are filled in"
        );
        assert_eq!(body["spec"]["successfulRunsHistoryLimit"], 7);
    }
    let (code, body) = server.post("/api/nightly?service=demo").await;
    assert_eq!(code, 200, "{body}");
    let ids: Vec<&str> = body["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{body}");
    for id in &ids {
        let st = server.status(id).await;
        assert_eq!(st["type"], "Nightly", "{st}");
        assert_eq!(st["emails"], json!(["qa@example.com"]));
    }
    assert_eq!(runs_of(&server, "nightly-a").await.len(), 1);
    assert_eq!(
        runs_of(&server, "nightly-off").await.len(),
        0,
        "a suspended schedule is not triggered"
    );
    let run = &runs_of(&server, "nightly-b").await[0];
    assert_eq!(run["metadata"]["labels"]["tomato.dev/schedule"], "nightly-b");
    assert_eq!(run["metadata"]["ownerReferences"][0]["kind"], "NightlySchedule");

    // Each schedule's status names the run /api/nightly started as its last run.
    for (schedule, run) in [
        ("nightly-a", runs_of(&server, "nightly-a").await),
        ("nightly-b", runs_of(&server, "nightly-b").await),
    ] {
        let id = run[0]["metadata"]["name"].as_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_, s) = server.get(&format!("/api/v1/schedules/{schedule}")).await;
            if s["status"]["lastRun"] == id.as_str() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "lastRun of {schedule} is {id}: {s:#}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    // The status shows the next fire time (02:00 Moscow = 23:00 UTC).
    let (_, s) = server.get("/api/v1/schedules/nightly-a").await;
    let next = s["status"]["nextScheduleTime"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(next.contains("T23:00:00"), "{s:#}");

    let (code, body) = server.post("/api/nightly?service=demo-py").await;
    assert_eq!((code, body["run_ids"].as_array().map(Vec::len)), (200, Some(0)));
}

#[tokio::test]
async fn invalid_schedules_are_refused_with_the_field_named_and_nothing_is_stored() {
    let server = Server::start().await;
    let cases = [
        (json!({"schedule": "every night"}), "spec.schedule"),
        (json!({"schedule": "0 25 * * *"}), "spec.schedule"),
        (json!({"timeZone": "Moon/Base"}), "spec.timeZone"),
        (json!({"service": "nope"}), "spec.service"),
        (json!({"category": "weekly"}), "spec.category"),
        (
            json!({"concurrencyPolicy": "Sometimes"}),
            "spec.concurrencyPolicy",
        ),
        (
            json!({"startingDeadlineSeconds": -1}),
            "spec.startingDeadlineSeconds",
        ),
        (json!({"stand": "prod.example.com"}), "spec.stand"),
        (json!({"scheduel": "0 2 * * *"}), "spec.scheduel"),
    ];
    for (patch, field) in cases {
        let mut body = schedule("bad", "0 2 * * *", false);
        for (k, v) in patch.as_object().unwrap() {
            body["spec"][k] = v.clone();
        }
        let (code, err) = server.post_json("/api/v1/schedules", &body).await;
        assert_eq!(code, 400, "{patch}: {err}");
        assert_eq!(err["parameter"], field, "{patch}: {err}");
    }
    let (_, list) = server.get("/api/v1/schedules").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn schedules_can_be_read_replaced_suspended_and_deleted() {
    let server = Server::start().await;
    server
        .post_json("/api/v1/schedules", &schedule("edit-me", "0 2 * * *", false))
        .await;
    let mut body = schedule("edit-me", "30 3 * * 1-5", false);
    body["spec"]["timeZone"] = json!("UTC");
    let (code, s) = server
        .send(
            server
                .client
                .put(format!("{}/api/v1/schedules/edit-me", server.url))
                .json(&body),
        )
        .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["spec"]["schedule"], "30 3 * * 1-5");
    let (code, s) = server
        .send(
            server
                .client
                .patch(format!("{}/api/v1/schedules/edit-me", server.url))
                .json(&json!({"spec": {"suspend": true}})),
        )
        .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        (s["spec"]["suspend"].as_bool(), s["spec"]["schedule"].as_str()),
        (Some(true), Some("30 3 * * 1-5"))
    );
    let (code, err) = server
        .send(
            server
                .client
                .patch(format!("{}/api/v1/schedules/edit-me", server.url))
                .json(&json!({"spec": {"timeZone": "Nowhere"}})),
        )
        .await;
    assert_eq!((code, err["parameter"].as_str()), (400, Some("spec.timeZone")));
    let (code, s) = server
        .send(
            server
                .client
                .patch(format!("{}/api/v1/schedules/edit-me", server.url))
                .json(&json!({"spec": {"service": "demo-py", "category": null}})),
        )
        .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        s["metadata"]["labels"]["tomato.dev/service"], "demo-py",
        "the service label follows the spec"
    );
    let (_, list) = server.get("/api/v1/schedules?service=demo-py").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (code, err) = server.get("/api/v1/schedules?service=demo-pi").await;
    assert_eq!(
        (code, err["parameter"].as_str()),
        (400, Some("service")),
        "a typo is not 'none'"
    );
    let (code, t) = server.post("/api/v1/schedules/edit-me/trigger").await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(
        server.status(t["runId"].as_str().unwrap()).await["type"],
        "Nightly"
    );
    let (code, _) = server
        .send(
            server
                .client
                .delete(format!("{}/api/v1/schedules/edit-me", server.url)),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = server.get("/api/v1/schedules/edit-me").await;
    assert_eq!(code, 404);
}

/// A `* * * * *` schedule fires by itself within about a minute; a `kill -9` and restart
/// right after it fired does not fire that minute again; deleting the schedule stops it.
#[tokio::test]
async fn an_every_minute_schedule_fires_on_time_survives_a_restart_and_stops_when_deleted() {
    let mut server = Server::start().await;
    let mut body = schedule("every-minute", "* * * * *", false);
    body["spec"]["concurrencyPolicy"] = json!("Allow");
    let (code, s) = server.post_json("/api/v1/schedules", &body).await;
    assert_eq!(code, 201, "{s}");

    let deadline = Instant::now() + Duration::from_secs(75);
    let first = loop {
        let runs = runs_of(&server, "every-minute").await;
        if let Some(r) = runs.first() {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no run within 75 s:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(first["spec"]["type"], "Nightly");
    let (_, s) = server.get("/api/v1/schedules/every-minute").await;
    assert_eq!(s["status"]["lastRun"], first["metadata"]["name"], "{s:#}");
    assert!(s["status"]["lastScheduleTime"].is_string());
    // The schedules page shows how that run stands beside its name.
    let (_, page) = server.get_text("/schedules").await;
    let last = first["metadata"]["name"].as_str().unwrap();
    let cell = page
        .split(&format!(">{last}</a>"))
        .nth(1)
        .unwrap_or_else(|| panic!("{last} on the page:\n{page}"));
    assert!(
        cell.trim_start().starts_with("<span class=\"badge phase-"),
        "{cell}"
    );

    // Restart at once: the minute that just fired must not fire again.
    server.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = runs_of(&server, "every-minute").await;
    let names: Vec<&str> = runs.iter().map(|r| r.metadata_name()).collect();
    let minute = |n: &str| n.rsplit('-').next().unwrap().to_string();
    let mut minutes: Vec<String> = names.iter().map(|n| minute(n)).collect();
    minutes.dedup();
    assert_eq!(
        minutes.len(),
        names.len(),
        "one run per scheduled minute: {names:?}"
    );
    assert!(names.len() <= 2, "{names:?}");

    // Deleted: no more runs, even after the next minute boundary.
    let (code, _) = server
        .send(
            server
                .client
                .delete(format!("{}/api/v1/schedules/every-minute", server.url)),
        )
        .await;
    assert_eq!(code, 200);
    let count = runs_of(&server, "every-minute").await.len();
    tokio::time::sleep(Duration::from_secs(62)).await;
    assert_eq!(
        runs_of(&server, "every-minute").await.len(),
        count,
        "a deleted schedule started a run"
    );
}

trait Named {
    fn metadata_name(&self) -> &str;
}

impl Named for Value {
    fn metadata_name(&self) -> &str {
        self["metadata"]["name"].as_str().unwrap_or_default()
    }
}
