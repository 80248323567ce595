//! Which part of an attempt runs in Aqua and which with the local launcher (a process in
//! standalone mode, a Job in operator mode): the one decision both drivers take before they
//! launch, so that a service whose packs run in different places (`launch.launcher` for the
//! service, `packs.<name>.launcher` for a pack) behaves alike in both modes.
//!
//! Attempt 1 splits by pack. A rerun splits the failed tests by the launcher that ran them:
//! a test Aqua reported carries its pack's name as its outermost suite
//! ([`crate::launch::aqua::Client::read_report`]), so the failed tests whose case starts with
//! an Aqua pack are Aqua's (restarted with their launch, at Aqua's granularity), and the
//! others are the local runner's (rerun one by one). A part with nothing to do is `None`, so
//! a rerun restarts only the launches that had failures and starts no process for nothing.

use crate::crd::{Attempt, Selection, SelectionKind};
use crate::packs::Service;
use crate::results::MergedTest;

/// An attempt's selection split by launcher; at least one part is `Some`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    /// What Aqua runs: the selected packs that run there (attempt 1) or the failed tests of
    /// its launches (a rerun, done by restarting those launches).
    pub aqua: Option<Selection>,
    /// What the local launcher runs.
    pub local: Option<Selection>,
}

impl Parts {
    /// Both launchers have work: the attempt runs them side by side and merges their results.
    pub fn is_mixed(&self) -> bool {
        self.aqua.is_some() && self.local.is_some()
    }
}

/// Whether `pack` of `svc` runs in Aqua.
pub fn in_aqua(svc: &Service, pack: &str) -> bool {
    svc.packs.get(pack).is_some_and(|p| p.aqua.is_some())
}

/// `selection` restricted to the packs that run in Aqua: what Aqua's own plan
/// ([`crate::launch::aqua::plan`]) is given, in both modes and after a restart of Tomato.
pub fn aqua_part(svc: &Service, selection: &Selection) -> Selection {
    Selection {
        packs: selection
            .packs
            .iter()
            .filter(|p| in_aqua(svc, p))
            .cloned()
            .collect(),
        ..selection.clone()
    }
}

/// Splits attempt `selection` of a run of `svc`. `previous` is the attempt a rerun reruns
/// ([`crate::launch::aqua::previous_of`]), `merged` the run's merged verdicts so far (the
/// failing case of each failed test says who ran it). A selection whose packs all run in one
/// place is given whole to that launcher, exactly as before packs could choose.
pub fn split(
    svc: &Service,
    selection: &Selection,
    previous: Option<&Attempt>,
    merged: &[MergedTest],
) -> Parts {
    let (aqua_packs, local_packs): (Vec<String>, Vec<String>) =
        selection.packs.iter().cloned().partition(|p| in_aqua(svc, p));
    if local_packs.is_empty() {
        return Parts {
            aqua: Some(selection.clone()),
            local: None,
        };
    }
    if aqua_packs.is_empty() {
        return Parts {
            aqua: None,
            local: Some(selection.clone()),
        };
    }
    match selection.kind {
        SelectionKind::All => Parts {
            aqua: Some(Selection {
                packs: aqua_packs,
                ..selection.clone()
            }),
            local: Some(Selection {
                packs: local_packs,
                ..selection.clone()
            }),
        },
        SelectionKind::Failed => {
            let of = selection.of_attempt.unwrap_or_default();
            // One pass over the merged tests: a rerun may select thousands.
            let in_aqua: std::collections::HashSet<&str> = merged
                .iter()
                .filter(|t| t.case.suites.first().is_some_and(|s| aqua_packs.contains(s)))
                .map(|t| t.id.as_str())
                .collect();
            let (aqua_tests, local_tests): (Vec<String>, Vec<String>) = selection
                .tests
                .iter()
                .cloned()
                .partition(|id| in_aqua.contains(id.as_str()));
            // A launch whose report had failures, or was never read, is restarted (as
            // crate::launch::aqua::plan decides); the rest of Aqua has nothing to do.
            let restarts = previous.is_some_and(|p| p.aqua.iter().any(|l| l.failing != Some(0)));
            Parts {
                aqua: (restarts || !aqua_tests.is_empty())
                    .then(|| Selection::failed(aqua_packs, of, aqua_tests)),
                local: (!local_tests.is_empty()).then(|| Selection::failed(local_packs, of, local_tests)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::crd::AquaLaunch;
    use crate::packs::PacksConfig;
    use crate::results::{Case, CaseStatus, TestVerdict};

    /// `web` runs locally, `farm` in Aqua (by its own launcher), `ui` in Aqua too.
    fn mixed() -> Service {
        let text = "stands:\n  pattern: x\nlaunch:\n  command: [echo, '{tests}']\n  aqua:\n    url: https://aqua.example\npacks:\n  web:\n    tests: [t]\n  farm:\n    launcher: aqua\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2e\n  ui:\n    launcher: aqua\n    aqua:\n      packId: 5f3c2a1b9d8e7f6a5b4c3d2f\n";
        PacksConfig::parse_service(Path::new("/cfg"), Path::new("/cfg/mix.yaml"), text).unwrap()
    }

    fn failed(id: &str, suite: &str) -> MergedTest {
        let mut case = Case::failed("c", id, None);
        case.suites = vec![suite.into()];
        MergedTest {
            id: id.into(),
            verdict: TestVerdict::Failed,
            history: vec![(1, CaseStatus::Failed)],
            case,
            attempt: 1,
        }
    }

    fn attempt_with(launches: &[(&str, Option<u32>)]) -> Attempt {
        Attempt {
            launch: Some("pid 1".into()),
            aqua: launches
                .iter()
                .map(|(pack, failing)| AquaLaunch {
                    pack: pack.to_string(),
                    id: format!("L-{pack}"),
                    url: None,
                    restart_of: None,
                    status: None,
                    failing: *failing,
                    failures: None,
                    error: None,
                    marker: None,
                })
                .collect(),
            ..Attempt::test(1, Selection::all(vec!["farm".into(), "ui".into(), "web".into()]))
        }
    }

    #[test]
    fn attempt_one_of_a_mixed_service_splits_its_packs_by_launcher() {
        let svc = mixed();
        let sel = Selection::all(vec!["farm".into(), "ui".into(), "web".into()]);
        let parts = split(&svc, &sel, None, &[]);
        assert!(parts.is_mixed());
        assert_eq!(parts.aqua.unwrap().packs, ["farm", "ui"]);
        assert_eq!(parts.local.unwrap().packs, ["web"]);
        assert_eq!(aqua_part(&svc, &sel).packs, ["farm", "ui"]);
    }

    #[test]
    fn a_selection_in_one_place_goes_whole_to_its_launcher() {
        let svc = mixed();
        let web = Selection::all(vec!["web".into()]);
        assert_eq!(
            split(&svc, &web, None, &[]),
            Parts {
                aqua: None,
                local: Some(web.clone())
            }
        );
        let farm = Selection::failed(vec!["farm".into()], 1, vec!["t".into()]);
        assert_eq!(
            split(&svc, &farm, None, &[]),
            Parts {
                aqua: Some(farm.clone()),
                local: None
            }
        );
    }

    #[test]
    fn a_rerun_restarts_only_launches_with_failures_and_reruns_only_local_failed_tests() {
        let svc = mixed();
        let merged = [failed("a::flaky", "farm"), failed("tests/x.py::t", "pytest")];
        let sel = Selection::failed(
            vec!["farm".into(), "ui".into(), "web".into()],
            1,
            vec!["a::flaky".into(), "tests/x.py::t".into()],
        );
        let prev = attempt_with(&[("farm", Some(1)), ("ui", Some(0))]);
        let parts = split(&svc, &sel, Some(&prev), &merged);
        assert_eq!(
            parts.aqua,
            Some(Selection::failed(
                vec!["farm".into(), "ui".into()],
                1,
                vec!["a::flaky".into()]
            ))
        );
        assert_eq!(
            parts.local,
            Some(Selection::failed(
                vec!["web".into()],
                1,
                vec!["tests/x.py::t".into()]
            ))
        );

        // Only the local test still fails, every launch passed: no Aqua part at all.
        let sel = Selection::failed(sel.packs.clone(), 2, vec!["tests/x.py::t".into()]);
        let prev = attempt_with(&[("farm", Some(0))]);
        let parts = split(&svc, &sel, Some(&prev), &merged);
        assert_eq!((parts.aqua.is_none(), parts.local.is_some()), (true, true));

        // Only Aqua's test fails: no process is started for nothing.
        let sel = Selection::failed(
            vec!["farm".into(), "ui".into(), "web".into()],
            1,
            vec!["a::flaky".into()],
        );
        let prev = attempt_with(&[("farm", Some(1))]);
        let parts = split(&svc, &sel, Some(&prev), &merged);
        assert_eq!((parts.aqua.is_some(), parts.local.is_none()), (true, true));

        // A launch whose report was never read is restarted even with no failed test known.
        let sel = Selection::failed(sel.packs.clone(), 1, vec!["tests/x.py::t".into()]);
        let prev = attempt_with(&[("ui", None)]);
        assert!(split(&svc, &sel, Some(&prev), &merged).is_mixed());
    }

    #[test]
    fn check_config_explains_both_parts_and_operator_mode_needs_an_image_for_the_local_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mix.yaml"),
            "stands: {pattern: x}\nlaunch:\n  command: [echo, '{tests}']\n  aqua: {url: 'https://aqua.example'}\npacks:\n  web: {tests: [t]}\n  farm: {launcher: aqua, aqua: {packId: 5f3c2a1b9d8e7f6a5b4c3d2e}}\n",
        )
        .unwrap();
        let cfg = PacksConfig::load(dir.path()).unwrap();
        let text = crate::launch::explain(&cfg, "mix").unwrap();
        assert!(text.contains("attempt 1, the packs run locally (web):"), "{text}");
        assert!(text.contains("argv: [\"echo\",\"t\"]"), "{text}");
        assert!(
            text.contains(
                "pack farm: GET https://aqua.example/aqua-api/services/launch/pack/5f3c2a1b9d8e7f6a5b4c3d2e"
            ),
            "{text}"
        );
        assert!(!text.contains("pack web: GET"), "{text}");
        let e = cfg.check_operator().unwrap_err();
        assert_eq!(e.0.len(), 1, "{e:?}");
        assert_eq!(
            e.0[0].field, "launch.image",
            "the local pack runs as a Job; the Aqua pack beside it, in Aqua"
        );
    }
}
