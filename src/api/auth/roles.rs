//! Named API tokens with roles: the roles file (`TOMATO_API_ROLES_FILE`), checked into typed
//! values and reloaded when it (or a token file it names) changes, and the bare tokens of
//! `TOMATO_API_TOKENS` / `TOMATO_API_TOKENS_FILE`, which keep full rights (`admin`) so that
//! no existing setup loses access.
//!
//! The roles file (YAML):
//!
//! ```yaml
//! readsOpen: true          # default true; false: every read but probes and /metrics needs `read`
//! tokens:
//!   - name: dashboards
//!     role: read
//!     token: "r-7f3c..."
//!   - name: ci
//!     role: run            # queue, cancel, re-prioritise runs
//!     tokenFile: ci.token  # relative to the roles file's directory
//!   - name: qa-lead
//!     role: admin          # schedules, regressions, and what `run` may
//!     tokenFile: /run/secrets/qa-lead
//! ```
//!
//! A reload that fails (bad YAML, an unknown role, a duplicate, an unreadable token file)
//! keeps the previous valid set and logs the problem once, naming the entry, never a token.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::routes::Role;
use crate::secrets::Secret;

/// How often the roles file is looked at (one `stat` per file, on a request, at most this often).
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// One named token.
struct Entry {
    name: String,
    role: Role,
    token: Secret,
}

/// A checked set of tokens.
#[derive(Default)]
pub struct TokenSet {
    entries: Vec<Entry>,
    /// Whether reads need no token.
    pub reads_open: bool,
    /// The token files the set was read from (watched for changes with the roles file).
    token_files: Vec<PathBuf>,
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub role: Role,
}

impl TokenSet {
    /// Bare tokens, each with full rights, named `token-1`, `token-2`... in the order given.
    fn bare(tokens: impl IntoIterator<Item = String>) -> TokenSet {
        let entries = tokens
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .enumerate()
            .map(|(i, t)| Entry {
                name: format!("token-{}", i + 1),
                role: Role::Admin,
                token: Secret::new(t),
            })
            .collect();
        TokenSet {
            entries,
            reads_open: true,
            token_files: Vec::new(),
        }
    }

    /// Parses and checks a roles file's text; `dir` is where relative token files are.
    pub fn parse(text: &str, dir: &Path) -> Result<TokenSet, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct RawFile {
            #[serde(default = "yes")]
            reads_open: bool,
            #[serde(default)]
            tokens: Vec<RawEntry>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct RawEntry {
            name: String,
            role: String,
            token: Option<String>,
            token_file: Option<PathBuf>,
        }
        fn yes() -> bool {
            true
        }
        let options = serde_saphyr::options! { with_snippet: false };
        // The parser's message may quote the line at fault, which may hold a token: only
        // where it is goes out.
        let raw: RawFile = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            format!(
                "not a roles file{at} (expected readsOpen and tokens: [{{name, role, token or tokenFile}}])"
            )
        })?;
        let mut set = TokenSet {
            reads_open: raw.reads_open,
            ..TokenSet::default()
        };
        for (i, e) in raw.tokens.into_iter().enumerate() {
            let name = e.name.trim().to_string();
            let at = format!("tokens[{i}] ({})", crate::text::quote(&name));
            if name.is_empty() {
                return Err(format!("tokens[{i}]: the name is empty"));
            }
            let role = match e.role.trim() {
                "read" => Role::Read,
                "run" => Role::Run,
                "admin" => Role::Admin,
                other => {
                    return Err(format!(
                        "{at}: unknown role {}; use read, run or admin",
                        crate::text::quote(other)
                    ));
                }
            };
            let token = match (e.token, e.token_file) {
                (Some(t), None) => Secret::new(t.trim()),
                (None, Some(file)) => {
                    let path = dir.join(file);
                    let secret = crate::secrets::read_file(&path)
                        .map_err(|err| format!("{at}: tokenFile {}: {err}", path.display()))?;
                    set.token_files.push(path);
                    Secret::new(secret.expose().trim())
                }
                (Some(_), Some(_)) => return Err(format!("{at}: give token or tokenFile, not both")),
                (None, None) => return Err(format!("{at}: no token or tokenFile")),
            };
            if token.expose().is_empty() {
                return Err(format!("{at}: the token is empty"));
            }
            if let Some(other) = set.entries.iter().find(|o| o.name == name) {
                return Err(format!(
                    "{at}: the name {} is given twice",
                    crate::text::quote(&other.name)
                ));
            }
            if let Some(other) = set.entries.iter().find(|o| o.token.expose() == token.expose()) {
                return Err(format!(
                    "{at}: has the same token as {}; each name needs its own",
                    crate::text::quote(&other.name)
                ));
            }
            set.entries.push(Entry { name, role, token });
        }
        Ok(set)
    }

    /// The entry whose token is `presented`. Compares in constant time against every token
    /// (no early exit, so timing tells nothing about which token or how much of it matched).
    fn find(&self, presented: &str) -> Option<Named> {
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.token.expose().as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(Named {
                    name: e.name.clone(),
                    role: e.role,
                });
            }
        }
        found
    }
}

/// What the files looked like when last read: each file's modification time and size.
type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

fn fingerprint(paths: impl IntoIterator<Item = PathBuf>) -> Fingerprint {
    paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let stamp = meta.and_then(|m| Some((m.modified().ok()?, m.len())));
            (p, stamp)
        })
        .collect()
}

/// The roles file and the set last read from it.
struct RolesFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    set: Arc<TokenSet>,
    /// The files as they were when `set` was read.
    seen: Fingerprint,
    checked: Instant,
    /// Why the files as they are now do not load (then they are read again at each look, as a
    /// token file they name may appear; the same reason is logged once).
    failing: Option<String>,
}

impl RolesFile {
    fn load(path: &Path) -> Result<RolesFile, String> {
        let (set, seen) = Self::read(path)?;
        Ok(RolesFile {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded {
                set: Arc::new(set),
                seen,
                checked: Instant::now(),
                failing: None,
            }),
        })
    }

    fn read(path: &Path) -> Result<(TokenSet, Fingerprint), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let set = TokenSet::parse(&text, dir).map_err(|e| format!("{}: {e}", path.display()))?;
        let seen = fingerprint(std::iter::once(path.to_path_buf()).chain(set.token_files.iter().cloned()));
        Ok((set, seen))
    }

    /// The current set: the file is looked at again when [`RELOAD_EVERY`] has passed, and
    /// read again when it or a token file changed.
    fn current(&self) -> Arc<TokenSet> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() < RELOAD_EVERY {
            return loaded.set.clone();
        }
        loaded.checked = Instant::now();
        let now = fingerprint(loaded.seen.iter().map(|(p, _)| p.clone()));
        if now == loaded.seen && loaded.failing.is_none() {
            return loaded.set.clone();
        }
        match Self::read(&self.path) {
            Ok((set, seen)) => {
                tracing::info!(file = %self.path.display(), tokens = set.entries.len(), reads_open = set.reads_open, "API roles reloaded");
                loaded.set = Arc::new(set);
                loaded.seen = seen;
                loaded.failing = None;
            }
            Err(e) => {
                if loaded.failing.as_deref() != Some(e.as_str()) {
                    tracing::error!("the API roles file was not reloaded, the previous tokens stay: {e}");
                }
                loaded.failing = Some(e);
            }
        }
        loaded.set.clone()
    }

    fn reload_now(&self) {
        let long_ago = Instant::now()
            .checked_sub(RELOAD_EVERY)
            .unwrap_or_else(Instant::now);
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).checked = long_ago;
    }
}

/// The accepted tokens: the bare ones of `TOMATO_API_TOKENS` (role `admin`) and the roles
/// file's. None configured means writes are open.
#[derive(Clone, Default)]
pub struct Tokens {
    bare: Arc<TokenSet>,
    file: Option<Arc<RolesFile>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured", self.bare.entries.len())?;
        if let Some(file) = &self.file {
            write!(f, ", roles file {}", file.path.display())?;
        }
        write!(f, ")")
    }
}

impl Tokens {
    /// Bare tokens with full rights.
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Tokens {
            bare: Arc::new(TokenSet::bare(tokens)),
            file: None,
        }
    }

    /// Adds the roles file at `path`, which must be valid now (later changes that are not
    /// keep the last valid set).
    pub fn with_roles_file(mut self, path: &Path) -> Result<Self, String> {
        self.file = Some(Arc::new(RolesFile::load(path)?));
        Ok(self)
    }

    /// From `TOMATO_API_TOKENS` (comma-separated) or `TOMATO_API_TOKENS_FILE` (one per line),
    /// and `TOMATO_API_ROLES_FILE`.
    pub fn from_env() -> Result<Self, String> {
        let tokens = match crate::secrets::from_env("TOMATO_API_TOKENS")? {
            Some(s) => Tokens::new(s.expose().split([',', '\n']).map(str::to_string)),
            None => Tokens::default(),
        };
        match std::env::var_os("TOMATO_API_ROLES_FILE").filter(|p| !p.is_empty()) {
            Some(path) => tokens
                .with_roles_file(Path::new(&path))
                .map_err(|e| format!("TOMATO_API_ROLES_FILE: {e}")),
            None => Ok(tokens),
        }
    }

    /// Whether any token is configured (then writes need one).
    pub fn is_enabled(&self) -> bool {
        !self.bare.entries.is_empty() || self.file.is_some()
    }

    /// Whether reads need no token (the roles file's `readsOpen`; open without a roles file).
    pub fn reads_open(&self) -> bool {
        self.file.as_ref().is_none_or(|f| f.current().reads_open)
    }

    /// Whose token `presented` is, if any.
    pub fn identify(&self, presented: &str) -> Option<Named> {
        let from_file = self.file.as_ref().and_then(|f| f.current().find(presented));
        self.bare.find(presented).or(from_file)
    }

    /// Whether `presented` is a configured token (of any role).
    pub fn accepts(&self, presented: &str) -> bool {
        self.identify(presented).is_some()
    }

    /// Makes the next request look at the roles file at once (tests).
    pub fn reload_now(&self) {
        if let Some(f) = &self.file {
            f.reload_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens_and_never_prints_them() {
        let t = Tokens::new(["alpha".to_string(), " beta ".to_string(), String::new()]);
        assert!(t.accepts("alpha") && t.accepts("beta"));
        assert!(!t.accepts("alph") && !t.accepts("") && !t.accepts("alphaa"));
        assert_eq!(format!("{t:?}"), "Tokens(2 configured)");
        assert!(!Tokens::default().is_enabled());
    }

    #[test]
    fn bare_tokens_keep_full_rights() {
        let t = Tokens::new(["alpha".to_string()]);
        assert_eq!(
            t.identify("alpha"),
            Some(Named {
                name: "token-1".into(),
                role: Role::Admin
            })
        );
        assert!(t.reads_open());
    }

    #[test]
    fn a_roles_file_names_each_token_and_its_role() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ci.token"), "ci-secret\n").unwrap();
        let set = TokenSet::parse(
            "readsOpen: false\ntokens:\n  - {name: dash, role: read, token: r1}\n  - {name: ci, role: run, tokenFile: ci.token}\n",
            dir.path(),
        )
        .unwrap();
        assert!(!set.reads_open);
        assert_eq!(
            set.find("r1").map(|n| (n.name, n.role)),
            Some(("dash".into(), Role::Read))
        );
        assert_eq!(set.find("ci-secret").map(|n| n.role), Some(Role::Run));
        assert_eq!(set.find("ci-secret\n"), None);
        assert!(TokenSet::parse("tokens: []\n", dir.path()).unwrap().reads_open);
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| TokenSet::parse(text, dir.path()).err().expect("refused");
        let e = err("tokens:\n  - {name: ci, role: writer, token: s3cret}\n");
        assert!(
            e.contains("tokens[0]") && e.contains("ci") && e.contains("writer"),
            "{e}"
        );
        let e = err(
            "tokens:\n  - {name: a, role: run, token: s3cret}\n  - {name: a, role: read, token: other}\n",
        );
        assert!(e.contains("tokens[1]") && e.contains("given twice"), "{e}");
        let e = err(
            "tokens:\n  - {name: a, role: run, token: s3cret}\n  - {name: b, role: read, token: s3cret}\n",
        );
        assert!(e.contains("same token as") && !e.contains("s3cret"), "{e}");
        let e = err("tokens:\n  - {name: a, role: run}\n");
        assert!(e.contains("no token"), "{e}");
        let e = err("tokens:\n  - {name: a, role: run, token: s3cret, tokenFile: x}\n");
        assert!(e.contains("not both"), "{e}");
        let e = err("tokens:\n  - {name: a, role: run, tokenFile: missing}\n");
        assert!(e.contains("tokenFile") && e.contains("missing"), "{e}");
        let e = err("tokens:\n  - {name: a, role: run, token: s3cret, extra: s3cret}\n");
        assert!(!e.contains("s3cret"), "{e}");
        let e = err("tokens: [{name: a, role: run, token: \"s3cret}\n");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn the_roles_file_is_reloaded_on_change_and_a_bad_change_keeps_the_last_good_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roles.yaml");
        std::fs::write(&path, "tokens:\n  - {name: ci, role: run, token: one}\n").unwrap();
        let t = Tokens::default().with_roles_file(&path).unwrap();
        assert!(t.is_enabled());
        assert_eq!(t.identify("one").map(|n| n.role), Some(Role::Run));

        std::fs::write(
            &path,
            "readsOpen: false\ntokens:\n  - {name: ci, role: admin, token: two}\n",
        )
        .unwrap();
        t.reload_now();
        assert_eq!(t.identify("one"), None);
        assert_eq!(t.identify("two").map(|n| n.role), Some(Role::Admin));
        assert!(!t.reads_open());

        std::fs::write(&path, "tokens:\n  - {name: ci, role: superuser, token: three}\n").unwrap();
        t.reload_now();
        assert_eq!(t.identify("two").map(|n| n.role), Some(Role::Admin));
        assert_eq!(t.identify("three"), None);

        // A token file named before it exists: taken once it appears.
        std::fs::write(
            &path,
            "tokens:\n  - {name: ci, role: admin, token: two}\n  - {name: late, role: run, tokenFile: late.token}\n",
        )
        .unwrap();
        t.reload_now();
        assert_eq!(t.identify("four"), None);
        assert_eq!(t.identify("two").map(|n| n.role), Some(Role::Admin));
        std::fs::write(dir.path().join("late.token"), "four\n").unwrap();
        t.reload_now();
        assert_eq!(t.identify("four").map(|n| n.name), Some("late".to_string()));

        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "tokens:\n  - {name: ci, role: superuser, token: x}\n").unwrap();
        assert!(Tokens::default().with_roles_file(&bad).is_err());
    }
}
