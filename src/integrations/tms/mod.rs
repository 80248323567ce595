//! Test management: the system where manual cases, plans and test runs live (Kiwi TCMS).
//!
//! Tomato uses it twice: a finished run that names a `version` is recorded there as a test
//! run of automated cases ([`automated`]), and a [`crate::crd::Regression`] hands a plan's
//! manual cases to assessors through it ([`crate::regression`]). Both talk to it through
//! [`TestManagement`], a small trait of idempotent steps — each `ensure_*` finds the object
//! by a stable name before it creates one, so a retry or a restart never makes a second —
//! with one implementation over Kiwi TCMS's JSON-RPC API ([`kiwi`]) and, in unit tests, an
//! in-memory one.

pub mod automated;
pub mod kiwi;
#[cfg(test)]
pub mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use kiwi::Kiwi;

/// Why a call to test management failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TmsError {
    /// Out of reach now (connection refused, timeout, HTTP 5xx): worth trying again.
    #[error("{0}")]
    Unreachable(String),
    /// It answered no (wrong password, missing permission, invalid values): trying again
    /// will not help.
    #[error("{0}")]
    Refused(String),
}

impl TmsError {
    pub fn is_transient(&self) -> bool {
        matches!(self, TmsError::Unreachable(_))
    }

    pub fn reason(&self) -> &str {
        match self {
            TmsError::Unreachable(r) | TmsError::Refused(r) => r,
        }
    }
}

/// An object found or created by an `ensure_*` step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ensured {
    pub id: u64,
    /// Whether this call created it.
    pub created: bool,
}

/// A plan, by id or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanRef {
    Id(u64),
    Name(String),
}

impl std::fmt::Display for PlanRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanRef::Id(id) => write!(f, "#{id}"),
            PlanRef::Name(n) => write!(f, "{n:?}"),
        }
    }
}

/// A test plan as test management describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub id: u64,
    pub name: String,
    pub product_id: u64,
    pub product: String,
    pub version_id: u64,
    pub version: String,
    pub type_id: u64,
}

/// A test case of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseInfo {
    pub id: u64,
    pub summary: String,
    /// Only confirmed cases can join a test run.
    pub confirmed: bool,
}

/// A user of test management.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub email: String,
}

/// What a test execution's status means for progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// No verdict yet (idle, running, paused).
    Idle,
    /// Passed or waived.
    Passed,
    /// Failed or errored.
    Failed,
    Blocked,
}

/// One case in a test run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    pub id: u64,
    pub case_id: u64,
    pub case_summary: String,
    pub assignee: Option<String>,
    /// The status's name (`IDLE`, `PASSED`, ...).
    pub status: String,
    pub outcome: Outcome,
}

/// A plan to find (by name, product and version) or create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPlan {
    pub name: String,
    pub product_id: u64,
    pub version_id: u64,
    pub plan_type: PlanType,
    pub parent: Option<u64>,
    pub text: String,
}

/// The type of a new plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanType {
    Id(u64),
    /// By name (`Function`); the system's first type when it has none by that name.
    Named(String),
}

/// An automated case to find (by summary, in the product) or create, linked to a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCase {
    pub summary: String,
    pub product_id: u64,
    pub plan_id: u64,
    pub text: String,
}

/// A test run to find (by summary, in the plan) or create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    pub summary: String,
    pub plan_id: u64,
    pub build_id: u64,
    pub notes: String,
}

/// A change to an execution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutionChange {
    /// Status by name (`PASSED`, `FAILED`, `ERROR`, `WAIVED`, ...).
    pub status: Option<String>,
    /// Assignee by user id.
    pub assignee: Option<u64>,
}

/// The test-management system, as Tomato uses it. Every `ensure_*` is idempotent.
#[async_trait]
pub trait TestManagement: Send + Sync {
    /// `Kiwi TCMS at https://kiwi.example.com/`, for logs and messages.
    fn describe(&self) -> String;
    /// The web page of a test run.
    fn run_url(&self, run: u64) -> String;
    /// The web page of a test case.
    fn case_url(&self, case: u64) -> String;

    async fn find_plan(&self, plan: &PlanRef) -> Result<Option<Plan>, TmsError>;
    /// Every case of a plan, confirmed or not, by id.
    async fn plan_cases(&self, plan: u64) -> Result<Vec<CaseInfo>, TmsError>;
    /// The users with these names (the unknown ones are missing from the answer).
    async fn find_users(&self, names: &[String]) -> Result<Vec<User>, TmsError>;

    async fn ensure_product(&self, name: &str) -> Result<Ensured, TmsError>;
    async fn ensure_version(&self, product: u64, value: &str) -> Result<Ensured, TmsError>;
    async fn ensure_build(&self, version: u64, name: &str) -> Result<Ensured, TmsError>;
    async fn ensure_plan(&self, plan: &NewPlan) -> Result<Ensured, TmsError>;
    /// Links existing cases to a plan (already linked ones stay as they are).
    async fn link_cases(&self, plan: u64, cases: &[u64]) -> Result<(), TmsError>;
    /// An automated, confirmed case, linked to the plan.
    async fn ensure_case(&self, case: &NewCase) -> Result<Ensured, TmsError>;
    async fn ensure_run(&self, run: &NewRun) -> Result<Ensured, TmsError>;
    /// Adds the cases missing from the run; returns every execution of the run.
    async fn add_cases(&self, run: u64, cases: &[u64]) -> Result<Vec<Execution>, TmsError>;
    async fn executions(&self, run: u64) -> Result<Vec<Execution>, TmsError>;
    async fn update_execution(&self, execution: u64, change: &ExecutionChange) -> Result<(), TmsError>;
    /// Adds the comment unless the execution already has it; returns whether it added it.
    async fn comment_once(&self, execution: u64, text: &str) -> Result<bool, TmsError>;
    /// Ends a test run (its stop date is set); nothing more is expected of it.
    async fn stop_run(&self, run: u64) -> Result<(), TmsError>;
}
