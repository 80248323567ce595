//! What each request does, in the terms authorisation decides on: the one place that maps a
//! route to the role it needs (standalone) and to the Kubernetes verb and resource it is
//! (operator). Pure, so every write route is checked by a table test.

use axum::http::Method;
use serde::{Deserialize, Serialize};

/// A standalone API token's rights, ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads only (matters when reads are closed: `readsOpen: false`).
    Read,
    /// Queue, cancel and re-prioritise runs.
    Run,
    /// Everything: schedules (and triggering them), regressions, and what `run` may.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Run => "run",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The custom resource a write changes (or, for triggers, creates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    TestRun,
    NightlySchedule,
    Regression,
    Mute,
}

impl Resource {
    /// The resource's plural, as RBAC rules and SubjectAccessReviews name it.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::TestRun => "testruns",
            Resource::NightlySchedule => "nightlyschedules",
            Resource::Regression => "regressions",
            Resource::Mute => "mutes",
        }
    }
}

/// The Kubernetes verb a write amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

/// A write: what it changes and who may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// `None` for a write to no known route (answered 404 or 405 by the router): it needs
    /// `admin` in standalone mode and is refused to Kubernetes users, so a route added later
    /// without a line here fails closed.
    pub resource: Option<Resource>,
    pub verb: Verb,
    /// The object's name when the path names it (asked about in the SubjectAccessReview, so a
    /// Role limited by `resourceNames` works as with kubectl; `None` for a create).
    pub name: Option<String>,
    /// The role a standalone token needs.
    pub role: Role,
}

/// What a request is, for authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Probes, metrics and the UI's static files: open whatever the settings
    /// (`/healthz`, `/readyz`, `/metrics`, `/ui/static/...`).
    Open,
    /// Any other read (`GET`, `HEAD`, `OPTIONS`).
    Read,
    Write(Write),
    /// A Job's upload of its attempt's results: authenticated by the run's own token in its
    /// handler, not by an API token.
    Upload {
        run: String,
    },
}

/// Classifies a request by its method and path.
///
/// - `run`: `POST /api/v1/runs`, `PATCH` and `DELETE /api/v1/runs/{id}` (re-prioritise,
///   cancel — a cancel patches `spec.cancel`, so its Kubernetes verb is `patch`), the
///   legacy `POST /api/run_now`, and muting and unmuting (`POST /api/v1/mutes`,
///   `DELETE /api/v1/mutes/{name}`);
/// - `admin`: every write under `/api/v1/schedules` (a trigger creates a TestRun) and
///   `/api/v1/regressions`, and the legacy `POST /api/nightly` (triggers schedules).
pub fn access(method: &Method, path: &str) -> Access {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return if matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/ui/static/") {
            Access::Open
        } else {
            Access::Read
        };
    }
    let verb = match *method {
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        _ => Verb::Update,
    };
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let write = |resource, verb, name: Option<&str>, role| {
        Access::Write(Write {
            resource: Some(resource),
            verb,
            name: name.map(str::to_string),
            role,
        })
    };
    use Resource::*;
    match (verb, segments.as_slice()) {
        (Verb::Create, ["api", "run_now"]) | (Verb::Create, ["api", "v1", "runs"]) => {
            write(TestRun, Verb::Create, None, Role::Run)
        }
        (Verb::Patch | Verb::Delete, ["api", "v1", "runs", id]) => {
            write(TestRun, Verb::Patch, Some(id), Role::Run)
        }
        (Verb::Create, ["api", "v1", "runs", id, "attempts", _, "results"]) => {
            Access::Upload { run: id.to_string() }
        }
        (Verb::Create, ["api", "nightly"]) => write(TestRun, Verb::Create, None, Role::Admin),
        (Verb::Create, ["api", "v1", "schedules"]) => write(NightlySchedule, verb, None, Role::Admin),
        (Verb::Update | Verb::Patch | Verb::Delete, ["api", "v1", "schedules", name]) => {
            write(NightlySchedule, verb, Some(name), Role::Admin)
        }
        // The run's name is not known yet (the path names the schedule).
        (Verb::Create, ["api", "v1", "schedules", _, "trigger"]) => {
            write(TestRun, Verb::Create, None, Role::Admin)
        }
        // Muting a known failure is a tester's everyday work, as queueing a run is.
        (Verb::Create, ["api", "v1", "mutes"]) => write(Mute, verb, None, Role::Run),
        // Resuming a stand resolves the outage records in its runs' status.
        (Verb::Create, ["api", "v1", "stands", _, "resume"]) => write(TestRun, Verb::Patch, None, Role::Run),
        (Verb::Delete, ["api", "v1", "mutes", name]) => write(Mute, verb, Some(name), Role::Run),
        (Verb::Create, ["api", "v1", "regressions"]) => write(Regression, verb, None, Role::Admin),
        (Verb::Patch | Verb::Delete, ["api", "v1", "regressions", name]) => {
            write(Regression, verb, Some(name), Role::Admin)
        }
        _ => Access::Write(Write {
            resource: None,
            verb,
            name: None,
            role: Role::Admin,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(method: Method, path: &str) -> Option<Role> {
        match access(&method, path) {
            Access::Write(w) => Some(w.role),
            _ => None,
        }
    }

    #[test]
    fn roles_are_ordered_read_run_admin() {
        assert!(Role::Read < Role::Run && Role::Run < Role::Admin);
    }

    #[test]
    fn runs_need_run_and_schedules_and_regressions_need_admin() {
        assert_eq!(role(Method::POST, "/api/v1/runs"), Some(Role::Run));
        assert_eq!(role(Method::POST, "/api/v1/runs/"), Some(Role::Run));
        assert_eq!(role(Method::PATCH, "/api/v1/runs/r1"), Some(Role::Run));
        assert_eq!(role(Method::DELETE, "/api/v1/runs/r1"), Some(Role::Run));
        assert_eq!(role(Method::POST, "/api/run_now"), Some(Role::Run));
        assert_eq!(role(Method::POST, "/api/nightly"), Some(Role::Admin));
        assert_eq!(role(Method::POST, "/api/v1/schedules"), Some(Role::Admin));
        assert_eq!(role(Method::PUT, "/api/v1/schedules/n"), Some(Role::Admin));
        assert_eq!(role(Method::PATCH, "/api/v1/schedules/n"), Some(Role::Admin));
        assert_eq!(role(Method::DELETE, "/api/v1/schedules/n"), Some(Role::Admin));
        assert_eq!(
            role(Method::POST, "/api/v1/schedules/n/trigger"),
            Some(Role::Admin)
        );
        assert_eq!(role(Method::POST, "/api/v1/regressions"), Some(Role::Admin));
        assert_eq!(role(Method::POST, "/api/v1/mutes"), Some(Role::Run));
        assert_eq!(role(Method::DELETE, "/api/v1/mutes/m"), Some(Role::Run));
        assert_eq!(role(Method::POST, "/api/v1/stands/qa1/resume"), Some(Role::Run));
        assert_eq!(role(Method::PATCH, "/api/v1/regressions/r"), Some(Role::Admin));
        assert_eq!(role(Method::DELETE, "/api/v1/regressions/r"), Some(Role::Admin));
    }

    #[test]
    fn writes_map_to_the_kubernetes_verb_and_resource_kubectl_would_use() {
        let Access::Write(cancel) = access(&Method::DELETE, "/api/v1/runs/r1") else {
            panic!("a cancel is a write")
        };
        assert_eq!(
            (cancel.resource, cancel.verb, cancel.name.as_deref()),
            (Some(Resource::TestRun), Verb::Patch, Some("r1"))
        );
        let Access::Write(trigger) = access(&Method::POST, "/api/v1/schedules/nightly/trigger") else {
            panic!("a trigger is a write")
        };
        assert_eq!(
            (trigger.resource, trigger.verb),
            (Some(Resource::TestRun), Verb::Create)
        );
        let Access::Write(replace) = access(&Method::PUT, "/api/v1/schedules/nightly") else {
            panic!("a replace is a write")
        };
        assert_eq!(
            (replace.resource, replace.verb),
            (Some(Resource::NightlySchedule), Verb::Update)
        );
    }

    #[test]
    fn unknown_writes_fail_closed_and_probes_stay_open() {
        let Access::Write(w) = access(&Method::POST, "/api/v1/services") else {
            panic!("a write")
        };
        assert_eq!((w.resource, w.role), (None, Role::Admin));
        assert_eq!(access(&Method::GET, "/healthz"), Access::Open);
        assert_eq!(access(&Method::GET, "/metrics"), Access::Open);
        assert_eq!(access(&Method::GET, "/readyz"), Access::Open);
        assert_eq!(access(&Method::GET, "/ui/static/app.css"), Access::Open);
        assert_eq!(access(&Method::GET, "/api/v1/runs"), Access::Read);
        assert_eq!(access(&Method::HEAD, "/"), Access::Read);
        assert_eq!(
            access(&Method::POST, "/api/v1/runs/r1/attempts/1/results"),
            Access::Upload { run: "r1".into() }
        );
    }
}
