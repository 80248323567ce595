//! Runner presets (`launch.runner`): what a service file need not spell out for the test
//! runners QA teams use.
//!
//! A preset supplies the command with its JUnit options, the environment those options need,
//! the test-id style, how a rerun selects the failed tests, whether the packs' own selectors
//! stay on a rerun's command line, and where a runner that writes its own report files puts
//! them. Every one of these can still be set in the service file, field by field; a preset
//! fills only the fields left out. The rerun selection of a preset is code, not a template:
//! several runners take all the failed tests in one option (`-t`, `--grep`, `-Dtest`, `-run`),
//! which a per-test template cannot express.

use crate::results::Case;
use crate::results::TestIdStyle;

/// A runner preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runner {
    Pytest,
    Node,
    Jest,
    Playwright,
    Maven,
    Gradle,
    Go,
}

/// Every preset, in the order the documentation lists them.
pub const RUNNERS: &[Runner] = &[
    Runner::Pytest,
    Runner::Node,
    Runner::Jest,
    Runner::Playwright,
    Runner::Maven,
    Runner::Gradle,
    Runner::Go,
];

impl Runner {
    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Pytest => "pytest",
            Runner::Node => "node",
            Runner::Jest => "jest",
            Runner::Playwright => "playwright",
            Runner::Maven => "maven",
            Runner::Gradle => "gradle",
            Runner::Go => "go",
        }
    }

    /// Parses a preset name; an unknown one is answered with the nearest name.
    pub fn parse(s: &str) -> Result<Runner, String> {
        RUNNERS.iter().copied().find(|r| r.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = RUNNERS.iter().map(|r| r.as_str()).collect();
            format!(
                "{s:?} is not a runner preset{}; the presets are {}",
                crate::suggest::did_you_mean(s, names.iter().copied()),
                names.join(", ")
            )
        })
    }

    /// The command, as templates over the launch command's variables. `{tests}` is where
    /// the packs' selectors (attempt 1) or the rerun's selection go.
    pub fn command(self) -> &'static [&'static str] {
        match self {
            Runner::Pytest => &[
                "python3",
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                // Node ids are relative to the rootdir: anchored at the service's directory,
                // they are the same whatever the attempt's working directory is.
                "--rootdir={dir}",
                "--junitxml={junit}",
                // xunit1 writes each case's `file`, so classes are told from modules.
                "-o",
                "junit_family=xunit1",
                // Each case keeps its own output, so log rules see that test's output only.
                "-o",
                "junit_logging=all",
                "{tests}",
            ],
            Runner::Node => &[
                "node",
                "--test",
                "--test-reporter=spec",
                "--test-reporter-destination=stdout",
                "--test-reporter=junit",
                "--test-reporter-destination={junit}",
                "{tests}",
            ],
            // Jest's `--projects` and `--reporters` take several values: the positional
            // selection comes before them.
            Runner::Jest => &[
                "node",
                "{dir}/node_modules/jest/bin/jest.js",
                "--ci",
                "{tests}",
                "--rootDir={dir}",
                "--projects={dir}",
                "--reporters=default",
                "--reporters=jest-junit",
            ],
            Runner::Playwright => &[
                "node",
                "{dir}/node_modules/@playwright/test/cli.js",
                "test",
                "--config={dir}",
                "--reporter=list,junit",
                "{tests}",
            ],
            Runner::Maven => &["mvn", "-B", "-f", "{dir}", "test", "{tests}"],
            Runner::Gradle => &["gradle", "-p", "{dir}", "--console=plain", "test", "{tests}"],
            Runner::Go => &[
                "gotestsum",
                "--junitfile={junit}",
                "--format=standard-verbose",
                // `go test -C` must come first, so gotestsum is given the whole go command.
                "--raw-command",
                "--",
                "go",
                "test",
                "-C",
                "{dir}",
                "-json",
                "{tests}",
            ],
        }
    }

    /// Environment the command's reporter reads (values are templates like the command's).
    pub fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Runner::Jest => &[
                ("JEST_JUNIT_OUTPUT_FILE", "{junit}"),
                // A case is its describe blocks (joined by ` › `) and its own title; the file
                // tells same-named tests of two files apart.
                ("JEST_JUNIT_CLASSNAME", "{{classname}}"),
                ("JEST_JUNIT_TITLE", "{{title}}"),
                ("JEST_JUNIT_ANCESTOR_SEPARATOR", " › "),
                ("JEST_JUNIT_ADD_FILE_ATTRIBUTE", "true"),
                ("JEST_JUNIT_REPORT_TEST_SUITE_ERRORS", "true"),
                ("JEST_JUNIT_INCLUDE_CONSOLE_OUTPUT", "true"),
            ],
            Runner::Playwright => &[
                ("PLAYWRIGHT_JUNIT_OUTPUT_NAME", "{junit}"),
                ("PLAYWRIGHT_JUNIT_INCLUDE_PROJECT_IN_TEST_NAME", "true"),
            ],
            _ => &[],
        }
    }

    /// `rerun.testId` of the preset.
    pub fn test_id(self) -> TestIdStyle {
        match self {
            Runner::Pytest => TestIdStyle::Pytest,
            Runner::Node => TestIdStyle::Node,
            Runner::Jest => TestIdStyle::Jest,
            Runner::Playwright => TestIdStyle::Playwright,
            Runner::Maven | Runner::Gradle => {
                TestIdStyle::parse("{classname}#{name}").expect("a valid template")
            }
            Runner::Go => TestIdStyle::parse("{classname}::{name}").expect("a valid template"),
        }
    }

    /// `rerun.includePackTests` of the preset: whether the packs' selectors stay on a
    /// rerun's command line beside the selection.
    pub fn include_pack_tests(self) -> bool {
        // Node needs its files again (its name pattern applies within them); Playwright's
        // file filters only narrow what `--grep` selects.
        matches!(self, Runner::Node | Runner::Playwright)
    }

    /// `launch.reports` of the preset: where a runner that names its own report files
    /// writes them (relative to `{dir}`).
    pub fn reports(self) -> Option<&'static str> {
        match self {
            Runner::Maven => Some("{dir}/target/surefire-reports"),
            Runner::Gradle => Some("{dir}/build/test-results/test"),
            _ => None,
        }
    }

    /// How the runner lists its tests up front, for shards: the command (templates over
    /// `{dir}`, `{stand}` and `{tests}`, the packs' selectors) and what each line it prints
    /// is. `None`: the runner cannot list (Maven, Gradle, Node, Playwright), and shards split
    /// the packs instead. Go lists with `-json`: its plain `-list` prints names without their
    /// packages, the JSON events name the package of each ([`crate::shard::parse_go_listing`]).
    pub fn list(self) -> Option<(&'static [&'static str], crate::shard::Unit)> {
        match self {
            Runner::Pytest => Some((
                &[
                    "python3",
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "--rootdir={dir}",
                    "--collect-only",
                    "-q",
                    "{tests}",
                ],
                crate::shard::Unit::Tests,
            )),
            // Jest lists files (absolute paths), not tests: a shard runs whole files.
            Runner::Jest => Some((
                &[
                    "node",
                    "{dir}/node_modules/jest/bin/jest.js",
                    "--listTests",
                    "{tests}",
                    "--rootDir={dir}",
                    "--projects={dir}",
                ],
                crate::shard::Unit::Files,
            )),
            Runner::Go => Some((
                &["go", "test", "-C", "{dir}", "-list", ".*", "-json", "{tests}"],
                crate::shard::Unit::Tests,
            )),
            _ => None,
        }
    }

    /// The arguments that make the runner run exactly `tests` (id and failing case each),
    /// `dir` being the service's directory.
    pub fn select(self, dir: &str, tests: &[(&str, &Case)]) -> Vec<String> {
        if tests.is_empty() {
            return Vec::new();
        }
        match self {
            Runner::Pytest => tests.iter().map(|(id, _)| format!("{dir}/{id}")).collect(),
            Runner::Node => tests
                .iter()
                .map(|(_, c)| format!("--test-name-pattern=^{}$", regex::escape(&c.name)))
                .collect(),
            Runner::Jest => {
                let names = alternation(tests.iter().map(|(_, c)| jest_full_name(c)));
                let mut out = vec!["-t".to_string(), format!("^(?:{names})$")];
                let mut files: Vec<String> = tests
                    .iter()
                    .filter_map(|(_, c)| c.file.as_deref())
                    .map(|f| {
                        format!(
                            "{}{}$",
                            if f.starts_with('/') { "" } else { "/" },
                            regex::escape(&crate::results::strip_up(f))
                        )
                    })
                    .collect();
                files.sort();
                files.dedup();
                out.extend(files);
                out
            }
            Runner::Playwright => {
                let titles = alternation(tests.iter().map(|(_, c)| playwright_grep_title(c)));
                vec![format!("--grep=(?:^| )(?:{titles})(?:$| @)")]
            }
            Runner::Maven => {
                // `-Dtest=Class#m1+m2,Other#m3`; a parameterized test's invocations are all
                // run again (Surefire selects methods, not invocations).
                let mut by_class: Vec<(String, Vec<String>)> = Vec::new();
                for (_, c) in tests {
                    let method = java_method(&c.name);
                    match by_class.iter_mut().find(|(k, _)| *k == c.classname) {
                        Some((_, ms)) if !ms.contains(&method) => ms.push(method),
                        Some(_) => {}
                        None => by_class.push((c.classname.clone(), vec![method])),
                    }
                }
                let spec: Vec<String> = by_class
                    .iter()
                    .map(|(class, methods)| format!("{class}#{}", methods.join("+")))
                    .collect();
                vec![format!("-Dtest={}", spec.join(","))]
            }
            Runner::Gradle => {
                let mut out = Vec::new();
                for (_, c) in tests {
                    let filter = format!("{}.{}", c.classname, java_method(&c.name));
                    if !out.contains(&filter) {
                        out.push("--tests".to_string());
                        out.push(filter);
                    }
                }
                out
            }
            Runner::Go => go_select(tests),
        }
    }
}

/// `a|b|c` of regex-escaped alternatives, each once.
fn alternation(items: impl Iterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for i in items.map(|s| regex::escape(&s)) {
        if !seen.contains(&i) {
            seen.push(i);
        }
    }
    seen.join("|")
}

/// Jest's full name of a test (what `-t` matches): the describe blocks and the title, joined
/// by spaces.
fn jest_full_name(c: &Case) -> String {
    if c.classname.is_empty() {
        c.name.clone()
    } else {
        format!("{} {}", c.classname.replace(" › ", " "), c.name)
    }
}

/// What Playwright's `--grep` matches a test by (project, file, describe blocks and title,
/// joined by spaces), from its JUnit case: `classname` is the file, `name` is
/// `[project] describe › title` (`PLAYWRIGHT_JUNIT_INCLUDE_PROJECT_IN_TEST_NAME`).
fn playwright_grep_title(c: &Case) -> String {
    let (project, titles) = match c.name.strip_prefix('[').and_then(|n| n.split_once("] ")) {
        Some((project, titles)) => (Some(project), titles),
        None => (None, c.name.as_str()),
    };
    let mut parts: Vec<&str> = Vec::new();
    parts.extend(project);
    parts.push(&c.classname);
    parts.extend(titles.split(" › "));
    parts.join(" ")
}

/// A JUnit 5 case name to its method: `add(int, int)[2]` → `add`.
fn java_method(name: &str) -> String {
    name.split(['(', '[']).next().unwrap_or(name).trim().to_string()
}

/// Go's `-run` for the failed tests, and their packages. A failed subtest fails its parent
/// too: only the deepest failed tests are selected. `-run` takes one pattern per level
/// (`^(?:TestA|TestB)$/^(?:sub)$`), each applying to tests of that depth only, so a failed
/// test without subtests runs whole beside others' subtests. Across levels the names
/// combine: `TestA/y` runs when `TestA/x` and `TestB/y` failed (more runs, never less;
/// results of tests a rerun did not select are ignored).
fn go_select(tests: &[(&str, &Case)]) -> Vec<String> {
    let names: Vec<&str> = tests.iter().map(|(_, c)| c.name.as_str()).collect();
    let leaves: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| {
            !names
                .iter()
                .any(|m| m.len() > n.len() && m.starts_with(n) && m[n.len()..].starts_with('/'))
        })
        .collect();
    let levels: Vec<Vec<&str>> = leaves.iter().map(|n| n.split('/').collect()).collect();
    let depth = levels.iter().map(Vec::len).max().unwrap_or(1);
    let mut pattern = Vec::new();
    for level in 0..depth {
        let alts = alternation(levels.iter().filter_map(|l| l.get(level).map(|s| s.to_string())));
        pattern.push(format!("^(?:{alts})$"));
    }
    let mut out = vec![format!("-run={}", pattern.join("/"))];
    let mut packages: Vec<String> = tests.iter().map(|(_, c)| c.classname.clone()).collect();
    packages.sort();
    packages.dedup();
    out.extend(packages);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(classname: &str, name: &str, file: Option<&str>) -> Case {
        Case::failed(classname, name, file)
    }

    fn select(r: Runner, cases: &[Case]) -> Vec<String> {
        let ids: Vec<String> = cases.iter().map(|c| r.test_id().id_of(c)).collect();
        let tests: Vec<(&str, &Case)> = ids.iter().map(String::as_str).zip(cases.iter()).collect();
        r.select("/suite", &tests)
    }

    #[test]
    fn an_unknown_preset_is_answered_with_the_nearest_name() {
        let err = Runner::parse("pytets").unwrap_err();
        assert!(err.contains("did you mean \"pytest\"?"), "{err}");
        assert!(
            err.contains("pytest, node, jest, playwright, maven, gradle, go"),
            "{err}"
        );
        assert_eq!(Runner::parse("go"), Ok(Runner::Go));
    }

    #[test]
    fn every_preset_command_is_valid_and_has_a_place_for_the_tests() {
        for r in RUNNERS {
            let cmd: Vec<_> = r
                .command()
                .iter()
                .map(|s| crate::template::Template::parse(s, crate::template::COMMAND_VARS).unwrap())
                .collect();
            assert_eq!(
                cmd.iter()
                    .filter(|t| t.is_exactly(crate::template::Var::Tests))
                    .count(),
                1,
                "{r:?}"
            );
        }
    }

    #[test]
    fn pytest_reruns_pass_each_node_id_under_the_service_directory() {
        let c = case(
            "tests.test_x.TestA.TestB",
            "test_p[a b/\"c\"]",
            Some("tests/test_x.py"),
        );
        assert_eq!(
            select(Runner::Pytest, &[c]),
            ["/suite/tests/test_x.py::TestA::TestB::test_p[a b/\"c\"]"]
        );
    }

    #[test]
    fn jest_reruns_match_the_full_names_in_their_files_only() {
        let a = case(
            "checkout › nested [x]",
            "deep: a.b",
            Some("../../s/tests/a.test.js"),
        );
        let b = case("", "odd $1", Some("../../s/tests/a.test.js"));
        assert_eq!(
            select(Runner::Jest, &[a, b]),
            [
                "-t",
                r"^(?:checkout nested \[x\] deep: a\.b|odd \$1)$",
                r"/s/tests/a\.test\.js$"
            ]
        );
    }

    #[test]
    fn playwright_reruns_grep_the_project_file_and_title_path() {
        let a = case("basics.spec.js", "[api] checkout › refund (x)", None);
        assert_eq!(
            select(Runner::Playwright, &[a]),
            [r"--grep=(?:^| )(?:api basics\.spec\.js checkout refund \(x\))(?:$| @)"]
        );
    }

    #[test]
    fn maven_reruns_name_methods_per_class_once_each() {
        let cases = [
            case("com.x.CartTest", "refund()", None),
            case("com.x.CartTest", "add(int, int)[1]", None),
            case("com.x.CartTest", "add(int, int)[2]", None),
            case("com.x.CartTest$Nested", "deep", None),
        ];
        assert_eq!(
            select(Runner::Maven, &cases),
            ["-Dtest=com.x.CartTest#refund+add,com.x.CartTest$Nested#deep"]
        );
        assert_eq!(
            select(Runner::Gradle, &cases[..2]),
            [
                "--tests",
                "com.x.CartTest.refund",
                "--tests",
                "com.x.CartTest.add"
            ]
        );
    }

    #[test]
    fn go_reruns_select_the_deepest_failed_tests_per_level_and_their_packages() {
        let cases = [
            case("example.com/m/a", "TestX", None),
            case("example.com/m/a", "TestX/odd_(name)", None),
            case("example.com/m/b", "TestY/sub", None),
            case("example.com/m/b", "TestY", None),
        ];
        assert_eq!(
            select(Runner::Go, &cases),
            [
                r"-run=^(?:TestX|TestY)$/^(?:odd_\(name\)|sub)$",
                "example.com/m/a",
                "example.com/m/b"
            ]
        );
        let mixed = [
            case("example.com/m/a", "TestWhole", None),
            case("example.com/m/a", "TestX/sub", None),
        ];
        assert_eq!(
            select(Runner::Go, &mixed),
            ["-run=^(?:TestWhole|TestX)$/^(?:sub)$", "example.com/m/a"],
            "a failed test without subtests runs whole beside another's subtest"
        );
    }
}
