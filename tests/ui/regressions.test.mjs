// The regressions pages in a real browser: the list with each regression's progress, one
// regression with its assessors, links and notifications, and deleting it. The Rust side
// (tests/ui.rs) started a real Kiwi TCMS, created the regression and marked two cases.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, newPage, shot, apiCall, assertNoProblems, assertFitsScreen } from './lib.mjs';

after(assertNoProblems);

test('the list shows each regression with its phase and progress', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/regressions');
  const row = page.locator('#regressions tr[data-regression="demo-2-0"]');
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /InProgress/);
  assert.match(text, /demo 2\.0/);
  assert.match(text, /2 of 4 · 1 passed, 1 failed, 0 blocked/);
  assert.match(text, /QA-1/);
  assert.equal(await row.locator('svg.progress-bar rect.passed').count(), 1);
  assert.equal(await row.locator('svg.progress-bar rect.failed').count(), 1);
  assert.equal(await row.locator('svg.progress-bar rect.idle').count(), 1);
  assert.match(await page.locator('nav.mainnav a[aria-current="page"]').innerText(), /Regressions/);
  await shot(page, 'regressions');
});

test('one regression shows each assessor, the test run, the ticket and the notifications', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/regressions');
  await page.click('#regressions a[href="/regressions/demo-2-0"]');
  await page.waitForURL(/\/regressions\/demo-2-0$/);
  const alice = page.locator('table.assessors tr[data-assessor="alice"]');
  const bob = page.locator('table.assessors tr[data-assessor="bob"]');
  assert.deepEqual(
    (await alice.locator('td.num').allInnerTexts()).map(Number),
    [2, 1, 0, 0, 1],
  );
  assert.deepEqual(
    (await bob.locator('td.num').allInnerTexts()).map(Number),
    [2, 0, 1, 0, 1],
  );
  const links = await page.locator('#links').innerText();
  assert.match(links, /\/runs\/\d+\//, 'links to the Kiwi test run');
  assert.match(links, /QA-1/);
  assert.match(links, /Assessors' emails:\s*Skipped/);
  assert.match(await page.locator('#regression-message').innerText(), /2 of 4 cases have a verdict/);
  await shot(page, 'regression');

  const narrow = await newPage({ width: 390, height: 844 });
  for (const [path, name] of [['/regressions', 'regressions-narrow'], ['/regressions/demo-2-0', 'regression-narrow']]) {
    await narrow.goto(BASE + path);
    await assertFitsScreen(narrow, path);
    await shot(narrow, name);
  }
});

test('the deadline is moved on the regression page and a past one is refused there', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/regressions/demo-2-0');
  const form = page.locator('form[data-form="deadline"]');
  const input = form.locator('input[name="deadline"]');
  const before = (await apiCall('GET', '/api/v1/regressions/demo-2-0')).data.spec.deadline;
  const shown = await input.inputValue();
  assert.equal(new Date(shown).getTime(), Math.floor(new Date(before).getTime() / 60_000) * 60_000,
    'the current deadline is filled in, in the browser\'s zone');

  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  await input.fill(local(new Date(Date.now() - 3600_000)));
  await form.locator('button[type="submit"]').click();
  const error = form.locator('[data-error-for="deadline"]');
  await error.waitFor();
  assert.match(await error.innerText(), /in the past/);
  assert.equal((await apiCall('GET', '/api/v1/regressions/demo-2-0')).data.spec.deadline, before);

  const later = new Date(Date.now() + 3 * 24 * 3600_000);
  later.setSeconds(0, 0);
  await input.fill(local(later));
  await form.locator('button[type="submit"]').click();
  await page.locator('#toast', { hasText: 'Deadline moved' }).waitFor();
  const after = (await apiCall('GET', '/api/v1/regressions/demo-2-0')).data.spec.deadline;
  assert.equal(new Date(after).getTime(), later.getTime());
  const utc = later.toISOString().slice(0, 16).replace('T', ' ');
  await page.locator('#regression-head', { hasText: `deadline ${utc} UTC` }).waitFor();
  await shot(page, 'regression-deadline');
});

test('deleting a regression from its page removes it from the list', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/regressions/demo-2-0');
  await page.click('button[data-action="regression-delete"]');
  await page.locator('#toast', { hasText: 'Deleting demo-2-0' }).waitFor();
  for (let i = 0; i < 100; i++) {
    if ((await apiCall('GET', '/api/v1/regressions/demo-2-0')).status === 404) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await apiCall('GET', '/api/v1/regressions/demo-2-0')).status, 404);
  await page.goto(BASE + '/regressions');
  assert.match(await page.locator('#regressions').innerText(), /No regressions yet/);
});
