//! Tomato runs a QA team's autotests: it queues runs by priority, launches the packs,
//! re-runs only the failed tests, classifies failures and reports — as a Kubernetes operator
//! or as a standalone server over SQLite, with one reconcile core.
//!
//! The pure core ([`queue`], [`core`], [`results`], [`packs`], [`shard`]) is apart from I/O; the
//! drivers ([`standalone`]) carry out its decisions; [`api`] is the HTTP side of both modes;
//! [`client`] is `tomato` as a client of that API.

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
pub mod integrations;
pub mod launch;
pub mod logging;
pub mod metrics;
pub mod operator;
pub mod packs;
pub mod queue;
pub mod regression;
pub mod report;
pub mod results;
pub mod runs;
pub mod schedule;
pub mod secrets;
pub mod shard;
pub mod signals;
pub mod standalone;
pub mod store;
pub mod suggest;
pub mod template;
pub mod text;
pub mod ui;
