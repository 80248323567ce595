//! The schedules pages: the list (next run in each schedule's own time zone, suspend/resume,
//! run now, delete) and the create/edit form.
//!
//! Schedules are read from the backend, as runs are; their status (next and last fire time,
//! active runs) is the scheduler's. Changes, like every change the UI makes, are sent by the
//! browser to `/api/v1/schedules`, which owns their validation.

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::format;
use super::render::{Layout, UiError, page};
use crate::api::AppState;
use crate::crd::{ConcurrencyPolicy, NightlySchedule, NightlyScheduleSpec, Priority};

/// An instant in an IANA zone, to the minute, with the zone's abbreviation: `2024-05-02 02:00 MSK`.
pub fn in_zone(t: DateTime<Utc>, zone: &str) -> Result<String, String> {
    let tz: chrono_tz::Tz = zone.parse().map_err(|_| format!("unknown time zone {zone:?}"))?;
    Ok(t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
}

fn policy_name(p: ConcurrencyPolicy) -> &'static str {
    match p {
        ConcurrencyPolicy::Allow => "Allow",
        ConcurrencyPolicy::Forbid => "Forbid",
        ConcurrencyPolicy::Replace => "Replace",
    }
}

/// One schedule in the list.
#[derive(Serialize, Debug)]
pub struct ScheduleRow {
    pub name: String,
    pub service: String,
    pub stand: String,
    pub what: String,
    pub schedule: String,
    pub time_zone: String,
    pub suspended: bool,
    pub policy: &'static str,
    /// Next fire time in the schedule's zone, and how far off it is.
    pub next: Option<String>,
    pub next_in: Option<String>,
    pub last: Option<String>,
    pub last_run: Option<String>,
    /// How the last run stands (it may have been deleted by the history limits).
    pub last_phase: Option<super::view::PhaseView>,
    pub active: Vec<String>,
    /// Why a time could not be shown in the zone.
    pub zone_error: Option<String>,
}

pub fn schedule_row(s: &NightlySchedule, now: DateTime<Utc>) -> ScheduleRow {
    let spec = &s.spec;
    let st = s.status.clone().unwrap_or_default();
    let t = &spec.template;
    let zoned = |at: Option<DateTime<Utc>>| at.map(|at| in_zone(at, &spec.time_zone));
    let next = zoned(st.next_schedule_time);
    let last = zoned(st.last_schedule_time);
    let zone_error = [&next, &last]
        .into_iter()
        .find_map(|r| r.as_ref().and_then(|r| r.as_ref().err().cloned()));
    ScheduleRow {
        name: s.metadata.name.clone().unwrap_or_default(),
        service: t.service.clone(),
        stand: t.stand.clone(),
        what: if !t.packs.is_empty() {
            t.packs.join(", ")
        } else {
            t.category.clone().unwrap_or_else(|| "all packs".into())
        },
        schedule: spec.schedule.clone(),
        time_zone: spec.time_zone.clone(),
        suspended: spec.suspend,
        policy: policy_name(spec.concurrency_policy),
        next: next.and_then(Result::ok).filter(|_| !spec.suspend),
        next_in: st
            .next_schedule_time
            .filter(|_| !spec.suspend)
            .map(|at| format!("in {}", format::duration(format::seconds_between(now, at)))),
        last: last.and_then(Result::ok),
        last_run: st.last_run.clone(),
        last_phase: None,
        active: st.active.clone(),
        zone_error,
    }
}

#[derive(Serialize)]
struct SchedulesView {
    schedules: Vec<ScheduleRow>,
}

/// `GET /schedules`: every schedule with its next run in its own time zone.
pub async fn schedules_list(State(state): State<AppState>) -> Result<Response, UiError> {
    let now = Utc::now();
    let mut schedules: Vec<ScheduleRow> = state
        .backend
        .list_schedules(None)
        .await?
        .iter()
        .map(|s| schedule_row(s, now))
        .collect();
    // How each last run stands: looked up together, not one after another.
    let phases = futures::future::try_join_all(schedules.iter().map(|row| async {
        match &row.last_run {
            Some(last) => state.backend.get_run(last).await,
            None => Ok(None),
        }
    }))
    .await?;
    for (row, run) in schedules.iter_mut().zip(phases) {
        row.last_phase = run.map(|r| super::view::phase(r.status.map(|st| st.phase).unwrap_or_default()));
    }
    schedules.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    let layout = Layout::new(&state, "Schedules", "schedules").watching("NightlySchedule TestRun", 500);
    Ok(page("schedules.html", &layout, &SchedulesView { schedules }))
}

/// What the form offers for one service (its packs and presets show when it is chosen).
#[derive(Serialize, Debug)]
pub struct ServiceChoice {
    pub name: String,
    pub presets: Vec<super::view::PresetOption>,
    pub packs: Vec<super::view::PackOption>,
    pub stand_pattern: String,
}

/// The form's fields, filled from an existing schedule or with the defaults.
#[derive(Serialize, Debug)]
pub struct ScheduleForm {
    pub editing: bool,
    pub name: String,
    pub services: Vec<ServiceChoice>,
    pub service: String,
    pub stand: String,
    pub category: String,
    pub packs: Vec<String>,
    pub emails: String,
    pub issue_key: String,
    pub version: String,
    pub priority: Priority,
    pub priorities: Vec<Priority>,
    pub retries: String,
    pub timeout: String,
    pub schedule: String,
    pub time_zone: String,
    pub zones: Vec<&'static str>,
    pub suspend: bool,
    pub policy: &'static str,
    pub policies: [&'static str; 3],
    pub starting_deadline_seconds: String,
    pub successful_limit: u32,
    pub failed_limit: u32,
    /// The schedule's `env` as JSON: the form does not edit it, and an edit keeps it.
    pub env_json: String,
}

fn service_choices(state: &AppState) -> Vec<ServiceChoice> {
    state
        .config
        .services()
        .map(|svc| {
            let form = super::view::run_form(svc, &[]);
            ServiceChoice {
                name: svc.name.clone(),
                presets: form.presets,
                packs: form.packs,
                stand_pattern: form.stand_pattern,
            }
        })
        .collect()
}

/// The form for `existing`, or for a new schedule (the CRD's defaults).
pub fn schedule_form(
    services: Vec<ServiceChoice>,
    name: &str,
    existing: Option<&NightlyScheduleSpec>,
) -> ScheduleForm {
    let defaults: NightlyScheduleSpec = serde_json::from_value(serde_json::json!({
        "service": services.first().map_or("", |s| s.name.as_str()),
        "stand": "",
    }))
    .expect("a spec with service and stand takes its other fields from the defaults");
    let spec = existing.unwrap_or(&defaults);
    let t = &spec.template;
    ScheduleForm {
        editing: existing.is_some(),
        name: name.to_string(),
        services,
        service: t.service.clone(),
        stand: t.stand.clone(),
        category: t.category.clone().unwrap_or_default(),
        packs: t.packs.clone(),
        emails: t.emails.join(", "),
        issue_key: t.issue_key.clone().unwrap_or_default(),
        version: t.version.clone().unwrap_or_default(),
        priority: t.priority,
        priorities: Priority::all().collect(),
        retries: t.retries.map(|r| r.to_string()).unwrap_or_default(),
        timeout: spec.timeout.clone().unwrap_or_default(),
        schedule: spec.schedule.clone(),
        time_zone: spec.time_zone.clone(),
        zones: chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect(),
        suspend: spec.suspend,
        policy: policy_name(spec.concurrency_policy),
        policies: ["Forbid", "Allow", "Replace"],
        starting_deadline_seconds: spec
            .starting_deadline_seconds
            .map(|s| s.to_string())
            .unwrap_or_default(),
        successful_limit: spec.successful_runs_history_limit,
        failed_limit: spec.failed_runs_history_limit,
        env_json: serde_json::to_string(&t.env).expect("env vars always serialize"),
    }
}

/// `GET /schedules/new`: the form for a new schedule.
pub async fn schedules_new(State(state): State<AppState>) -> Result<Response, UiError> {
    let form = schedule_form(service_choices(&state), "", None);
    let layout = Layout::new(&state, "New schedule", "schedules");
    Ok(page("schedule_form.html", &layout, &form))
}

/// `GET /schedules/{name}/edit`: the form filled with a schedule.
pub async fn schedules_edit(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    let schedule = state.backend.get_schedule(&name).await?.ok_or_else(|| {
        UiError::not_found(format!(
            "There is no schedule {name:?}. It may have been deleted."
        ))
    })?;
    let form = schedule_form(service_choices(&state), &name, Some(&schedule.spec));
    let layout = Layout::new(&state, format!("Edit {name}"), "schedules");
    Ok(page("schedule_form.html", &layout, &form))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(zone: &str, next: Option<&str>, suspend: bool) -> NightlySchedule {
        let mut s = NightlySchedule::new(
            "demo-nightly",
            serde_json::from_value(serde_json::json!({
                "service": "demo", "stand": "localhost", "category": "smoke",
                "schedule": "0 2 * * *", "timeZone": zone, "suspend": suspend,
            }))
            .unwrap(),
        );
        s.status = Some(crate::crd::NightlyScheduleStatus {
            next_schedule_time: next.map(at),
            last_run: Some("demo-abc".into()),
            ..Default::default()
        });
        s
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_next_run_is_shown_in_the_schedules_own_zone() {
        let s = schedule("Europe/Moscow", Some("2024-05-01T23:00:00Z"), false);
        let row = schedule_row(&s, at("2024-05-01T18:00:00Z"));
        assert_eq!(row.next.as_deref(), Some("2024-05-02 02:00 MSK"));
        assert_eq!(row.next_in.as_deref(), Some("in 5h 00m"));
        assert_eq!(row.what, "smoke");
        assert_eq!(row.policy, "Forbid");
        assert_eq!(row.last_run.as_deref(), Some("demo-abc"));
        let ny = schedule("America/New_York", Some("2024-01-15T07:00:00Z"), false);
        assert_eq!(
            schedule_row(&ny, at("2024-01-15T00:00:00Z")).next.as_deref(),
            Some("2024-01-15 02:00 EST")
        );
    }

    #[test]
    fn a_suspended_schedule_has_no_next_run_and_a_bad_zone_is_named() {
        let s = schedule("UTC", Some("2024-05-01T02:00:00Z"), true);
        let row = schedule_row(&s, at("2024-05-01T00:00:00Z"));
        assert!(row.suspended && row.next.is_none() && row.next_in.is_none());
        let bad = schedule("Mars/Olympus", Some("2024-05-01T02:00:00Z"), false);
        let row = schedule_row(&bad, at("2024-05-01T00:00:00Z"));
        assert_eq!(
            row.zone_error.as_deref(),
            Some("unknown time zone \"Mars/Olympus\"")
        );
        assert!(row.next.is_none());
    }

    fn layout() -> Layout {
        Layout {
            title: "t".into(),
            nav: "schedules".into(),
            services: vec!["demo".into()],
            auth_required: false,
            watch: String::new(),
            gather_ms: 0,
            asset_version: "v",
        }
    }

    #[test]
    fn the_list_renders_next_runs_and_escapes_every_value() {
        let mut s = schedule("Europe/Moscow", Some("2024-05-01T23:00:00Z"), false);
        s.spec.template.stand = "<b>stand</b>".into();
        s.spec.schedule = "0 2 * * *\"><script>x()</script>".into();
        let view = SchedulesView {
            schedules: vec![schedule_row(&s, at("2024-05-01T18:00:00Z"))],
        };
        let html = super::super::render::render_to_string("schedules.html", &layout(), &view).unwrap();
        assert!(html.contains("2024-05-02 02:00 MSK"), "{html}");
        assert!(html.contains(r#"data-action="schedule-suspend" data-suspend="true""#));
        assert!(html.contains("&lt;b&gt;stand&lt;&#x2f;b&gt;"), "{html}");
        assert!(!html.contains("<script>x()"), "{html}");
        let empty = SchedulesView { schedules: vec![] };
        let html = super::super::render::render_to_string("schedules.html", &layout(), &empty).unwrap();
        assert!(html.contains("No schedules yet"));
    }

    #[test]
    fn the_form_renders_filled_for_an_edit_with_env_kept_as_escaped_json() {
        let mut spec = schedule("UTC", None, true).spec;
        spec.template.env = vec![crate::crd::EnvVar {
            name: "NOTE".into(),
            value: Some(r#""quoted" <tag>"#.into()),
            value_from: None,
        }];
        let services = vec![ServiceChoice {
            name: "demo".into(),
            presets: vec![],
            packs: vec![],
            stand_pattern: "localhost".into(),
        }];
        let form = schedule_form(services, "demo-nightly", Some(&spec));
        let html = super::super::render::render_to_string("schedule_form.html", &layout(), &form).unwrap();
        assert!(html.contains(r#"data-editing="true""#));
        assert!(html.contains("Save schedule"));
        assert!(html.contains(r#"name="suspend" checked"#), "{html}");
        assert!(
            html.contains("data-env=\"[{&quot;name&quot;:&quot;NOTE&quot;"),
            "{html}"
        );
        assert!(!html.contains("<tag>"));
    }

    #[test]
    fn a_new_schedule_form_starts_from_the_crd_defaults_and_an_edit_keeps_env() {
        let form = schedule_form(vec![], "", None);
        assert!(!form.editing);
        assert_eq!(
            (form.schedule.as_str(), form.time_zone.as_str(), form.policy),
            ("0 2 * * *", "UTC", "Forbid")
        );
        assert_eq!(
            (form.successful_limit, form.failed_limit, form.priority.get()),
            (7, 14, 2)
        );
        assert!(form.zones.contains(&"Europe/Moscow"));

        let mut spec = schedule("UTC", None, true).spec;
        spec.template.env = vec![crate::crd::EnvVar {
            name: "TOKEN".into(),
            value: None,
            value_from: Some(crate::crd::EnvVarSource {
                secret_key_ref: crate::crd::SecretKeySelector {
                    name: "qa".into(),
                    key: "token".into(),
                },
            }),
        }];
        let form = schedule_form(vec![], "demo-nightly", Some(&spec));
        assert!(form.editing && form.suspend);
        assert_eq!(form.category, "smoke");
        assert!(form.env_json.contains("secretKeyRef"), "{}", form.env_json);
    }
}
