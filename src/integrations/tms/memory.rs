//! An in-memory test-management system for unit tests of what is built on
//! [`TestManagement`]: it keeps Kiwi TCMS's rules that matter to Tomato (only confirmed cases
//! join a run; a case is in a run once; names are unique where Kiwi's are) and counts what
//! was created, so tests can check that a retry or a restart creates nothing twice.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    CaseInfo, Ensured, Execution, ExecutionChange, NewCase, NewPlan, NewRun, Outcome, Plan, PlanRef,
    TestManagement, TmsError, User,
};

#[derive(Default, Debug)]
pub struct State {
    pub products: Vec<(u64, String)>,
    /// `(id, product, value)`
    pub versions: Vec<(u64, u64, String)>,
    /// `(id, version, name)`
    pub builds: Vec<(u64, u64, String)>,
    pub plans: Vec<Plan>,
    /// `(plan, case)`
    pub plan_cases: Vec<(u64, u64)>,
    pub cases: Vec<CaseInfo>,
    /// `(id, plan, summary, stopped)`
    pub runs: Vec<(u64, u64, String, bool)>,
    /// `(run, execution)`
    pub executions: Vec<(u64, Execution)>,
    pub users: Vec<User>,
    pub comments: Vec<(u64, String)>,
    next: u64,
    /// While set, every call fails as out of reach.
    pub down: bool,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// The in-memory system.
#[derive(Default)]
pub struct Memory {
    pub state: Mutex<State>,
}

impl Memory {
    /// A product with a plan of `confirmed` confirmed cases and `drafts` unconfirmed ones, and
    /// the given users.
    pub fn with_plan(plan: &str, confirmed: usize, drafts: usize, users: &[&str]) -> Memory {
        let m = Memory::default();
        {
            let mut s = m.state.lock().unwrap();
            let product = s.id();
            s.products.push((product, "demo".into()));
            let version = s.id();
            s.versions.push((version, product, "unspecified".into()));
            let plan_id = s.id();
            s.plans.push(Plan {
                id: plan_id,
                name: plan.into(),
                product_id: product,
                product: "demo".into(),
                version_id: version,
                version: "unspecified".into(),
                type_id: 1,
            });
            for i in 0..confirmed + drafts {
                let id = s.id();
                s.cases.push(CaseInfo {
                    id,
                    summary: format!("case {}", i + 1),
                    confirmed: i < confirmed,
                });
                s.plan_cases.push((plan_id, id));
            }
            for u in users {
                let id = s.id();
                s.users.push(User {
                    id,
                    username: u.to_string(),
                    email: format!("{u}@example.com"),
                });
            }
        }
        m
    }

    pub fn set_outcome(&self, execution: u64, outcome: Outcome) {
        let mut s = self.state.lock().unwrap();
        if let Some((_, e)) = s.executions.iter_mut().find(|(_, e)| e.id == execution) {
            e.outcome = outcome;
            e.status = format!("{outcome:?}").to_uppercase();
        }
    }

    fn guard(&self) -> Result<std::sync::MutexGuard<'_, State>, TmsError> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.down {
            return Err(TmsError::Unreachable("memory: connection refused".into()));
        }
        Ok(s)
    }
}

fn found(id: u64) -> Result<Ensured, TmsError> {
    Ok(Ensured { id, created: false })
}

#[async_trait]
impl TestManagement for Memory {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn run_url(&self, run: u64) -> String {
        format!("memory:/runs/{run}/")
    }
    fn case_url(&self, case: u64) -> String {
        format!("memory:/case/{case}/")
    }

    async fn find_plan(&self, plan: &PlanRef) -> Result<Option<Plan>, TmsError> {
        let s = self.guard()?;
        Ok(s.plans
            .iter()
            .find(|p| match plan {
                PlanRef::Id(id) => p.id == *id,
                PlanRef::Name(n) => &p.name == n,
            })
            .cloned())
    }

    async fn plan_cases(&self, plan: u64) -> Result<Vec<CaseInfo>, TmsError> {
        let s = self.guard()?;
        Ok(s.cases
            .iter()
            .filter(|c| s.plan_cases.contains(&(plan, c.id)))
            .cloned()
            .collect())
    }

    async fn find_users(&self, names: &[String]) -> Result<Vec<User>, TmsError> {
        let s = self.guard()?;
        Ok(s.users
            .iter()
            .filter(|u| names.contains(&u.username))
            .cloned()
            .collect())
    }

    async fn ensure_product(&self, name: &str) -> Result<Ensured, TmsError> {
        let mut s = self.guard()?;
        if let Some((id, _)) = s.products.iter().find(|(_, n)| n == name) {
            return found(*id);
        }
        let id = s.id();
        s.products.push((id, name.into()));
        Ok(Ensured { id, created: true })
    }

    async fn ensure_version(&self, product: u64, value: &str) -> Result<Ensured, TmsError> {
        let mut s = self.guard()?;
        if let Some((id, ..)) = s.versions.iter().find(|(_, p, v)| *p == product && v == value) {
            return found(*id);
        }
        let id = s.id();
        s.versions.push((id, product, value.into()));
        Ok(Ensured { id, created: true })
    }

    async fn ensure_build(&self, version: u64, name: &str) -> Result<Ensured, TmsError> {
        let mut s = self.guard()?;
        if let Some((id, ..)) = s.builds.iter().find(|(_, v, n)| *v == version && n == name) {
            return found(*id);
        }
        let id = s.id();
        s.builds.push((id, version, name.into()));
        Ok(Ensured { id, created: true })
    }

    async fn ensure_plan(&self, plan: &NewPlan) -> Result<Ensured, TmsError> {
        let mut s = self.guard()?;
        if let Some(p) = s.plans.iter().find(|p| {
            p.name == plan.name && p.product_id == plan.product_id && p.version_id == plan.version_id
        }) {
            return found(p.id);
        }
        let id = s.id();
        s.plans.push(Plan {
            id,
            name: plan.name.clone(),
            product_id: plan.product_id,
            product: String::new(),
            version_id: plan.version_id,
            version: String::new(),
            type_id: 1,
        });
        Ok(Ensured { id, created: true })
    }

    async fn link_cases(&self, plan: u64, cases: &[u64]) -> Result<(), TmsError> {
        let mut s = self.guard()?;
        for c in cases {
            if !s.plan_cases.contains(&(plan, *c)) {
                s.plan_cases.push((plan, *c));
            }
        }
        Ok(())
    }

    async fn ensure_case(&self, case: &NewCase) -> Result<Ensured, TmsError> {
        let mut s = self.guard()?;
        let ensured = match s.cases.iter().find(|c| c.summary == case.summary) {
            Some(c) => Ensured {
                id: c.id,
                created: false,
            },
            None => {
                let id = s.id();
                s.cases.push(CaseInfo {
                    id,
                    summary: case.summary.clone(),
                    confirmed: true,
                });
                Ensured { id, created: true }
            }
        };
        if !s.plan_cases.contains(&(case.plan_id, ensured.id)) {
            s.plan_cases.push((case.plan_id, ensured.id));
        }
        Ok(ensured)
    }

    async fn ensure_run(&self, run: &NewRun) -> Result<Ensured, TmsError> {
        let mut s = self.guard()?;
        if let Some((id, ..)) = s
            .runs
            .iter()
            .find(|(_, p, n, _)| *p == run.plan_id && *n == run.summary)
        {
            return found(*id);
        }
        let id = s.id();
        s.runs.push((id, run.plan_id, run.summary.clone(), false));
        Ok(Ensured { id, created: true })
    }

    async fn add_cases(&self, run: u64, cases: &[u64]) -> Result<Vec<Execution>, TmsError> {
        {
            let mut s = self.guard()?;
            for c in cases {
                if s.executions.iter().any(|(r, e)| *r == run && e.case_id == *c) {
                    continue;
                }
                let Some(case) = s.cases.iter().find(|k| k.id == *c).cloned() else {
                    return Err(TmsError::Refused(format!("no case {c}")));
                };
                if !case.confirmed {
                    return Err(TmsError::Refused(format!("TC-{c} status is not confirmed")));
                }
                let id = s.id();
                s.executions.push((
                    run,
                    Execution {
                        id,
                        case_id: *c,
                        case_summary: case.summary,
                        assignee: None,
                        status: "IDLE".into(),
                        outcome: Outcome::Idle,
                    },
                ));
            }
        }
        self.executions(run).await
    }

    async fn executions(&self, run: u64) -> Result<Vec<Execution>, TmsError> {
        let s = self.guard()?;
        Ok(s.executions
            .iter()
            .filter(|(r, _)| *r == run)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn update_execution(&self, execution: u64, change: &ExecutionChange) -> Result<(), TmsError> {
        let mut s = self.guard()?;
        let user = change
            .assignee
            .and_then(|id| s.users.iter().find(|u| u.id == id).map(|u| u.username.clone()));
        let Some((_, e)) = s.executions.iter_mut().find(|(_, e)| e.id == execution) else {
            return Err(TmsError::Refused(format!("no execution {execution}")));
        };
        if let Some(u) = user {
            e.assignee = Some(u);
        }
        if let Some(status) = &change.status {
            e.status = status.clone();
        }
        Ok(())
    }

    async fn comment_once(&self, execution: u64, text: &str) -> Result<bool, TmsError> {
        let mut s = self.guard()?;
        let entry = (execution, text.to_string());
        if s.comments.contains(&entry) {
            return Ok(false);
        }
        s.comments.push(entry);
        Ok(true)
    }

    async fn stop_run(&self, run: u64) -> Result<(), TmsError> {
        let mut s = self.guard()?;
        if let Some(r) = s.runs.iter_mut().find(|r| r.0 == run) {
            r.3 = true;
        }
        Ok(())
    }
}
