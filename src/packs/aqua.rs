//! `launch.launcher: aqua`: the settings of a service whose packs run on the team's Aqua test
//! farm, checked at load like every other field.
//!
//! Checked here, once: Aqua's URL (http or https, no credentials in it), each pack's Aqua pack
//! id (24 hex digits, as Aqua's ids are), the launch properties as templates of the run (an
//! unknown placeholder names the pack and the placeholder), the poll interval, the auth header
//! taken from a secret reference (an environment variable or a file: in operator mode the
//! Deployment maps a Kubernetes Secret to either), and the optional revoke path (`{launch}`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::template::{Template, Var};

/// The launch property carrying Tomato's marker of a launch (`<run>/<attempt>/<pack>`), sent
/// with every launch: recorded before the launch is asked for, it lets a Tomato that crashed
/// before recording Aqua's answer find that launch instead of making it again
/// ([`crate::launch::aqua`]). A service's own properties may not set it.
pub const MARKER_PROPERTY: &str = "tomato.launch";

/// Variables a launch property may use: what Aqua's tests need to know of the run.
pub const PROPERTY_VARS: &[Var] = &[Var::Stand, Var::Run, Var::Attempt];
/// Variables of the revoke path: the launch to revoke.
pub const REVOKE_VARS: &[Var] = &[Var::Launch];

/// Default time between two polls of a launch.
pub const DEFAULT_POLL: Duration = Duration::from_secs(15);
/// Default limit of one HTTP request to Aqua.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of failed requests in a row before the attempt ends in an error.
pub const DEFAULT_ERROR_RETRIES: u32 = 5;

/// A service's Aqua settings (`launch.aqua`), validated.
#[derive(Clone, Debug)]
pub struct AquaService {
    /// Aqua's base URL (`https://aqua.example`); the API is under `aqua-api/services/`.
    pub url: reqwest::Url,
    pub poll_interval: Duration,
    pub request_timeout: Duration,
    /// Failed requests in a row (unreachable, 5xx, timed out, unreadable report) tolerated
    /// before the attempt ends in an error; between them the wait doubles from the poll
    /// interval.
    pub error_retries: u32,
    /// Launch properties of every pack, rendered per attempt.
    pub properties: Vec<(String, Template)>,
    pub auth: Option<AquaAuth>,
    /// Path under `aqua-api/services/` that revokes a launch (`{launch}`); none: a cancelled
    /// run leaves its launch going on in Aqua, and says so.
    pub revoke_path: Option<Template>,
}

/// The header Aqua's requests carry, its value read from a secret when a request is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AquaAuth {
    pub header: String,
    pub source: SecretSource,
}

/// Where a secret value is read from (never from packs_config itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(std::path::PathBuf),
}

impl SecretSource {
    /// Reads the value; the error names the reference, never a value.
    pub fn read(&self) -> Result<crate::secrets::Secret, String> {
        let v = match self {
            SecretSource::Env(name) => {
                std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))?
            }
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?,
        };
        let v = v.trim_end_matches(['\r', '\n']).to_string();
        if v.is_empty() || v.chars().any(|c| c.is_control()) {
            return Err("the secret is empty or holds control characters".into());
        }
        Ok(crate::secrets::Secret::new(v))
    }
}

/// A pack's Aqua settings (`packs.<name>.aqua`), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AquaPack {
    /// 24 hex digits.
    pub pack_id: String,
    /// The pack's own properties, over the service's (same key: the pack's wins).
    pub properties: Vec<(String, Template)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAqua {
    url: String,
    #[serde(default)]
    poll_interval: Option<String>,
    #[serde(default)]
    request_timeout: Option<String>,
    #[serde(default)]
    error_retries: Option<u32>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    auth: Option<RawAuth>,
    #[serde(default)]
    revoke_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAuth {
    /// The header's name, `Authorization` unless said.
    #[serde(default)]
    header: Option<String>,
    /// An environment variable holding the value.
    #[serde(default)]
    env: Option<String>,
    /// A file holding the value (a mounted Secret in operator mode).
    #[serde(default)]
    file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAquaPack {
    pack_id: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

/// Why Aqua's settings are refused where no pack runs in Aqua.
pub(super) const ONLY_IN_AQUA: &str =
    "is only read when a pack runs in Aqua (launch.launcher: aqua, or the pack's own launcher: aqua)";

/// Reads a `launcher` field (`launch.launcher` or `packs.<name>.launcher`): `Some(true)` for
/// `aqua`, `Some(false)` for `process`, `None` when absent or not a launcher (then named).
pub(super) fn launcher(
    field: &str,
    value: Option<&str>,
    add: &mut dyn FnMut(String, String),
) -> Option<bool> {
    match value? {
        "process" => Some(false),
        "aqua" => Some(true),
        other => {
            add(
                field.to_string(),
                format!("{other:?} is not a launcher: process (the default) or aqua"),
            );
            None
        }
    }
}

/// Whether `s` is an Aqua pack id: 24 hex digits.
pub fn is_pack_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks `launch.aqua`; each problem goes to `add(field, reason)`.
pub(super) fn service(raw: &RawAqua, add: &mut dyn FnMut(String, String)) -> Option<AquaService> {
    let mut errs: Vec<(String, String)> = Vec::new();
    let mut bad = |field: &str, reason: String| errs.push((format!("launch.aqua.{field}"), reason));
    let url = match reqwest::Url::parse(&raw.url) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            bad("url", format!("{:?} is not an http(s) URL", raw.url));
            None
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            // Never repeated: it holds a credential.
            bad(
                "url",
                "must not hold credentials: give them as launch.aqua.auth".into(),
            );
            None
        }
        Ok(mut u) => {
            if !u.path().ends_with('/') {
                let p = format!("{}/", u.path());
                u.set_path(&p);
            }
            Some(u)
        }
        Err(e) => {
            bad("url", format!("{:?} is not a URL: {e}", raw.url));
            None
        }
    };
    let mut duration =
        |field: &str, v: &Option<String>, default: Duration| match v.as_deref().map(crate::duration::parse) {
            None => default,
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => {
                bad(
                    field,
                    "must be longer than zero (polling never busy-loops)".into(),
                );
                default
            }
            Some(Err(e)) => {
                bad(field, e);
                default
            }
        };
    let poll_interval = duration("pollInterval", &raw.poll_interval, DEFAULT_POLL);
    let request_timeout = duration("requestTimeout", &raw.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    let error_retries = raw.error_retries.unwrap_or(DEFAULT_ERROR_RETRIES);
    if error_retries > 20 {
        bad("errorRetries", format!("must be 0–20, got {error_retries}"));
    }
    let auth = raw.auth.as_ref().and_then(|a| {
        let header = a.header.clone().unwrap_or_else(|| "Authorization".into());
        if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
            bad("auth.header", format!("{header:?} is not an HTTP header name"));
            return None;
        }
        let source = match (&a.env, &a.file) {
            (Some(e), None) if is_env_name(e) => SecretSource::Env(e.clone()),
            (Some(e), None) => {
                bad("auth.env", format!("{e:?} is not an environment variable name"));
                return None;
            }
            (None, Some(f)) if f.starts_with('/') => SecretSource::File(f.into()),
            (None, Some(f)) => {
                bad("auth.file", format!("{f:?} must be an absolute path"));
                return None;
            }
            _ => {
                bad(
                    "auth",
                    "give the secret's place: env (a variable) or file (a path), one of them".into(),
                );
                return None;
            }
        };
        Some(AquaAuth { header, source })
    });
    let revoke_path = raw
        .revoke_path
        .as_ref()
        .and_then(|r| match Template::parse(r, REVOKE_VARS) {
            Ok(t) if t.uses(Var::Launch) => Some(t),
            Ok(_) => {
                bad(
                    "revokePath",
                    format!("{r:?} does not name the launch ({{launch}})"),
                );
                None
            }
            Err(e) => {
                bad("revokePath", e);
                None
            }
        });
    let properties = properties("launch.aqua.properties", &raw.properties, &mut |f, r| {
        errs.push((f, r))
    });
    let ok = errs.is_empty();
    for (f, r) in errs {
        add(f, r);
    }
    let url = url?;
    ok.then_some(AquaService {
        url,
        poll_interval,
        request_timeout,
        error_retries,
        properties,
        auth,
        revoke_path,
    })
}

/// Checks `packs.<name>.aqua`.
pub(super) fn pack(name: &str, raw: &RawAquaPack, add: &mut dyn FnMut(String, String)) -> Option<AquaPack> {
    let mut ok = true;
    if !is_pack_id(&raw.pack_id) {
        add(
            format!("packs.{name}.aqua.packId"),
            format!(
                "{:?} is not an Aqua pack id (24 hex digits, like 5f3c2a1b9d8e7f6a5b4c3d2e)",
                raw.pack_id
            ),
        );
        ok = false;
    }
    let properties = properties(
        &format!("packs.{name}.aqua.properties"),
        &raw.properties,
        &mut |f, r| {
            add(f, format!("pack {name}: {r}"));
            ok = false;
        },
    );
    ok.then(|| AquaPack {
        pack_id: raw.pack_id.to_ascii_lowercase(),
        properties,
    })
}

fn properties(
    field: &str,
    raw: &BTreeMap<String, String>,
    add: &mut dyn FnMut(String, String),
) -> Vec<(String, Template)> {
    raw.iter()
        .filter_map(|(k, v)| {
            if k.is_empty() || k.chars().any(|c| c.is_control() || c.is_whitespace()) {
                add(format!("{field}.{k}"), "not a property name".into());
                return None;
            }
            if k == MARKER_PROPERTY {
                add(
                    format!("{field}.{k}"),
                    "is set by Tomato itself (it finds its launches in Aqua by it)".into(),
                );
                return None;
            }
            match Template::parse(v, PROPERTY_VARS) {
                Ok(t) => Some((k.clone(), t)),
                Err(e) => {
                    add(format!("{field}.{k}"), e);
                    None
                }
            }
        })
        .collect()
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl AquaService {
    /// The properties one pack is launched with in one attempt: the service's, then the
    /// pack's (which win on the same key), each rendered over the run.
    pub fn properties_for(
        &self,
        pack: &AquaPack,
        stand: &str,
        run: &str,
        attempt: u32,
    ) -> Vec<(String, String)> {
        let value = |v: Var| match v {
            Var::Stand => stand.to_string(),
            Var::Run => run.to_string(),
            Var::Attempt => attempt.to_string(),
            _ => String::new(),
        };
        let mut out: BTreeMap<&str, String> = BTreeMap::new();
        for (k, t) in self.properties.iter().chain(&pack.properties) {
            out.insert(k, t.render(value));
        }
        out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::packs::PacksConfig;

    fn service(launch: &str, packs: &str) -> String {
        format!(
            "stands:\n  pattern: 'qa[0-9]+'\nlaunch:\n  launcher: aqua\n  aqua:\n{launch}\npacks:\n{packs}\n"
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match PacksConfig::parse_service(Path::new("/cfg"), Path::new("/cfg/farm.yaml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect(),
        }
    }

    const URL: &str = "    url: https://aqua.example";

    #[test]
    fn a_valid_aqua_service_renders_its_properties_per_run() {
        let text = service(
            &format!(
                "{URL}\n    pollInterval: 5s\n    properties:\n      webdriver.base.url: 'https://{{stand}}/'\n      run: '{{run}}#{{attempt}}'\n    auth:\n      env: AQUA_TOKEN\n    revokePath: launch/{{launch}}/revoke"
            ),
            "  smoke:\n    aqua:\n      packId: 5F3C2A1B9D8E7F6A5B4C3D2E\n      properties:\n        run: 'pack-{run}'",
        );
        let svc = PacksConfig::parse_service(Path::new("/cfg"), Path::new("/cfg/farm.yaml"), &text).unwrap();
        let aqua = svc.aqua.as_ref().unwrap();
        assert_eq!(aqua.url.as_str(), "https://aqua.example/");
        assert_eq!(aqua.poll_interval, std::time::Duration::from_secs(5));
        let pack = svc.packs["smoke"].aqua.as_ref().unwrap();
        assert_eq!(pack.pack_id, "5f3c2a1b9d8e7f6a5b4c3d2e");
        assert_eq!(
            aqua.properties_for(pack, "qa1", "farm-x", 2),
            vec![
                ("run".to_string(), "pack-farm-x".to_string()),
                ("webdriver.base.url".to_string(), "https://qa1/".to_string()),
            ],
            "the pack's property wins over the service's"
        );
        assert_eq!(
            crate::launch::aqua::revoke_path(aqua, "L1").as_deref(),
            Some("launch/L1/revoke")
        );
        let explained = crate::launch::aqua::explain(&svc, aqua);
        assert!(
            explained.contains(
                "attempt 1, pack smoke: GET https://aqua.example/aqua-api/services/launch/pack/5f3c2a1b9d8e7f6a5b4c3d2e?run=pack-%3Crun%3E&webdriver.base.url=https%3A%2F%2F%3Cstand%3E%2F"
            ) && explained.contains("header Authorization from Env(\"AQUA_TOKEN\") (never shown)"),
            "{explained}"
        );
    }

    #[test]
    fn a_pack_id_that_is_not_24_hex_digits_is_named() {
        for bad in [
            "5f3c2a1b9d8e7f6a5b4c3d2",
            "5f3c2a1b9d8e7f6a5b4c3d2x",
            "../../launch",
        ] {
            let e = errors(&service(
                URL,
                &format!("  smoke:\n    aqua:\n      packId: '{bad}'"),
            ));
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].starts_with("packs.smoke.aqua.packId: ") && e[0].contains("24 hex digits"),
                "{e:?}"
            );
        }
        let e = errors(&service(URL, "  smoke:\n    tests: []"));
        assert!(e[0].starts_with("packs.smoke.aqua.packId: is required"), "{e:?}");
    }

    #[test]
    fn an_unknown_placeholder_names_the_pack_and_the_placeholder() {
        let e = errors(&service(
            URL,
            "  smoke:\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e\n      properties:\n        host: '{stnad}'",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("packs.smoke.aqua.properties.host: pack smoke: unknown placeholder {stnad}")
                && e[0].contains("did you mean {stand}?"),
            "{e:?}"
        );
        let e = errors(&service(
            &format!("{URL}\n    properties:\n      host: '{{tests}}'"),
            "  smoke:\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e",
        ));
        assert!(
            e[0].starts_with("launch.aqua.properties.host: unknown placeholder {tests}"),
            "{e:?}"
        );
    }

    #[test]
    fn bad_urls_intervals_auth_and_revoke_paths_are_each_named() {
        let e = errors(&service(
            "    url: ftp://user:pw@aqua\n    pollInterval: 0s\n    auth:\n      file: relative/path\n    revokePath: launch/x",
            "  smoke:\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e",
        ));
        let fields: Vec<&str> = e.iter().map(|e| e.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "launch.aqua.url",
                "launch.aqua.pollInterval",
                "launch.aqua.auth.file",
                "launch.aqua.revokePath"
            ],
            "{e:?}"
        );
        let e = errors(&service(
            "    url: https://bob:hunter2@aqua",
            "  smoke:\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e",
        ));
        assert!(!e[0].contains("hunter2"), "a credential is never repeated: {e:?}");
    }

    #[test]
    fn aqua_settings_need_a_pack_in_aqua() {
        let text = "stands:\n  pattern: x\nlaunch:\n  command: [echo, '{tests}']\n  aqua:\n    url: https://a\npacks:\n  p:\n    tests: [t]\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e\n";
        let e = errors(text);
        assert_eq!(
            e,
            [
                format!("launch.aqua: {}", super::ONLY_IN_AQUA),
                format!("packs.p.aqua: {}", super::ONLY_IN_AQUA),
            ]
        );
    }

    /// A process service with one pack in Aqua, and an Aqua service with one pack run locally:
    /// each pack's own `launcher` wins over the service's.
    #[test]
    fn a_pack_chooses_its_launcher_over_the_services() {
        let parse = |t: &str| PacksConfig::parse_service(Path::new("/cfg"), Path::new("/cfg/mix.yaml"), t);
        let process_first = "stands:\n  pattern: x\nlaunch:\n  command: [echo, '{tests}']\n  aqua:\n    url: https://a\npacks:\n  web:\n    tests: [t]\n  farm:\n    launcher: aqua\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e\n";
        let svc = parse(process_first).unwrap();
        assert!(svc.aqua.is_some(), "the connection settings are kept");
        assert!(svc.packs["farm"].aqua.is_some() && svc.packs["web"].aqua.is_none());
        assert!(!svc.launch.command.is_empty());

        let aqua_first = "stands:\n  pattern: x\nlaunch:\n  launcher: aqua\n  command: [echo, '{tests}']\n  aqua:\n    url: https://a\npacks:\n  web:\n    launcher: process\n    tests: [t]\n  farm:\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e\n";
        let svc = parse(aqua_first).unwrap();
        assert!(svc.packs["farm"].aqua.is_some() && svc.packs["web"].aqua.is_none());
    }

    #[test]
    fn a_pack_launcher_is_checked_and_names_the_pack_and_field() {
        // A pack in Aqua without Aqua's connection settings.
        let e = errors(
            "stands:\n  pattern: x\nlaunch:\n  command: [echo, '{tests}']\npacks:\n  web:\n    tests: [t]\n  farm:\n    launcher: aqua\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e\n",
        );
        assert_eq!(
            e,
            [
                "launch.aqua: pack farm runs in Aqua (packs.farm.launcher: aqua) and needs Aqua's settings (launch.aqua.url at least)"
            ]
        );
        // Not a launcher; a pack in Aqua without its pack id.
        let e = errors(
            "stands:\n  pattern: x\nlaunch:\n  command: [echo, '{tests}']\n  aqua:\n    url: https://a\npacks:\n  web:\n    launcher: jenkins\n    tests: [t]\n  farm:\n    launcher: aqua\n",
        );
        assert_eq!(
            e,
            [
                "packs.web.launcher: \"jenkins\" is not a launcher: process (the default) or aqua",
                "packs.farm.aqua.packId: is required: the pack runs in Aqua (packs.farm.launcher: aqua)",
            ],
            "{e:?}"
        );
        // A pack run locally in an Aqua service needs a command to run it with.
        let e = errors(
            "stands:\n  pattern: x\nlaunch:\n  launcher: aqua\n  aqua:\n    url: https://a\npacks:\n  web:\n    launcher: process\n    tests: [t]\n  farm:\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e\n",
        );
        assert!(
            e.len() == 1 && e[0].starts_with("launch: give a runner preset"),
            "{e:?}"
        );
    }

    #[test]
    fn the_marker_property_is_tomatos_own() {
        let e = errors(&service(
            &format!("{URL}\n    properties:\n      tomato.launch: '{{run}}'"),
            "  smoke:\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e",
        ));
        assert_eq!(
            e,
            [
                "launch.aqua.properties.tomato.launch: is set by Tomato itself (it finds its launches in Aqua by it)"
            ]
        );
    }
}
