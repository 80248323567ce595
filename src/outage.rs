//! Stand outages (issue 17 item 7): when most failures of an attempt fall into infrastructure
//! categories (rules with `infrastructure: true`), the stand is down, not the product. The run
//! then ends `Error` at once (no reruns: they would fail the same way), saying "stand <s> looks
//! down: <category>, <n> of <m> failures"; its report is the one notification; and further
//! runs on that stand stay queued with that reason until the stand's probe
//! (`stands.probe`) answers as expected or a person resumes the stand.
//!
//! Where the hold lives: on the run that found the outage (`status.standDown`), not in a store
//! of its own, so both modes keep it with what they already keep. A stand is held while some
//! run's `standDown` is unresolved; resuming resolves every such record of the stand. (A run
//! deleted by retention takes its hold with it.)
//!
//! Pure: detection, the probe's URL and answer, and which stands are held are decided here;
//! the drivers read and write.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::crd::{StandDown, TestRun};

/// The share of an attempt's failures that must be infrastructure failures, by default.
pub const DEFAULT_SHARE: f64 = 0.8;
/// The fewest infrastructure failures that count as an outage, by default (one or two
/// connection errors are a flaky network, not a stand down).
pub const DEFAULT_MIN: u32 = 3;

/// When an attempt's failures mean an outage (a service's `outage`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// At least this share of the failing tests (0 < share <= 1).
    pub share: f64,
    /// And at least this many of them.
    pub min: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            share: DEFAULT_SHARE,
            min: DEFAULT_MIN,
        }
    }
}

/// A service's outage policy: its infrastructure categories and when they mean an outage
/// (see `packs::Service::outage_policy`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy<'a> {
    pub infrastructure: HashSet<&'a str>,
    pub settings: Settings,
}

/// An outage found in an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outage {
    /// The infrastructure category most of the failures fall into.
    pub category: String,
    /// Failures in infrastructure categories.
    pub infrastructure: usize,
    /// Failing tests in all.
    pub failures: usize,
}

impl Outage {
    /// The run's message, and the reason runs on the stand wait.
    pub fn message(&self, stand: &str) -> String {
        format!(
            "stand {stand} looks down: {}, {} of {} failures",
            self.category, self.infrastructure, self.failures
        )
    }
}

/// Whether the failing tests' categories (`None`: unclassified) mean an outage: at least
/// `settings.min` of them, and at least `settings.share` of all, in `infrastructure`
/// categories. The category named is the commonest of those (ties: the first by name).
pub fn detect<'a>(
    failures: impl IntoIterator<Item = Option<&'a str>>,
    infrastructure: &HashSet<&str>,
    settings: Settings,
) -> Option<Outage> {
    let mut total = 0usize;
    let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
    for category in failures {
        total += 1;
        if let Some(c) = category.filter(|c| infrastructure.contains(c)) {
            *by_category.entry(c).or_default() += 1;
        }
    }
    let infra: usize = by_category.values().sum();
    if total == 0 || infra < settings.min as usize || (infra as f64) < settings.share * total as f64 {
        return None;
    }
    let (category, _) = by_category
        .iter()
        .fold(None::<(&str, usize)>, |best, (c, n)| match best {
            Some((_, m)) if m >= *n => best,
            _ => Some((c, *n)),
        })?;
    Some(Outage {
        category: category.to_string(),
        infrastructure: infra,
        failures: total,
    })
}

/// A held stand: why (the oldest unresolved record's reason), since when, and the runs whose
/// records hold it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub stand: String,
    pub reason: String,
    pub since: DateTime<Utc>,
    /// The runs whose `status.standDown` holds it (their service's probe is asked).
    pub runs: Vec<String>,
    /// The services of those runs.
    pub services: Vec<String>,
}

/// The holds of every stand some run's unresolved `status.standDown` holds, by stand (a
/// [`crate::queue::stand_key`]).
pub fn holds<'a>(runs: impl IntoIterator<Item = &'a TestRun>) -> Vec<Hold> {
    let mut out: BTreeMap<String, Hold> = BTreeMap::new();
    for r in runs {
        let Some(d) = r.status.as_ref().and_then(|s| s.stand_down.as_ref()) else {
            continue;
        };
        if d.resolved_at.is_some() {
            continue;
        }
        let h = out.entry(d.stand.clone()).or_insert_with(|| Hold {
            stand: d.stand.clone(),
            reason: d.reason.clone(),
            since: d.since,
            runs: Vec::new(),
            services: Vec::new(),
        });
        if d.since < h.since {
            h.since = d.since;
            h.reason = d.reason.clone();
        }
        h.runs.push(r.metadata.name.clone().unwrap_or_default());
        if !h.services.contains(&r.spec.template.service) {
            h.services.push(r.spec.template.service.clone());
        }
    }
    out.into_values()
        .map(|mut h| {
            h.runs.sort();
            h.services.sort();
            h
        })
        .collect()
}

/// The stands held now, each with its reason ([`holds`]), for admission.
pub fn held<'a>(runs: impl IntoIterator<Item = &'a TestRun>) -> BTreeMap<String, String> {
    holds(runs).into_iter().map(|h| (h.stand, h.reason)).collect()
}

/// Resolves a record (`by`: `probe` or who resumed it). False when it was resolved already.
pub fn resolve(record: &mut StandDown, by: &str, now: DateTime<Utc>) -> bool {
    if record.resolved_at.is_some() {
        return false;
    }
    record.resolved_at = Some(now);
    record.resolved_by = Some(by.to_string());
    true
}

/// How to tell a held stand is back (a service's `stands.probe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// An `http(s)` URL with `{stand}` where the stand goes (`https://{stand}/health`).
    pub url: String,
    /// The status code that means "up".
    pub status: u16,
    /// How often it is asked while the stand is held.
    pub every: Duration,
}

impl Probe {
    /// Checks a probe's URL template: `http(s)`, and nothing but `{stand}` in braces.
    pub fn check(url: &str) -> Result<(), String> {
        let rest = url.replace("{stand}", "");
        if rest.contains('{') || rest.contains('}') {
            return Err("only {stand} may appear in braces".into());
        }
        Probe::url_for(url, "example.com").map(|_| ())
    }

    /// The URL to ask for `stand` (scheme and path of the stand dropped: its host and port,
    /// which must be nothing else: letters, digits, `.`, `-`, `_`, `:` and an IPv6 address's
    /// brackets, so a stand cannot steer the probe to another host or path).
    pub fn url_for(template: &str, stand: &str) -> Result<reqwest::Url, String> {
        let host = crate::queue::stand_key(stand);
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
        {
            return Err(format!("{host:?} is not a host name or address to probe"));
        }
        let url = template.replace("{stand}", &host);
        // The errors name the stand, not the URL: a template may carry a token.
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| format!("the probe URL for {host} is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("the probe URL for {host} is not an http(s) URL"));
        }
        Ok(parsed)
    }

    /// Whether the probe's answer means the stand is up.
    pub fn is_up(&self, answer: Result<u16, String>) -> bool {
        answer.is_ok_and(|code| code == self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infra() -> HashSet<&'static str> {
        HashSet::from(["Infrastructure problems", "DNS"])
    }

    #[test]
    fn an_outage_needs_the_share_and_the_minimum() {
        let s = Settings::default();
        let down = [Some("Infrastructure problems"); 4];
        let with = |extra: &[Option<&'static str>]| {
            let mut all = down.to_vec();
            all.extend_from_slice(extra);
            detect(all, &infra(), s)
        };
        assert_eq!(
            with(&[Some("Product defects")]),
            Some(Outage {
                category: "Infrastructure problems".into(),
                infrastructure: 4,
                failures: 5
            }),
            "4 of 5 is 80 %"
        );
        assert_eq!(with(&[None, Some("Product defects")]), None, "4 of 6 is not");
        assert_eq!(
            detect([Some("DNS"), Some("DNS")], &infra(), s),
            None,
            "2 is under the minimum"
        );
        assert_eq!(detect([], &infra(), s), None);
        let o = detect(
            [Some("DNS"), Some("DNS"), Some("Infrastructure problems")],
            &infra(),
            s,
        )
        .unwrap();
        assert_eq!(
            (o.category.as_str(), o.infrastructure),
            ("DNS", 3),
            "the commonest names it"
        );
        assert_eq!(
            o.message("qa1.example.com"),
            "stand qa1.example.com looks down: DNS, 3 of 3 failures"
        );
        let strict = Settings { share: 1.0, min: 1 };
        assert!(detect([Some("DNS")], &infra(), strict).is_some());
        assert!(detect([Some("DNS"), None], &infra(), strict).is_none());
    }

    fn run(name: &str, down: Option<(&str, u32, bool)>) -> TestRun {
        let mut r = TestRun::test(name, crate::crd::RunTemplate::test("demo").stand("qa1"));
        r.status = Some(crate::crd::TestRunStatus {
            stand_down: down.map(|(stand, minute, resolved)| StandDown {
                stand: stand.into(),
                reason: format!("{name} found it"),
                since: DateTime::from_timestamp(60 * i64::from(minute), 0).unwrap(),
                resolved_at: resolved.then(Utc::now),
                resolved_by: resolved.then(|| "probe".into()),
            }),
            ..Default::default()
        });
        r
    }

    #[test]
    fn a_stand_is_held_by_its_unresolved_records_with_the_oldest_reason() {
        let runs = [
            run("late", Some(("qa1", 5, false))),
            run("early", Some(("qa1", 1, false))),
            run("done", Some(("qa2", 1, true))),
            run("plain", None),
        ];
        let held = held(&runs);
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held["qa1"], "early found it");
        let holds = holds(&runs);
        assert_eq!(holds[0].runs, ["early", "late"]);
        assert_eq!(holds[0].services, ["demo"]);

        let mut record = runs[0].status.clone().unwrap().stand_down.unwrap();
        assert!(resolve(&mut record, "ann", Utc::now()));
        assert_eq!(record.resolved_by.as_deref(), Some("ann"));
        assert!(!resolve(&mut record, "probe", Utc::now()), "resolved once");
    }

    #[test]
    fn a_probe_url_takes_the_stands_host_and_nothing_else() {
        assert!(Probe::check("https://{stand}/health").is_ok());
        assert!(
            Probe::check("https://{stand}/{path}")
                .unwrap_err()
                .contains("only {stand}")
        );
        assert!(Probe::check("ftp://{stand}/").unwrap_err().contains("http(s)"));
        assert_eq!(
            Probe::url_for("https://{stand}/health", "HTTPS://QA1.example.com:8443/app?x=1")
                .unwrap()
                .as_str(),
            "https://qa1.example.com:8443/health"
        );
        for steering in ["evil.com\\", "qa1 .example.com", "%65vil.com"] {
            assert!(
                Probe::url_for("https://{stand}.stands.corp/health", steering).is_err(),
                "{steering}"
            );
        }
        let p = Probe {
            url: "http://{stand}/".into(),
            status: 204,
            every: Duration::from_secs(30),
        };
        assert!(p.is_up(Ok(204)));
        assert!(!p.is_up(Ok(200)));
        assert!(!p.is_up(Err("connection refused".into())));
    }
}
