//! The packs_config file format as written (serde types) and its validation into [`Service`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use super::Webhook;
use super::runner::Runner;
use super::{
    ConfigError, DEFAULT_RETRIES, DEFAULT_TIMEOUT, DEFAULT_WORKING_DIR, JobLaunch, Launch, Pack, PullPolicy,
    ReportDefaults, Rerun, Service, TestIdStyle,
};
use crate::classify::Classifier;
use crate::template::{COMMAND_VARS, PACK_VARS, TEST_VARS, Template, Var};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawService {
    #[serde(default)]
    description: String,
    stands: RawStands,
    #[serde(default = "one")]
    concurrency: u32,
    #[serde(default = "default_retries")]
    retries: u8,
    /// Parts an attempt is split into (1–64; 1 is unsharded).
    #[serde(default = "one")]
    shards: u32,
    launch: RawLaunch,
    #[serde(default)]
    rerun: RawRerun,
    packs: BTreeMap<String, RawPack>,
    #[serde(default)]
    presets: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    report: RawReport,
    /// Manual regressions of the service.
    #[serde(default)]
    regression: RawRegression,
    /// Failure categories inline, in the shape of Allure's categories.json.
    #[serde(default)]
    categories: Option<Vec<serde_json::Value>>,
    /// Or a categories.json file, relative to the packs_config directory.
    #[serde(default)]
    categories_file: Option<String>,
    /// Limits on the attachments of Allure results that are kept.
    #[serde(default)]
    attachments: RawAttachments,
    /// How long finished runs and their files are kept (absent: for good).
    #[serde(default)]
    retention: Option<RawRetention>,
    /// When an attempt's infrastructure failures mean the stand is down (crate::outage).
    #[serde(default)]
    outage: Option<RawOutage>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOutage {
    /// Share of an attempt's failures (0–1, default 0.8).
    #[serde(default)]
    share: Option<f64>,
    /// And at least this many (default 3).
    #[serde(default)]
    min: Option<u32>,
}

/// How to tell a held stand is back: `GET url` answers `status`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProbe {
    url: String,
    #[serde(default = "default_probe_status")]
    status: u16,
    #[serde(default)]
    every: Option<String>,
}

fn default_probe_status() -> u16 {
    200
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetention {
    #[serde(default)]
    successful: Option<RawRunLimits>,
    #[serde(default)]
    failed: Option<RawRunLimits>,
    #[serde(default)]
    files: Option<RawFilesLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRunLimits {
    /// `30d`, `12h`, `1d12h`.
    #[serde(default)]
    max_age: Option<String>,
    /// Signed, so that a negative number is answered in our words, not serde's.
    #[serde(default)]
    runs: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFilesLimit {
    max_age: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAttachments {
    /// Per test and attempt: `10MB`, `512KB`, or bytes.
    #[serde(default)]
    per_test: Option<String>,
    /// Per run, over all its attempts.
    #[serde(default)]
    per_run: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawStands {
    pattern: String,
    #[serde(default = "one")]
    concurrency: u32,
    #[serde(default)]
    probe: Option<RawProbe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLaunch {
    /// A runner preset: pytest, node, jest, playwright, maven, gradle, go.
    #[serde(default)]
    runner: Option<String>,
    /// The command; a preset supplies one when this is left out.
    #[serde(default)]
    command: Option<Vec<String>>,
    /// Extra arguments, placed just before `{tests}` (e.g. `-o` for an offline Maven).
    #[serde(default)]
    args: Vec<String>,
    /// Where the runner writes report files of its own naming (a preset supplies it).
    #[serde(default)]
    reports: Option<String>,
    /// A command printing the tests to split into shards, one selector per line (a preset
    /// supplies one where its runner can list tests).
    #[serde(default)]
    list: Option<Vec<String>>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    // Operator mode (Jobs); standalone mode ignores these.
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    image_pull_policy: Option<String>,
    #[serde(default)]
    service_account_name: Option<String>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    resources: RawResources,
    /// `process` (the default: a local process, or a Job in operator mode) or `aqua`.
    #[serde(default)]
    launcher: Option<String>,
    /// Aqua's settings, for `launcher: aqua`.
    #[serde(default)]
    aqua: Option<super::aqua::RawAqua>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawResources {
    #[serde(default)]
    requests: BTreeMap<String, String>,
    #[serde(default)]
    limits: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRerun {
    #[serde(default)]
    test_id: Option<String>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    include_pack_tests: Option<bool>,
    /// Rerun the failed tests of a finished shard while the other shards still run.
    #[serde(default)]
    eager: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPack {
    #[serde(default)]
    description: String,
    /// Test selectors; not used by an Aqua pack (Aqua knows its suites). An `Option` without
    /// a default, so that a pack written as a list stays an error (serde would read a list
    /// into a struct whose fields all have defaults).
    tests: Option<Vec<String>>,
    /// The pack in Aqua, when it runs there.
    #[serde(default)]
    aqua: Option<super::aqua::RawAquaPack>,
    /// `process` or `aqua`: where this pack runs, over the service's `launch.launcher`.
    #[serde(default)]
    launcher: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawReport {
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    webhooks: Vec<String>,
    #[serde(default)]
    notify: super::Notify,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRegression {
    /// The default regression plan in test management: its id or its name.
    #[serde(default)]
    plan: Option<serde_json::Value>,
}

fn one() -> u32 {
    1
}
fn default_retries() -> u8 {
    DEFAULT_RETRIES
}

/// Collects problems of one file.
struct Problems<'a> {
    file: &'a Path,
    errors: Vec<ConfigError>,
}

impl Problems<'_> {
    fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn templates(&mut self, field: &str, items: &[String], vars: &[Var]) -> Vec<Template> {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                Template::parse(s, vars)
                    .map_err(|e| self.add(format!("{field}[{i}]"), e))
                    .ok()
            })
            .collect()
    }
}

/// Wraps a user's stand pattern so it must match the whole stand.
fn anchor(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// The user's pattern back from [`anchor`], for messages.
pub(super) fn unanchor(anchored: &str) -> &str {
    anchored
        .strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(anchored)
}

fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

pub(super) fn load_service(config_dir: &Path, file: &Path) -> Result<Service, Vec<ConfigError>> {
    match std::fs::read_to_string(file) {
        Ok(text) => parse_service(config_dir, file, &text),
        Err(e) => Err(vec![ConfigError {
            file: file.to_path_buf(),
            field: String::new(),
            reason: format!("cannot read: {e}"),
        }]),
    }
}

/// Parses and checks the text of one service file (`file` names the service and anchors its
/// relative paths; it is not read).
pub(super) fn parse_service(config_dir: &Path, file: &Path, text: &str) -> Result<Service, Vec<ConfigError>> {
    let mut p = Problems {
        file,
        errors: Vec::new(),
    };
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if !valid_name(&name) {
        p.add(
            "",
            format!("{name:?} is not a valid service name (lowercase letters, digits, '-', '_'; at most 63)"),
        );
    }
    let raw = match parse_yaml::<RawService>(text) {
        Ok(r) => r,
        Err((field, reason)) => {
            // The document as read without a schema: what the file holds at a wrong field.
            let tree = serde_saphyr::from_str::<serde_json::Value>(text).ok();
            p.add(
                field.clone(),
                super::wording::plain(&field, &reason, tree.as_ref()),
            );
            // Serde stops at the first wrong field; find the others too, so one look at the
            // errors is enough to fix the file.
            if let Some(tree) = tree {
                for (field, reason) in more_field_errors(tree, &field) {
                    p.add(field, reason);
                }
            }
            return Err(p.errors);
        }
    };

    // Compiled as written first, so an error quotes the user's pattern, not its anchored form.
    let stand_pattern =
        match Regex::new(&raw.stands.pattern).and_then(|_| Regex::new(&anchor(&raw.stands.pattern))) {
            Ok(r) => Some(r),
            Err(e) => {
                p.add(
                    "stands.pattern",
                    format!("{:?} is not a valid regular expression: {e}", raw.stands.pattern),
                );
                None
            }
        };
    if raw.stands.concurrency == 0 {
        p.add("stands.concurrency", "must be at least 1");
    }
    let outage = {
        let o = raw.outage.as_ref();
        let share = o.and_then(|o| o.share).unwrap_or(crate::outage::DEFAULT_SHARE);
        let min = o.and_then(|o| o.min).unwrap_or(crate::outage::DEFAULT_MIN);
        if !(share > 0.0 && share <= 1.0) {
            p.add(
                "outage.share",
                format!("must be above 0 and at most 1, got {share}"),
            );
        }
        if min == 0 {
            p.add("outage.min", "must be at least 1");
        }
        crate::outage::Settings { share, min }
    };
    let stand_probe = raw.stands.probe.as_ref().and_then(|probe| {
        let mut ok = true;
        if let Err(e) = crate::outage::Probe::check(&probe.url) {
            p.add("stands.probe.url", e);
            ok = false;
        }
        if !(100..=599).contains(&probe.status) {
            p.add(
                "stands.probe.status",
                format!("{} is not an HTTP status", probe.status),
            );
            ok = false;
        }
        let every = match probe.every.as_deref().map(crate::duration::parse) {
            None => std::time::Duration::from_secs(30),
            Some(Ok(d)) if d >= std::time::Duration::from_secs(1) => d,
            Some(Ok(_)) => {
                p.add("stands.probe.every", "must be at least 1s");
                ok = false;
                std::time::Duration::from_secs(30)
            }
            Some(Err(e)) => {
                p.add("stands.probe.every", e);
                ok = false;
                std::time::Duration::from_secs(30)
            }
        };
        ok.then(|| crate::outage::Probe {
            url: probe.url.clone(),
            status: probe.status,
            every,
        })
    });
    if raw.concurrency == 0 {
        p.add("concurrency", "must be at least 1");
    }
    if raw.retries > 9 {
        p.add("retries", format!("must be 0–9, got {}", raw.retries));
    }
    if !(1..=u32::from(super::MAX_SHARDS)).contains(&raw.shards) {
        p.add(
            "shards",
            format!("must be 1–{}, got {}", super::MAX_SHARDS, raw.shards),
        );
    }

    let runner = raw
        .launch
        .runner
        .as_deref()
        .and_then(|r| Runner::parse(r).map_err(|e| p.add("launch.runner", e)).ok());
    let service_aqua =
        super::aqua::launcher("launch.launcher", raw.launch.launcher.as_deref(), &mut |f, r| {
            p.add(f, r)
        })
        // A launcher that is not one is named once; the rest is then checked as the file's
        // other fields suggest (its Aqua settings present or not), so one typo is one error.
        .unwrap_or(raw.launch.launcher.is_some() && raw.launch.aqua.is_some());
    // Where each pack runs: its own `launcher`, else the service's.
    let pack_in_aqua: BTreeMap<&str, bool> = raw
        .packs
        .iter()
        .map(|(pname, pack)| {
            let field = format!("packs.{pname}.launcher");
            let own = super::aqua::launcher(&field, pack.launcher.as_deref(), &mut |f, r| p.add(f, r));
            let in_aqua = match (&pack.launcher, own) {
                (None, _) => service_aqua,
                (Some(_), Some(own)) => own,
                (Some(_), None) => pack.aqua.is_some(),
            };
            (pname.as_str(), in_aqua)
        })
        .collect();
    let in_aqua: Vec<&str> = pack_in_aqua
        .iter()
        .filter(|(_, a)| **a)
        .map(|(n, _)| *n)
        .collect();
    let aqua = match (&raw.launch.aqua, in_aqua.first()) {
        (Some(a), Some(_)) => super::aqua::service(a, &mut |f, r| p.add(f, r)),
        (None, Some(first)) => {
            let who = if service_aqua {
                "launcher: aqua".to_string()
            } else {
                format!("pack {first} runs in Aqua (packs.{first}.launcher: aqua) and")
            };
            p.add(
                "launch.aqua",
                format!("{who} needs Aqua's settings (launch.aqua.url at least)"),
            );
            None
        }
        (Some(_), None) => {
            p.add("launch.aqua", super::aqua::ONLY_IN_AQUA);
            None
        }
        (None, None) => None,
    };
    // An Aqua service runs no command of its own: Aqua knows how to run its packs.
    let all_in_aqua = !raw.packs.is_empty() && in_aqua.len() == raw.packs.len();
    let command = if all_in_aqua && raw.launch.command.is_none() && runner.is_none() {
        Vec::new()
    } else {
        launch_command(&mut p, &raw.launch, runner)
    };
    let runner_env: Vec<(String, Template)> = runner
        .map(|r| {
            r.env()
                .iter()
                .map(|(k, v)| {
                    let t = Template::parse(v, COMMAND_VARS).expect("a preset's environment is valid");
                    (k.to_string(), t)
                })
                .collect()
        })
        .unwrap_or_default();
    let reports = match (&raw.launch.reports, runner.and_then(Runner::reports)) {
        (Some(r), _) => p
            .templates("launch.reports", std::slice::from_ref(r), PACK_VARS)
            .pop(),
        (None, Some(r)) => {
            Some(Template::parse(r, PACK_VARS).expect("a preset's reports directory is valid"))
        }
        (None, None) => None,
    };
    let list = match &raw.launch.list {
        Some(l) if l.is_empty() => {
            p.add("launch.list", "an empty command");
            None
        }
        Some(l) => Some(p.templates("launch.list", l, &[Var::Dir, Var::Stand, Var::Tests])),
        None => None,
    };
    let timeout = match raw.launch.timeout.as_deref().map(crate::duration::parse) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.add("launch.timeout", e);
            DEFAULT_TIMEOUT
        }
    };
    for k in raw.launch.env.keys() {
        if !is_env_name(k) {
            p.add(format!("launch.env.{k}"), "not a valid environment variable name");
        } else if k.starts_with("TOMATO_") {
            p.add(
                format!("launch.env.{k}"),
                "TOMATO_* variables are set by Tomato itself",
            );
        }
    }

    let job = job_launch(&mut p, &raw.launch);

    let test_id = match (raw.rerun.test_id.as_deref(), runner) {
        (None, Some(r)) => Some(r.test_id()),
        (None, None) => Some(TestIdStyle::default()),
        (Some(s), _) => TestIdStyle::parse(s).map_err(|e| p.add("rerun.testId", e)).ok(),
    };
    let rerun_args = p.templates(
        "rerun.args",
        raw.rerun.args.as_deref().unwrap_or_default(),
        TEST_VARS,
    );
    // The preset's own selection, unless the file says how a failed test is passed.
    let select = runner.filter(|_| raw.rerun.args.is_none());
    let include_pack_tests = raw
        .rerun
        .include_pack_tests
        .unwrap_or_else(|| runner.is_some_and(Runner::include_pack_tests));
    // An eager rerun gives a shard's failed tests to the runner: a service that reruns whole
    // packs has nothing to start early.
    if raw.rerun.eager && rerun_args.is_empty() && select.is_none() {
        p.add(
            "rerun.eager",
            "needs a rerun that selects the failed tests (rerun.args or launch.runner)",
        );
    }

    if raw.packs.is_empty() {
        p.add("packs", "define at least one pack");
    }
    let mut packs = BTreeMap::new();
    for (pname, pack) in &raw.packs {
        if !valid_name(pname) {
            p.add(
                format!("packs.{pname}"),
                "not a valid pack name (lowercase letters, digits, '-', '_')",
            );
        }
        let field = format!("packs.{pname}.tests");
        let selectors = pack.tests.as_deref().unwrap_or_default();
        let tests = p.templates(&field, selectors, PACK_VARS);
        missing_pack_paths(&mut p, &field, selectors, &config_dir.join(&name));
        let this_in_aqua = pack_in_aqua.get(pname.as_str()).copied().unwrap_or(false);
        let pack_aqua = match (&pack.aqua, this_in_aqua) {
            (Some(a), true) => super::aqua::pack(pname, a, &mut |f, r| p.add(f, r)),
            (None, true) => {
                let why = if pack.launcher.is_some() {
                    format!("is required: the pack runs in Aqua (packs.{pname}.launcher: aqua)")
                } else {
                    "is required: the service runs its packs in Aqua (launch.launcher: aqua)".to_string()
                };
                p.add(format!("packs.{pname}.aqua.packId"), why);
                None
            }
            (Some(_), false) => {
                p.add(format!("packs.{pname}.aqua"), super::aqua::ONLY_IN_AQUA);
                None
            }
            (None, false) => {
                // An empty list is a choice (Maven's preset selects by its own configuration);
                // no list at all is a pack that says nothing of what it runs.
                if pack.tests.is_none() {
                    p.add(
                        &field,
                        "is required: the pack's test selectors (files, directories, markers)",
                    );
                }
                None
            }
        };
        packs.insert(
            pname.clone(),
            Pack {
                description: pack.description.clone(),
                tests,
                aqua: pack_aqua,
            },
        );
    }
    for (preset, members) in &raw.presets {
        if !valid_name(preset) {
            p.add(
                format!("presets.{preset}"),
                "not a valid preset name (lowercase letters, digits, '-', '_')",
            );
        }
        if members.is_empty() {
            p.add(format!("presets.{preset}"), "lists no pack");
        }
        for (i, m) in members.iter().enumerate() {
            if !raw.packs.contains_key(m) {
                p.add(
                    format!("presets.{preset}[{i}]"),
                    format!(
                        "unknown pack {m:?}{}",
                        crate::suggest::did_you_mean(m, raw.packs.keys().map(String::as_str))
                    ),
                );
            }
        }
    }
    for (i, e) in raw.report.emails.iter().enumerate() {
        if let Err(m) = super::check_email(e) {
            p.add(format!("report.emails[{i}]"), m);
        }
    }
    // The error never repeats a webhook URL: its path is usually its secret.
    let webhooks: Vec<Webhook> = raw
        .report
        .webhooks
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            Webhook::parse(u)
                .map_err(|m| p.add(format!("report.webhooks[{i}]"), m))
                .ok()
        })
        .collect();

    let regression_plan = match &raw.regression.plan {
        None => None,
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(id) if id > 0 => Some(crate::integrations::tms::PlanRef::Id(id)),
            _ => {
                p.add("regression.plan", format!("{n} is not a plan id"));
                None
            }
        },
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => {
            Some(crate::integrations::tms::PlanRef::Name(s.trim().to_string()))
        }
        Some(_) => {
            p.add(
                "regression.plan",
                "must be a plan id (a number) or a plan name (1–255 characters)",
            );
            None
        }
    };

    let attachments = {
        let defaults = crate::results::allure::Limits::default();
        let mut size = |field: &str, v: &Option<String>, default: u64| match v.as_deref().map(parse_size) {
            None => default,
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                p.add(field, e);
                default
            }
        };
        crate::results::allure::Limits {
            per_test: size(
                "attachments.perTest",
                &raw.attachments.per_test,
                defaults.per_test,
            ),
            per_run: size("attachments.perRun", &raw.attachments.per_run, defaults.per_run),
        }
    };

    let retention = raw.retention.as_ref().map(|r| retention_policy(&mut p, r));

    let classifier = load_categories(&mut p, config_dir, raw.categories, raw.categories_file.as_deref());

    match (stand_pattern, test_id) {
        (Some(stand_pattern), Some(test_id)) if p.errors.is_empty() => Ok(Service {
            dir: service_dir(config_dir, &name),
            name,
            description: raw.description,
            file: file.to_path_buf(),
            stand_pattern,
            stand_concurrency: raw.stands.concurrency,
            stand_probe,
            outage,
            concurrency: raw.concurrency,
            retries: raw.retries,
            shards: u8::try_from(raw.shards).unwrap_or(1),
            runner,
            aqua: aqua.map(std::sync::Arc::new),
            launch: Launch {
                command,
                timeout,
                env: raw.launch.env,
                runner_env,
                reports,
                list,
                job,
            },
            rerun: Rerun {
                test_id,
                args: rerun_args,
                include_pack_tests,
                select,
                eager: raw.rerun.eager,
            },
            packs,
            presets: raw.presets,
            report: ReportDefaults {
                emails: raw.report.emails,
                webhooks,
                notify: raw.report.notify,
            },
            classifier,
            regression_plan,
            attachments,
            retention,
        }),
        _ => Err(p.errors),
    }
}

/// `_defaults.yaml`: what every service gets unless its own file says otherwise.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDefaults {
    #[serde(default)]
    retention: Option<RawRetention>,
}

/// Reads and checks `_defaults.yaml`: the retention of every service without its own.
pub(super) fn load_defaults(file: &Path) -> Result<Option<crate::retention::Policy>, Vec<ConfigError>> {
    let mut p = Problems {
        file,
        errors: Vec::new(),
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            p.add("", format!("cannot read: {e}"));
            return Err(p.errors);
        }
    };
    // An empty file is no defaults.
    let raw = match parse_yaml::<Option<RawDefaults>>(&text) {
        Ok(r) => r.unwrap_or_default(),
        Err((field, reason)) => {
            p.add(field, reason);
            return Err(p.errors);
        }
    };
    let policy = raw.retention.as_ref().map(|r| retention_policy(&mut p, r));
    if p.errors.is_empty() {
        Ok(policy)
    } else {
        Err(p.errors)
    }
}

/// Most runs a `runs` limit may keep: beyond that it is no limit, and likely a typo.
const MAX_RETENTION_RUNS: i64 = 1_000_000;

/// Checks `retention` into a policy; each problem names its field (`retention.failed.runs`).
fn retention_policy(p: &mut Problems<'_>, raw: &RawRetention) -> crate::retention::Policy {
    let mut age = |field: String, v: &str| crate::duration::parse_age(v).map_err(|e| p.add(field, e)).ok();
    let mut limits = |outcome: &str, raw: &Option<RawRunLimits>| {
        let Some(raw) = raw else {
            return (crate::retention::Limits::default(), None);
        };
        let max_age = raw
            .max_age
            .as_deref()
            .and_then(|v| age(format!("retention.{outcome}.maxAge"), v));
        let mut problem = None;
        let runs = raw.runs.and_then(|n| match u32::try_from(n) {
            Ok(n) if n >= 1 && i64::from(n) <= MAX_RETENTION_RUNS => Some(n),
            _ => {
                problem = Some((
                    format!("retention.{outcome}.runs"),
                    format!(
                        "must be 1–{MAX_RETENTION_RUNS}, got {n} (leave it out to keep any number of runs)"
                    ),
                ));
                None
            }
        });
        if raw.max_age.is_none() && raw.runs.is_none() {
            problem = Some((
                format!("retention.{outcome}"),
                "give maxAge (like 30d) and/or runs (how many of the newest to keep), or leave it out to keep every run"
                    .into(),
            ));
        }
        (crate::retention::Limits { max_age, runs }, problem)
    };
    let (successful, bad_successful) = limits("successful", &raw.successful);
    let (failed, bad_failed) = limits("failed", &raw.failed);
    let files = raw
        .files
        .as_ref()
        .and_then(|f| age("retention.files.maxAge".into(), &f.max_age));
    for (field, reason) in [bad_successful, bad_failed].into_iter().flatten() {
        p.add(field, reason);
    }
    crate::retention::Policy {
        successful,
        failed,
        files,
    }
}

/// `<config>/<service>`, its symlinks resolved when it exists: runners that resolve them
/// (Jest's file map, Node's module paths) then report the very paths `{dir}` gives them.
fn service_dir(config_dir: &Path, name: &str) -> std::path::PathBuf {
    let dir = config_dir.join(name);
    dir.canonicalize().unwrap_or(dir)
}

/// Pack selectors that name a path under `{dir}` which is not there. Checked only when the
/// service directory itself exists (in operator mode the suite usually lives in the image,
/// not beside packs_config); a selector with pattern characters, or naming a test inside a
/// file (`file.py::test`), is checked up to the file.
fn missing_pack_paths(p: &mut Problems<'_>, field: &str, tests: &[String], dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    for (i, t) in tests.iter().enumerate() {
        let Some(rest) = t.strip_prefix("{dir}/") else {
            continue;
        };
        let rest = rest.split("::").next().unwrap_or(rest);
        if rest.is_empty() || rest.contains(['*', '?', '[', '{', '(', '|', '^', '$']) {
            continue;
        }
        if !dir.join(rest).exists() {
            p.add(
                format!("{field}[{i}]"),
                format!(
                    "{t:?} names {}, which does not exist under the service's directory {}",
                    rest,
                    dir.display()
                ),
            );
        }
    }
}

/// The launch command: the file's own, else the preset's, with `launch.args` placed just
/// before `{tests}`. Without `{tests}` neither the packs' selectors nor a rerun's failed tests
/// reach the runner: every attempt would run the same thing.
fn launch_command(p: &mut Problems<'_>, raw: &RawLaunch, runner: Option<Runner>) -> Vec<Template> {
    let source: Vec<String> = match (&raw.command, runner) {
        (Some(c), _) => c.clone(),
        (None, Some(r)) => r.command().iter().map(|s| s.to_string()).collect(),
        (None, None) => {
            if raw.runner.is_none() {
                p.add(
                    "launch",
                    format!(
                        "give a runner preset (launch.runner: {}) or the command itself (launch.command)",
                        super::RUNNERS
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ),
                );
            }
            return Vec::new();
        }
    };
    if source.is_empty() {
        p.add("launch.command", "must name the program to run");
        return Vec::new();
    }
    let mut command = p.templates("launch.command", &source, COMMAND_VARS);
    let extra = p.templates("launch.args", &raw.args, COMMAND_VARS);
    if command.first().is_some_and(|t| t.uses(Var::Tests)) {
        p.add("launch.command[0]", "the program itself cannot be {tests}");
    }
    let places = command.iter().filter(|t| t.is_exactly(Var::Tests)).count();
    if places > 1 {
        p.add("launch.command", "{tests} may appear only once");
    }
    if places == 0 && command.len() == source.len() {
        p.add(
            "launch.command",
            "has no \"{tests}\" argument: the packs' tests and a rerun's failed tests would never reach the runner, \
             so every attempt would run the same thing; add \"{tests}\" where the test files go",
        );
    }
    let at = command
        .iter()
        .position(|t| t.is_exactly(Var::Tests))
        .unwrap_or(command.len());
    command.splice(at..at, extra);
    command
}

/// The operator-mode settings of `launch`: each checked the way the API server would check
/// the Job field it becomes, so that a bad value is reported at start-up, not per attempt.
fn job_launch(p: &mut Problems<'_>, raw: &RawLaunch) -> JobLaunch {
    let image = raw.image.clone().filter(|i| {
        let ok = !i.is_empty() && i.len() <= 1024 && !i.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            p.add(
                "launch.image",
                format!("{i:?} is not a container image reference"),
            );
        }
        ok
    });
    let image_pull_policy = raw.image_pull_policy.as_deref().and_then(|s| match s {
        "Always" => Some(PullPolicy::Always),
        "IfNotPresent" => Some(PullPolicy::IfNotPresent),
        "Never" => Some(PullPolicy::Never),
        other => {
            p.add(
                "launch.imagePullPolicy",
                format!("{other:?} is not one of Always, IfNotPresent, Never"),
            );
            None
        }
    });
    let service_account_name = raw.service_account_name.clone().filter(|n| {
        let ok = is_dns_subdomain(n);
        if !ok {
            p.add(
                "launch.serviceAccountName",
                format!("{n:?} is not a valid ServiceAccount name"),
            );
        }
        ok
    });
    let working_dir = match raw.working_dir.as_deref() {
        None => DEFAULT_WORKING_DIR.to_string(),
        Some(d) if d.starts_with('/') && !d.contains('\0') => d.to_string(),
        Some(d) => {
            p.add("launch.workingDir", format!("{d:?} must be an absolute path"));
            DEFAULT_WORKING_DIR.to_string()
        }
    };
    for (kind, map) in [
        ("requests", &raw.resources.requests),
        ("limits", &raw.resources.limits),
    ] {
        for (name, value) in map {
            let field = format!("launch.resources.{kind}.{name}");
            let known = matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage") || name.contains('/');
            if !known {
                p.add(
                    &field,
                    "unknown resource (cpu, memory, ephemeral-storage, or an extended resource like nvidia.com/gpu)",
                );
            }
            if !is_quantity(value) {
                p.add(
                    &field,
                    format!("{value:?} is not a Kubernetes quantity (like 500m, 2, 1Gi, 512Mi)"),
                );
            }
        }
    }
    JobLaunch {
        image,
        image_pull_policy,
        service_account_name,
        working_dir,
        requests: raw.resources.requests.clone(),
        limits: raw.resources.limits.clone(),
    }
}

/// A Kubernetes resource quantity: a decimal number with an optional binary (`Ki`..`Ei`) or
/// decimal (`m`, `k`, `M`..`E`) suffix, or an exponent (`1e3`).
fn is_quantity(s: &str) -> bool {
    let number_end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(number_end);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(|exp| {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
    });
    number_ok && suffix_ok
}

/// A Kubernetes object name (RFC 1123 subdomain).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Compiles the failure categories (inline or from a file), reporting each rule's problems
/// under `categories[i]` or `categoriesFile`.
fn load_categories(
    p: &mut Problems<'_>,
    config_dir: &Path,
    inline: Option<Vec<serde_json::Value>>,
    file: Option<&str>,
) -> Option<std::sync::Arc<Classifier>> {
    let (json, field) = match (inline, file) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            p.add(
                "categoriesFile",
                "give either categories or categoriesFile, not both",
            );
            return None;
        }
        (Some(rules), None) => (serde_json::Value::Array(rules).to_string(), "categories"),
        (None, Some(f)) => match std::fs::read_to_string(config_dir.join(f)) {
            Ok(text) => (text, "categoriesFile"),
            Err(e) => {
                p.add("categoriesFile", format!("cannot read {f}: {e}"));
                return None;
            }
        },
    };
    let rules = crate::grep::RuleSet::from_json(&json).and_then(|set| Classifier::new(set.rules().to_vec()));
    match rules {
        Ok(c) => Some(std::sync::Arc::new(c)),
        Err(errs) => {
            for e in errs.errors {
                let at = match (field, e.index) {
                    ("categories", Some(i)) => format!("categories[{i}]"),
                    _ => field.to_string(),
                };
                p.add(at, e.to_string());
            }
            None
        }
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The field errors after the first (`first`, already reported), in the user's words: the
/// document is read as a plain tree, the failing field taken out, and the rest read again,
/// until it reads. A required field taken out (or holding one taken out) is given a stand-in
/// value that reads, so the fields after it are still checked. (Line numbers are the first
/// error's only: the tree has none.)
fn more_field_errors(mut tree: serde_json::Value, first: &str) -> Vec<(String, String)> {
    const MAX: usize = 50;
    let mut removed = vec![first.to_string()];
    let mut out = Vec::new();
    if !remove_path(&mut tree, first) {
        return out;
    }
    for _ in 0..MAX {
        let Some((at, reason)) = field_error(&tree) else {
            break;
        };
        let missing = missing_field(&at, &reason);
        if let Some(f) = &missing
            && removed
                .iter()
                .any(|r| r == f || r.starts_with(&format!("{f}.")) || r.starts_with(&format!("{f}[")))
        {
            // Missing because it was taken out: already reported.
            if !stand_in(&mut tree, f, 3) {
                break;
            }
            continue;
        }
        let field = missing.unwrap_or(at);
        out.push((field.clone(), super::wording::plain(&field, &reason, Some(&tree))));
        if field.is_empty() || !remove_path(&mut tree, &field) {
            break;
        }
        removed.push(field);
    }
    out
}

/// The first error of reading `tree` as a service file: its path and serde's reason.
fn field_error(tree: &serde_json::Value) -> Option<(String, String)> {
    let err = serde_path_to_error::deserialize::<_, RawService>(tree).err()?;
    let at = match err.path().to_string() {
        p if p == "." => String::new(),
        p => p,
    };
    Some((at, err.into_inner().to_string()))
}

/// The path of the field serde's `missing field` names, under `at`.
fn missing_field(at: &str, reason: &str) -> Option<String> {
    reason
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
        .map(|(f, _)| {
            if at.is_empty() {
                f.to_string()
            } else {
                format!("{at}.{f}")
            }
        })
}

/// Puts at `path` the first of a few plain values (a mapping, text, a list, a number) that
/// reads there, filling its own required fields the same way (`depth` levels down). False
/// when none reads.
fn stand_in(tree: &mut serde_json::Value, path: &str, depth: u32) -> bool {
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) => (parent, key),
        None => ("", path),
    };
    let candidates = [
        serde_json::json!({}),
        serde_json::json!(""),
        serde_json::json!([]),
        serde_json::json!(1),
        serde_json::json!(false),
    ];
    for candidate in candidates {
        let mut attempt = tree.clone();
        let Some(map) = node_mut(&mut attempt, parent).and_then(|n| n.as_object_mut()) else {
            return false;
        };
        map.insert(key.to_string(), candidate);
        let inside =
            |p: &str| p == path || p.starts_with(&format!("{path}.")) || p.starts_with(&format!("{path}["));
        match field_error(&attempt) {
            None => {
                *tree = attempt;
                return true;
            }
            Some((at, reason)) => match missing_field(&at, &reason) {
                // The stand-in itself lacks a required field: stand one in there too.
                Some(m)
                    if depth > 0
                        && inside(&at)
                        && m.starts_with(&format!("{path}."))
                        && stand_in(&mut attempt, &m, depth - 1) =>
                {
                    *tree = attempt;
                    return true;
                }
                _ if !inside(&at) => {
                    *tree = attempt;
                    return true;
                }
                _ => {}
            },
        }
    }
    false
}

/// The mapping at a dotted path (`""` is the document).
fn node_mut<'a>(tree: &'a mut serde_json::Value, path: &str) -> Option<&'a mut serde_json::Value> {
    let mut node = tree;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        node = node.get_mut(part)?;
    }
    Some(node)
}

/// Removes the node at a dotted path (`packs.smoke.tests`, `launch.command[0]` stops at the
/// list); false when there is none.
fn remove_path(tree: &mut serde_json::Value, path: &str) -> bool {
    let path = path.split('[').next().unwrap_or_default();
    let mut parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut node = tree;
    for part in parts {
        match node.get_mut(part) {
            Some(next) => node = next,
            None => return false,
        }
    }
    node.as_object_mut().is_some_and(|m| m.remove(last).is_some())
}

/// Parses YAML, returning the failing field's path (from serde_path_to_error) and the
/// parser's reason with its line and column.
fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    let path = RefCell::new(String::new());
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            let p = e.path().to_string();
            *path.borrow_mut() = if p == "." { String::new() } else { p };
            e.into_inner()
        })
    })
    .map_err(|e| {
        (
            path.into_inner(),
            e.to_string().trim_start_matches("error: ").trim().to_string(),
        )
    })
}

/// A size in bytes as packs_config writes it: `10MB`, `512KB`, `1GB`, or a number of bytes
/// (units are powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "KB" | "K" | "KIB" => 10,
        "MB" | "M" | "MIB" => 20,
        "GB" | "G" | "GIB" => 30,
        _ => {
            return Err(format!(
                "{s:?} is not a size: write e.g. 10MB, 512KB or a number of bytes"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write e.g. 10MB, 512KB or a number of bytes"))?;
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?} must be more than 0 and at most 16 EB"))
}
