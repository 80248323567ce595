//! Secret values: where they come from and how they are kept out of sight.
//!
//! A run's spec never holds a secret, only a reference (`valueFrom.secretKeyRef`). In operator
//! mode the reference names a Kubernetes Secret; in standalone mode it names a file
//! `<secrets-dir>/<name>/<key>`, the same layout a Secret mounted as a volume has, so one
//! packs_config and one run spec work in both modes. Resolved values go straight into the
//! test process's environment; they are never logged, stored or returned by the API.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::crd::{EnvVar, SecretKeySelector};

/// A value that must not be shown: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value itself, for the one place that needs it (a process environment, an auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Checks one `spec.env` entry: a valid name that Tomato does not own, and exactly one of
/// `value` and `valueFrom`.
pub fn check_env_var(v: &EnvVar) -> Result<(), String> {
    let mut chars = v.name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{} is not a valid environment variable name",
            crate::text::quote(&v.name)
        ));
    }
    if v.name.starts_with("TOMATO_") {
        return Err(format!("{} is set by Tomato itself", v.name));
    }
    match (&v.value, &v.value_from) {
        (Some(_), Some(_)) => Err(format!("{}: give either value or valueFrom, not both", v.name)),
        (None, None) => Err(format!("{}: give a value or valueFrom.secretKeyRef", v.name)),
        (None, Some(src)) => check_selector(&src.secret_key_ref).map_err(|e| format!("{}: {e}", v.name)),
        // A NUL cannot reach a process's environment (the run would end in `Error`), and a
        // newline or escape would forge the lines of its log.
        (Some(value), None) => crate::text::check_text(value).map_err(|e| format!("{}: {e}", v.name)),
    }
}

fn check_selector(s: &SecretKeySelector) -> Result<(), String> {
    let name_ok = !s.name.is_empty()
        && s.name.len() <= 253
        && s.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !s.name.starts_with('.');
    let key_ok = !s.key.is_empty()
        && s.key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.key != "."
        && s.key != "..";
    if !name_ok {
        return Err(format!(
            "secretKeyRef.name {} is not a valid Secret name",
            crate::text::quote(&s.name)
        ));
    }
    if !key_ok {
        return Err(format!(
            "secretKeyRef.key {} is not a valid key",
            crate::text::quote(&s.key)
        ));
    }
    Ok(())
}

/// Standalone mode's secret store: a directory of `<name>/<key>` files.
#[derive(Clone, Debug)]
pub struct SecretsDir {
    dir: PathBuf,
}

impl SecretsDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SecretsDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads a referenced value. The error names the reference, never a value.
    pub fn resolve(&self, r: &SecretKeySelector) -> Result<Secret, String> {
        check_selector(r)?;
        let path = self.dir.join(&r.name).join(&r.key);
        std::fs::read_to_string(&path)
            .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| {
                format!(
                    "secret {}/{} is not readable at {}: {e}",
                    r.name,
                    r.key,
                    path.display()
                )
            })
    }

    /// The environment a run's `spec.env` asks for, with references resolved.
    pub fn env(&self, vars: &[EnvVar]) -> Result<Vec<(String, Secret)>, String> {
        vars.iter()
            .map(|v| match (&v.value, &v.value_from) {
                (Some(val), _) => Ok((v.name.clone(), Secret(val.clone()))),
                (None, Some(src)) => self.resolve(&src.secret_key_ref).map(|s| (v.name.clone(), s)),
                (None, None) => Err(format!("{}: no value", v.name)),
            })
            .collect()
    }
}

/// Reads a secret given directly or through a `*_FILE` environment variable (the usual
/// Docker/Kubernetes convention): `NAME` wins, else the contents of the file `NAME_FILE`.
pub fn from_env(name: &str) -> Result<Option<Secret>, String> {
    from_vars(name, |n| std::env::var(n).ok())
}

/// [`from_env`] over any variable lookup (settings are loaded from a given environment in tests).
pub fn from_vars(name: &str, var: impl Fn(&str) -> Option<String>) -> Result<Option<Secret>, String> {
    if let Some(v) = var(name).filter(|v| !v.is_empty()) {
        return Ok(Some(Secret(v)));
    }
    match var(&format!("{name}_FILE")) {
        Some(path) if !path.is_empty() => read_file(&path)
            .map(Some)
            .map_err(|e| format!("{name}_FILE={path}: {e}")),
        _ => Ok(None),
    }
}

/// A secret kept in a file (trailing newlines dropped, as `echo` leaves one).
pub fn read_file(path: impl AsRef<Path>) -> std::io::Result<Secret> {
    std::fs::read_to_string(path).map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EnvVarSource;

    fn secret_ref(name: &str, key: &str) -> EnvVar {
        EnvVar {
            name: "TOKEN".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: SecretKeySelector {
                    name: name.into(),
                    key: key.into(),
                },
            }),
        }
    }

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }

    #[test]
    fn resolves_files_like_a_mounted_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tracker")).unwrap();
        std::fs::write(dir.path().join("tracker/token"), "s3cret\n").unwrap();
        let store = SecretsDir::new(dir.path());
        let env = store.env(&[secret_ref("tracker", "token")]).unwrap();
        assert_eq!(env[0].1.expose(), "s3cret");
        let err = store.env(&[secret_ref("tracker", "missing")]).unwrap_err();
        assert!(err.contains("tracker/missing"), "{err}");
    }

    #[test]
    fn refuses_path_traversal_and_reserved_names() {
        assert!(check_env_var(&secret_ref("..", "token")).is_err());
        assert!(check_env_var(&secret_ref("a", "../../etc/passwd")).is_err());
        let mut v = secret_ref("a", "b");
        v.name = "TOMATO_RUN".into();
        assert!(check_env_var(&v).is_err());
        let both = EnvVar {
            value: Some("x".into()),
            ..secret_ref("a", "b")
        };
        assert!(check_env_var(&both).is_err());
    }
}
