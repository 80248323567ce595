//! How a JUnit case becomes a test id: the identity that merges a test's results across
//! attempts and the value a rerun passes back to the framework.

use super::junit::Case;
use crate::template::{Template, Var};

/// `rerun.testId` in packs_config: `pytest`, `node`, or a template over
/// `{classname}`, `{name}`, `{file}`, `{suite}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestIdStyle {
    /// pytest node ids (`tests/test_x.py::TestClass::test_name[param]`). Needs the JUnit `file`
    /// attribute (`-o junit_family=xunit1`); without it the module path is derived from
    /// `classname`, which is right for module-level tests only.
    Pytest,
    /// Node's test runner: enclosing `describe` names and the test name joined by ` > `.
    Node,
    /// Jest through jest-junit as the `jest` preset configures it: the test file (relative,
    /// its leading `../` steps taken off), then the describe blocks and the title joined by ` › `.
    Jest,
    /// Playwright Test's JUnit reporter with the project in the name: the file, then
    /// `[project] describe › title`.
    Playwright,
    Template(Template),
}

impl Default for TestIdStyle {
    fn default() -> Self {
        TestIdStyle::Template(
            Template::parse("{classname}::{name}", ID_VARS).expect("the default test id template is valid"),
        )
    }
}

const ID_VARS: &[Var] = &[Var::Classname, Var::Name, Var::File, Var::Suite];

impl TestIdStyle {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "pytest" => Ok(TestIdStyle::Pytest),
            "node" => Ok(TestIdStyle::Node),
            "jest" => Ok(TestIdStyle::Jest),
            "playwright" => Ok(TestIdStyle::Playwright),
            t => Template::parse(t, ID_VARS)
                .map(TestIdStyle::Template)
                .map_err(|e| {
                    format!("{e} (or use one of the built-in styles: pytest, node, jest, playwright)")
                }),
        }
    }

    /// Undoes a reporter's known quirks before the case is stored. Node's JUnit reporter (20.x)
    /// escapes `"` twice in attributes, so a name `say "hi"` arrives as `say &quot;hi&quot;`;
    /// left alone, the name would show wrong and a rerun's `--test-name-pattern` would never
    /// match it.
    pub fn normalize(&self, case: &mut Case) {
        if *self == TestIdStyle::Node {
            for field in [&mut case.name, &mut case.classname, &mut case.message] {
                if field.contains("&quot;") {
                    *field = field.replace("&quot;", "\"");
                }
            }
            for suite in &mut case.suites {
                if suite.contains("&quot;") {
                    *suite = suite.replace("&quot;", "\"");
                }
            }
        }
    }

    pub fn id_of(&self, case: &Case) -> String {
        match self {
            TestIdStyle::Pytest => pytest_id(case),
            TestIdStyle::Node => {
                let mut parts: Vec<&str> = case.suites.iter().map(String::as_str).collect();
                parts.push(&case.name);
                parts.join(" > ")
            }
            TestIdStyle::Jest => {
                let file = strip_up(case.file.as_deref().unwrap_or_default());
                if case.classname.is_empty() {
                    format!("{file}::{}", case.name)
                } else {
                    format!("{file}::{} › {}", case.classname, case.name)
                }
            }
            TestIdStyle::Playwright => format!("{} › {}", case.classname, case.name),
            TestIdStyle::Template(t) => t.render(|v| case_var(case, v)),
        }
    }
}

/// The value of a per-test template variable for `case` (`{id}` and `{dir}` are filled by the caller).
pub fn case_var(case: &Case, v: Var) -> String {
    match v {
        Var::Name => case.name.clone(),
        Var::Classname => case.classname.clone(),
        Var::File => case.file.clone().unwrap_or_default(),
        Var::Suite => case.suites.last().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

fn pytest_id(case: &Case) -> String {
    match case.file.as_deref().filter(|f| !f.is_empty()) {
        Some(file) => {
            let module = file.strip_suffix(".py").unwrap_or(file).replace(['/', '\\'], ".");
            let class = case
                .classname
                .strip_prefix(&module)
                .map(|rest| rest.trim_start_matches('.'))
                .unwrap_or_default();
            if class.is_empty() {
                format!("{file}::{}", case.name)
            } else {
                format!("{file}::{}::{}", class.replace('.', "::"), case.name)
            }
        }
        // xunit2 writes no file: the module ends where the trailing run of capitalised
        // names (pytest's `Test*` classes) starts.
        None => {
            let parts: Vec<&str> = case.classname.split('.').collect();
            let classes = parts
                .iter()
                .rev()
                .take_while(|p| p.starts_with(|c: char| c.is_ascii_uppercase()))
                .count()
                .min(parts.len().saturating_sub(1));
            let (module, class) = parts.split_at(parts.len() - classes);
            let mut id = format!("{}.py", module.join("/"));
            for c in class {
                id.push_str("::");
                id.push_str(c);
            }
            format!("{id}::{}", case.name)
        }
    }
}

/// A path with its leading `../` and `./` steps taken off: Jest writes test files relative
/// to the working directory, which differs between the attempts' directories and a Job.
pub fn strip_up(path: &str) -> String {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("../").or_else(|| p.strip_prefix("./")) {
            p = rest;
        } else {
            return p.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(suites: &[&str], classname: &str, name: &str, file: Option<&str>) -> Case {
        Case {
            suites: suites.iter().map(|s| s.to_string()).collect(),
            ..Case::failed(classname, name, file)
        }
    }

    #[test]
    fn pytest_ids_for_functions_classes_and_params() {
        let s = TestIdStyle::Pytest;
        let f = Some("tests/test_demo.py");
        assert_eq!(
            s.id_of(&case(&["pytest"], "tests.test_demo", "test_a", f)),
            "tests/test_demo.py::test_a"
        );
        assert_eq!(
            s.id_of(&case(&["pytest"], "tests.test_demo.TestLogin", "test_b[1-x]", f)),
            "tests/test_demo.py::TestLogin::test_b[1-x]"
        );
        assert_eq!(
            s.id_of(&case(&["pytest"], "tests.test_demo", "test_c", None)),
            "tests/test_demo.py::test_c"
        );
    }

    /// pytest's default `junit_family=xunit2` writes no `file`: a class must not become a path.
    #[test]
    fn pytest_ids_without_a_file_keep_classes_and_nested_classes_apart_from_the_module() {
        let s = TestIdStyle::Pytest;
        assert_eq!(
            s.id_of(&case(
                &[],
                "tests.test_cart.TestCheckout",
                "test_refund_breaks",
                None
            )),
            "tests/test_cart.py::TestCheckout::test_refund_breaks"
        );
        assert_eq!(
            s.id_of(&case(&[], "tests.sub.test_x.TestA.TestB", "test_p[a.b]", None)),
            "tests/sub/test_x.py::TestA::TestB::test_p[a.b]"
        );
    }

    #[test]
    fn jest_and_playwright_ids_hold_the_file_and_the_title_path() {
        let j = case(
            &[],
            "checkout › nested",
            "refund",
            Some("../../x/tests/a.test.js"),
        );
        assert_eq!(
            TestIdStyle::Jest.id_of(&j),
            "x/tests/a.test.js::checkout › nested › refund"
        );
        let top = case(&[], "", "passes", Some("tests/a.test.js"));
        assert_eq!(TestIdStyle::Jest.id_of(&top), "tests/a.test.js::passes");
        let p = case(&[], "basics.spec.js", "[api] checkout › refund", None);
        assert_eq!(
            TestIdStyle::Playwright.id_of(&p),
            "basics.spec.js › [api] checkout › refund"
        );
    }

    #[test]
    fn node_ids_join_describe_blocks() {
        let s = TestIdStyle::Node;
        assert_eq!(s.id_of(&case(&[], "test", "passes", None)), "passes");
        assert_eq!(
            s.id_of(&case(&["group", "inner"], "test", "x", None)),
            "group > inner > x"
        );
    }

    #[test]
    fn node_double_escaped_quotes_are_undone() {
        let mut c = case(
            &["say &quot;x&quot;"],
            "test",
            "waits for &quot;#submit&quot;",
            None,
        );
        c.message = "waiting for selector &quot;#submit&quot;".into();
        TestIdStyle::Node.normalize(&mut c);
        assert_eq!(c.name, "waits for \"#submit\"");
        assert_eq!(c.message, "waiting for selector \"#submit\"");
        assert_eq!(c.suites, vec!["say \"x\""]);
        let mut p = case(&[], "c", "&quot;kept&quot;", None);
        TestIdStyle::Pytest.normalize(&mut p);
        assert_eq!(p.name, "&quot;kept&quot;", "other dialects are left as they are");
    }

    #[test]
    fn template_ids_and_errors() {
        let s = TestIdStyle::parse("{classname}#{name}").unwrap();
        assert_eq!(
            s.id_of(&case(&[], "com.x.FooTest", "bar", None)),
            "com.x.FooTest#bar"
        );
        assert!(TestIdStyle::parse("{id}").is_err());
        assert_eq!(
            TestIdStyle::default().id_of(&case(&[], "a.B", "c", None)),
            "a.B::c",
            "default is classname::name"
        );
    }
}
