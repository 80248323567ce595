//! Reporting: each channel's state lives in `status.report`; due channels are handed to
//! tasks of their own and their outcome recorded as it comes back.

use super::*;
use crate::report::{compose, delivery as report_delivery};

impl Driver {
    /// Reporting: gives each channel its first state, hands the due ones to delivery tasks,
    /// and ends the run once no channel is pending. Remembers when the next one is due.
    pub(super) async fn report(&mut self, run: &TestRun) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let svc = self.config.service(&run.spec.template.service).cloned();
        // The tests are read and merged only when the targets need them or a channel is due.
        let mut tests = None;
        if compose::targets_need_tests(run, svc.as_deref()) {
            tests = Some(
                self.merged(&name, run.status.as_ref().unwrap_or(&Default::default()))
                    .await?,
            );
        }
        let mut history = compose::HistoryRead::default();
        let targets = compose::targets(
            &self.reporter,
            &self.store,
            run,
            svc.as_deref(),
            tests.as_deref(),
            &mut history,
        )
        .await?;
        let now = Utc::now();
        let planning = targets.clone();
        let (run, planned) = self
            .store
            .update::<TestRun, _>(&name, move |r| {
                let planned = report_delivery::plan_run(r.status.get_or_insert_default(), &planning, now);
                Ok((planned.changed(), planned))
            })
            .await?;
        let Some(status) = run.status.as_ref() else {
            return Ok(());
        };
        let report = status.report.clone().unwrap_or_default();
        for c in &planned.channels {
            if let Some(ch) = report.channel(*c) {
                info!(run = name, channel = %c, state = ?ch.state, reason = ch.reason.as_deref().unwrap_or(""), "report channel planned");
            }
        }
        if planned.finished {
            info!(run = name, phase = %status.phase, "run finished");
        }
        if status.phase != Phase::Reporting {
            return Ok(());
        }

        let crate::report::delivery::Due { now: due, next_at } =
            crate::report::delivery::due(targets, &report, now, |c| {
                self.delivering.contains(&(name.clone(), c))
            });
        if let Some(at) = next_at {
            self.next_due = Some(self.next_due.map_or(at, |t| t.min(at)));
        }
        if due.is_empty() {
            return Ok(());
        }
        let tests = match tests {
            Some(tests) => tests,
            None => self.merged(&name, status).await?,
        };
        let content = compose::report(&self.reporter, &self.store, &run, &tests, history).await?;
        let content = Arc::new(content);
        for (channel, target, sent_to) in due {
            self.delivering.insert((name.clone(), channel));
            let (reporter, content, tx, run) = (
                self.reporter.clone(),
                content.clone(),
                self.delivered_tx.clone(),
                name.clone(),
            );
            tokio::spawn(async move {
                let delivery = reporter.deliver(&target, &content, &sent_to).await;
                // At shutdown the loop waits for this (`finish_deliveries`); after a harder
                // stop the channel is still Pending in the store and the next start sends it.
                let _ = tx.send(Delivered {
                    run,
                    channel,
                    delivery,
                });
            });
        }
        Ok(())
    }

    /// Records a delivery attempt's end in `status.report.<channel>` (and ends the run when
    /// it was the last pending channel).
    pub(super) async fn delivered(&mut self, d: Delivered) -> Result<(), StoreError> {
        self.delivering.remove(&(d.run.clone(), d.channel));
        let policy = self.reporter.retry().clone();
        let jitter: f64 = rand::random();
        let channel = d.channel;
        let (run, recorded) = self
            .store
            .update::<TestRun, _>(&d.run, move |r| {
                let st = r.status.get_or_insert_default();
                let recorded =
                    report_delivery::record_outcome(st, channel, d.delivery, &policy, Utc::now(), jitter);
                Ok((recorded.is_some(), recorded.map(|r| r.channel)))
            })
            .await?;
        let name = d.run;
        match &recorded {
            Some(ch) if ch.state == DeliveryState::Sent => {
                info!(run = name, channel = %channel, attempts = ch.attempts, to = ?ch.sent_to, "report delivered")
            }
            Some(ch) => warn!(
                run = name,
                channel = %channel,
                attempts = ch.attempts,
                state = ?ch.state,
                reason = ch.reason.as_deref().unwrap_or(""),
                "report delivery failed"
            ),
            None => {}
        }
        if let (true, Some(st)) = (recorded.is_some(), run.status.as_ref())
            && st.phase.is_terminal()
        {
            info!(run = name, phase = %st.phase, "run finished");
        }
        Ok(())
    }
}
