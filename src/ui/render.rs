//! Turning a view into an HTML response: the embedded templates, the page layout, the
//! security headers every page carries, and error pages.
//!
//! Templates are compiled into the binary (`include_str!`) and loaded once. Autoescaping is
//! on for every template (they are all `.html`), so a value from test output or user input is
//! text wherever a template puts it; the one `|safe` use is for SVG made by `chart`, which
//! escapes its own labels. Undefined variables are errors, so a typo in a template fails the
//! tests that render it instead of rendering nothing.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::assets;
use crate::api::{ApiError, AppState};

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("run.html", include_str!("templates/run.html")),
    ("service.html", include_str!("templates/service.html")),
    ("test.html", include_str!("templates/test.html")),
    ("compare.html", include_str!("templates/compare.html")),
    ("rules.html", include_str!("templates/rules.html")),
    ("schedules.html", include_str!("templates/schedules.html")),
    ("schedule_form.html", include_str!("templates/schedule_form.html")),
    ("regressions.html", include_str!("templates/regressions.html")),
    (
        "regression_form.html",
        include_str!("templates/regression_form.html"),
    ),
    ("regression.html", include_str!("templates/regression.html")),
    ("error.html", include_str!("templates/error.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("embedded template {name} does not parse: {e:#}"));
    }
    env
});

/// What every page's frame needs: title, navigation, and what its live updates listen for.
#[derive(Serialize, Debug, Clone)]
pub struct Layout {
    pub title: String,
    /// The navigation entry to highlight (`queue`, `schedules`, `service:<name>`).
    pub nav: String,
    pub services: Vec<String>,
    /// Whether changes need an API token (static tokens, a roles file, or Kubernetes).
    pub auth_required: bool,
    /// Changes that make the page refresh its live parts: space-separated `Kind` or
    /// `Kind/name` (empty: the page does not update itself).
    pub watch: String,
    /// How long the page waits to gather changes before refetching, in milliseconds.
    pub gather_ms: u32,
    pub asset_version: &'static str,
}

impl Layout {
    pub fn new(state: &AppState, title: impl Into<String>, nav: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            nav: nav.into(),
            services: state.config.services().map(|s| s.name.clone()).collect(),
            auth_required: state.auth.writes_need_token(),
            watch: String::new(),
            gather_ms: 150,
            asset_version: assets::version(),
        }
    }

    /// Makes the page refresh its live parts on these changes.
    pub fn watching(mut self, watch: impl Into<String>, gather_ms: u32) -> Layout {
        self.watch = watch.into();
        self.gather_ms = gather_ms;
        self
    }
}

/// Renders a template with `layout` and `view` into a string.
pub fn render_to_string(template: &str, layout: &Layout, view: &impl Serialize) -> Result<String, String> {
    let ctx = minijinja::context! {
        layout => Value::from(Serde(layout)),
        view => Value::from(Serde(view)),
    };
    ENV.get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| format!("{e:#}"))
}

/// Headers of every HTML page: no script or style from anywhere but this server (a second
/// line of defence behind escaping), no framing (the pages have buttons), no caching (the
/// pages are live data).
fn with_page_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An HTML page, or the error page when the template fails.
pub fn page(template: &str, layout: &Layout, view: &impl Serialize) -> Response {
    match render_to_string(template, layout, view) {
        Ok(html) => with_page_headers(axum::response::Html(html).into_response()),
        Err(e) => UiError::from(ApiError::internal("a page failed to render", e)).into_response(),
    }
}

/// An error answered as a page (a browser asked, not an API client).
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn not_found(message: impl Into<String>) -> UiError {
        UiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError {
            status: e.status,
            message: e.message,
        }
    }
}

#[derive(Serialize)]
struct ErrorView<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let layout = Layout {
            title: self.status.canonical_reason().unwrap_or("Error").to_string(),
            nav: String::new(),
            services: Vec::new(),
            auth_required: false,
            watch: String::new(),
            gather_ms: 0,
            asset_version: assets::version(),
        };
        let view = ErrorView {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
        };
        let html = render_to_string("error.html", &layout, &view)
            // The error page is static apart from escaped text; if even it fails, say so plainly.
            .unwrap_or_else(|e| {
                format!(
                    "<!doctype html><title>Error</title><p>{}</p>",
                    super::chart::escape(&e)
                )
            });
        with_page_headers((self.status, axum::response::Html(html)).into_response())
    }
}
