//! The regressions pages: the list (phase and progress of each campaign), the form that starts
//! one, and one regression (progress per assessor, links to the test run and the ticket, what
//! was created, the notifications, and delete).
//!
//! Progress bars are SVG drawn here (the pages' Content-Security-Policy allows no inline
//! style); creating and deleting go through `/api/v1/regressions`, like every change the UI
//! makes, so the form's field errors are the API's.

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::chart::escape;
use super::format;
use super::render::{Layout, UiError, page};
use crate::api::AppState;
use crate::crd::{ChannelReport, Counts, Regression, RegressionPhase};

/// A stacked bar of verdicts: passed, failed, blocked, then the cases without one.
pub fn progress_bar(c: &Counts, label: &str) -> String {
    const WIDTH: f64 = 200.0;
    let total = f64::from(c.total.max(1));
    let mut x = 0.0;
    let mut rects = String::new();
    for (n, class) in [
        (c.passed, "passed"),
        (c.failed, "failed"),
        (c.blocked, "blocked"),
        (c.idle, "idle"),
    ] {
        if n == 0 {
            continue;
        }
        let w = WIDTH * f64::from(n) / total;
        rects.push_str(&format!(
            r#"<rect class="{class}" x="{x:.1}" y="0" width="{w:.1}" height="10"><title>{n} {class}</title></rect>"#
        ));
        x += w;
    }
    format!(
        r#"<svg class="progress-bar" viewBox="0 0 200 10" preserveAspectRatio="none" role="img" aria-label="{}">{rects}</svg>"#,
        escape(&format!(
            "{label}: {} of {} with a verdict",
            c.total - c.idle,
            c.total
        ))
    )
}

/// The phase as the badge shows it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PhaseView {
    pub name: &'static str,
    pub class: &'static str,
}

pub fn phase_view(p: RegressionPhase) -> PhaseView {
    let class = match p {
        RegressionPhase::Pending => "queued",
        RegressionPhase::Preparing | RegressionPhase::InProgress => "running",
        RegressionPhase::Overdue => "error",
        RegressionPhase::Reporting => "reporting",
        RegressionPhase::Completed => "succeeded",
        RegressionPhase::Failed => "failed",
    };
    PhaseView {
        name: p.as_str(),
        class,
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct AssessorRow {
    pub assessor: String,
    pub counts: Counts,
    pub bar: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct NotificationRow {
    pub what: &'static str,
    pub state: &'static str,
    pub class: &'static str,
    pub detail: String,
}

/// One regression, as both pages show it.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RegressionView {
    pub name: String,
    pub service: String,
    pub version: String,
    pub stand: String,
    pub plan: String,
    pub phase: PhaseView,
    pub message: Option<String>,
    pub deadline: Option<String>,
    pub deadline_in: Option<String>,
    pub counts: Counts,
    pub bar: String,
    pub assessors: Vec<AssessorRow>,
    pub run_url: Option<String>,
    pub ticket: Option<String>,
    pub ticket_url: Option<String>,
    pub created: Vec<String>,
    pub notifications: Vec<NotificationRow>,
    pub deleting: bool,
    /// Whether the deadline can still be moved: neither finished nor being deleted.
    pub editable: bool,
    /// The deadline as an instant, for the browser to show in its own zone.
    pub deadline_rfc3339: Option<String>,
}

fn notification(what: &'static str, ch: &Option<ChannelReport>) -> Option<NotificationRow> {
    let ch = ch.as_ref()?;
    let (state, class) = super::view::delivery_label(ch);
    let detail = match (&ch.reason, ch.sent_to.is_empty()) {
        (Some(r), true) => r.clone(),
        (Some(r), false) => format!("to {}; {r}", ch.sent_to.join(", ")),
        (None, false) => format!("to {}", ch.sent_to.join(", ")),
        (None, true) => String::new(),
    };
    Some(NotificationRow {
        what,
        state,
        class,
        detail,
    })
}

pub fn regression_view(r: &Regression, now: DateTime<Utc>) -> RegressionView {
    let st = r.status.clone().unwrap_or_default();
    let progress = st.progress.clone().unwrap_or_default();
    let plan = st.tms.as_ref().map(|t| t.plan_name.clone()).unwrap_or_else(|| {
        r.spec
            .plan
            .as_ref()
            .map(|p| match p {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => format!("#{i}"),
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
            })
            .unwrap_or_else(|| "the service's default".into())
    });
    RegressionView {
        name: r.metadata.name.clone().unwrap_or_default(),
        service: r.spec.service.clone(),
        version: r.spec.version.clone(),
        stand: r.spec.stand.clone(),
        plan,
        phase: phase_view(st.phase),
        message: st.message.clone(),
        deadline: r
            .spec
            .deadline
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string()),
        deadline_in: r
            .spec
            .deadline
            .filter(|d| *d > now && !st.phase.is_terminal())
            .map(|d| format!("in {}", format::duration(format::seconds_between(now, d)))),
        counts: progress.counts,
        bar: progress_bar(&progress.counts, "all cases"),
        assessors: progress
            .assessors
            .iter()
            .map(|a| AssessorRow {
                assessor: a.assessor.clone(),
                counts: a.counts,
                bar: progress_bar(&a.counts, &a.assessor),
            })
            .collect(),
        run_url: st.tms.as_ref().and_then(|t| t.run_url.clone()),
        ticket: st.ticket.as_ref().map(|t| t.key.clone()),
        ticket_url: st.ticket.as_ref().and_then(|t| t.url.clone()),
        created: st.created.clone(),
        notifications: [
            notification("Assessors' emails", &st.assessor_emails),
            notification("Summary on the ticket", &st.summary_comment),
            notification("Report email", &st.report_email),
        ]
        .into_iter()
        .flatten()
        .collect(),
        deleting: r.metadata.deletion_timestamp.is_some(),
        editable: r.metadata.deletion_timestamp.is_none() && !st.phase.is_terminal(),
        deadline_rfc3339: r.spec.deadline.map(|d| d.to_rfc3339()),
    }
}

#[derive(Serialize)]
struct ListView {
    regressions: Vec<RegressionView>,
    /// Why no regression can run here (no test management configured), when that is so.
    unavailable: Option<&'static str>,
}

/// `GET /regressions`: every regression, newest first, with its progress.
pub async fn regressions_list(State(state): State<AppState>) -> Result<Response, UiError> {
    let now = Utc::now();
    let regressions = state
        .backend
        .list_regressions(None)
        .await?
        .iter()
        .map(|r| regression_view(r, now))
        .collect();
    let layout = Layout::new(&state, "Regressions", "regressions").watching("Regression", 300);
    let unavailable = (!state.tms_configured).then_some(crate::api::NO_TMS);
    Ok(page(
        "regressions.html",
        &layout,
        &ListView {
            regressions,
            unavailable,
        },
    ))
}

/// `GET /regressions/{name}`: one regression.
pub async fn regressions_show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    let r = state
        .backend
        .get_regression(&name)
        .await?
        .ok_or_else(|| UiError::not_found(format!("There is no regression {name}.")))?;
    let view = regression_view(&r, Utc::now());
    let layout = Layout::new(&state, format!("Regression {name}"), "regressions")
        .watching(format!("Regression/{name}"), 300);
    Ok(page("regression.html", &layout, &view))
}

/// What the new-regression form offers for one service.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RegressionServiceChoice {
    pub name: String,
    pub stand_pattern: String,
    /// The service's `regression.plan`, used when the form names no plan.
    pub default_plan: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RegressionForm {
    pub services: Vec<RegressionServiceChoice>,
    /// Why the form would be refused (no test management configured), when that is so.
    pub unavailable: Option<&'static str>,
    /// The service chosen first: the one asked for in `?service=`, else the first.
    pub service: String,
}

/// The new-regression form's choices, `service` preselected when it is one of them.
pub fn regression_form(config: &crate::packs::PacksConfig, service: Option<&str>) -> RegressionForm {
    let services: Vec<RegressionServiceChoice> = config
        .services()
        .map(|svc| RegressionServiceChoice {
            name: svc.name.clone(),
            stand_pattern: svc.stand_pattern_source(),
            default_plan: svc.regression_plan.as_ref().map(|p| match p {
                crate::integrations::tms::PlanRef::Id(id) => format!("#{id}"),
                crate::integrations::tms::PlanRef::Name(n) => n.clone(),
            }),
        })
        .collect();
    let service = service
        .filter(|s| services.iter().any(|c| c.name == *s))
        .or(services.first().map(|c| c.name.as_str()))
        .unwrap_or_default()
        .to_string();
    RegressionForm {
        services,
        service,
        unavailable: None,
    }
}

#[derive(serde::Deserialize)]
pub struct NewQuery {
    service: Option<String>,
}

/// `GET /regressions/new`: the form that hands a release's regression to assessors.
pub async fn regressions_new(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<NewQuery>,
) -> Result<Response, UiError> {
    let mut form = regression_form(&state.config, q.service.as_deref());
    form.unavailable = (!state.tms_configured).then_some(crate::api::NO_TMS);
    let layout = Layout::new(&state, "New regression", "regressions");
    Ok(page("regression_form.html", &layout, &form))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_offers_each_service_with_its_stand_pattern_and_default_plan() {
        let config = crate::packs::PacksConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packs_config"
        )))
        .unwrap();
        let form = regression_form(&config, Some("demo-py"));
        assert_eq!(form.service, "demo-py");
        let demo = form.services.iter().find(|s| s.name == "demo").unwrap();
        assert_eq!(demo.default_plan.as_deref(), Some("demo regression"));
        assert!(!demo.stand_pattern.is_empty());
        let py = form.services.iter().find(|s| s.name == "demo-py").unwrap();
        assert_eq!(py.default_plan, None);
        assert_eq!(
            regression_form(&config, Some("nope")).service,
            form.services[0].name,
            "an unknown service in the query falls back to the first"
        );
    }

    #[test]
    fn the_progress_bar_is_svg_with_a_segment_per_outcome_and_an_escaped_label() {
        let c = Counts {
            total: 4,
            idle: 1,
            passed: 2,
            failed: 1,
            blocked: 0,
        };
        let svg = progress_bar(&c, "<alice>");
        assert!(
            svg.contains(r#"aria-label="&lt;alice&gt;: 3 of 4 with a verdict""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect class="passed" x="0.0" y="0" width="100.0""#),
            "{svg}"
        );
        assert!(svg.contains(r#"<rect class="idle" x="150.0""#), "{svg}");
        assert!(!svg.contains("blocked"), "{svg}");
    }
}
