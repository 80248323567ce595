//! The `aqua` launcher: an attempt as launches on the team's Aqua test farm, over its HTTP API
//! (`{url}/aqua-api/services/`).
//!
//! Attempt 1 launches each of the run's packs (`GET launch/pack/{packId}?k=v...`); a rerun
//! restarts the failed suites of the previous attempt's launches that had failing tests
//! (`GET launch/{id}/restart?failed-only=true`, which answers a launch with a new id). Each
//! launch is polled (`GET launch/{id}`) at the service's poll interval until Aqua says
//! `REPORT_READY` or `REPORT_FAILED` — any other status, documented or not, is "still going" —
//! and then its tests are read from the Allure report at `reportRequestUrl`
//! ([`crate::results::allure_report`]).
//!
//! A launch is never made twice: every launch carries the property [`MARKER_PROPERTY`]
//! (`<run>/<attempt>/<pack>`), and its [`intent`] is recorded before Aqua is asked; an intent
//! found without its id ([`Todo::Find`]) is looked up in `launch/page/simple?packId=` and the
//! launch [`adopt`]ed, and only made when Aqua has none.
//!
//! Split as the rest of Tomato is: [`plan`], [`progress`], [`backoff`] and [`record`] are pure
//! decisions, unit-tested here and shared by both drivers; [`Client`] does the HTTP. Every
//! value reaches Aqua as a URL path segment or an encoded query pair, never through a shell;
//! the auth header's value is read from its secret per request and never logged.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::crd::{AquaLaunch, Attempt, Selection, SelectionKind, TestRunStatus};
use crate::packs::aqua::{AquaAuth, AquaPack, AquaService};
use crate::results::Case;
use crate::results::allure_report;

/// The API's place under Aqua's URL.
pub const API: &str = "aqua-api/services/";
/// What [`crate::crd::Attempt::launch`] says of an Aqua attempt (its launches are in `aqua`).
pub const LAUNCH_REF: &str = "aqua";
/// Longest wait between two tries of a failed request.
pub const MAX_BACKOFF: Duration = Duration::from_secs(120);
/// Most tests one report may list (a sanity bound on what is fetched per launch).
const MAX_TESTS: usize = 50_000;

/// Why a request to Aqua failed.
#[derive(Debug, thiserror::Error)]
pub enum AquaError {
    #[error("Aqua did not answer {what}: {reason}")]
    Unreachable { what: String, reason: String },
    #[error("Aqua did not answer {what} within {}", crate::duration::human(*.timeout))]
    TimedOut { what: String, timeout: Duration },
    #[error("Aqua answered {what} with HTTP {status}")]
    Status { what: String, status: u16 },
    #[error("Aqua's answer to {what} is not what its API answers: {reason}")]
    Body { what: String, reason: String },
    #[error("the Allure report of Aqua launch {launch} could not be read: {reason}")]
    Report { launch: String, reason: String },
    #[error("the auth secret of Aqua cannot be read: {0}")]
    Secret(String),
}

impl AquaError {
    /// Whether trying again later may help (a refused answer or a bad secret will not change).
    pub fn transient(&self) -> bool {
        match self {
            AquaError::Unreachable { .. } | AquaError::TimedOut { .. } | AquaError::Report { .. } => true,
            AquaError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            AquaError::Body { .. } | AquaError::Secret(_) => false,
        }
    }
}

/// A launch object, as `launch/pack/{id}`, `launch/{id}` and `launch/{id}/restart` answer it
/// (only what Tomato reads).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LaunchObject {
    pub id: String,
    #[serde(default)]
    pub launch_url: Option<String>,
    #[serde(default)]
    pub launch_status: Option<String>,
    #[serde(default)]
    pub report_request_url: Option<String>,
    #[serde(default)]
    pub total_suites: Option<u32>,
    #[serde(default)]
    pub failed_suites: Option<u32>,
    /// The pack it runs, with the properties it was launched with (how a launch Tomato made
    /// is found again by its [`MARKER_PROPERTY`]).
    #[serde(default)]
    pub pack: Option<LaunchPack>,
}

/// `pack` of a launch object: only the properties are read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct LaunchPack {
    #[serde(default)]
    pub properties: Vec<Property>,
}

/// One `{key, value}` of `pack.properties`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// `launch/page/simple`'s answer.
#[derive(Debug, Deserialize)]
struct LaunchPage {
    #[serde(default)]
    launches: Vec<LaunchObject>,
}

/// The launch property carrying Tomato's marker of a launch (defined with the config, which
/// reserves it).
pub use crate::packs::aqua::MARKER_PROPERTY;
/// Launches of one pack looked through (newest first) for a marker, in pages of
/// [`FIND_PAGE`]: enough for the launches made while a Tomato was down.
const FIND_PAGES: usize = 4;
const FIND_PAGE: usize = 50;

/// The marker of pack `pack`'s launch in attempt `attempt` of run `run`.
pub fn marker(run: &str, attempt: u32, pack: &str) -> String {
    format!("{run}/{attempt}/{pack}")
}

/// Whether a recorded launch is only an intent: asked for (or about to be), its id unknown.
pub fn is_intent(l: &AquaLaunch) -> bool {
    l.id.is_empty()
}

/// The properties pack `pack` is launched with in attempt `attempt`: the service's and the
/// pack's ([`AquaService::properties_for`]), and Tomato's marker.
pub fn launch_properties(
    cfg: &AquaService,
    pack_name: &str,
    pack: &crate::packs::aqua::AquaPack,
    stand: &str,
    run: &str,
    attempt: u32,
) -> Vec<(String, String)> {
    let mut props = cfg.properties_for(pack, stand, run, attempt);
    props.push((MARKER_PROPERTY.to_string(), marker(run, attempt, pack_name)));
    props
}

/// What is recorded before a launch or restart is asked for: the intent, with the marker
/// its launch will carry (`None`: nothing to record first — a restart in a chain that has no
/// marker, which cannot be found again, or a [`Todo::Find`], whose intent is recorded).
pub fn intent(todo: &Todo, run: &str, attempt: u32) -> Option<AquaLaunch> {
    if !matches!(todo, Todo::Launch { .. } | Todo::Restart { marker: Some(_), .. }) {
        return None;
    }
    Some(AquaLaunch {
        pack: todo.pack()?.to_string(),
        id: String::new(),
        url: None,
        restart_of: todo.restart_of().map(str::to_string),
        status: None,
        failing: None,
        failures: None,
        error: None,
        marker: todo.marker(run, attempt),
    })
}

/// The launch Tomato made with `marker`, among launches of its pack (newest first): the first
/// that carries the marker and is none of `known` (the run's recorded launch ids: a restart
/// keeps its chain's properties, so the launch it restarted carries the marker too).
pub fn adopt<'a>(launches: &'a [LaunchObject], marker: &str, known: &[String]) -> Option<&'a LaunchObject> {
    launches.iter().find(|l| {
        !known.contains(&l.id)
            && l.pack.as_ref().is_some_and(|p| {
                p.properties
                    .iter()
                    .any(|kv| kv.key == MARKER_PROPERTY && kv.value == marker)
            })
    })
}

/// The record of a launch Aqua answered (made, or found again) for `todo` of attempt
/// `attempt` of `run`.
pub fn launched(todo: &Todo, lo: &LaunchObject, run: &str, attempt: u32) -> AquaLaunch {
    AquaLaunch {
        pack: todo.pack().unwrap_or_default().to_string(),
        id: lo.id.clone(),
        url: lo.launch_url.clone(),
        restart_of: todo.restart_of().map(str::to_string),
        status: lo.launch_status.clone(),
        failing: None,
        failures: None,
        error: None,
        marker: todo.marker(run, attempt),
    }
}

/// Every launch id a run's status records (what [`adopt`] must not take again).
pub fn known_ids(status: &TestRunStatus) -> Vec<String> {
    status
        .attempts
        .iter()
        .flat_map(|a| &a.aqua)
        .filter(|l| !is_intent(l))
        .map(|l| l.id.clone())
        .collect()
}

/// Where a launch is, from its `launchStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Anything but the two final statuses: Aqua's other values are not documented.
    Going,
    ReportReady,
    ReportFailed,
}

/// Reads `launchStatus`: only `REPORT_READY` and `REPORT_FAILED` end a launch.
pub fn progress(status: Option<&str>) -> Progress {
    match status {
        Some("REPORT_READY") => Progress::ReportReady,
        Some("REPORT_FAILED") => Progress::ReportFailed,
        _ => Progress::Going,
    }
}

/// The wait after `failures` failed requests in a row: the poll interval, doubling, at most
/// [`MAX_BACKOFF`] (and never less than the interval: nothing busy-loops).
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    interval.saturating_mul(factor).min(MAX_BACKOFF.max(interval))
}

/// One request (a launch, a restart, a report read), tried again after [`backoff`] while its
/// failure is transient, at most `errorRetries` more times: shared by both drivers.
pub async fn retrying<T, F, Fut>(cfg: &AquaService, f: F) -> Result<T, AquaError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, AquaError>>,
{
    let mut failures = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.transient() && failures < cfg.error_retries => {
                failures += 1;
                tracing::warn!(error = %e, tries = failures, "Aqua request failed; trying again");
                tokio::time::sleep(backoff(cfg.poll_interval, failures)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Which attempt a launch belongs to, and where it runs.
pub struct LaunchFor<'a> {
    pub run: &'a str,
    pub attempt: u32,
    pub stand: &'a str,
}

/// Carries out a launch, a restart or the lookup of an intent (`todo`, for pack `p`) the
/// same way in both modes: an intent is looked up first among the pack's launches (skipping
/// the run's `known` ids), and only when none carries its marker is the pack launched or the
/// launch restarted, each request with [`retrying`]. Returns the record of Aqua's answer and
/// whether it was found again rather than made. The caller records the intent before and the
/// launch after.
pub async fn make(
    client: &Client,
    cfg: &AquaService,
    todo: &Todo,
    p: &AquaPack,
    at: &LaunchFor<'_>,
    known: &[String],
) -> Result<(AquaLaunch, bool), AquaError> {
    let found = match todo {
        Todo::Find { marker, .. } => retrying(cfg, || client.find(&p.pack_id, marker, known)).await?,
        _ => None,
    };
    let adopted = found.is_some();
    let lo = match (found, todo.restart_of()) {
        (Some(lo), _) => lo,
        (None, Some(of)) => retrying(cfg, || client.restart(of)).await?,
        (None, None) => {
            let pack = todo.pack().unwrap_or_default();
            let props = launch_properties(cfg, pack, p, at.stand, at.run, at.attempt);
            retrying(cfg, || client.launch(&p.pack_id, &props)).await?
        }
    };
    Ok((launched(todo, &lo, at.run, at.attempt), adopted))
}

/// One thing an attempt still has to do in Aqua.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Todo {
    /// Launch the pack (attempt 1).
    Launch { pack: String },
    /// Restart the failed suites of this launch of the pack (a rerun); `marker`: its chain's.
    Restart {
        pack: String,
        of: String,
        marker: Option<String>,
    },
    /// A launch (or a restart of `restart_of`) was asked for, but its answer was never
    /// recorded (Tomato stopped in between): look it up in Aqua by its marker, and make it
    /// only if Aqua has none.
    Find {
        pack: String,
        marker: String,
        restart_of: Option<String>,
    },
    /// Poll a launch the attempt already has (also: after a restart of Tomato).
    Poll { id: String },
}

impl Todo {
    /// The pack a launch, restart or lookup is for (`None` for a poll).
    pub fn pack(&self) -> Option<&str> {
        match self {
            Todo::Launch { pack } | Todo::Restart { pack, .. } | Todo::Find { pack, .. } => Some(pack),
            Todo::Poll { .. } => None,
        }
    }

    /// The launch a restart (or the lookup of one) restarts; `None`: a launch of the pack.
    pub fn restart_of(&self) -> Option<&str> {
        match self {
            Todo::Restart { of, .. } => Some(of),
            Todo::Find { restart_of, .. } => restart_of.as_deref(),
            _ => None,
        }
    }

    /// The marker the launch made for this carries (see [`MARKER_PROPERTY`]).
    pub fn marker(&self, run: &str, attempt: u32) -> Option<String> {
        match self {
            Todo::Launch { pack } => Some(marker(run, attempt, pack)),
            Todo::Restart { marker, .. } => marker.clone(),
            Todo::Find { marker, .. } => Some(marker.clone()),
            Todo::Poll { .. } => None,
        }
    }
}

/// What attempt `attempt` (whose launches so far are in it) must do: attempt 1 launches each
/// selected pack that has no launch yet; a rerun restarts each launch of the attempt it
/// reruns (`previous`) that had failing tests, or whose report was never read, unless that
/// restart is already recorded. Launches already recorded are polled, never made twice; an
/// intent recorded without its launch's id is looked up first ([`Todo::Find`]).
pub fn plan(selection: &Selection, attempt: &Attempt, previous: Option<&Attempt>) -> Vec<Todo> {
    let mut todo = Vec::new();
    let find = |l: &AquaLaunch| Todo::Find {
        pack: l.pack.clone(),
        marker: l.marker.clone().unwrap_or_default(),
        restart_of: l.restart_of.clone(),
    };
    match selection.kind {
        SelectionKind::All => {
            for pack in &selection.packs {
                match attempt
                    .aqua
                    .iter()
                    .find(|l| &l.pack == pack && l.restart_of.is_none())
                {
                    Some(l) if is_intent(l) => todo.push(find(l)),
                    Some(_) => {}
                    None => todo.push(Todo::Launch { pack: pack.clone() }),
                }
            }
        }
        SelectionKind::Failed => {
            for prev in previous.map_or(&[][..], |p| &p.aqua[..]) {
                if prev.failing == Some(0) || is_intent(prev) {
                    continue;
                }
                match attempt
                    .aqua
                    .iter()
                    .find(|l| l.restart_of.as_deref() == Some(&prev.id))
                {
                    Some(l) if is_intent(l) => todo.push(find(l)),
                    Some(_) => {}
                    None => todo.push(Todo::Restart {
                        pack: prev.pack.clone(),
                        of: prev.id.clone(),
                        marker: prev.marker.clone(),
                    }),
                }
            }
        }
    }
    for l in attempt.aqua.iter().filter(|l| !is_intent(l)) {
        todo.push(Todo::Poll { id: l.id.clone() });
    }
    todo
}

/// The next step of an Aqua attempt for a controller that polls (operator mode), from what the
/// attempt's status records: make a launch or restart that is still to make, poll the
/// launches still going, give up on a launch that failed too often, or read the reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Make(Todo),
    /// Poll these launches (still going, or whose last poll failed).
    Poll(Vec<String>),
    /// Every launch has its report: read them.
    ReadReports,
    /// The attempt ends in an error naming the cause.
    Fail(String),
}

/// Decides [`Step`]: `error_retries` failed polls in a row of one launch are tolerated.
pub fn step(
    selection: &Selection,
    attempt: &Attempt,
    previous: Option<&Attempt>,
    error_retries: u32,
) -> Step {
    if let Some(l) = attempt
        .aqua
        .iter()
        .find(|l| l.failures.unwrap_or(0) > error_retries)
    {
        let tries = l.failures.unwrap_or(0);
        return Step::Fail(format!(
            "Aqua launch {} of pack {}: {} (after {tries} tries)",
            l.id,
            l.pack,
            l.error.as_deref().unwrap_or("polling failed")
        ));
    }
    let todo = plan(selection, attempt, previous);
    if let Some(t) = todo.iter().find(|t| !matches!(t, Todo::Poll { .. })) {
        return Step::Make(t.clone());
    }
    if attempt.aqua.iter().all(is_intent) {
        return Step::Fail("the previous attempt left no Aqua launch to restart".into());
    }
    let going: Vec<String> = attempt
        .aqua
        .iter()
        .filter(|l| !is_intent(l))
        .filter(|l| progress(l.status.as_deref()) != Progress::ReportReady || l.failures.unwrap_or(0) > 0)
        .map(|l| l.id.clone())
        .collect();
    if going.is_empty() {
        Step::ReadReports
    } else {
        Step::Poll(going)
    }
}

/// A poll's outcome folded into the launch's record: its status, and its run of failures
/// (REPORT_FAILED counts as one: Aqua may build the report yet).
pub fn polled(l: &mut AquaLaunch, answer: Result<&LaunchObject, &AquaError>) {
    match answer {
        Ok(lo) => {
            l.status = lo.launch_status.clone();
            if progress(l.status.as_deref()) == Progress::ReportFailed {
                l.failures = Some(l.failures.unwrap_or(0) + 1);
                l.error = Some("Aqua says REPORT_FAILED: it built no report".into());
            } else {
                l.failures = None;
                l.error = None;
            }
        }
        Err(e) => {
            // A failure that waiting cannot mend ends the attempt at the next step.
            let n = if e.transient() {
                l.failures.unwrap_or(0) + 1
            } else {
                u32::MAX
            };
            l.failures = Some(n);
            l.error = Some(e.to_string());
        }
    }
}

/// The attempt a rerun reruns: the last one numbered `selection.of_attempt`.
pub fn previous_of<'a>(status: &'a TestRunStatus, selection: &Selection) -> Option<&'a Attempt> {
    let of = selection.of_attempt?;
    status.attempts.iter().rev().find(|a| a.number == of)
}

/// Records `launch` in the running attempt `number` (a launch with its id is updated in place).
/// False when that attempt is no longer running (cancelled meanwhile): nothing is written.
pub fn record(status: &mut TestRunStatus, number: u32, launch: AquaLaunch) -> bool {
    let Some(a) = status
        .attempts
        .last_mut()
        .filter(|a| a.number == number && a.state == crate::crd::AttemptState::Running)
    else {
        return false;
    };
    // A launch replaces its own record, or the intent it was made for (same pack, same
    // launch restarted).
    let slot = a.aqua.iter_mut().find(|l| {
        (!is_intent(&launch) && l.id == launch.id)
            || (is_intent(l) && l.pack == launch.pack && l.restart_of == launch.restart_of)
    });
    match slot {
        Some(l) => *l = launch,
        None => a.aqua.push(launch),
    }
    true
}

/// Launch ids come from Aqua's answers and go back into URL paths: only plain ids are taken.
fn check_id(id: &str, what: &str) -> Result<(), AquaError> {
    if !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(AquaError::Body {
            what: what.into(),
            reason: format!("the launch id {id:?} is not an id"),
        })
    }
}

/// Aqua's HTTP API for one service.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api: Url,
    auth: Option<AquaAuth>,
    timeout: Duration,
}

impl Client {
    pub fn new(cfg: &AquaService) -> Client {
        let api = cfg
            .url
            .join(API)
            .expect("a base URL ending in '/' takes a relative path");
        Client {
            http: reqwest::Client::builder()
                .timeout(cfg.request_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            api,
            auth: cfg.auth.clone(),
            timeout: cfg.request_timeout,
        }
    }

    /// `launch/pack/{packId}?k=v...`: starts a pack.
    pub async fn launch(
        &self,
        pack_id: &str,
        properties: &[(String, String)],
    ) -> Result<LaunchObject, AquaError> {
        let url = launch_url(&self.api, pack_id, properties);
        self.launch_object(url, &format!("the launch of pack {pack_id}"))
            .await
    }

    /// `launch/{id}`: where a launch is.
    pub async fn poll(&self, id: &str) -> Result<LaunchObject, AquaError> {
        check_id(id, "a poll")?;
        let mut url = self.api.clone();
        url.path_segments_mut()
            .expect("an http URL has path segments")
            .pop_if_empty()
            .extend(["launch", id]);
        self.launch_object(url, &format!("the poll of launch {id}")).await
    }

    /// `launch/{id}/restart?failed-only=true`: the failed suites again, as a new launch.
    pub async fn restart(&self, id: &str) -> Result<LaunchObject, AquaError> {
        check_id(id, "a restart")?;
        let mut url = self.api.clone();
        url.path_segments_mut()
            .expect("an http URL has path segments")
            .pop_if_empty()
            .extend(["launch", id, "restart"]);
        url.query_pairs_mut().append_pair("failed-only", "true");
        self.launch_object(url, &format!("the restart of launch {id}"))
            .await
    }

    /// The launch of pack `pack_id` carrying `marker` that is none of `known`, looked up in
    /// `launch/page/simple?packId=` (newest first), a few pages deep; `None`: Aqua has none.
    pub async fn find(
        &self,
        pack_id: &str,
        marker: &str,
        known: &[String],
    ) -> Result<Option<LaunchObject>, AquaError> {
        let what = format!("the list of launches of pack {pack_id}");
        for page in 0..FIND_PAGES {
            let mut url = self.api.clone();
            url.path_segments_mut()
                .expect("an http URL has path segments")
                .pop_if_empty()
                .extend(["launch", "page", "simple"]);
            url.query_pairs_mut()
                .append_pair("skip", &(page * FIND_PAGE).to_string())
                .append_pair("limit", &FIND_PAGE.to_string())
                .append_pair("packId", pack_id);
            let body = self.get(url, &what).await?;
            let list: LaunchPage = serde_json::from_slice(&body).map_err(|e| AquaError::Body {
                what: what.clone(),
                reason: e.to_string(),
            })?;
            if let Some(l) = adopt(&list.launches, marker, known) {
                check_id(&l.id, &what)?;
                return Ok(Some(l.clone()));
            }
            if list.launches.len() < FIND_PAGE {
                break;
            }
        }
        Ok(None)
    }

    /// The configured revoke path (`launch.aqua.revokePath`, rendered) of a launch.
    pub async fn revoke(&self, path: &str) -> Result<(), AquaError> {
        let what = "the revoke of a launch".to_string();
        let url = self
            .api
            .join(path.trim_start_matches('/'))
            .map_err(|e| AquaError::Body {
                what: what.clone(),
                reason: format!("the revoke path is not a path: {e}"),
            })?;
        self.get(url, &what).await.map(|_| ())
    }

    /// Every test of a launch's Allure report, as cases under `pack`.
    pub async fn read_report(&self, launch: &LaunchObject, pack: &str) -> Result<Vec<Case>, AquaError> {
        let err = |reason: String| AquaError::Report {
            launch: launch.id.clone(),
            reason,
        };
        let root = report_root(&self.api, launch.report_request_url.as_deref()).map_err(err)?;
        let at = |path: &str| root.join(path).map_err(|e| err(e.to_string()));
        let what = format!("the report of launch {}", launch.id);
        let suites = self
            .get(at(allure_report::SUITES)?, &what)
            .await
            .map_err(|e| err(e.to_string()))?;
        let uids = allure_report::test_uids(&suites).map_err(|e| err(e.to_string()))?;
        if uids.len() > MAX_TESTS {
            return Err(err(format!(
                "it lists {} tests, more than {MAX_TESTS}",
                uids.len()
            )));
        }
        let mut cases = Vec::with_capacity(uids.len());
        for (uid, mut suites) in uids {
            let path = allure_report::test_case_path(&uid).map_err(|e| err(e.to_string()))?;
            let body = self
                .get(at(&path)?, &what)
                .await
                .map_err(|e| err(e.to_string()))?;
            suites.insert(0, pack.to_string());
            cases.push(allure_report::case_of(&body, &uid, suites).map_err(|e| err(e.to_string()))?);
        }
        Ok(cases)
    }

    async fn launch_object(&self, url: Url, what: &str) -> Result<LaunchObject, AquaError> {
        let body = self.get(url, what).await?;
        let l: LaunchObject = serde_json::from_slice(&body).map_err(|e| AquaError::Body {
            what: what.into(),
            reason: e.to_string(),
        })?;
        check_id(&l.id, what)?;
        Ok(l)
    }

    /// One GET; the auth header goes only to Aqua's own origin (a report elsewhere gets none).
    async fn get(&self, url: Url, what: &str) -> Result<Vec<u8>, AquaError> {
        let mut req = self.http.get(url.clone());
        if let Some(auth) = &self.auth
            && url.origin() == self.api.origin()
        {
            let value = auth.source.read().map_err(AquaError::Secret)?;
            let mut header = reqwest::header::HeaderValue::from_str(value.expose())
                .map_err(|_| AquaError::Secret("the value is not a valid header value".into()))?;
            header.set_sensitive(true);
            req = req.header(auth.header.as_str(), header);
        }
        let what = what.to_string();
        let resp = req.send().await.map_err(|e| self.send_error(&what, e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(AquaError::Status {
                what,
                status: status.as_u16(),
            });
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| self.send_error(&what, e))
    }

    /// A transport error in words that name neither the URL's query nor any header.
    fn send_error(&self, what: &str, e: reqwest::Error) -> AquaError {
        if e.is_timeout() {
            return AquaError::TimedOut {
                what: what.into(),
                timeout: self.timeout,
            };
        }
        let mut reason = if e.is_connect() {
            "cannot connect".to_string()
        } else {
            "the connection failed".to_string()
        };
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            reason = format!("{reason}: {s}");
            src = s.source();
        }
        AquaError::Unreachable {
            what: format!("{what} at {}", self.api.origin().ascii_serialization()),
            reason,
        }
    }
}

/// `launch/pack/{packId}?k=v...` under the API's URL: the id one path segment, each property
/// an encoded query pair.
pub fn launch_url(api: &Url, pack_id: &str, properties: &[(String, String)]) -> Url {
    let mut url = api.clone();
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .pop_if_empty()
        .extend(["launch", "pack", pack_id]);
    url.query_pairs_mut().extend_pairs(properties);
    url
}

/// `tomato check-config --explain` for an Aqua service: the request attempt 1 sends for each
/// pack (over a sample run), and what a rerun asks.
pub fn explain(svc: &crate::packs::Service, cfg: &AquaService) -> String {
    let api = cfg
        .url
        .join(API)
        .expect("a base URL ending in '/' takes a relative path");
    let mut out = format!(
        "\n{} (launcher: aqua, polled every {}):\n",
        svc.name,
        crate::duration::human(cfg.poll_interval)
    );
    for (name, pack) in &svc.packs {
        if let Some(p) = &pack.aqua {
            let props = launch_properties(cfg, name, p, "<stand>", "<run>", 1);
            out.push_str(&format!(
                "  attempt 1, pack {name}: GET {}\n",
                launch_url(&api, &p.pack_id, &props)
            ));
        }
    }
    out.push_str(&format!(
        "  rerun: GET {api}launch/<id>/restart?failed-only=true for each launch with failing tests\n"
    ));
    if let Some(auth) = &cfg.auth {
        out.push_str(&format!(
            "  header {} from {:?} (never shown)\n",
            auth.header, auth.source
        ));
    }
    out
}

/// The root of a launch's Allure report: `reportRequestUrl` (absolute, or relative to Aqua's
/// API), without a trailing `index.html`, as a directory.
pub fn report_root(api: &Url, report: Option<&str>) -> Result<Url, String> {
    let report = report
        .filter(|r| !r.trim().is_empty())
        .ok_or("the launch names no reportRequestUrl")?;
    let mut url = api
        .join(report)
        .map_err(|e| format!("reportRequestUrl {report:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("reportRequestUrl {report:?} is not an http(s) URL"));
    }
    let path = url.path().trim_end_matches("index.html").to_string();
    url.set_path(&if path.ends_with('/') {
        path
    } else {
        format!("{path}/")
    });
    url.set_query(None);
    Ok(url)
}

/// The revoke path of a launch, when the service has one.
pub fn revoke_path(cfg: &AquaService, id: &str) -> Option<String> {
    cfg.revoke_path.as_ref().map(|t| {
        t.render(|v| match v {
            crate::template::Var::Launch => id.to_string(),
            _ => String::new(),
        })
    })
}

/// One launch as every surface shows it (run page, email): its pack, id and page. The page
/// comes from Aqua's answer: only an http(s) URL becomes a link.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct LaunchLink {
    pub pack: String,
    pub id: String,
    pub url: Option<String>,
    /// The launch this one restarted.
    pub restart_of: Option<String>,
}

/// The links of an attempt's launches.
pub fn links(launches: &[AquaLaunch]) -> Vec<LaunchLink> {
    launches
        .iter()
        .filter(|l| !is_intent(l))
        .map(|l| LaunchLink {
            pack: l.pack.clone(),
            id: l.id.clone(),
            url: l
                .url
                .clone()
                .filter(|u| Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))),
            restart_of: l.restart_of.clone(),
        })
        .collect()
}

/// The launches made (not mere intents), each as `id (page)` for a run's message.
fn named(launches: &[AquaLaunch]) -> Vec<String> {
    launches
        .iter()
        .filter(|l| !is_intent(l))
        .map(|l| match &l.url {
            Some(u) => format!("{} ({u})", l.id),
            None => l.id.clone(),
        })
        .collect()
}

/// What became of an attempt's Aqua launches still going when the rest of the attempt could
/// not run (its Job could not start); `None` when none was going.
pub fn stopped_note(launches: &[AquaLaunch], revoked: bool) -> Option<String> {
    let ids = named(launches);
    match (ids.is_empty(), revoked) {
        (true, _) => None,
        (false, true) => Some(format!("revoked in Aqua: {}", ids.join(", "))),
        (false, false) => Some(format!(
            "the launch goes on in Aqua (no revoke path is configured): {}",
            ids.join(", ")
        )),
    }
}

/// What a cancelled run says of its launches: revoked, or going on in Aqua.
pub fn cancel_note(launches: &[AquaLaunch], revoked: bool) -> String {
    let ids = named(launches);
    if ids.is_empty() {
        "cancelled before Aqua launched anything".into()
    } else if revoked {
        format!("cancelled; revoked in Aqua: {}", ids.join(", "))
    } else {
        format!(
            "cancelled; Tomato stopped polling, but the launch goes on in Aqua (no revoke path is configured): {}",
            ids.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AttemptState;

    fn attempt(number: u32, selection: Selection, aqua: Vec<AquaLaunch>) -> Attempt {
        Attempt {
            state: AttemptState::Running,
            launch: Some(LAUNCH_REF.into()),
            aqua,
            ..Attempt::test(number, selection)
        }
    }

    fn launch(pack: &str, id: &str, restart_of: Option<&str>, failing: Option<u32>) -> AquaLaunch {
        AquaLaunch {
            pack: pack.into(),
            id: id.into(),
            url: None,
            restart_of: restart_of.map(Into::into),
            status: None,
            failing,
            failures: None,
            error: None,
            marker: None,
        }
    }

    #[test]
    fn only_the_two_report_statuses_end_a_launch() {
        assert_eq!(progress(Some("REPORT_READY")), Progress::ReportReady);
        assert_eq!(progress(Some("REPORT_FAILED")), Progress::ReportFailed);
        for going in ["RUNNING", "SUITES_DONE", "UNDOCUMENTED", ""] {
            assert_eq!(progress(Some(going)), Progress::Going, "{going}");
        }
        assert_eq!(progress(None), Progress::Going);
    }

    #[test]
    fn backoff_doubles_from_the_poll_interval_and_is_bounded() {
        let i = Duration::from_secs(2);
        assert_eq!(backoff(i, 0), i);
        assert_eq!(backoff(i, 1), i);
        assert_eq!(backoff(i, 2), Duration::from_secs(4));
        assert_eq!(backoff(i, 3), Duration::from_secs(8));
        assert_eq!(backoff(i, 40), MAX_BACKOFF);
        let long = Duration::from_secs(600);
        assert_eq!(backoff(long, 5), long, "never shorter than the interval");
    }

    #[test]
    fn attempt_one_launches_each_pack_once_and_polls_what_it_launched() {
        let sel = Selection::all(vec!["a".into(), "b".into()]);
        let fresh = attempt(1, sel.clone(), vec![]);
        assert_eq!(
            plan(&sel, &fresh, None),
            vec![
                Todo::Launch { pack: "a".into() },
                Todo::Launch { pack: "b".into() }
            ]
        );
        // After a restart of Tomato with pack a launched: a is polled, never launched again.
        let half = attempt(1, sel.clone(), vec![launch("a", "L1", None, None)]);
        assert_eq!(
            plan(&sel, &half, None),
            vec![Todo::Launch { pack: "b".into() }, Todo::Poll { id: "L1".into() }]
        );
    }

    #[test]
    fn a_rerun_restarts_only_launches_with_failing_tests_once() {
        let sel1 = Selection::all(vec!["a".into(), "b".into()]);
        let first = attempt(
            1,
            sel1,
            vec![launch("a", "L1", None, Some(2)), launch("b", "L2", None, Some(0))],
        );
        let sel2 = Selection::failed(vec!["a".into(), "b".into()], 1, vec!["t".into()]);
        let second = attempt(2, sel2.clone(), vec![]);
        assert_eq!(
            plan(&sel2, &second, Some(&first)),
            vec![Todo::Restart {
                pack: "a".into(),
                of: "L1".into(),
                marker: None,
            }]
        );
        let restarted = attempt(2, sel2.clone(), vec![launch("a", "L3", Some("L1"), None)]);
        assert_eq!(
            plan(&sel2, &restarted, Some(&first)),
            vec![Todo::Poll { id: "L3".into() }]
        );
    }

    fn with_marker(mut l: AquaLaunch, m: &str) -> AquaLaunch {
        l.marker = Some(m.into());
        l
    }

    fn listed(id: &str, marker: Option<&str>) -> LaunchObject {
        LaunchObject {
            id: id.into(),
            launch_url: None,
            launch_status: Some("RUNNING".into()),
            report_request_url: None,
            total_suites: None,
            failed_suites: None,
            pack: Some(LaunchPack {
                properties: marker
                    .map(|m| Property {
                        key: MARKER_PROPERTY.into(),
                        value: m.into(),
                    })
                    .into_iter()
                    .chain([Property {
                        key: "webdriver.base.url".into(),
                        value: "https://qa1/".into(),
                    }])
                    .collect(),
            }),
        }
    }

    /// The guard against launching twice: the intent is recorded before the launch is asked
    /// for, an intent found without its id is looked up (never launched blindly), and the
    /// launch made with its marker is adopted, a launch the run already knows never.
    #[test]
    fn an_intent_without_an_id_is_looked_up_before_anything_is_launched_again() {
        let sel = Selection::all(vec!["a".into()]);
        let todo = Todo::Launch { pack: "a".into() };
        let intent = intent(&todo, "run-1", 1).unwrap();
        assert!(is_intent(&intent));
        assert_eq!(intent.marker.as_deref(), Some("run-1/1/a"));
        let mut st = TestRunStatus::default();
        st.attempts.push(attempt(1, sel.clone(), vec![]));
        assert!(record(&mut st, 1, intent.clone()));
        assert!(record(&mut st, 1, intent.clone()), "recorded again: still one");
        assert_eq!(st.attempts[0].aqua.len(), 1);

        // Tomato stopped here: the next one finds the intent and looks the launch up.
        let find = Todo::Find {
            pack: "a".into(),
            marker: "run-1/1/a".into(),
            restart_of: None,
        };
        assert_eq!(plan(&sel, &st.attempts[0], None), vec![find.clone()]);
        assert!(matches!(step(&sel, &st.attempts[0], None, 2), Step::Make(t) if t == find));
        assert!(links(&st.attempts[0].aqua).is_empty(), "an intent is no link");

        let page = [
            listed("NEWER", Some("run-2/1/a")),
            listed("MINE", Some("run-1/1/a")),
            listed("OLD", None),
        ];
        assert_eq!(
            adopt(&page, "run-1/1/a", &[]).map(|l| l.id.as_str()),
            Some("MINE")
        );
        assert!(
            adopt(&page, "run-1/1/a", &["MINE".into()]).is_none(),
            "a known launch is not adopted"
        );
        assert!(adopt(&page, "run-9/1/a", &[]).is_none(), "none found: launch");

        // Adopted (or made): the record replaces the intent, and is polled from then on.
        let l = launched(&find, &page[1], "run-1", 1);
        assert!(record(&mut st, 1, l));
        assert_eq!(st.attempts[0].aqua.len(), 1);
        assert_eq!(st.attempts[0].aqua[0].id, "MINE");
        assert_eq!(
            plan(&sel, &st.attempts[0], None),
            vec![Todo::Poll { id: "MINE".into() }]
        );
        assert_eq!(known_ids(&st), ["MINE"]);
    }

    #[test]
    fn a_restart_carries_its_chains_marker_and_its_intent_is_looked_up_too() {
        let first = attempt(
            1,
            Selection::all(vec!["a".into()]),
            vec![with_marker(launch("a", "L1", None, Some(1)), "run-1/1/a")],
        );
        let sel = Selection::failed(vec!["a".into()], 1, vec!["t".into()]);
        let restart = Todo::Restart {
            pack: "a".into(),
            of: "L1".into(),
            marker: Some("run-1/1/a".into()),
        };
        assert_eq!(
            plan(&sel, &attempt(2, sel.clone(), vec![]), Some(&first)),
            vec![restart.clone()]
        );
        let i = intent(&restart, "run-1", 2).unwrap();
        assert_eq!(
            (i.restart_of.as_deref(), i.marker.as_deref()),
            (Some("L1"), Some("run-1/1/a"))
        );
        let second = attempt(2, sel.clone(), vec![i]);
        assert_eq!(
            plan(&sel, &second, Some(&first)),
            vec![Todo::Find {
                pack: "a".into(),
                marker: "run-1/1/a".into(),
                restart_of: Some("L1".into()),
            }]
        );
        // Aqua copies the properties to the restart: the one not yet known is the restart.
        let page = [listed("L2", Some("run-1/1/a")), listed("L1", Some("run-1/1/a"))];
        assert_eq!(
            adopt(&page, "run-1/1/a", &["L1".into()]).map(|l| l.id.as_str()),
            Some("L2")
        );
        // A chain from before markers has no intent: it is restarted as before.
        let old = Todo::Restart {
            pack: "a".into(),
            of: "L1".into(),
            marker: None,
        };
        assert!(intent(&old, "run-1", 2).is_none());
    }

    #[test]
    fn every_launch_carries_the_marker_property() {
        let svc = crate::packs::PacksConfig::parse_service(
            std::path::Path::new("/cfg"),
            std::path::Path::new("/cfg/farm.yaml"),
            "stands: {pattern: x}\nlaunch:\n  launcher: aqua\n  aqua: {url: 'https://a'}\npacks:\n  p: {aqua: {packId: 5f3c2a1b9d8e7f6a5b4c3d2e}}\n",
        )
        .unwrap();
        let cfg = svc.aqua.as_ref().unwrap();
        let props = launch_properties(cfg, "p", svc.packs["p"].aqua.as_ref().unwrap(), "qa1", "run-1", 3);
        assert!(props.contains(&(MARKER_PROPERTY.to_string(), "run-1/3/p".to_string())));
    }

    #[test]
    fn a_launch_is_recorded_only_in_its_running_attempt() {
        let mut st = TestRunStatus::default();
        st.attempts
            .push(attempt(1, Selection::all(vec!["a".into()]), vec![]));
        assert!(record(&mut st, 1, launch("a", "L1", None, None)));
        assert!(record(&mut st, 1, launch("a", "L1", None, Some(3))));
        assert_eq!(st.attempts[0].aqua, vec![launch("a", "L1", None, Some(3))]);
        assert!(!record(&mut st, 2, launch("a", "L9", None, None)));
        st.attempts[0].state = AttemptState::Cancelled;
        assert!(!record(&mut st, 1, launch("a", "L2", None, None)));
    }

    #[test]
    fn the_report_root_is_a_directory_of_the_report_url() {
        let api = Url::parse("http://aqua.example/aqua-api/services/").unwrap();
        assert_eq!(
            report_root(&api, Some("http://r.example/reports/L1/index.html?x=1"))
                .unwrap()
                .as_str(),
            "http://r.example/reports/L1/"
        );
        assert_eq!(
            report_root(&api, Some("/reports/L1")).unwrap().as_str(),
            "http://aqua.example/reports/L1/"
        );
        assert!(report_root(&api, None).is_err());
        assert!(report_root(&api, Some("file:///etc/")).is_err());
    }

    #[test]
    fn launch_ids_from_answers_cannot_leave_their_path_segment() {
        assert!(check_id("5f3c2a1b9d8e7f6a5b4c3d2e", "x").is_ok());
        assert!(check_id("../pack", "x").is_err());
        assert!(check_id("a/b", "x").is_err());
        assert!(check_id("", "x").is_err());
    }

    #[test]
    fn a_controller_makes_launches_first_then_polls_then_reads_then_gives_up() {
        let sel = Selection::all(vec!["a".into()]);
        let fresh = attempt(1, sel.clone(), vec![]);
        assert_eq!(
            step(&sel, &fresh, None, 2),
            Step::Make(Todo::Launch { pack: "a".into() })
        );
        let mut l = launch("a", "L1", None, None);
        l.status = Some("RUNNING".into());
        let mut going = attempt(1, sel.clone(), vec![l.clone()]);
        assert_eq!(step(&sel, &going, None, 2), Step::Poll(vec!["L1".into()]));
        let ready = LaunchObject {
            id: "L1".into(),
            launch_url: None,
            launch_status: Some("REPORT_READY".into()),
            report_request_url: None,
            total_suites: None,
            failed_suites: None,
            pack: None,
        };
        polled(&mut going.aqua[0], Ok(&ready));
        assert_eq!(step(&sel, &going, None, 2), Step::ReadReports);
        // Three failed polls in a row with two tolerated: the attempt fails, naming why.
        let e = AquaError::Status {
            what: "the poll of launch L1".into(),
            status: 500,
        };
        for _ in 0..3 {
            polled(&mut going.aqua[0], Err(&e));
        }
        match step(&sel, &going, None, 2) {
            Step::Fail(why) => assert!(why.contains("HTTP 500") && why.contains("after 3 tries"), "{why}"),
            other => panic!("{other:?}"),
        }
        let failed = LaunchObject {
            launch_status: Some("REPORT_FAILED".into()),
            ..ready
        };
        let mut l = launch("a", "L1", None, None);
        polled(&mut l, Ok(&failed));
        assert_eq!((l.failures, l.error.is_some()), (Some(1), true));
    }

    #[test]
    fn properties_reach_aqua_as_encoded_query_pairs_never_as_syntax() {
        let api = Url::parse("https://aqua.example/aqua-api/services/").unwrap();
        let url = launch_url(
            &api,
            "5f3c2a1b9d8e7f6a5b4c3d2e",
            &[
                ("webdriver.base.url".into(), "https://qa1/?a=1&b=2".into()),
                ("x".into(), "; rm -rf / #".into()),
            ],
        );
        assert_eq!(
            url.as_str(),
            "https://aqua.example/aqua-api/services/launch/pack/5f3c2a1b9d8e7f6a5b4c3d2e?webdriver.base.url=https%3A%2F%2Fqa1%2F%3Fa%3D1%26b%3D2&x=%3B+rm+-rf+%2F+%23"
        );
        let back: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(back[0].1, "https://qa1/?a=1&b=2");
        assert_eq!(back[1].1, "; rm -rf / #");
    }

    #[test]
    fn only_http_pages_become_links() {
        let mut l = launch("a", "L1", None, None);
        l.url = Some("javascript:alert(1)".into());
        assert_eq!(links(&[l.clone()])[0].url, None);
        l.url = Some("https://aqua/launch/L1".into());
        assert_eq!(links(&[l])[0].url.as_deref(), Some("https://aqua/launch/L1"));
    }

    #[test]
    fn a_cancelled_run_says_whether_its_launch_goes_on() {
        let l = vec![AquaLaunch {
            url: Some("http://aqua/launch/L1".into()),
            ..launch("a", "L1", None, None)
        }];
        assert!(cancel_note(&l, false).contains("goes on in Aqua"));
        assert!(cancel_note(&l, false).contains("http://aqua/launch/L1"));
        assert!(cancel_note(&l, true).starts_with("cancelled; revoked in Aqua: L1"));
    }
}
