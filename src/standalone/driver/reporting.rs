//! Reporting: each channel's state lives in `status.report`; due channels are handed to
//! tasks of their own and their outcome recorded as it comes back.

use super::*;

impl Driver {
    /// Reporting: gives each channel its first state, hands the due ones to delivery tasks,
    /// and ends the run once no channel is pending. Remembers when the next one is due.
    pub(super) async fn report(&mut self, run: &TestRun) -> Result<(), StoreError> {
        let name = run.metadata.name.clone().unwrap_or_default();
        let svc = self.config.service(&run.spec.template.service).cloned();
        let mut targets = self.reporter.targets(run, svc.as_deref());
        // `report.notify: newFailures` asks the history once, when the channels are planned.
        let notify = svc.as_ref().map(|s| s.report.notify).unwrap_or_default();
        let unplanned = run.status.as_ref().is_some_and(|st| {
            let report = st.report.clone().unwrap_or_default();
            Channel::ALL.iter().any(|c| report.channel(*c).is_none())
        });
        if notify == crate::packs::Notify::NewFailures && unplanned {
            let status = run.status.clone().unwrap_or_default();
            let tests = self.merged(&name, &status).await?;
            let news = crate::history::tags(&self.store, run, &tests)
                .await?
                .map(|tags| tags.has_news());
            targets = crate::report::targets::quiet(targets, notify, news);
        }
        let plans = crate::report::delivery::channel_plans(&targets);
        let now = Utc::now();
        let (run, (planned, finished)) = self
            .store
            .update::<TestRun, _>(&name, move |r| {
                let st = r.status.get_or_insert_default();
                if st.phase != Phase::Reporting {
                    return Ok((false, (Vec::new(), false)));
                }
                let planned = crate::report::delivery::plan(st.report.get_or_insert_default(), &plans, now);
                let finished = crate::report::delivery::finish_if_delivered(st, now);
                Ok((!planned.is_empty() || finished, (planned, finished)))
            })
            .await?;
        let Some(status) = run.status.as_ref() else {
            return Ok(());
        };
        let report = status.report.clone().unwrap_or_default();
        for c in &planned {
            if let Some(ch) = report.channel(*c) {
                info!(run = name, channel = %c, state = ?ch.state, reason = ch.reason.as_deref().unwrap_or(""), "report channel planned");
            }
        }
        if finished {
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
        let tests = self.merged(&name, status).await?;
        let categories = crate::classify::recorded(self.store.categories(&name).await?, &status.categories);
        let mut content = self.reporter.content(&run, &tests, &categories);
        if let Some(tags) = crate::history::tags(&self.store, &run, &tests).await? {
            content.novelty = Some(crate::report::content::NoveltyReport::of(&tags, &tests));
        }
        // The email links each failed test's attachments (its last attempt's Allure record).
        // Read through the store's Backend side (off the async threads), as the API reads it.
        let mut records: HashMap<usize, results::allure::AttemptExtras> = HashMap::new();
        for seq in 1..=status.attempts.len() {
            if let Some(r) = crate::backend::Backend::allure_extras(&self.store, &name, seq).await? {
                records.insert(seq, r);
            }
        }
        content.link_recorded_attachments(self.reporter.public_url(), &name, &status.attempts, &records);
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
                let now = Utc::now();
                let slot = st.report.get_or_insert_default().channel_mut(channel);
                let Some(ch) = slot.as_mut().filter(|c| c.state == DeliveryState::Pending) else {
                    return Ok((false, None));
                };
                delivery::record(ch, d.delivery, &policy, now, jitter);
                let recorded = ch.clone();
                crate::report::delivery::finish_if_delivered(st, now);
                Ok((true, Some(recorded)))
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
