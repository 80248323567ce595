// The schedules pages in a real browser: create with validation, the next run in the
// schedule's own zone, suspend/resume, run now, edit, delete.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, newPage, shot, apiCall, waitForPhase, assertNoProblems, assertFitsScreen } from './lib.mjs';

after(assertNoProblems);

const row = (page, name) => page.locator(`#schedules tr[data-schedule="${name}"]`);

test('a schedule is created with field errors first, then listed with its next run in its zone', { timeout: 90_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/schedules');
  assert.match(await page.locator('#schedules').innerText(), /No schedules yet/);
  await page.click('a[href="/schedules/new"]');
  await page.waitForURL(/\/schedules\/new$/);

  await page.fill('#s-name', 'demo-nightly');
  await page.selectOption('#s-service', 'demo');
  await page.fill('#s-stand', 'localhost');
  await page.selectOption('#s-category', 'smoke');
  await page.fill('#s-schedule', '61 2 * * *');
  await page.fill('#s-zone', 'Europe/Moscow');
  await page.click('form[data-form="schedule"] button[type=submit]');
  const cronError = page.locator('[data-error-for="schedule"]');
  await cronError.waitFor();
  assert.ok((await cronError.innerText()).length > 0);
  assert.equal(await page.locator('#s-schedule').getAttribute('aria-invalid'), 'true');
  await shot(page, 'schedule-form-error');

  await page.fill('#s-schedule', '30 2 * * *');
  await page.fill('#s-zone', 'Mars/Olympus');
  await page.click('form[data-form="schedule"] button[type=submit]');
  await page.locator('[data-error-for="timeZone"]').waitFor();
  assert.ok(await cronError.isHidden());

  await page.fill('#s-zone', 'Europe/Moscow');
  await page.click('form[data-form="schedule"] button[type=submit]');
  await page.waitForURL(/\/schedules$/);
  const r = row(page, 'demo-nightly');
  await r.waitFor();
  // The scheduler computes the next run just after the schedule is stored; a busy machine
  // may render the list first, and the live update fills it in.
  await r.locator('td.next-run .next').waitFor();
  const next = await r.locator('td.next-run').innerText();
  assert.match(next, /02:30 MSK/, 'the next run is shown in Moscow time');
  assert.match(next, /in \d/);
  assert.match(await r.innerText(), /30 2 \* \* \*/);
  assert.match(await r.innerText(), /Europe\/Moscow/);
  await shot(page, 'schedules');

  const narrow = await newPage({ width: 390, height: 844 });
  for (const [path, name] of [['/schedules', 'schedules-narrow'], ['/schedules/demo-nightly/edit', 'schedule-edit-narrow']]) {
    await narrow.goto(BASE + path);
    await assertFitsScreen(narrow, path);
    await shot(narrow, name);
  }
});

test('a schedule is suspended, resumed, run now, edited and deleted from the list', { timeout: 90_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/schedules');
  const r = row(page, 'demo-nightly');

  await r.locator('button[data-action="schedule-suspend"][data-suspend="true"]').click();
  await r.locator('.schedule-state', { hasText: 'suspended' }).waitFor();
  assert.equal((await apiCall('GET', '/api/v1/schedules/demo-nightly')).data.spec.suspend, true);
  await r.locator('button[data-action="schedule-suspend"][data-suspend="false"]').click();
  await r.locator('.schedule-state', { hasText: 'active' }).waitFor();

  await r.locator('button[data-action="schedule-trigger"]').click();
  await page.waitForURL(/\/runs\/[a-z0-9.-]+$/);
  await page.locator('.title-row .tag', { hasText: 'nightly' }).waitFor();
  await waitForPhase(page, 'Failed', 90_000);

  await page.goto(BASE + '/schedules/demo-nightly/edit');
  assert.equal(await page.locator('#s-name').getAttribute('readonly'), '');
  assert.equal(await page.locator('#s-category').inputValue(), 'smoke');
  await page.selectOption('#s-priority', '5');
  await page.click('form[data-form="schedule"] button[type=submit]');
  await page.waitForURL(/\/schedules$/);
  assert.equal((await apiCall('GET', '/api/v1/schedules/demo-nightly')).data.spec.priority, 5);
  // The run may still be listed as active beside the schedule's own link on a busy machine.
  await row(page, 'demo-nightly').locator('a.mono').first().waitFor();
  assert.match(await row(page, 'demo-nightly').innerText(), /demo-/, 'the last run is listed');

  await row(page, 'demo-nightly').locator('button[data-action="schedule-delete"]').click();
  await page.locator('#schedules', { hasText: 'No schedules yet' }).waitFor();
});
