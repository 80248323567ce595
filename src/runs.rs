//! Building new runs from checked input — the API, the web form and schedules all go
//! through [`new_run`], so a run can only be created if packs_config accepts it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::crd::random_suffix;
use crate::crd::{
    LABEL_SCHEDULE, LABEL_SERVICE, NightlySchedule, RunTemplate, RunType, TestRun, TestRunSpec, TestRunStatus,
};
use crate::packs::{InputError, PacksConfig};

/// Builds a new, checked `TestRun` for `template` (named `<service>-<random>` unless `name`
/// is given). Nothing is stored.
pub fn new_run(
    config: &PacksConfig,
    template: RunTemplate,
    run_type: RunType,
    timeout: Option<String>,
    name: Option<String>,
    mut labels: BTreeMap<String, String>,
) -> Result<TestRun, InputError> {
    config.check_run(&template)?;
    if let Some(t) = &timeout {
        crate::duration::parse(t).map_err(|e| InputError::new("timeout", e))?;
    }
    if let Some(n) = &name {
        check_object_name(n).map_err(|e| InputError::new("metadata.name", e))?;
    }
    let name = name.unwrap_or_else(|| format!("{}-{}", template.service, random_suffix(8)));
    labels.insert(LABEL_SERVICE.to_string(), template.service.clone());
    let mut run = TestRun::new(
        &name,
        TestRunSpec {
            template,
            run_type,
            timeout,
            cancel: false,
            retention: None,
        },
    );
    run.metadata.labels = Some(labels);
    run.status = Some(TestRunStatus::default());
    Ok(run)
}

/// Object names follow Kubernetes' rules (a DNS subdomain), so the same name works in both modes.
pub fn check_object_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{q_n} is not a valid name (lowercase letters, digits, '-' and '.'; at most 63)",
            q_n = crate::text::quote(n)
        ))
    }
}

/// A run a schedule starts: its template, `type: Nightly`, the `tomato.dev/schedule` label and
/// an owner reference to the schedule (so in operator mode deleting the schedule removes its
/// runs, as deleting a CronJob removes its Jobs).
pub fn scheduled_run(
    config: &PacksConfig,
    schedule: &NightlySchedule,
    name: String,
) -> Result<TestRun, InputError> {
    let schedule_name = schedule.metadata.name.clone().unwrap_or_default();
    let labels = BTreeMap::from([(LABEL_SCHEDULE.to_string(), schedule_name.clone())]);
    let mut run = new_run(
        config,
        schedule.spec.template.clone(),
        RunType::Nightly,
        schedule.spec.timeout.clone(),
        Some(name),
        labels,
    )?;
    if let Some(uid) = schedule.metadata.uid.clone() {
        run.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "tomato.dev/v1alpha1".into(),
            kind: "NightlySchedule".into(),
            name: schedule_name,
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
    }
    Ok(run)
}

/// A name for a run started by hand from a schedule (`/api/nightly`, "trigger now").
pub fn manual_run_name(schedule: &str) -> String {
    let base: String = schedule.chars().take(50).collect();
    format!("{}-m{}", base.trim_end_matches(['-', '.']), random_suffix(6))
}
