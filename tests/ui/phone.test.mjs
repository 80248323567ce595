// Every page at a desktop size (1400×900) and a phone's (390×844): the page never scrolls
// sideways, every action button and list is inside the screen, and a long failure stays
// short until opened. Screenshots of each land in tests/artifacts/ui/<size>-<page>.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, newPage, shot, runNow, apiCall, assertNoProblems, stableBox } from './lib.mjs';

after(assertNoProblems);

const SIZES = [
  { name: 'desktop', width: 1400, height: 900 },
  { name: 'phone', width: 390, height: 844 },
];

let finishedRun;
let longRun;
let failedTest;

async function waitFinished(id) {
  for (let i = 0; i < 600; i++) {
    const { data } = await apiCall('GET', `/api/v1/runs/${id}`);
    if (['Succeeded', 'Failed', 'Error', 'Cancelled'].includes(data?.status?.phase)) return data;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`run ${id} did not finish`);
}

before(async () => {
  finishedRun = await runNow('service=demo&stand=localhost&category=smoke');
  longRun = await runNow('service=longfail&stand=localhost');
  await waitFinished(finishedRun);
  await waitFinished(longRun);
  const { data: tests } = await apiCall('GET', `/api/v1/runs/${finishedRun}/tests?verdict=failed`);
  failedTest = tests[0].id;
  // Something waiting in the queue, so the dashboard shows its actions: behind a run that holds
  // the stand (one run at a time there), so it still waits when the checks below get to it.
  await runNow('service=hold&stand=localhost');
  await runNow('service=demo&stand=localhost&category=slow');
  await runNow('service=demo&stand=localhost&category=slow');
  const { status } = await apiCall('POST', '/api/v1/schedules', {
    metadata: { name: 'demo-nightly-with-a-long-name' },
    spec: { service: 'demo', stand: 'localhost', category: 'smoke', schedule: '30 2 * * 1-5', timeZone: 'Europe/Amsterdam' },
  });
  assert.equal(status, 201);
});

/** No sideways scrolling, and every visible action wholly inside the screen. */
async function assertUsable(page, what) {
  const { overflow, outside } = await page.evaluate(() => {
    const width = window.innerWidth;
    const outside = [];
    for (const el of document.querySelectorAll('main button, main a.button, main select, main summary .button, main [data-action]')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue; // not shown (a closed form, a hidden row)
      if (r.left < 0 || r.right > width + 0.5) outside.push(`${el.outerHTML.slice(0, 80)} at ${Math.round(r.left)}–${Math.round(r.right)}`);
    }
    return { overflow: document.documentElement.scrollWidth - width, outside };
  });
  assert.ok(overflow <= 0, `${what}: the page scrolls sideways by ${overflow}px`);
  assert.deepEqual(outside, [], `${what}: every action is on screen`);
}

const PAGES = () => [
  { name: 'dashboard', path: '/', ready: '#queue-demo tbody[data-queue] tr[data-run]' },
  { name: 'run', path: `/runs/${finishedRun}`, ready: 'table.tests' },
  { name: 'run-long-failure', path: `/runs/${longRun}`, ready: 'details.trace' },
  { name: 'schedules', path: '/schedules', ready: 'tr[data-schedule]' },
  { name: 'history', path: '/services/demo', ready: 'svg.chart.line' },
  { name: 'compare', path: `/runs/${finishedRun}/compare?with=${longRun}`, ready: '#newly-failing' },
  { name: 'test-history', path: `/services/demo/tests/${encodeURIComponent(failedTest)}`, ready: '.verdict-strip .cell' },
  { name: 'regressions', path: '/regressions', ready: '#regressions-unavailable' },
  { name: 'regression-form', path: '/regressions/new', ready: 'form[data-form="regression"]' },
  { name: 'schedule-form', path: '/schedules/new', ready: 'form[data-form="schedule"]' },
];

for (const size of SIZES) {
  test(`every page fits and keeps its actions on screen at ${size.width}×${size.height}`, { timeout: 120_000 }, async () => {
    const page = await newPage({ width: size.width, height: size.height });
    for (const p of PAGES()) {
      await page.goto(BASE + p.path);
      await page.locator(p.ready).first().waitFor({ timeout: 20_000 });
      await assertUsable(page, `${p.name} at ${size.width}px`);
      await shot(page, `${size.name}-${p.name}`);
    }
    // The run-now form, opened, fits as well.
    await page.goto(BASE + '/');
    await page.click('#run-now-demo > summary');
    await assertUsable(page, `the open run-now form at ${size.width}px`);
    await shot(page, `${size.name}-dashboard-form`);
  });
}

test('on a phone the schedule actions and the queue actions are on screen without scrolling sideways', { timeout: 60_000 }, async () => {
  const page = await newPage({ width: 390, height: 844 });
  await page.goto(BASE + '/schedules');
  for (const label of ['Run now', 'Suspend', 'Edit', 'Delete']) {
    const box = await page.locator('tr[data-schedule="demo-nightly-with-a-long-name"]').getByText(label, { exact: true }).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${label} is on screen (${JSON.stringify(box)})`);
  }
  await page.goto(BASE + '/');
  const cancel = page.locator('#queue-demo tr[data-run] button[data-action="cancel"]').last();
  const box = await stableBox(cancel);
  assert.ok(box && box.x + box.width <= 390, `Cancel is on screen (${JSON.stringify(box)})`);
  // The run id is whole on one line, not broken mid-word.
  const id = page.locator('#queue-demo tr[data-run] td.run-id a').last();
  const idBox = await stableBox(id);
  assert.ok(idBox && idBox.height < 24, `the run id is on one line (${JSON.stringify(idBox)})`);
});

test('a long failure shows a few lines collapsed and all of them opened', { timeout: 60_000 }, async () => {
  for (const size of SIZES) {
    const page = await newPage({ width: size.width, height: size.height });
    await page.goto(`${BASE}/runs/${longRun}`);
    const details = page.locator('table.tests details.trace').first();
    const summary = details.locator('summary');
    const collapsed = (await summary.boundingBox()).height;
    assert.ok(collapsed < 80, `collapsed, the failure takes ${collapsed}px (at most 3 lines)`);
    assert.match(await summary.textContent(), /VARIABLE_NUMBER_39/, 'the whole message is there, only clamped');
    await summary.click();
    const opened = (await summary.boundingBox()).height;
    assert.ok(opened > collapsed * 3, `opened, the message shows whole (${opened}px against ${collapsed}px)`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, `${size.name}-run-long-failure-opened`);
  }
});

test('the history charts fit a phone, say their units, and filter by packs', { timeout: 60_000 }, async () => {
  const page = await newPage({ width: 390, height: 844 });
  await page.goto(BASE + '/services/demo');
  for (const chart of await page.locator('svg.chart').all()) {
    const box = await chart.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `a chart fits (${JSON.stringify(box)})`);
  }
  const ticks = await page.locator('svg.chart.bars text.tick:not(.x)').allTextContents();
  assert.ok(ticks.length > 0 && ticks.every((t) => /^\d+(\.\d+)? (ms|s|min|h)$/.test(t)), `duration ticks carry a unit: ${ticks}`);
  assert.equal(new Set(ticks).size, ticks.length, `no tick repeats: ${ticks}`);
  // Only the smoke runs: the filter's choice is in the URL and in each run's Packs.
  const choice = await page.locator('#packs-filter option', { hasText: 'basic' }).first().getAttribute('value');
  await page.selectOption('#packs-filter', choice);
  await page.waitForURL(/packs=/);
  const packs = await page.locator('#history-runs td.packs').allTextContents();
  assert.ok(packs.length > 0 && packs.every((p) => p.includes(choice)), `only runs of ${choice}: ${packs}`);
  await shot(page, 'phone-history-filtered');
});
