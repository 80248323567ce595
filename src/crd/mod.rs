//! Tomato's resource types: the `tomato.dev/v1alpha1` custom resources.
//!
//! These are the contract between every part of Tomato. Operator mode keeps them in the
//! Kubernetes API; standalone mode keeps the very same objects (metadata, spec, status) in
//! SQLite. The schemas derived here are what `tomato crds` prints and what the API server
//! validates, so field names are a public contract: add, never rename.

mod common;
mod schedule;
mod testrun;

pub use common::{Condition, ConditionStatus, EnvVar, EnvVarSource, RunTemplate, SecretKeySelector};
pub use schedule::{ConcurrencyPolicy, NightlySchedule, NightlyScheduleSpec, NightlyScheduleStatus};
pub use testrun::{
    Attempt, AttemptState, CategoryStat, CategoryTest, ChannelReport, DeliveryState, Phase, ReportStatus,
    RunType, Selection, SelectionKind, Summary, TestRun, TestRunSpec, TestRunStatus, Verdict,
};

/// API group of every Tomato resource.
pub const GROUP: &str = "tomato.dev";
/// Label put on every object Tomato creates for a run (Jobs, Secrets) and on runs a schedule creates.
pub const LABEL_RUN: &str = "tomato.dev/run";
/// Label naming the service of a run, so `kubectl get tr -l tomato.dev/service=demo` works.
pub const LABEL_SERVICE: &str = "tomato.dev/service";
/// Label naming the schedule that created a run.
pub const LABEL_SCHEDULE: &str = "tomato.dev/schedule";

/// Every CustomResourceDefinition Tomato owns, in a stable order.
pub fn all_crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![TestRun::crd(), NightlySchedule::crd()]
}

/// The CRDs as one multi-document YAML stream, exactly what `tomato crds` prints and `crds/` holds.
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd).expect("a CRD always serializes to YAML"));
    }
    out
}
