//! What both drivers read to report a run, read once through the mode's [`RunRecords`]:
//! where each channel goes (with `report.notify: newFailures` applied against the service's
//! history) and the report itself (recorded categories, novelty, attachment links). The
//! drivers differ only in how they deliver it: standalone mode off its loop, operator mode in
//! the reconcile.

use std::collections::HashMap;

use async_trait::async_trait;

use super::content::{NoveltyReport, RunReport};
use super::{Channel, Reporter, Target};
use crate::backend::Backend;
use crate::classify::ByTest;
use crate::crd::{TestRun, TestRunStatus};
use crate::packs::{Notify, Service};
use crate::results::allure::AttemptExtras;
use crate::results::{MergedTest, Tags};
use crate::store::{SqliteStore, StoreError};

/// What a report reads of a run beyond its status and tests, as each mode keeps it.
#[async_trait]
pub trait RunRecords: Send + Sync {
    /// Why a record could not be read (each mode's own error).
    type Error: Send;
    /// The per-test categories stored when its attempts ended.
    async fn categories(&self, run: &TestRun) -> Result<ByTest, Self::Error>;
    /// Launch `seq`'s Allure record (attachments, steps), if it uploaded one.
    async fn allure_extras(&self, run: &TestRun, seq: usize) -> Result<Option<AttemptExtras>, Self::Error>;
    /// How the run's failures compare with the service's history; `None` where none is kept.
    async fn novelty(&self, run: &TestRun, tests: &[MergedTest]) -> Result<Option<Tags>, Self::Error>;
}

/// Standalone mode's store keeps them all.
#[async_trait]
impl RunRecords for SqliteStore {
    type Error = StoreError;

    async fn categories(&self, run: &TestRun) -> Result<ByTest, StoreError> {
        Backend::categories(self, run.metadata.name.as_deref().unwrap_or_default()).await
    }

    async fn allure_extras(&self, run: &TestRun, seq: usize) -> Result<Option<AttemptExtras>, StoreError> {
        Backend::allure_extras(self, run.metadata.name.as_deref().unwrap_or_default(), seq).await
    }

    async fn novelty(&self, run: &TestRun, tests: &[MergedTest]) -> Result<Option<Tags>, StoreError> {
        crate::history::tags(self, run, tests).await
    }
}

/// How a run's failures compare with the history, read at most once per reporting pass:
/// [`targets`] reads it when `report.notify: newFailures` asks, and [`report`] uses what was
/// read instead of asking the history again.
#[derive(Default)]
pub struct HistoryRead(Option<Option<Tags>>);

impl HistoryRead {
    async fn tags<R: RunRecords + ?Sized>(
        &mut self,
        records: &R,
        run: &TestRun,
        tests: &[MergedTest],
    ) -> Result<Option<&Tags>, R::Error> {
        if self.0.is_none() {
            self.0 = Some(records.novelty(run, tests).await?);
        }
        Ok(self.0.as_ref().and_then(Option::as_ref))
    }
}

/// Whether choosing the channels' targets asks the history, and so needs the run's merged
/// tests: under `report.notify: newFailures`, while a channel still has no state (a channel
/// planned already keeps its plan). A driver reads and merges the tests only then, or once a
/// channel is due.
pub fn targets_need_tests(run: &TestRun, svc: Option<&Service>) -> bool {
    let notify = svc.map(|s| s.report.notify).unwrap_or_default();
    let report = run.status.as_ref().and_then(|st| st.report.as_ref());
    notify == Notify::NewFailures
        && Channel::ALL
            .iter()
            .any(|c| report.is_none_or(|r| r.channel(*c).is_none()))
}

/// Each channel's target for `run`, or why it is skipped; under `report.notify: newFailures`
/// email and webhooks are skipped when the failures hold nothing new against the history.
/// `tests` are the run's merged tests when [`targets_need_tests`] says so (else unused).
pub async fn targets<R: RunRecords + ?Sized>(
    reporter: &Reporter,
    records: &R,
    run: &TestRun,
    svc: Option<&Service>,
    tests: Option<&[MergedTest]>,
    history: &mut HistoryRead,
) -> Result<Vec<(Channel, Result<Target, String>)>, R::Error> {
    let targets = reporter.targets(run, svc);
    let Some(tests) = tests.filter(|_| targets_need_tests(run, svc)) else {
        return Ok(targets);
    };
    let news = history.tags(records, run, tests).await?.map(Tags::has_news);
    Ok(super::targets::quiet(targets, Notify::NewFailures, news))
}

/// The report of `run` over its merged `tests`: the categories as recorded, how its failures
/// compare with the history (where one is kept), and each failed test's attachments (its last
/// attempt's Allure record) linked. `history` is what [`targets`] read of it in this pass.
pub async fn report<R: RunRecords + ?Sized>(
    reporter: &Reporter,
    records: &R,
    run: &TestRun,
    tests: &[MergedTest],
    mut history: HistoryRead,
) -> Result<RunReport, R::Error> {
    let name = run.metadata.name.as_deref().unwrap_or_default();
    let unrecorded = TestRunStatus::default();
    let status = run.status.as_ref().unwrap_or(&unrecorded);
    let categories = crate::classify::recorded(records.categories(run).await?, &status.categories);
    let mut content = reporter.content(run, tests, &categories);
    if let Some(tags) = history.tags(records, run, tests).await? {
        content.novelty = Some(NoveltyReport::of(tags, tests));
    }
    let mut extras = HashMap::new();
    for seq in 1..=status.attempts.len() {
        if let Some(r) = records.allure_extras(run, seq).await? {
            extras.insert(seq, r);
        }
    }
    content.link_recorded_attachments(reporter.public_url(), name, &status.attempts, &extras);
    Ok(content)
}
