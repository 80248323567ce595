//! Manual regressions: a release's regression plan handed to assessors, followed until every
//! case has a verdict.
//!
//! - [`plan`]: the pure decisions — checking the spec, sharing cases among assessors,
//!   progress, the next step;
//! - [`reconcile`]: one step of a regression against test management, the tracker and
//!   email, through small traits ([`crate::integrations::tms::TestManagement`], [`tracker::IssueTracker`],
//!   [`crate::integrations::email::Mailer`]), returning the new status and when to look again;
//! - [`notify`]: the assessors' emails, the ticket and its summary comment, the final report;
//! - [`tracker`]: the ticket in Jira or Yandex Tracker.
//!
//! Both drivers call [`reconcile::reconcile`] and [`reconcile::cleanup`] and only store what
//! they return: the standalone task ([`crate::standalone::Regressions`]) over SQLite, and — in
//! operator mode, where the same object is a `Regression` custom resource — the kube-runtime
//! controller, which calls the same two functions from its reconcile and from kube's
//! finalizer helper (cleanup, under [`crate::crd::FINALIZER_REGRESSION`]), patches the
//! status subresource with the result and requeues after the returned delay.

pub mod notify;
pub mod plan;
pub mod reconcile;

pub use reconcile::{Context, Outcome, cleanup, reconcile};
