//! packs_config: per-service configuration — packs, presets, stands, launch, reruns, reporting.
//!
//! One YAML file per service (`packs_config/<service>.yaml`); the service's own files (its
//! test suite, category rules) may live in `packs_config/<service>/`, which templates reach
//! as `{dir}`. Loading parses every file into raw serde types and then validates them into
//! the types below, collecting every problem (file, field, reason) rather than stopping at the
//! first: the server refuses to start on an invalid config and prints them all. Everything
//! after loading works on values that cannot be invalid (compiled regexes, parsed templates).

pub mod aqua;
mod raw;
mod runner;
mod wording;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::results::TestIdStyle;
use crate::template::Template;
pub use runner::{RUNNERS, Runner};

use crate::crd::RunTemplate;
use crate::integrations::settings::Webhook;

/// Default number of reruns of failed tests.
pub const DEFAULT_RETRIES: u8 = 3;
/// Most shards an attempt may be split into (a service's or a run's `shards`).
pub const MAX_SHARDS: u8 = 64;
/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Where a Job's test container starts, and what `{dir}` means in a Job, unless
/// `launch.workingDir` says otherwise.
pub const DEFAULT_WORKING_DIR: &str = "/tests";

/// The whole packs_config directory, validated.
#[derive(Clone, Debug)]
pub struct PacksConfig {
    pub dir: PathBuf,
    services: BTreeMap<String, Arc<Service>>,
    /// `_defaults.yaml`'s `retention`: for every service without its own.
    default_retention: Option<crate::retention::Policy>,
}

/// The file of settings every service gets unless its own file says otherwise. Its name
/// cannot be a service's (a service name starts with a letter or digit).
pub const DEFAULTS_FILE: &str = "_defaults.yaml";

/// One service: what can be run and how.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub description: String,
    /// The YAML file it was loaded from.
    pub file: PathBuf,
    /// `<config>/<service>`: where its suite and files live (`{dir}` in templates).
    pub dir: PathBuf,
    /// Stands must match this (whole-string match).
    pub stand_pattern: Regex,
    /// Runs at once on one stand (`stands.concurrency`), counted across services.
    pub stand_concurrency: u32,
    /// How to tell a held stand is back (`stands.probe`); without one, only a person resumes
    /// it.
    pub stand_probe: Option<crate::outage::Probe>,
    /// When infrastructure failures mean the stand is down (`outage`).
    pub outage: crate::outage::Settings,
    /// Runs of this service at once.
    pub concurrency: u32,
    /// Reruns of failed tests when a run does not say.
    pub retries: u8,
    /// Parts attempt 1 is split into when a run does not say (`shards`, 1–[`MAX_SHARDS`]).
    pub shards: u8,
    /// The runner preset (`launch.runner`) the launch and rerun settings were filled from.
    pub runner: Option<Runner>,
    /// Aqua's connection settings (`launch.aqua`), present when any pack runs in Aqua
    /// (`launch.launcher: aqua` for every pack, or `packs.<name>.launcher: aqua` for one).
    pub aqua: Option<Arc<aqua::AquaService>>,
    pub launch: Launch,
    pub rerun: Rerun,
    /// Packs by name (sorted).
    pub packs: BTreeMap<String, Pack>,
    /// Presets (`category`) by name: each a list of pack names.
    pub presets: BTreeMap<String, Vec<String>>,
    pub report: ReportDefaults,
    /// Failure categories (`categories` / `categoriesFile`); `None` when the service has none.
    pub classifier: Option<Arc<crate::classify::Classifier>>,
    /// The default regression plan in test management (`regression.plan`).
    pub regression_plan: Option<crate::integrations::tms::PlanRef>,
    /// Attachments of Allure results kept per test and per run (`attachments`).
    pub attachments: crate::results::allure::Limits,
    /// How long finished runs and their files are kept (`retention`), when the service's file
    /// says; else `_defaults.yaml`'s ([`PacksConfig::retention`] answers which).
    pub retention: Option<crate::retention::Policy>,
}

/// How an attempt is launched.
#[derive(Clone, Debug)]
pub struct Launch {
    /// argv; `{tests}` (a whole element) expands to the selection.
    pub command: Vec<Template>,
    pub timeout: Duration,
    /// Extra environment for the tests (never secrets: those come through `spec.env` references).
    pub env: BTreeMap<String, String>,
    /// Environment the runner preset's reporter reads (`JEST_JUNIT_OUTPUT_FILE={junit}`),
    /// rendered like the command; `env` wins over it.
    pub runner_env: Vec<(String, Template)>,
    /// A directory where the runner writes report files of its own naming (Surefire,
    /// Gradle): its `*.xml` written during an attempt are that attempt's report too.
    pub reports: Option<Template>,
    /// `launch.list`: a command printing the tests to split into shards, one per line (over
    /// `{dir}` and `{stand}`); when absent the preset's listing is used, if it has one.
    pub list: Option<Vec<Template>>,
    /// How operator mode runs the command in a Kubernetes Job.
    pub job: JobLaunch,
}

/// Operator-mode launch settings (`launch.image`, `launch.resources`, ...): what the Job's
/// test container is made of. Standalone mode ignores them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobLaunch {
    /// Image holding the test suite and its runner (required in operator mode).
    pub image: Option<String>,
    pub image_pull_policy: Option<PullPolicy>,
    /// ServiceAccount of the test pods; none means the namespace default, without a mounted
    /// API token.
    pub service_account_name: Option<String>,
    /// The container's working directory, and what `{dir}` means in a Job (the suite's
    /// place in the image).
    pub working_dir: String,
    /// Resource requests and limits (`cpu`, `memory`, ...), as Kubernetes quantities.
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// How failed tests are selected for a rerun.
#[derive(Clone, Debug)]
pub struct Rerun {
    /// How a JUnit case becomes a test id.
    pub test_id: TestIdStyle,
    /// Arguments added for each failed test (e.g. `{dir}/{id}` for pytest,
    /// `--test-name-pattern=^{name:regex}$` for Node).
    pub args: Vec<Template>,
    /// Whether the packs' own selectors stay on a rerun's command line (Node needs its test
    /// files; pytest must not get them, or it would run everything again).
    pub include_pack_tests: bool,
    /// When `args` is empty and a preset is set, the preset selects the failed tests its
    /// own way (one `-t`/`--grep`/`-Dtest`/`-run` for all of them).
    pub select: Option<Runner>,
    /// `rerun.eager`: in a sharded attempt, a finished shard's failed tests are rerun at once
    /// (in the slot it freed) while the other shards still run; the next attempt then runs
    /// only what was not rerun early. The verdicts are those of a rerun after the attempt.
    pub eager: bool,
}

impl Rerun {
    /// Whether a rerun gives the failed tests to the runner (else it runs the packs again).
    pub fn selects(&self) -> bool {
        !self.args.is_empty() || self.select.is_some()
    }

    /// Whether a test id alone is enough to select a test (pytest's node ids, or `rerun.args`
    /// over `{id}` and `{dir}` only): what a shard of listed tests needs, since a listing gives
    /// ids, not the JUnit cases (names, classes, files) other selections are built from.
    pub fn selects_by_id(&self) -> bool {
        use crate::template::Var;
        match self.select {
            // Go's selection needs the package and the name, which its listed id
            // (`{package}::{name}`) holds: see crate::shard::listed_case.
            Some(r) => matches!(r, Runner::Pytest | Runner::Go),
            None => {
                !self.args.is_empty()
                    && self.args.iter().all(|t| {
                        [Var::Name, Var::Classname, Var::File, Var::Suite]
                            .iter()
                            .all(|v| !t.uses(*v))
                    })
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Pack {
    pub description: String,
    /// argv elements selecting the pack's tests (files, directories, markers).
    pub tests: Vec<Template>,
    /// The pack in Aqua: present exactly when the pack runs there (its own `launcher`, else
    /// the service's); see [`crate::launch::split`].
    pub aqua: Option<aqua::AquaPack>,
}

/// Reporting defaults of a service. (Its report templates may be overridden by files in
/// `<service>/templates/`; see [`crate::report::templates`].)
#[derive(Clone, Debug, Default)]
pub struct ReportDefaults {
    /// Always receive the report, in addition to the run's `emails`.
    pub emails: Vec<String>,
    /// Webhooks that receive every run's report, in addition to `TOMATO_WEBHOOK_URLS`.
    pub webhooks: Vec<Webhook>,
    /// When email and webhooks are sent (`report.notify`).
    pub notify: Notify,
}

/// When a service's email and webhook reports are sent (`report.notify` in packs_config).
/// The tracker comment and the test-management record are the run's record, not a
/// notification: they always go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Notify {
    /// Every finished run.
    #[default]
    Always,
    /// Only a run with a new or changed failure against the service's history
    /// (`crate::history`); otherwise both channels are Skipped with the reason. Where no
    /// history is kept (operator mode, for now) every run is sent: nothing says it is old.
    NewFailures,
}

/// One problem in packs_config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the field (`packs.smoke.tests[0]`), empty for the file as a whole.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.field, self.reason)
        }
    }
}

/// Every problem found while loading packs_config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "packs_config is invalid ({} problem(s)):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A request that does not fit the config, naming the offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// The field as the run spec names it (`service`, `stand`, `category`, `packs`, `emails`, ...).
    pub field: &'static str,
    pub message: String,
}

impl InputError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        InputError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for InputError {}

impl PacksConfig {
    /// Loads and validates every `*.yaml`/`*.yml` file directly in `dir`.
    pub fn load(dir: &Path) -> Result<PacksConfig, ConfigErrors> {
        let err = |reason: String| {
            ConfigErrors(vec![ConfigError {
                file: dir.to_path_buf(),
                field: String::new(),
                reason,
            }])
        };
        let dir = dir
            .canonicalize()
            .map_err(|e| err(format!("cannot open the packs_config directory: {e}")))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| err(format!("cannot list the packs_config directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        let mut errors = Vec::new();
        let mut default_retention = None;
        if let Some(at) = files
            .iter()
            .position(|f| f.file_name().is_some_and(|n| n == DEFAULTS_FILE))
        {
            match raw::load_defaults(&files.remove(at)) {
                Ok(policy) => default_retention = policy,
                Err(mut errs) => errors.append(&mut errs),
            }
        }
        let mut services = BTreeMap::new();
        for file in files {
            match raw::load_service(&dir, &file) {
                Ok(svc) => {
                    if let Some(prev) = services.get(&svc.name).map(|s: &Arc<Service>| s.file.clone()) {
                        errors.push(ConfigError {
                            file: file.clone(),
                            field: String::new(),
                            reason: format!("service {:?} is also defined in {}", svc.name, prev.display()),
                        });
                    } else {
                        services.insert(svc.name.clone(), Arc::new(svc));
                    }
                }
                Err(mut errs) => errors.append(&mut errs),
            }
        }
        if services.is_empty() && errors.is_empty() {
            errors.push(ConfigError {
                file: dir.clone(),
                field: String::new(),
                reason: "no service is defined: add a <service>.yaml file".into(),
            });
        }
        if errors.is_empty() {
            Ok(PacksConfig {
                dir,
                services,
                default_retention,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Parses and checks one service file's text as [`PacksConfig::load`] would (`file` names
    /// the service and anchors its relative paths; it is not read). For `tomato check-config`
    /// style checks of text from elsewhere, and for the fuzzer.
    pub fn parse_service(config_dir: &Path, file: &Path, text: &str) -> Result<Service, ConfigErrors> {
        raw::parse_service(config_dir, file, text).map_err(ConfigErrors)
    }

    pub fn service(&self, name: &str) -> Option<&Arc<Service>> {
        self.services.get(name)
    }

    /// The retention of a service's runs: its own, else `_defaults.yaml`'s; `None` (keep
    /// everything) for neither, or for a service no longer configured.
    pub fn retention(&self, service: &str) -> Option<&crate::retention::Policy> {
        let svc = self.service(service)?;
        svc.retention.as_ref().or(self.default_retention.as_ref())
    }

    /// What operator mode needs beyond the common checks: every service names the image
    /// its Jobs run (`launch.image`). All problems at once, as [`PacksConfig::load`] does.
    pub fn check_operator(&self) -> Result<(), ConfigErrors> {
        let errors: Vec<ConfigError> = self
            .services()
            // A service whose packs all run in Aqua needs no image: the controller polls Aqua,
            // no Job runs.
            .filter(|s| s.launch.job.image.is_none() && s.packs.values().any(|p| p.aqua.is_none()))
            .map(|s| ConfigError {
                file: s.file.clone(),
                field: "launch.image".into(),
                reason: "operator mode runs each attempt as a Job and needs the image of the test suite"
                    .into(),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values()
    }

    /// Checks a run template against the config; on success returns the packs it selects.
    /// The first error, when there are several (see [`PacksConfig::check_run_all`]).
    pub fn check_run(&self, t: &RunTemplate) -> Result<Vec<String>, InputError> {
        self.check_run_all(t).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Checks a run template against the config and names every field at fault (never an
    /// empty list): a form can show them all at once. An unknown service stops the check
    /// there, since stands and packs are the service's.
    pub fn check_run_all(&self, t: &RunTemplate) -> Result<Vec<String>, Vec<InputError>> {
        if t.service.is_empty() {
            return Err(vec![InputError::new("service", "is required")]);
        }
        let svc = self.service(&t.service).ok_or_else(|| {
            let known: Vec<&str> = self.services.keys().map(String::as_str).collect();
            vec![InputError::new(
                "service",
                format!(
                    "unknown service {}; known: {}",
                    crate::text::quote(&t.service),
                    known.join(", ")
                ),
            )]
        })?;
        let mut errors = Vec::new();
        if let Err(e) = svc.check_stand(&t.stand) {
            errors.push(e);
        }
        let packs = match svc.resolve_packs(t.category.as_deref(), &t.packs) {
            Ok(packs) => packs,
            Err(e) => {
                errors.push(e);
                Vec::new()
            }
        };
        if t.emails.len() > MAX_EMAILS {
            errors.push(InputError::new(
                "emails",
                format!("at most {MAX_EMAILS} recipients, got {}", t.emails.len()),
            ));
        } else if let Some(m) = t.emails.iter().find_map(|e| check_email(e).err()) {
            errors.push(InputError::new("emails", m));
        }
        if let Some(Err(e)) = t.issue_key.as_deref().map(check_issue_key) {
            errors.push(e);
        }
        if let Some(v) = &t.version {
            if v.trim().is_empty() || v.len() > 255 {
                errors.push(InputError::new("version", "must be 1–255 characters"));
            } else if let Err(m) = crate::text::check_text(v) {
                errors.push(InputError::new("version", m));
            }
        }
        if let Some(r) = t.retries
            && r > 9
        {
            errors.push(InputError::new("retries", format!("must be 0–9, got {r}")));
        }
        if let Some(n) = t.shards
            && !(1..=MAX_SHARDS).contains(&n)
        {
            errors.push(InputError::new(
                "shards",
                format!("must be 1–{MAX_SHARDS}, got {n}"),
            ));
        }
        if let Some(m) = t.env.iter().find_map(|v| crate::secrets::check_env_var(v).err()) {
            errors.push(InputError::new("env", m));
        }
        if errors.is_empty() { Ok(packs) } else { Err(errors) }
    }
}

impl Service {
    /// The service's outage policy: its categories marked `infrastructure: true`, and
    /// `outage`'s share and minimum.
    pub fn outage_policy(&self) -> crate::outage::Policy<'_> {
        crate::outage::Policy {
            infrastructure: self
                .classifier
                .as_deref()
                .map(|c| c.infrastructure())
                .unwrap_or_default(),
            settings: self.outage,
        }
    }

    /// The stand must match `stands.pattern` as a whole.
    pub fn check_stand(&self, stand: &str) -> Result<(), InputError> {
        if stand.trim().is_empty() {
            return Err(InputError::new("stand", "is required"));
        }
        // The stand reaches the tests' argv and environment: a control or bidirectional
        // character is named as such, not as a mismatch of the pattern.
        crate::text::check_name(stand).map_err(|m| InputError::new("stand", m))?;
        if stand.len() > 253 || stand.chars().any(char::is_whitespace) {
            return Err(InputError::new(
                "stand",
                format!("{} is not a host or URL", crate::text::quote(stand)),
            ));
        }
        if !self.stand_pattern.is_match(stand) {
            return Err(InputError::new(
                "stand",
                format!(
                    "{} is not a stand of {} (must match {})",
                    crate::text::quote(stand),
                    self.name,
                    raw::unanchor(self.stand_pattern.as_str())
                ),
            ));
        }
        Ok(())
    }

    /// The packs a run selects: explicit `packs` win over `category`; neither means every pack.
    pub fn resolve_packs(&self, category: Option<&str>, packs: &[String]) -> Result<Vec<String>, InputError> {
        if !packs.is_empty() {
            let mut out = Vec::new();
            for p in packs {
                crate::text::check_name(p).map_err(|m| InputError::new("packs", m))?;
                if !self.packs.contains_key(p) {
                    let known: Vec<&str> = self.packs.keys().map(String::as_str).collect();
                    return Err(InputError::new(
                        "packs",
                        format!(
                            "unknown pack {} of {}; known: {}",
                            crate::text::quote(p),
                            self.name,
                            known.join(", ")
                        ),
                    ));
                }
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
            return Ok(out);
        }
        match category.filter(|c| !c.is_empty()) {
            None => Ok(self.packs.keys().cloned().collect()),
            Some(c) => self.presets.get(c).cloned().ok_or_else(|| {
                if let Err(m) = crate::text::check_name(c) {
                    return InputError::new("category", m);
                }
                let known: Vec<&str> = self.presets.keys().map(String::as_str).collect();
                InputError::new(
                    "category",
                    format!(
                        "unknown category {} of {}; known: {}",
                        crate::text::quote(c),
                        self.name,
                        if known.is_empty() {
                            "(none)".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            }),
        }
    }

    /// The stand pattern as written in packs_config.
    pub fn stand_pattern_source(&self) -> String {
        raw::unanchor(self.stand_pattern.as_str()).to_string()
    }

    /// The effective number of reruns for a run.
    pub fn retries_for(&self, t: &RunTemplate) -> u8 {
        t.retries.unwrap_or(self.retries)
    }

    /// At most how many attempts a run gets: the first and its reruns.
    pub fn max_attempts(&self, t: &RunTemplate) -> u32 {
        1 + u32::from(self.retries_for(t))
    }

    /// The number of shards a run asks for: its own `shards`, else the service's.
    pub fn shards_for(&self, t: &RunTemplate) -> u8 {
        t.shards.unwrap_or(self.shards).clamp(1, MAX_SHARDS)
    }

    /// Whether an attempt with `selection` runs sharded, and into how many shards at most: a
    /// full attempt when the run gets more than one shard, a rerun when it is large enough
    /// ([`crate::shard::RERUN_TESTS_PER_SHARD`] tests per shard, at least two shards). Both drivers ask this.
    pub fn attempt_shards(
        &self,
        run: &crate::crd::TestRun,
        selection: &crate::crd::Selection,
    ) -> Option<usize> {
        let svc = self;
        let n = svc.shard_slots(&run.spec.template) as usize;
        let sharded = match selection.kind {
            crate::crd::SelectionKind::All => n > 1,
            // A service that cannot select tests reruns its whole packs: nothing to split.
            crate::crd::SelectionKind::Failed => {
                n > 1 && svc.rerun.selects() && selection.count() / crate::shard::RERUN_TESTS_PER_SHARD >= 2
            }
        };
        sharded.then_some(n)
    }

    /// How many shards a run really gets, and so how many slots of the service and the stand
    /// it takes: what it asks for, at most the smaller of the two limits (each shard counts
    /// against both; more could never start).
    pub fn shard_slots(&self, t: &RunTemplate) -> u32 {
        u32::from(self.shards_for(t))
            .min(self.concurrency)
            .min(self.stand_concurrency)
            .max(1)
    }
}

/// A report recipient must be a plain mailbox address (`name@domain`).
pub fn check_email(e: &str) -> Result<(), String> {
    let trimmed = e.trim();
    if trimmed.is_empty() {
        return Err("an empty address".into());
    }
    // lettre takes any Unicode in the local part; an address is a name people read and a
    // header the mail server reads, so controls and bidirectional controls are refused first.
    crate::text::check_name(e)?;
    trimmed
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|err| format!("{} is not an email address ({err})", crate::text::quote(trimmed)))
}

/// Most report recipients one run names (the CRD's `maxItems`).
pub const MAX_EMAILS: usize = 100;
/// Longest tracker key (the CRD's `maxLength`).
pub const MAX_ISSUE_KEY: usize = 64;

/// A tracker key like `QA-123`, at most [`MAX_ISSUE_KEY`] long; the error names `issueKey`.
pub fn check_issue_key(key: &str) -> Result<(), InputError> {
    crate::text::check_name(key).map_err(|m| InputError::new("issueKey", m))?;
    if key.len() > MAX_ISSUE_KEY {
        return Err(InputError::new(
            "issueKey",
            format!("is longer than {MAX_ISSUE_KEY} characters"),
        ));
    }
    let ok = key.split_once('-').is_some_and(|(project, num)| {
        project.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && project
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !num.is_empty()
            && num.chars().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(InputError::new(
            "issueKey",
            format!("{} is not a tracker key like QA-123", crate::text::quote(key)),
        ))
    }
}

impl crate::queue::Limits for PacksConfig {
    fn service_concurrency(&self, service: &str) -> u32 {
        self.service(service).map_or(1, |s| s.concurrency)
    }
    fn stand_concurrency(&self, service: &str) -> u32 {
        self.service(service).map_or(1, |s| s.stand_concurrency)
    }
    fn slots(&self, run: &crate::crd::TestRun) -> u32 {
        self.service(&run.spec.template.service)
            .map_or(1, |s| s.shard_slots(&run.spec.template))
    }
}

#[cfg(test)]
mod tests;
