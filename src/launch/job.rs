//! The `job` launcher's pure half: the Kubernetes `Job` one attempt runs as, and how to read
//! a Job's (and its pod's) state back. The operator applies what [`desired_job`] returns with
//! server-side apply; building it is a pure function of the run, the service and the attempt,
//! so that applying it again after a crash or a restart changes nothing (the Job is adopted,
//! never duplicated).
//!
//! Shape of the Job: `backoffLimit: 0` (Tomato reruns failed tests itself, selectively; a
//! Kubernetes retry would rerun everything), `activeDeadlineSeconds` from the attempt timeout,
//! a controller owner reference to the TestRun (deleting the run deletes its Jobs). The test
//! suite's image does not contain Tomato, so an init container copies the `tomato` binary
//! (from the operator's own image) into a shared volume, and the test container's entrypoint
//! is `tomato exec -- <argv>`: argv and `TOMATO_*` environment come from [`super::plan`], as
//! in standalone mode, so a rerun selects the failed tests exactly as a local process would.
//!
//! A sharded attempt is one Indexed Job (`completions` = `parallelism` = the shards), with
//! `backoffLimitPerIndex: 0` and no `maxFailedIndexes`: a crashing index is not retried
//! (Tomato reruns its tests) and does not stop the others; the Job ends when every index
//! has. The pod template is the same for every index, so what differs — each shard's argv
//! and its `TOMATO_TESTS`/`TOMATO_PACKS` — is in an immutable ConfigMap `<run>-shards-<seq>`
//! ([`shards_config_map`]), one key `TOMATO_SHARD_<i>` per index, given to the container
//! with `envFrom`; `tomato exec --sharded` picks its own by `JOB_COMPLETION_INDEX` (which
//! the Job controller sets) and uploads with `?shard=<i>`. A ConfigMap rather than literal
//! values in the template: the lists would otherwise be copied into every pod object.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerStateTerminated, EmptyDirVolumeSource, EnvVar, EnvVarSource, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SecretKeySelector, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::{Resource, ResourceExt};

use super::{AttemptRef, RerunTest, plan};
use crate::crd::{LABEL_RUN, LABEL_SERVICE, Selection, TestRun};
use crate::packs::{PullPolicy, Service};
use crate::shard::{Split, Unit};

/// Label giving the attempt number (1 = the full run) on a Job and its pod.
pub const LABEL_ATTEMPT: &str = "tomato.dev/attempt";
/// Label giving the launch's position in `status.attempts` (what the API's `/attempts/{n}` means).
pub const LABEL_LAUNCH: &str = "tomato.dev/launch";
/// Kubernetes' own label on a Job's pods.
pub const LABEL_JOB_NAME: &str = "batch.kubernetes.io/job-name";

/// Where the init container puts the `tomato` binary inside the pod.
pub const EXEC_DIR: &str = "/tomato/bin";
pub const EXEC_PATH: &str = "/tomato/bin/tomato";
/// Scratch space of an attempt inside the pod: JUnit and log.
pub const WORK_DIR: &str = "/tomato/work";
pub const JUNIT_PATH: &str = "/tomato/work/junit.xml";
pub const LOG_PATH: &str = "/tomato/work/output.log";
/// Name of the test container (the pod log fallback reads it).
pub const TEST_CONTAINER: &str = "tests";

/// Where `tomato exec` keeps the attempt's log.
pub const ENV_EXEC_LOG: &str = "TOMATO_EXEC_LOG";
/// Where `tomato exec` uploads the attempt's results.
pub const ENV_UPLOAD_URL: &str = "TOMATO_UPLOAD_URL";
/// The run's upload token (from the run's token Secret, never a literal in the Job).
pub const ENV_UPLOAD_TOKEN: &str = "TOMATO_UPLOAD_TOKEN";
/// Key of the token in the run's token Secret.
pub const TOKEN_KEY: &str = "token";

/// Where `tomato exec --fetch` reads what it runs (`?shard=<index>` added for a shard).
pub const ENV_LAUNCH_URL: &str = "TOMATO_LAUNCH_URL";
/// Above this many bytes of argv and per-launch variables, a launch is fetched by
/// `tomato exec` rather than written into the Job (and copied into its pod) when a results
/// database can keep it: a Job and its pod then stay a few KiB whatever a rerun selects.
pub const FETCH_OVER_BYTES: usize = 16 * 1024;

/// Set by the Job controller in each pod of an Indexed Job: the pod's completion index.
pub const ENV_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// The annotation (and label) the Job controller puts the completion index in.
pub const ANNOTATION_COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Prefix of the per-index keys of a sharded attempt's ConfigMap (`TOMATO_SHARD_0`, ...).
pub const ENV_SHARD_PREFIX: &str = "TOMATO_SHARD_";
/// Environment variables that differ between the shards of one attempt.
const SHARD_VARS: &[&str] = &["TOMATO_TESTS", "TOMATO_PACKS"];

/// What one index of a sharded attempt's Job runs (stored as JSON under `TOMATO_SHARD_<i>`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ShardLaunch {
    /// The tests' argv for this shard.
    pub argv: Vec<String>,
    /// The shard's own values of the variables that differ between shards.
    pub env: Vec<(String, String)>,
    /// What the split gave it (tests, files or packs: `unit`), for the results it owes if it
    /// reports none of them.
    pub unit: String,
    pub items: Vec<String>,
    /// The sum of its items' recorded durations, when any has history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seconds: Option<u64>,
}

impl ShardLaunch {
    pub fn unit(&self) -> Unit {
        match self.unit.as_str() {
            "tests" => Unit::Tests,
            "files" => Unit::Files,
            _ => Unit::Packs,
        }
    }
}

/// Operator-wide settings every Job needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSettings {
    /// Image holding the `tomato` binary (the operator's own image), whose entrypoint is `tomato`.
    pub exec_image: String,
    pub exec_image_pull_policy: Option<PullPolicy>,
    /// Base URL of the operator's API as pods reach it (`http://tomato.<ns>.svc:8080`).
    pub api_url: String,
}

/// One attempt to turn into a Job.
#[derive(Clone, Copy, Debug)]
pub struct JobAttempt<'a> {
    /// Position of the launch in `status.attempts`, from 1 (names the Job).
    pub seq: usize,
    /// Attempt number (1 = the full run; a relaunch keeps its attempt's number).
    pub number: u32,
    pub selection: &'a Selection,
    /// The failed tests a rerun selects (empty for a full run).
    pub reruns: &'a [RerunTest<'a>],
    pub timeout: Duration,
    /// Completions of an Indexed Job, one per shard; 1 (or 0) is an ordinary Job.
    pub shards: usize,
    /// `tomato exec` fetches what it runs (argv and the shard's variables) from the API
    /// ([`ENV_LAUNCH_URL`]) instead of the Job carrying it: a launch too large for the Job
    /// object, kept in the results database (operator mode with one).
    pub fetch: bool,
}

/// The Job for `attempt` of `run`. Pure: the same input gives the same Job, which is what makes
/// re-applying it after a restart a no-op.
pub fn desired_job(run: &TestRun, service: &Service, attempt: JobAttempt<'_>, settings: &JobSettings) -> Job {
    let run_name = run.metadata.name.clone().unwrap_or_default();
    let job = &service.launch.job;
    let launch = job_plan(run, service, attempt);

    let mut env: Vec<EnvVar> = launch
        .env
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            value_from: None,
        })
        .collect();
    env.extend(run.spec.template.env.iter().map(|v| EnvVar {
        name: v.name.clone(),
        value: v.value.clone(),
        value_from: v.value_from.as_ref().map(|src| EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: src.secret_key_ref.name.clone(),
                key: src.secret_key_ref.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    }));
    // Where `tomato exec` keeps the log (its default, spelled out so the pod says it).
    env.push(EnvVar {
        name: ENV_EXEC_LOG.into(),
        value: Some(LOG_PATH.into()),
        value_from: None,
    });
    // The attempt's routes of the API; the run's namespace rides along: with
    // --all-namespaces it is not the operator's.
    let attempt_url = |route: &str| {
        format!(
            "{}/api/v1/runs/{run_name}/attempts/{}/{route}?namespace={}",
            settings.api_url.trim_end_matches('/'),
            attempt.seq,
            run.namespace().unwrap_or_default()
        )
    };
    env.push(EnvVar {
        name: ENV_UPLOAD_URL.into(),
        value: Some(attempt_url("results")),
        value_from: None,
    });
    env.push(EnvVar {
        name: ENV_UPLOAD_TOKEN.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: token_secret_name(&run_name),
                key: TOKEN_KEY.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    });

    let sharded = attempt.shards > 1;
    let mut command = vec![EXEC_PATH.to_string(), "exec".into()];
    if attempt.fetch {
        command.push("--fetch".into());
        env.retain(|v| !SHARD_VARS.contains(&v.name.as_str()));
        env.push(EnvVar {
            name: ENV_LAUNCH_URL.into(),
            value: Some(attempt_url("launch")),
            value_from: None,
        });
    }
    if sharded {
        // Each index's argv is in its `TOMATO_SHARD_<i>`; so are its tests and packs.
        command.push("--sharded".into());
        env.retain(|v| !SHARD_VARS.contains(&v.name.as_str()));
        env.push(EnvVar {
            name: "TOMATO_SHARDS".into(),
            value: Some(attempt.shards.to_string()),
            value_from: None,
        });
    } else if !attempt.fetch {
        command.push("--".into());
        command.extend(launch.argv);
    }

    let labels = BTreeMap::from([
        (LABEL_RUN.to_string(), label_value(&run_name)),
        (LABEL_SERVICE.to_string(), service.name.clone()),
        (LABEL_ATTEMPT.to_string(), attempt.number.to_string()),
        (LABEL_LAUNCH.to_string(), attempt.seq.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "tomato".to_string()),
    ]);
    let quantities = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), Quantity(v.clone()))).collect())
    };
    let volume = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let no_privileges = SecurityContext {
        allow_privilege_escalation: Some(false),
        ..Default::default()
    };

    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&run_name, attempt.seq)),
            namespace: run.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: run.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // Sharded: each index gets no retry of its own, and one failing index never fails
            // the Job early (backoffLimit defaults to "unlimited" beside backoffLimitPerIndex,
            // and without maxFailedIndexes every index runs to its end).
            backoff_limit: (!sharded).then_some(0),
            backoff_limit_per_index: sharded.then_some(0),
            completion_mode: sharded.then(|| "Indexed".to_string()),
            completions: sharded.then_some(attempt.shards as i32),
            parallelism: sharded.then_some(attempt.shards as i32),
            active_deadline_seconds: Some(launch.timeout.as_secs().max(1) as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: job.service_account_name.clone(),
                    // Tests get an API token only when packs_config names their ServiceAccount.
                    automount_service_account_token: Some(job.service_account_name.is_some()),
                    security_context: Some(PodSecurityContext {
                        seccomp_profile: Some(k8s_openapi::api::core::v1::SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    init_containers: Some(vec![Container {
                        name: "tomato-exec".into(),
                        image: Some(settings.exec_image.clone()),
                        image_pull_policy: settings.exec_image_pull_policy.map(|p| p.as_str().to_string()),
                        // The image's entrypoint is `tomato`; it copies itself for the test container.
                        args: Some(vec!["exec".into(), "--copy-self-to".into(), EXEC_PATH.into()]),
                        volume_mounts: Some(vec![mount("tomato-bin", EXEC_DIR, false)]),
                        security_context: Some(SecurityContext {
                            run_as_non_root: Some(true),
                            read_only_root_filesystem: Some(true),
                            ..no_privileges.clone()
                        }),
                        ..Default::default()
                    }]),
                    containers: vec![Container {
                        name: TEST_CONTAINER.into(),
                        image: job.image.clone(),
                        image_pull_policy: job.image_pull_policy.map(|p| p.as_str().to_string()),
                        command: Some(command),
                        working_dir: Some(job.working_dir.clone()),
                        env: Some(env),
                        env_from: (sharded && !attempt.fetch).then(|| {
                            vec![k8s_openapi::api::core::v1::EnvFromSource {
                                config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                                    name: shards_name(&run_name, attempt.seq),
                                    optional: Some(false),
                                }),
                                ..Default::default()
                            }]
                        }),
                        resources: Some(ResourceRequirements {
                            requests: quantities(&job.requests),
                            limits: quantities(&job.limits),
                            ..Default::default()
                        }),
                        volume_mounts: Some(vec![
                            mount("tomato-bin", EXEC_DIR, true),
                            mount("tomato-work", WORK_DIR, false),
                        ]),
                        security_context: Some(no_privileges),
                        ..Default::default()
                    }],
                    volumes: Some(vec![volume("tomato-bin"), volume("tomato-work")]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Marks the Job of a mixed attempt's local part (value `local`): its upload is kept apart
/// from the Aqua part's until both are in (operator mode, see `operator::mixed`).
pub const LABEL_PART: &str = "tomato.dev/part";

/// Marks the Job that lists a launch's tests before it is split (its value: `true`).
pub const LABEL_LISTING: &str = "tomato.dev/listing";

/// `<run>-<seq>-list`: the Job listing the tests of a run's `seq`-th launch before it is
/// split. It ends in `-list`, so it is never another run's attempt Job (whose names end in the
/// launch's number: run `demo-list`'s first is `demo-list-1`).
pub fn listing_job_name(run: &str, seq: usize) -> String {
    bounded(run, &format!("-{seq}-list"), 63)
}

/// How long a finished listing Job stays when nothing deleted it (a crash between the split's
/// record and the deletion): the Job TTL controller takes it then.
const LISTING_TTL_SECONDS: i32 = 3600;

/// The Job that lists the tests of `attempt` before it is split into shards (operator mode,
/// where the suite is in its image and only a pod of that image can list it): the attempt's
/// own pod (image, working directory, variables, the run's secrets, resources) running
/// `tomato exec --list -- <listing>` instead of the tests. It uploads nothing — the operator
/// reads its pod's log — so it gets no upload URL or token, and it may take at most
/// [`super::listing::LIST_TIMEOUT`] (or the attempt's timeout, when shorter). Pure.
pub fn listing_job(
    run: &TestRun,
    service: &Service,
    attempt: JobAttempt<'_>,
    listing: &super::listing::ListPlan,
    settings: &JobSettings,
) -> Job {
    let whole = JobAttempt {
        shards: 1,
        fetch: false,
        ..attempt
    };
    let mut job = desired_job(run, service, whole, settings);
    let run_name = run.metadata.name.clone().unwrap_or_default();
    job.metadata.name = Some(listing_job_name(&run_name, attempt.seq));
    for labels in job.metadata.labels.iter_mut().chain(
        job.spec
            .iter_mut()
            .filter_map(|s| s.template.metadata.as_mut()?.labels.as_mut()),
    ) {
        labels.insert(LABEL_LISTING.into(), "true".into());
    }
    if let Some(spec) = job.spec.as_mut() {
        let deadline = super::listing::LIST_TIMEOUT.min(attempt.timeout);
        spec.active_deadline_seconds = Some(deadline.as_secs().max(1) as i64);
        spec.ttl_seconds_after_finished = Some(LISTING_TTL_SECONDS);
        if let Some(container) = spec.template.spec.as_mut().and_then(|p| p.containers.first_mut()) {
            let mut command = vec![EXEC_PATH.to_string(), "exec".into(), "--list".into(), "--".into()];
            command.extend(listing.argv.iter().cloned());
            container.command = Some(command);
            if let Some(env) = container.env.as_mut() {
                env.retain(|v| ![ENV_UPLOAD_URL, ENV_UPLOAD_TOKEN, ENV_EXEC_LOG].contains(&v.name.as_str()));
            }
        }
    }
    job
}

/// `<run>-<seq>`: the Job of a run's `seq`-th launch. Job names become pod labels, so they
/// are kept to 63 characters: a longer run name is cut and a hash of it keeps names distinct.
pub fn job_name(run: &str, seq: usize) -> String {
    bounded(run, &format!("-{seq}"), 63)
}

/// The ConfigMap holding what each index of a sharded launch runs.
pub fn shards_name(run: &str, seq: usize) -> String {
    bounded(run, &format!("-shards-{seq}"), 253)
}

/// What each shard of `split` runs, for `attempt` of `run`: the argv and variables
/// [`super::plan`] gives a shard's packs, files or tests (`case_of` gives a test's case, for a
/// rerun's selection). Pure.
pub fn shard_launches<'a>(
    run: &TestRun,
    service: &Service,
    attempt: JobAttempt<'_>,
    split: &'a Split,
    case_of: impl Fn(&str) -> Option<&'a crate::results::Case>,
) -> Vec<ShardLaunch> {
    let run_name = run.metadata.name.clone().unwrap_or_default();
    let mut in_image = service.clone();
    in_image.dir = service.launch.job.working_dir.clone().into();
    split
        .shards
        .iter()
        .map(|s| {
            let given = super::shard_given(split.unit, &s.items, &attempt.selection.packs, &case_of);
            let launch = plan(
                &in_image,
                &AttemptRef {
                    files: &given.files,
                    run: &run_name,
                    stand: &run.spec.template.stand,
                    number: attempt.number,
                    packs: &given.packs,
                    reruns: &given.reruns,
                    junit: std::path::Path::new(JUNIT_PATH),
                    timeout: attempt.timeout,
                },
            );
            ShardLaunch {
                argv: launch.argv,
                env: launch
                    .env
                    .into_iter()
                    .filter(|(k, _)| SHARD_VARS.contains(&k.as_str()))
                    .collect(),
                unit: split.unit.as_str().to_string(),
                items: s.items.clone(),
                expected_seconds: (s.unknown < s.items.len()).then_some(s.expected.as_secs()),
            }
        })
        .collect()
}

/// The argv and environment of an unsharded attempt's Job, from [`super::plan`] as in
/// standalone mode (in a Job `{dir}` is the suite's place in the image, not the packs_config
/// directory). Pure.
fn job_plan(run: &TestRun, service: &Service, attempt: JobAttempt<'_>) -> super::LaunchPlan {
    let run_name = run.metadata.name.clone().unwrap_or_default();
    let mut in_image = service.clone();
    in_image.dir = service.launch.job.working_dir.clone().into();
    plan(
        &in_image,
        &AttemptRef {
            files: &[],
            run: &run_name,
            stand: &run.spec.template.stand,
            number: attempt.number,
            packs: &attempt.selection.packs,
            reruns: attempt.reruns,
            junit: std::path::Path::new(JUNIT_PATH),
            timeout: attempt.timeout,
        },
    )
}

/// What an unsharded attempt runs, in the shape `tomato exec --fetch` reads (one index):
/// its argv and the variables that carry its tests and packs. Pure.
pub fn whole_launch(run: &TestRun, service: &Service, attempt: JobAttempt<'_>) -> ShardLaunch {
    let launch = job_plan(run, service, attempt);
    ShardLaunch {
        argv: launch.argv,
        env: launch
            .env
            .into_iter()
            .filter(|(k, _)| SHARD_VARS.contains(&k.as_str()))
            .collect(),
        unit: Unit::Tests.as_str().to_string(),
        items: Vec::new(),
        expected_seconds: None,
    }
}

impl ShardLaunch {
    /// Points the paths under `from` (the Job's [`WORK_DIR`], as the launch names it) at `to`,
    /// where this pod's work directory really is: the same place in a real pod; elsewhere
    /// when something maps the pod's mounts (the test cluster's process kubelet rewrites the
    /// Job's own argv and env, which a fetched launch is not part of).
    pub fn relocate(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        let moved = |s: &mut String| {
            if s.contains(from) {
                *s = s.replace(from, to);
            }
        };
        self.argv.iter_mut().for_each(moved);
        self.env.iter_mut().for_each(|(_, v)| moved(v));
    }

    /// Bytes of argv and variables: what a Job (and each of its pods) would carry.
    pub fn bytes(&self) -> usize {
        self.argv.iter().map(|a| a.len() + 1).sum::<usize>()
            + self.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>()
    }
}

/// The metadata of an object that belongs to `run`'s `seq`-th launch (its shards, results and
/// classification ConfigMaps): named `name`, in the run's namespace, labelled with the run and
/// the launch, and owned by the run so it goes with it.
pub fn launch_object_meta(run: &TestRun, name: String, seq: usize) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: run.metadata.namespace.clone(),
        labels: Some(BTreeMap::from([
            (LABEL_RUN.to_string(), label_value(&run.name_any())),
            (LABEL_LAUNCH.to_string(), seq.to_string()),
            ("app.kubernetes.io/managed-by".to_string(), "tomato".to_string()),
        ])),
        owner_references: run.controller_owner_ref(&()).map(|r| vec![r]),
        ..Default::default()
    }
}

/// The immutable ConfigMap giving each index of `run`'s `seq`-th launch its [`ShardLaunch`],
/// owned by the run. Pure.
pub fn shards_config_map(run: &TestRun, seq: usize, launches: &[ShardLaunch]) -> ConfigMap {
    let run_name = run.metadata.name.clone().unwrap_or_default();
    let data = launches
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let json = serde_json::to_string(l).expect("a ShardLaunch always serializes");
            (format!("{ENV_SHARD_PREFIX}{i}"), json)
        })
        .collect();
    ConfigMap {
        metadata: launch_object_meta(run, shards_name(&run_name, seq), seq),
        data: Some(data),
        immutable: Some(true),
        ..Default::default()
    }
}

/// Linux refuses an environment string longer than 128 KiB (`MAX_ARG_STRLEN`): each
/// `TOMATO_SHARD_<i>` must stay under it, and every index gets them all.
pub const MAX_SHARD_ENV_BYTES: usize = 120 * 1024;
/// What the shards ConfigMap may hold (the API server takes at most 1 MiB per object), which
/// is also what every pod's environment carries.
pub const MAX_SHARDS_BYTES: usize = 900 * 1024;

/// Whether `launches` fit the shards ConfigMap and a pod's environment; when they do not (a
/// rerun of thousands of tests), the attempt runs unsharded, its argv in the pod spec.
pub fn shards_fit(launches: &[ShardLaunch]) -> Result<(), String> {
    let sizes: Vec<usize> = launches
        .iter()
        .map(|l| serde_json::to_string(l).map_or(usize::MAX, |j| j.len()))
        .collect();
    let total: usize = sizes.iter().map(|s| s.saturating_add(32)).sum();
    match sizes.iter().enumerate().max_by_key(|(_, s)| **s) {
        Some((i, &biggest)) if biggest > MAX_SHARD_ENV_BYTES => Err(format!(
            "shard {i} is {} KiB of argv and tests, more than one environment variable holds ({} KiB)",
            biggest >> 10,
            MAX_SHARD_ENV_BYTES >> 10
        )),
        _ if total > MAX_SHARDS_BYTES => Err(format!(
            "the shards are {} KiB of argv and tests, more than their ConfigMap holds ({} KiB)",
            total >> 10,
            MAX_SHARDS_BYTES >> 10
        )),
        _ => Ok(()),
    }
}

/// Reads the shards back from their ConfigMap, in index order.
pub fn read_shards(cm: &ConfigMap) -> Result<Vec<ShardLaunch>, String> {
    let data = cm.data.clone().unwrap_or_default();
    (0..data.len())
        .map(|i| {
            let key = format!("{ENV_SHARD_PREFIX}{i}");
            let json = data
                .get(&key)
                .ok_or_else(|| format!("{}: no {key}", cm.name_any()))?;
            serde_json::from_str(json).map_err(|e| format!("{}: {key}: {e}", cm.name_any()))
        })
        .collect()
}

/// How many shards a Job runs: its completions when Indexed, else 1.
pub fn job_shards(job: &Job) -> usize {
    job.spec
        .as_ref()
        .filter(|s| s.completion_mode.as_deref() == Some("Indexed"))
        .and_then(|s| s.completions)
        .map_or(1, |c| c.max(1) as usize)
}

/// Whether an upload naming `shard` fits an attempt of `shards` shards: a sharded attempt's
/// uploads name their index, an unsharded one's none.
pub fn check_shard_upload(shards: usize, shard: Option<u32>) -> Result<(), String> {
    match shard {
        None if shards > 1 => Err(format!(
            "the attempt runs as {shards} shards: say which one sent the results (?shard=<index>)"
        )),
        Some(i) if shards <= 1 && i > 0 => Err(format!("the attempt is not sharded: there is no shard {i}")),
        Some(i) if i as usize >= shards.max(1) => Err(format!(
            "shard {i} does not exist: the attempt has {shards} (0 to {})",
            shards - 1
        )),
        _ => Ok(()),
    }
}

/// The completion index of a pod of an Indexed Job.
pub fn pod_completion_index(pod: &Pod) -> Option<u32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_COMPLETION_INDEX)?
        .parse()
        .ok()
}

/// The Secret holding a run's upload token.
pub fn token_secret_name(run: &str) -> String {
    bounded(run, "-upload-token", 253)
}

/// A run's name as a label value (at most 63 characters, cut and hashed like [`job_name`]).
pub fn label_value(run: &str) -> String {
    bounded(run, "", 63)
}

/// `base + suffix`, cutting `base` and inserting a short hash of it when too long.
pub fn bounded(base: &str, suffix: &str, max: usize) -> String {
    if base.len() + suffix.len() <= max {
        return format!("{base}{suffix}");
    }
    let hash = format!("{:08x}", fnv1a(base.as_bytes()));
    let keep = max.saturating_sub(suffix.len() + hash.len() + 1);
    let cut = base[..keep.min(base.len())].trim_end_matches(['-', '.']);
    format!("{cut}-{hash}{suffix}")
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// What a Job's conditions say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Not finished (pending or running).
    Active,
    /// Its pod exited 0.
    Succeeded { at: Option<DateTime<Utc>> },
    /// Its pod failed, or the Job hit `activeDeadlineSeconds` (`reason: DeadlineExceeded`).
    Failed {
        reason: String,
        message: String,
        at: Option<DateTime<Utc>>,
    },
}

impl JobState {
    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        match self {
            JobState::Active => None,
            JobState::Succeeded { at } | JobState::Failed { at, .. } => *at,
        }
    }

    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, JobState::Failed { reason, .. } if reason == "DeadlineExceeded")
    }
}

/// Reads a Job's `Complete` / `Failed` condition.
pub fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    for c in conditions.iter().filter(|c| c.status == "True") {
        let at = c.last_transition_time.as_ref().map(chrono_time);
        match c.type_.as_str() {
            "Complete" => return JobState::Succeeded { at },
            "Failed" => {
                return JobState::Failed {
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                    at,
                };
            }
            _ => {}
        }
    }
    JobState::Active
}

/// Converts a Kubernetes time.
pub fn chrono_time(t: &Time) -> DateTime<Utc> {
    Utc.timestamp_opt(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .single()
        .unwrap_or_default()
}

/// Container waiting reasons that mean the attempt cannot start at all (a missing image, a
/// Secret key the run references that does not exist). `ErrImagePull` alone is not among
/// them: the kubelet retries it, and `ImagePullBackOff` follows when that fails.
const LAUNCH_FAILURES: &[&str] = &[
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImageNeverPull",
];

/// Why a Job's pod cannot start, if a container is stuck for good.
pub fn pod_launch_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            LAUNCH_FAILURES.contains(&reason).then(|| {
                let detail = waiting.message.as_deref().unwrap_or_default();
                if detail.is_empty() {
                    format!("container {}: {reason}", c.name)
                } else {
                    format!("container {}: {reason}: {detail}", c.name)
                }
            })
        })
}

/// When the test container terminated, if it has.
pub fn pod_ended_at(pod: &Pod) -> Option<DateTime<Utc>> {
    test_container_terminated(pod).map(|t| t.finished_at.as_ref().map_or_else(Utc::now, chrono_time))
}

/// The test container's exit code, once it terminated.
pub fn pod_exit_code(pod: &Pod) -> Option<i32> {
    test_container_terminated(pod).map(|t| t.exit_code)
}

/// The test container's terminated state, once it terminated.
fn test_container_terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == TEST_CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RunTemplate;
    use crate::crd::{EnvVar as SpecEnv, EnvVarSource as SpecSource, SecretKeySelector as SpecKey};
    use crate::packs::PacksConfig;
    use crate::results::{Case, CaseStatus};

    fn run() -> TestRun {
        let mut template = RunTemplate::test("demo").stand("localhost; rm -rf /");
        template.env = vec![
            SpecEnv {
                name: "PLAIN".into(),
                value: Some("1".into()),
                value_from: None,
            },
            SpecEnv {
                name: "STAND_PASSWORD".into(),
                value: None,
                value_from: Some(SpecSource {
                    secret_key_ref: SpecKey {
                        name: "stand-creds".into(),
                        key: "password".into(),
                    },
                }),
            },
        ];
        let mut run = TestRun::test("demo-x7k2q9bd", template);
        run.metadata.namespace = Some("qa".into());
        run.metadata.uid = Some("0b6f6c3e-1111-4222-8333-444455556666".into());
        run
    }

    fn settings() -> JobSettings {
        JobSettings {
            exec_image: "ghcr.io/example/tomato:0.1".into(),
            exec_image_pull_policy: None,
            api_url: "http://tomato.qa.svc:8080/".into(),
        }
    }

    fn service() -> Service {
        let cfg = PacksConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packs_config"
        )))
        .unwrap();
        let mut svc = (**cfg.service("demo").unwrap()).clone();
        svc.launch.job.image = Some("node:20".into());
        svc.launch.job.working_dir = "/suite".into();
        svc.launch.job.limits.insert("memory".into(), "1Gi".into());
        svc
    }

    fn container(job: &Job) -> &Container {
        &job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn env_of<'a>(job: &'a Job, name: &str) -> &'a EnvVar {
        container(job)
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} not set"))
    }

    #[test]
    fn a_first_attempt_runs_the_packs_under_tomato_exec_with_no_retries_and_the_deadline() {
        let selection = Selection::all(vec!["basic".into()]);
        let job = desired_job(
            &run(),
            &service(),
            JobAttempt {
                seq: 1,
                number: 1,
                selection: &selection,
                reruns: &[],
                timeout: Duration::from_secs(600),
                shards: 1,
                fetch: false,
            },
            &settings(),
        );
        assert_eq!(job.metadata.name.as_deref(), Some("demo-x7k2q9bd-1"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("TestRun", Some(true)));
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_RUN], "demo-x7k2q9bd");
        assert_eq!(labels[LABEL_ATTEMPT], "1");
        let c = container(&job);
        let cmd = c.command.as_ref().unwrap();
        assert_eq!(&cmd[..4], [EXEC_PATH, "exec", "--", "node"]);
        assert!(cmd.contains(&"/suite/basic.test.mjs".to_string()), "{cmd:?}");
        assert!(cmd.contains(&format!("--test-reporter-destination={JUNIT_PATH}")));
        assert_eq!(c.image.as_deref(), Some("node:20"));
        assert_eq!(c.working_dir.as_deref(), Some("/suite"));
        assert_eq!(env_of(&job, "TOMATO_ATTEMPT").value.as_deref(), Some("1"));
        assert_eq!(
            env_of(&job, "TOMATO_STAND").value.as_deref(),
            Some("localhost; rm -rf /"),
            "the stand is data in the environment, never a shell word"
        );
        assert_eq!(
            env_of(&job, ENV_UPLOAD_URL).value.as_deref(),
            Some("http://tomato.qa.svc:8080/api/v1/runs/demo-x7k2q9bd/attempts/1/results?namespace=qa")
        );
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["memory"].0, "1Gi");
    }

    #[test]
    fn a_listing_job_is_the_attempts_pod_listing_instead_of_testing_and_uploading_nothing() {
        let selection = Selection::all(vec!["basic".into(), "api".into()]);
        let mut svc = service();
        svc.runner = Some(crate::packs::Runner::Pytest);
        svc.rerun.select = Some(crate::packs::Runner::Pytest);
        svc.launch.list = None;
        let mut in_image = svc.clone();
        in_image.dir = "/suite".into();
        let plan = crate::launch::listing::list_plan(&in_image, "localhost", &selection.packs).unwrap();
        let attempt = JobAttempt {
            seq: 1,
            number: 1,
            selection: &selection,
            reruns: &[],
            timeout: Duration::from_secs(600),
            shards: 2,
            fetch: true,
        };
        let job = listing_job(&run(), &svc, attempt, &plan, &settings());
        assert_eq!(job.metadata.name.as_deref(), Some("demo-x7k2q9bd-1-list"));
        assert_eq!(job.metadata.labels.as_ref().unwrap()[LABEL_LISTING], "true");
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.completion_mode, None, "one pod, not an Indexed Job");
        assert_eq!(spec.ttl_seconds_after_finished, Some(LISTING_TTL_SECONDS));
        assert_eq!(
            spec.active_deadline_seconds,
            Some(120),
            "the listing's own deadline, shorter than the attempt's"
        );
        let c = container(&job);
        let cmd = c.command.as_ref().unwrap();
        assert_eq!(&cmd[..4], [EXEC_PATH, "exec", "--list", "--"]);
        assert_eq!(cmd[4..], plan.argv[..]);
        assert!(cmd.contains(&"/suite/basic.test.mjs".to_string()), "{cmd:?}");
        assert_eq!(c.image.as_deref(), Some("node:20"), "the suite's own image");
        assert_eq!(c.working_dir.as_deref(), Some("/suite"));
        assert!(c.env_from.is_none());
        let names: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        for absent in [ENV_UPLOAD_URL, ENV_UPLOAD_TOKEN, ENV_LAUNCH_URL] {
            assert!(!names.contains(&absent), "{absent} in {names:?}");
        }
        assert_eq!(
            env_of(&job, "TOMATO_STAND").value.as_deref(),
            Some("localhost; rm -rf /")
        );
        let short = JobAttempt {
            timeout: Duration::from_secs(30),
            ..attempt
        };
        let job = listing_job(&run(), &svc, short, &plan, &settings());
        assert_eq!(job.spec.unwrap().active_deadline_seconds, Some(30));
    }

    #[test]
    fn secrets_reach_the_pod_as_secret_references_never_as_values() {
        let selection = Selection::all(vec!["basic".into()]);
        let job = desired_job(
            &run(),
            &service(),
            JobAttempt {
                seq: 1,
                number: 1,
                selection: &selection,
                reruns: &[],
                timeout: Duration::from_secs(60),
                shards: 1,
                fetch: false,
            },
            &settings(),
        );
        let password = env_of(&job, "STAND_PASSWORD");
        assert!(password.value.is_none());
        let key = password
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((key.name.as_str(), key.key.as_str()), ("stand-creds", "password"));
        let token = env_of(&job, ENV_UPLOAD_TOKEN);
        assert!(token.value.is_none());
        let key = token
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(key.name, "demo-x7k2q9bd-upload-token");
        assert_eq!(env_of(&job, "PLAIN").value.as_deref(), Some("1"));
    }

    #[test]
    fn a_rerun_job_selects_only_the_failed_tests() {
        let case = Case {
            suites: vec!["cart".into()],
            classname: "test".into(),
            name: "applies the discount".into(),
            file: None,
            time_ms: None,
            status: CaseStatus::Failed,
            message: String::new(),
            kind: String::new(),
            trace: String::new(),
            system_out: String::new(),
            system_err: String::new(),
        };
        let reruns = [RerunTest {
            id: "cart > applies the discount",
            case: &case,
        }];
        let selection = Selection::failed(
            vec!["basic".into()],
            1,
            vec!["cart > applies the discount".into()],
        );
        let job = desired_job(
            &run(),
            &service(),
            JobAttempt {
                seq: 2,
                number: 2,
                selection: &selection,
                reruns: &reruns,
                timeout: Duration::from_secs(60),
                shards: 1,
                fetch: false,
            },
            &settings(),
        );
        assert_eq!(job.metadata.name.as_deref(), Some("demo-x7k2q9bd-2"));
        let cmd = container(&job).command.as_ref().unwrap();
        assert!(
            cmd.contains(&"--test-name-pattern=^applies the discount$".to_string()),
            "{cmd:?}"
        );
        assert_eq!(
            env_of(&job, "TOMATO_TESTS").value.as_deref(),
            Some("cart > applies the discount")
        );
    }

    /// A launch kept in the results database: the Job carries no argv and none of the
    /// variables that carry its tests, only where `tomato exec --fetch` reads them; what it
    /// reads there is exactly what the Job would have carried.
    #[test]
    fn a_fetched_launch_leaves_its_argv_and_tests_out_of_the_job() {
        let case = Case::failed("cart", "applies the discount", None);
        let reruns = [RerunTest {
            id: "cart > applies the discount",
            case: &case,
        }];
        let selection = Selection::failed(
            vec!["basic".into()],
            1,
            vec!["cart > applies the discount".into()],
        );
        let mut attempt = JobAttempt {
            seq: 2,
            number: 2,
            selection: &selection,
            reruns: &reruns,
            timeout: Duration::from_secs(60),
            shards: 1,
            fetch: false,
        };
        let carried = desired_job(&run(), &service(), attempt, &settings());
        attempt.fetch = true;
        let job = desired_job(&run(), &service(), attempt, &settings());
        let cmd = container(&job).command.clone().unwrap();
        assert_eq!(cmd, [EXEC_PATH, "exec", "--fetch"]);
        let env = container(&job).env.clone().unwrap();
        assert!(
            env.iter().all(|v| !SHARD_VARS.contains(&v.name.as_str())),
            "{env:?}"
        );
        assert_eq!(
            env_of(&job, ENV_LAUNCH_URL).value.as_deref(),
            Some("http://tomato.qa.svc:8080/api/v1/runs/demo-x7k2q9bd/attempts/2/launch?namespace=qa")
        );
        let fetched = whole_launch(&run(), &service(), attempt);
        let carried_cmd = container(&carried).command.clone().unwrap();
        assert_eq!(fetched.argv, carried_cmd[3..], "exec -- <argv>");
        assert_eq!(
            fetched.env,
            [
                (
                    "TOMATO_TESTS".to_string(),
                    "cart > applies the discount".to_string()
                ),
                ("TOMATO_PACKS".to_string(), "basic".to_string())
            ]
        );
        assert!(fetched.bytes() > fetched.argv.concat().len());
    }

    #[test]
    fn a_fetched_launch_is_relocated_to_where_the_work_directory_really_is() {
        let mut launch = ShardLaunch {
            argv: vec![
                "pytest".into(),
                format!("--junitxml={JUNIT_PATH}"),
                "/suite/x.py".into(),
            ],
            env: vec![("OUT".into(), format!("{WORK_DIR}/out"))],
            unit: "tests".into(),
            items: vec![],
            expected_seconds: None,
        };
        let same = launch.clone();
        launch.relocate(WORK_DIR, WORK_DIR);
        assert_eq!(launch, same, "a real pod: nothing moves");
        launch.relocate(WORK_DIR, "/var/pods/p1/work");
        assert_eq!(launch.argv[1], "--junitxml=/var/pods/p1/work/junit.xml");
        assert_eq!(launch.argv[2], "/suite/x.py");
        assert_eq!(launch.env[0].1, "/var/pods/p1/work/out");
    }

    #[test]
    fn the_same_attempt_always_gives_the_same_job() {
        let selection = Selection::all(vec!["basic".into()]);
        let attempt = JobAttempt {
            seq: 1,
            number: 1,
            selection: &selection,
            reruns: &[],
            timeout: Duration::from_secs(60),
            shards: 1,
            fetch: false,
        };
        assert_eq!(
            desired_job(&run(), &service(), attempt, &settings()),
            desired_job(&run(), &service(), attempt, &settings())
        );
    }

    #[test]
    fn a_sharded_attempt_is_one_indexed_job_whose_indexes_read_their_own_argv() {
        let packs = vec!["api".to_string(), "basic".into(), "slow".into()];
        let selection = Selection::all(packs.clone());
        let mut attempt = JobAttempt {
            seq: 1,
            number: 1,
            selection: &selection,
            reruns: &[],
            timeout: Duration::from_secs(60),
            shards: 1,
            fetch: false,
        };
        let split = crate::shard::split_first(None, &packs, &Default::default(), "", 3);
        let launches = shard_launches(&run(), &service(), attempt, &split, |_| None);
        assert_eq!(launches.len(), 3);
        assert_eq!(launches[2].items, ["slow"]);
        assert!(
            launches[2].argv.contains(&"/suite/slow.test.mjs".to_string()),
            "{:?}",
            launches[2].argv
        );
        assert!(!launches[2].argv.contains(&"/suite/basic.test.mjs".to_string()));
        assert_eq!(
            launches[2].env,
            [
                ("TOMATO_TESTS".to_string(), String::new()),
                ("TOMATO_PACKS".into(), "slow".into())
            ]
        );

        let cm = shards_config_map(&run(), 1, &launches);
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-x7k2q9bd-shards-1"));
        assert_eq!(cm.immutable, Some(true));
        assert_eq!(read_shards(&cm).unwrap(), launches);

        attempt.shards = 3;
        let job = desired_job(&run(), &service(), attempt, &settings());
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
        // One crashing index is not retried and does not end the others.
        assert_eq!(spec.backoff_limit_per_index, Some(0));
        assert_eq!((spec.backoff_limit, spec.max_failed_indexes), (None, None));
        assert_eq!(job_shards(&job), 3);
        let c = container(&job);
        assert_eq!(c.command.as_deref().unwrap(), [EXEC_PATH, "exec", "--sharded"]);
        let from = c.env_from.as_ref().unwrap()[0].config_map_ref.as_ref().unwrap();
        assert_eq!(from.name, "demo-x7k2q9bd-shards-1");
        assert_eq!(env_of(&job, "TOMATO_SHARDS").value.as_deref(), Some("3"));
        assert!(c.env.as_ref().unwrap().iter().all(|e| e.name != "TOMATO_TESTS"));
    }

    #[test]
    fn a_large_rerun_is_sharded_by_its_failed_tests_each_index_selecting_its_own() {
        let ids: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
        let cases: Vec<Case> = ids.iter().map(|id| Case::failed("", id, None)).collect();
        let by_id: std::collections::HashMap<&str, &Case> =
            ids.iter().map(String::as_str).zip(cases.iter()).collect();
        let selection = Selection::failed(vec!["basic".into()], 1, ids.clone());
        let attempt = JobAttempt {
            seq: 2,
            number: 2,
            selection: &selection,
            reruns: &[],
            timeout: Duration::from_secs(60),
            shards: 2,
            fetch: false,
        };
        let split = crate::shard::split_rerun(&ids, &Default::default(), 4);
        assert_eq!(split.shards.len(), 2, "one shard per 10 tests");
        let launches = shard_launches(&run(), &service(), attempt, &split, |id| by_id.get(id).copied());
        for l in &launches {
            let patterns: Vec<&String> = l
                .argv
                .iter()
                .filter(|a| a.starts_with("--test-name-pattern"))
                .collect();
            assert_eq!(patterns.len(), l.items.len(), "{:?}", l.argv);
            let tests = &l.env.iter().find(|(k, _)| k == "TOMATO_TESTS").unwrap().1;
            assert_eq!(tests.lines().collect::<Vec<_>>(), l.items);
        }
        assert_eq!(launches.iter().map(|l| l.items.len()).sum::<usize>(), 25);
    }

    #[test]
    fn shards_too_large_for_a_pods_environment_do_not_fit() {
        let launch = |tests: usize| ShardLaunch {
            argv: vec!["pytest".into()],
            env: vec![],
            unit: "tests".into(),
            items: (0..tests)
                .map(|i| format!("tests/test_{i:06}.py::test_something"))
                .collect(),
            expected_seconds: None,
        };
        assert!(shards_fit(&[launch(100), launch(100)]).is_ok());
        let err = shards_fit(&[launch(100), launch(5000)]).unwrap_err();
        assert!(err.starts_with("shard 1 is"), "{err}");
        let many: Vec<ShardLaunch> = (0..10).map(|_| launch(3000)).collect();
        assert!(shards_fit(&many).unwrap_err().contains("ConfigMap"));
    }

    #[test]
    fn an_upload_names_its_shard_exactly_when_the_attempt_is_sharded() {
        assert!(check_shard_upload(1, None).is_ok());
        assert!(check_shard_upload(3, Some(2)).is_ok());
        assert!(check_shard_upload(3, None).unwrap_err().contains("?shard="));
        assert!(check_shard_upload(3, Some(3)).unwrap_err().contains("0 to 2"));
        assert!(check_shard_upload(1, Some(1)).is_err());
    }

    #[test]
    fn long_run_names_give_distinct_job_names_within_63_characters() {
        let a = "a".repeat(60) + "-one";
        let b = "a".repeat(60) + "-two";
        let (ja, jb) = (job_name(&a, 12), job_name(&b, 12));
        assert!(ja.len() <= 63 && jb.len() <= 63, "{ja} {jb}");
        assert_ne!(ja, jb);
        assert!(ja.ends_with("-12"));
        assert_eq!(job_name("short", 3), "short-3");
        assert_eq!(label_value(&a).len(), 63);
    }

    fn job_with(condition: &str, reason: Option<&str>) -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "j"},
            "status": {"conditions": [{
                "type": condition, "status": "True", "reason": reason,
                "lastTransitionTime": "2026-01-02T03:04:05Z"
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn job_conditions_read_as_states() {
        assert_eq!(job_state(&Job::default()), JobState::Active);
        let done = job_state(&job_with("Complete", None));
        assert!(matches!(done, JobState::Succeeded { at: Some(_) }));
        let deadline = job_state(&job_with("Failed", Some("DeadlineExceeded")));
        assert!(deadline.is_deadline_exceeded());
        assert!(!job_state(&job_with("Failed", Some("BackoffLimitExceeded"))).is_deadline_exceeded());
    }

    #[test]
    fn a_pod_stuck_on_its_image_or_a_missing_secret_is_a_launch_failure() {
        let pod = |reason: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "status": {"containerStatuses": [{
                    "name": "tests", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": "secret \"stand-creds\" not found"}}
                }]}
            }))
            .unwrap()
        };
        assert_eq!(
            pod_launch_failure(&pod("CreateContainerConfigError")).as_deref(),
            Some("container tests: CreateContainerConfigError: secret \"stand-creds\" not found")
        );
        assert_eq!(pod_launch_failure(&pod("ContainerCreating")), None);
        assert_eq!(pod_launch_failure(&pod("ErrImagePull")), None);
    }
}
