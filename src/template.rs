//! Argument templates: `--junit={junit}`, `{dir}/tests`, `^{name:regex}$`.
//!
//! Templates are parsed once, at config load, against the variables their place allows, so
//! a typo (`{stnad}`) is a config error naming the field instead of a literal `{stnad}`
//! reaching the test command. Rendering never involves a shell: every rendered template is
//! exactly one argv element.

use std::fmt;

/// A variable a template may reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// The stand under test.
    Stand,
    /// Test selection: only allowed as a whole argv element, which expands to zero or more elements.
    Tests,
    /// Path the test framework writes its JUnit XML to.
    Junit,
    /// Directory the test framework writes Allure results to (`--alluredir={allure}`): the
    /// attempt's own `allure-results/`, beside `{junit}`.
    Allure,
    /// Run name.
    Run,
    /// Attempt number (1 = full run).
    Attempt,
    /// The service's directory in packs_config (`<config>/<service>`).
    Dir,
    /// A failed test's id (see `rerun.testId`).
    Id,
    /// A failed test's JUnit `name`.
    Name,
    /// A failed test's JUnit `classname`.
    Classname,
    /// A failed test's JUnit `file` (empty when the dialect has none).
    File,
    /// A failed test's innermost `<testsuite>` name.
    Suite,
    /// An Aqua launch id (`launch.aqua.revokePath`).
    Launch,
}

impl Var {
    fn parse(s: &str) -> Option<Var> {
        Some(match s {
            "stand" => Var::Stand,
            "tests" => Var::Tests,
            "junit" => Var::Junit,
            "allure" => Var::Allure,
            "run" => Var::Run,
            "attempt" => Var::Attempt,
            "dir" => Var::Dir,
            "id" => Var::Id,
            "name" => Var::Name,
            "classname" => Var::Classname,
            "file" => Var::File,
            "suite" => Var::Suite,
            "launch" => Var::Launch,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Var::Stand => "stand",
            Var::Tests => "tests",
            Var::Junit => "junit",
            Var::Allure => "allure",
            Var::Run => "run",
            Var::Attempt => "attempt",
            Var::Dir => "dir",
            Var::Id => "id",
            Var::Name => "name",
            Var::Classname => "classname",
            Var::File => "file",
            Var::Suite => "suite",
            Var::Launch => "launch",
        }
    }
}

/// Variables of the launch command.
pub const COMMAND_VARS: &[Var] = &[
    Var::Stand,
    Var::Tests,
    Var::Junit,
    Var::Allure,
    Var::Run,
    Var::Attempt,
    Var::Dir,
];
/// Variables of a pack's test selectors.
pub const PACK_VARS: &[Var] = &[Var::Dir, Var::Stand];
/// Variables of the rerun id and rerun arguments (one failed test).
pub const TEST_VARS: &[Var] = &[
    Var::Id,
    Var::Name,
    Var::Classname,
    Var::File,
    Var::Suite,
    Var::Dir,
];

/// How a value is transformed before it is inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    Plain,
    /// Regex-escaped, for `--test-name-pattern` style selectors.
    Regex,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var, Filter),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `s`, accepting only variables in `allowed`. `{{` and `}}` are literal braces.
    pub fn parse(s: &str, allowed: &[Var]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => inner.push(c),
                            None => return Err(format!("unclosed '{{' in {s:?}")),
                        }
                    }
                    let (name, filter) = match inner.split_once(':') {
                        Some((n, "regex")) => (n, Filter::Regex),
                        Some((_, f)) => {
                            return Err(format!(
                                "unknown filter {f:?} in {s:?}; the only filter is :regex"
                            ));
                        }
                        None => (inner.as_str(), Filter::Plain),
                    };
                    let var = Var::parse(name).filter(|v| allowed.contains(v)).ok_or_else(|| {
                        let names: Vec<String> =
                            allowed.iter().map(|v| format!("{{{}}}", v.as_str())).collect();
                        let near = crate::suggest::nearest(name, allowed.iter().map(|v| v.as_str()))
                            .map_or_else(String::new, |n| format!(" (did you mean {{{n}}}?)"));
                        format!(
                            "unknown placeholder {{{name}}} in {s:?}{near}; allowed here: {}",
                            names.join(", ")
                        )
                    })?;
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(var, filter));
                }
                '}' => {
                    return Err(format!(
                        "unmatched '}}' in {s:?} (write '}}}}' for a literal brace)"
                    ));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let t = Template {
            source: s.to_string(),
            parts,
        };
        if t.uses(Var::Tests) && !t.is_exactly(Var::Tests) {
            return Err(format!(
                "{{tests}} must be a whole argument on its own, not part of {s:?}"
            ));
        }
        Ok(t)
    }

    /// True when the template is exactly one variable, e.g. `{tests}`.
    pub fn is_exactly(&self, var: Var) -> bool {
        matches!(self.parts.as_slice(), [Part::Var(v, Filter::Plain)] if *v == var)
    }

    pub fn uses(&self, var: Var) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v, _) if *v == var))
    }

    /// Renders with `value` giving each variable's text.
    pub fn render(&self, value: impl Fn(Var) -> String) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v, Filter::Plain) => out.push_str(&value(*v)),
                Part::Var(v, Filter::Regex) => out.push_str(&regex::escape(&value(*v))),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_filters_and_literal_braces() {
        let t = Template::parse("--x={stand}/{{lit}}^{name:regex}$", &[Var::Stand, Var::Name]).unwrap();
        let out = t.render(|v| match v {
            Var::Stand => "qa1".into(),
            Var::Name => "a.b (c)".into(),
            _ => unreachable!(),
        });
        assert_eq!(out, r"--x=qa1/{lit}^a\.b \(c\)$");
    }

    #[test]
    fn refuses_unknown_or_disallowed_placeholders_by_name() {
        let err = Template::parse("{stnad}", COMMAND_VARS).unwrap_err();
        assert!(
            err.contains("{stnad}") && err.contains("(did you mean {stand}?)"),
            "{err}"
        );
        assert!(Template::parse("{name}", COMMAND_VARS).is_err());
        assert!(Template::parse("{stand:upper}", COMMAND_VARS).is_err());
        assert!(Template::parse("{stand", COMMAND_VARS).is_err());
        assert!(Template::parse("a}b", COMMAND_VARS).is_err());
    }

    #[test]
    fn tests_must_stand_alone() {
        assert!(
            Template::parse("{tests}", COMMAND_VARS)
                .unwrap()
                .is_exactly(Var::Tests)
        );
        assert!(Template::parse("--t={tests}", COMMAND_VARS).is_err());
    }
}
