//! Tomato runs a QA team's autotests: it queues runs by priority, launches the packs,
//! re-runs only the failed tests, classifies failures and reports — as a Kubernetes operator
//! or as a standalone server over SQLite, with one reconcile core.
//!
//! Layers, lowest first; a module imports only from its own layer or below (the README's
//! "Layout" lists each module):
//! - the pure core decides: [`crd`], [`template`], [`results`], [`classify`], [`packs`],
//!   [`queue`], [`shard`], [`schedule`], [`core`], [`retention`];
//! - [`integrations`] talk to the outside world (SMTP, HTTP, the tracker, test management),
//!   and [`report`] and [`regression`] compose what to say above them;
//! - [`launch`] and [`store`] are the mechanics the drivers use;
//! - the drivers carry the core's decisions out: [`standalone`] over SQLite, [`operator`] over
//!   the Kubernetes API;
//! - [`backend`] is what the HTTP side sees of either mode; [`api`] and [`ui`] (built on the
//!   API) are assembled into the server by [`app`]; [`client`] is `tomato` as a client of it.

pub mod api;
pub mod app;
pub mod backend;
pub mod classify;
pub mod cli;
pub mod client;
pub mod core;
pub mod crd;
pub mod duration;
pub mod grep;
pub mod history;
pub mod integrations;
pub mod launch;
pub mod logging;
pub mod metrics;
pub mod mute;
pub mod operator;
pub mod outage;
pub mod packs;
pub mod queue;
pub mod regression;
pub mod report;
pub mod results;
pub mod retention;
pub mod runs;
pub mod schedule;
pub mod secrets;
pub mod shard;
pub mod signals;
pub mod standalone;
pub mod stands;
pub mod store;
pub mod suggest;
pub mod template;
pub mod text;
pub mod ui;
