//! Builder-style fixtures for tests: `TestRun::test("demo-1", RunTemplate::test("demo").priority(1))`.

use super::{Attempt, AttemptState, RunTemplate, RunType, Selection, TestRun, TestRunSpec, TestRunStatus};

impl RunTemplate {
    /// A template for `service` on `localhost`, priority 2, nothing else set.
    pub fn test(service: &str) -> Self {
        RunTemplate {
            service: service.into(),
            stand: "localhost".into(),
            category: None,
            packs: vec![],
            priority: crate::crd::Priority::DEFAULT,
            emails: vec![],
            issue_key: None,
            version: None,
            retries: None,
            shards: None,
            env: vec![],
        }
    }

    pub fn stand(mut self, stand: &str) -> Self {
        self.stand = stand.into();
        self
    }

    pub fn category(mut self, category: &str) -> Self {
        self.category = Some(category.into());
        self
    }

    pub fn packs(mut self, packs: &[&str]) -> Self {
        self.packs = packs.iter().map(|p| p.to_string()).collect();
        self
    }

    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = crate::crd::Priority::new(priority).expect("a fixture's priority is in range");
        self
    }

    pub fn emails(mut self, emails: &[&str]) -> Self {
        self.emails = emails.iter().map(|e| e.to_string()).collect();
        self
    }

    pub fn issue_key(mut self, key: &str) -> Self {
        self.issue_key = Some(key.into());
        self
    }

    pub fn version(mut self, version: &str) -> Self {
        self.version = Some(version.into());
        self
    }
}

impl TestRun {
    /// A queued regular run of `template` named `name`, with an empty status.
    pub fn test(name: &str, template: RunTemplate) -> Self {
        let mut run = TestRun::new(
            name,
            TestRunSpec {
                template,
                run_type: RunType::Regular,
                timeout: None,
                cancel: false,
                retention: None,
            },
        );
        run.status = Some(TestRunStatus::default());
        run
    }

    /// The same run, started by a schedule.
    pub fn nightly(mut self) -> Self {
        self.spec.run_type = RunType::Nightly;
        self
    }
}

impl Attempt {
    /// Attempt `number` of `selection`, finished, with nothing else recorded (no times, exit
    /// code, results, message, shards or Aqua launches): a test sets what it looks at with
    /// `Attempt { exit_code: Some(1), ..Attempt::test(1, selection) }`.
    pub fn test(number: u32, selection: Selection) -> Self {
        Attempt {
            number,
            selection,
            state: AttemptState::Finished,
            launch: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            summary: None,
            message: None,
            shards: Vec::new(),
            aqua: Vec::new(),
            mixed: false,
        }
    }
}
