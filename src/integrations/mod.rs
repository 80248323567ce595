//! Everything Tomato says to the outside world, for run reports ([`crate::report`]) and
//! regressions ([`crate::regression`]) alike: the settings of each integration and the secrets
//! in them ([`settings`]), what is masked in anything sent or logged ([`redact`]), the HTTP
//! client and its error sorting ([`http`]), email delivery ([`email`]), the issue tracker
//! ([`tracker`]), test management ([`tms`]), and the one retry policy with its one
//! transient/permanent error ([`delivery`]).
//!
//! What to say — a run's report, a regression's notice — is composed above this layer; this
//! layer knows nothing of runs' content and never imports `report` or `regression`.

pub mod delivery;
pub mod email;
pub mod http;
pub mod redact;
pub mod settings;
pub mod tms;
pub mod tracker;
