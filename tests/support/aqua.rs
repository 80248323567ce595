#![allow(dead_code)]
//! The Aqua stand-in (`tests/support/aqua.py`) as a test fixture: Aqua itself cannot run here,
//! so the tests talk to a server that speaks its HTTP API and, for each launch or restart,
//! really runs a pytest suite with allure-pytest and builds a real Allure 2 report with the
//! Allure command line (`tests/aqua`, `npm ci`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Aqua pack ids of the stand-in's packs.
pub const MIXED: &str = "5f0000000000000000000001";
pub const ALWAYS: &str = "5f0000000000000000000002";

pub struct AquaStandIn {
    pub url: String,
    child: Child,
    _work: tempfile::TempDir,
    client: reqwest::Client,
}

impl AquaStandIn {
    /// Starts it; with `token`, its API wants `Authorization: Bearer <token>`.
    pub fn start(token: Option<&str>) -> AquaStandIn {
        let work = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(format!("{}/tests/support/aqua.py", env!("CARGO_MANIFEST_DIR")))
            .arg("--work")
            .arg(work.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = token {
            cmd.arg("--token").arg(t);
        }
        let mut child = cmd.spawn().expect("python3 runs the Aqua stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| {
                panic!(
                    "the Aqua stand-in did not start (pip install -r tests/requirements.txt; npm ci in tests/aqua): {line:?}"
                )
            })
            .trim()
            .to_string();
        AquaStandIn {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _work: work,
            client: reqwest::Client::new(),
        }
    }

    /// Sets knobs (`poll_500`, `poll_hang`, `report_failed`, `delay`).
    pub async fn knobs(&self, knobs: Value) {
        let r = self
            .client
            .post(format!("{}/_control", self.url))
            .json(&knobs)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// What it saw: `launches` (each with `packId`, `properties`, `restartOf`,
    /// `launchStatus`) and `requests` (`path`, `query`, `auth`).
    pub async fn seen(&self) -> Value {
        self.client
            .get(format!("{}/_control", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for AquaStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
