// The dashboard, the run-now form, the run page and the history page, over the shipped demo
// service, in a real browser against the real server.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, newPage, shot, markLoaded, assertNotReloaded, runNow, waitForPhase, assertNoProblems, assertFitsScreen,
  apiCall,
} from './lib.mjs';

after(assertNoProblems);

test('a run queued from the form goes from Queued to Running to Succeeded without a reload', { timeout: 120_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/');
  await page.locator('#live-state[data-state="open"]').waitFor();
  await markLoaded(page);
  const watcher = await newPage();
  await watcher.goto(BASE + '/');
  await watcher.locator('#live-state[data-state="open"]').waitFor();
  await markLoaded(watcher);

  // Fill the form first, so that the run it queues waits behind a slow run queued just before.
  await page.click('#run-now-demo > summary');
  await page.fill('#stand-demo', 'localhost');
  await page.selectOption('#category-demo', 'slow');
  await page.fill('#emails-demo', 'qa@example.com');
  await shot(page, 'dashboard-run-now-form');

  // Another user queues a slow run: the dashboard shows it running, by itself.
  const blocker = await runNow('service=demo&stand=localhost&category=slow');
  await page.locator(`#queue-demo tbody[data-queue="running"] tr[data-run="${blocker}"]`).waitFor();

  await page.click('#run-now-demo button[type=submit]');
  await page.waitForURL(/\/runs\/demo-[a-z0-9]+$/);
  const id = page.url().split('/runs/')[1];
  await markLoaded(page);
  await waitForPhase(page, 'Queued', 10_000);
  assert.match(await page.locator('#summary').innerText(), /Waiting in the queue/);

  // The other tab sees it wait behind the running run, at position 1, with its priority.
  const queuedRow = watcher.locator(`#queue-demo tbody[data-queue="queued"] tr[data-run="${id}"]`);
  await queuedRow.waitFor();
  assert.equal((await queuedRow.locator('td').first().innerText()).trim(), '1');
  assert.equal(await queuedRow.locator('select.priority').inputValue(), '2');
  await shot(watcher, 'dashboard-running-and-waiting');

  // A priority list in use is not swept away by a live update: another run queued behind it
  // changes this very queue, and the focus stays where it was; once the list is left, the
  // queue catches up.
  await queuedRow.locator('select.priority').focus();
  const other = await runNow('service=demo&stand=localhost&category=smoke');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(
    await watcher.evaluate(() => document.activeElement?.closest('tr')?.dataset.run),
    id,
    'the focused priority list is still the one in use',
  );
  await watcher.locator('h1').click();
  await watcher.locator(`#queue-demo tr[data-run="${other}"]`).waitFor({ timeout: 10_000 });
  assert.equal((await apiCall('DELETE', `/api/v1/runs/${other}`)).status, 202);
  await watcher.locator(`#queue-demo tr[data-run="${other}"]`).waitFor({ state: 'detached', timeout: 10_000 });

  // Re-prioritise it from the queue: the change is stored and both pages show it.
  await queuedRow.locator('select.priority').selectOption('0');
  await watcher.locator('#toast', { hasText: `Priority of ${id} is now 0` }).waitFor();
  assert.equal((await apiCall('GET', `/api/v1/runs/${id}`)).data.spec.priority, 0);
  await page.locator('#run-head .sub', { hasText: 'priority 0' }).waitFor();

  await waitForPhase(page, 'Running', 30_000);
  await watcher.locator(`#queue-demo tbody[data-queue="running"] tr[data-run="${id}"]`).waitFor();
  await page.locator('#log-source[data-follow="true"]').waitFor();
  await shot(page, 'run-running');
  await waitForPhase(page, 'Succeeded', 60_000);
  await assertNotReloaded(page);
  await assertNotReloaded(watcher);

  // Finished: gone from the queue, listed among recent runs.
  await watcher.locator(`#recent a[href="/runs/${id}"]`).waitFor();
  assert.equal(await watcher.locator(`#queue-demo tr[data-run="${id}"]`).count(), 0);
  assert.match(await page.locator('#results').innerText(), /waits for the nightly export/);
  assert.match(await page.locator('#log').innerText(), /nightly export/);
  await shot(page, 'run-succeeded');
});

test('the run page shows the flaky test, failures by category, attempts and links', { timeout: 120_000 }, async () => {
  const id = await runNow('service=demo&stand=localhost&category=smoke&issueKey=QA-7');
  const page = await newPage();
  await page.goto(`${BASE}/runs/${id}`);
  await markLoaded(page);
  await waitForPhase(page, 'Failed', 90_000);
  await assertNotReloaded(page);

  const flaky = page.locator('#flaky');
  assert.match(await flaky.innerText(), /submits the order form/);
  assert.match(await flaky.innerText(), /TimeoutError/);

  // The one failing test sits under a category, with its message.
  const failures = page.locator('#failures .category');
  assert.equal(await failures.count(), 1);
  const category = await failures.first().locator('.cat-name').innerText();
  assert.ok(category.length > 0, 'the category is named');
  assert.match(await failures.first().innerText(), /applies the discount/);
  assert.match(await failures.first().innerText(), /expected total 85/);
  assert.doesNotMatch(await failures.first().innerText(), /submits the order form/, 'flaky is not a failure');

  // Failed and flaky tests come first in the table, the flaky one marked.
  const verdicts = await page.locator('table.tests tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.verdict));
  assert.deepEqual(verdicts.slice(0, 2), ['failed', 'flaky']);
  const flakyRow = page.locator('table.tests tr[data-verdict="flaky"]');
  assert.match(await flakyRow.innerText(), /submits the order form/);
  assert.equal(await flakyRow.locator('.history .dot').count(), 2, 'failed on attempt 1, passed on 2');

  // Four attempts, each with its log and JUnit file.
  assert.equal(await page.locator('table.attempts tbody tr').count(), 4);
  const junit = await page.locator('table.attempts tbody tr').first().locator('a', { hasText: 'JUnit' }).getAttribute('href');
  const xml = await (await fetch(BASE + junit)).text();
  assert.match(xml, /<testsuites/);
  assert.match(await page.locator('#log').innerText(), /exit code/);
  assert.match(await page.locator('#facts').innerText(), /QA-7/);
  await shot(page, 'run-failed-with-flaky');

  // Filter by verdict: only the flaky test stays.
  await page.click('nav.tabs a.verdict-flaky');
  await page.waitForURL(/verdict=flaky/);
  const rows = await page.locator('table.tests tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.verdict));
  assert.deepEqual(rows, ['flaky']);

  const narrow = await newPage({ width: 390, height: 844 });
  await narrow.goto(`${BASE}/runs/${id}`);
  await assertFitsScreen(narrow, 'the run page');
  await shot(narrow, 'run-narrow');
});

test('an invalid form shows the API error next to the field and queues nothing', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/');
  await page.click('#run-now-demo > summary');
  await page.fill('#stand-demo', 'prod.example.com');
  await page.click('#run-now-demo button[type=submit]');
  const standError = page.locator('#run-now-demo [data-error-for="stand"]');
  await standError.waitFor();
  assert.match(await standError.innerText(), /is not a stand of demo/);
  assert.equal(await page.locator('#stand-demo').getAttribute('aria-invalid'), 'true');
  assert.equal(new URL(page.url()).pathname, '/');

  await page.fill('#stand-demo', 'localhost');
  await page.fill('#emails-demo', 'qa-at-example.com');
  await page.fill('#issue-demo', 'not a key');
  await page.click('#run-now-demo button[type=submit]');
  const emailError = page.locator('#run-now-demo [data-error-for="emails"]');
  await emailError.waitFor();
  assert.match(await emailError.innerText(), /not an email address/);
  assert.ok(await standError.isHidden(), 'the fixed field no longer shows its error');
  await shot(page, 'dashboard-form-error');
  assert.equal(new URL(page.url()).pathname, '/');
});

test('the history page draws pass-rate and duration trends and the most flaky tests', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/services/demo');
  await page.locator('svg.chart.line circle').first().waitFor();
  assert.ok((await page.locator('svg.chart.bars rect.bar').count()) >= 3);
  const flaky = page.locator('#flaky-tests');
  assert.match(await flaky.locator('svg.chart.rows').innerHTML(), /submits the order form/);
  assert.match(await flaky.locator('table').innerText(), /submits the order form\s+1 of/);
  assert.ok((await page.locator('#history-runs table.runs tbody tr').count()) >= 3);
  await shot(page, 'service-history');

  const narrow = await newPage({ width: 390, height: 844 });
  await narrow.goto(BASE + '/services/demo');
  await assertFitsScreen(narrow, 'the history page');
  await shot(narrow, 'service-history-narrow');
  await runNow('service=demo&stand=localhost&category=slow');
  await runNow('service=demo&stand=localhost&category=slow');
  await narrow.goto(BASE + '/');
  await narrow.locator('#queue-demo tbody[data-queue="queued"] tr[data-run]').first().waitFor();
  // Each waiting run's Cancel stays on screen.
  // Live updates may move a row from waiting to running between the look-up and the
  // measurement (boundingBox answers null for a detached row): measure a row that is there.
  const cancel = narrow.locator('#queue-demo tbody[data-queue="queued"] tr[data-run] button[data-action="cancel"]').last();
  let box = null;
  for (let i = 0; i < 20 && !box; i++) {
    await cancel.waitFor({ state: 'visible' });
    box = await cancel.boundingBox();
  }
  assert.ok(box && box.x + box.width <= 390, `Cancel is on screen (${JSON.stringify(box)})`);
  await narrow.click('#run-now-demo > summary');
  await assertFitsScreen(narrow, 'the dashboard');
  await shot(narrow, 'dashboard-narrow');
});
