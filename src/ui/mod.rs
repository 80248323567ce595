//! The web UI: the live queue with run-now forms, run pages, schedules and service history,
//! served by the same axum app as the API.
//!
//! Server-rendered: each page is built from the backend by a thin handler ([`pages`],
//! [`schedules`], [`regressions`]) into a
//! view model ([`view`], pure) and laid out by an embedded minijinja template ([`render`]),
//! with charts drawn as SVG by the server ([`chart`]). A little hand-written script
//! ([`assets`]) makes pages live — on each change announced by [`events`] (Server-Sent Events)
//! a page refetches itself and swaps in its fresh parts — and sends changes to `/api/v1`, so
//! the UI has no write path of its own: the API's validation, tokens and errors are the UI's.
//! [`csrf`] refuses state-changing requests sent by a browser on behalf of another site.
//! Nothing is fetched from elsewhere at run time and there is no front-end build.

mod assets;
pub mod chart;
mod compare;
mod csrf;
mod events;
pub mod format;
mod pages;
mod regressions;
mod render;
mod rules;
mod schedules;
mod test_history;
pub mod view;

use axum::Router;
use axum::routing::get;

pub use csrf::refuse_cross_site_writes;

use crate::api::AppState;

/// The UI's routes, merged into [`crate::app::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::dashboard_show))
        .route("/runs/{id}", get(pages::runs_show))
        .route("/runs/{id}/compare", get(compare::runs_compare))
        .route("/services/{name}", get(pages::services_history))
        .route("/services/{name}/tests/{id}", get(test_history::tests_show))
        .route("/services/{name}/rules", get(rules::rules_suggest))
        .route("/schedules", get(schedules::schedules_list))
        .route("/schedules/new", get(schedules::schedules_new))
        .route("/schedules/{name}/edit", get(schedules::schedules_edit))
        .route("/regressions", get(regressions::regressions_list))
        .route("/regressions/new", get(regressions::regressions_new))
        .route("/regressions/{name}", get(regressions::regressions_show))
        .route("/ui/events", get(events::events_stream))
        .route("/ui/static/{name}", get(assets::static_file))
}
