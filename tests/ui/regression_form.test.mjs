// Starting a regression from the web UI: the form offers each service's stand pattern and
// default plan, an invalid submit shows the API's error next to its field and stores
// nothing, and a valid one lands on the new regression's page. The Rust side (tests/ui.rs)
// started a real Kiwi TCMS with the plan "demo regression"; it then follows the regression
// this form created.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, newPage, shot, apiCall, assertNoProblems, assertFitsScreen } from './lib.mjs';

after(assertNoProblems);

const stored = async () => (await apiCall('GET', '/api/v1/regressions')).data.items.length;

test('a regression is started from the form after its field errors are fixed', { timeout: 60_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/regressions');
  await page.click('a[href="/regressions/new"]');
  await page.waitForURL(/\/regressions\/new$/);
  const form = page.locator('form[data-form="regression"]');
  await form.locator('select[name="service"]').selectOption('demo');
  assert.match(
    await form.locator('[data-field="plan"] .hint:visible').innerText(),
    /demo regression/,
    "the service's default plan is named",
  );

  await form.locator('input[name="version"]').fill('2.0');
  await form.locator('input[name="stand"]').fill('prod.example.com');
  await form.locator('input[name="assessors"]').fill('alice, bob');
  await form.locator('button[type="submit"]').click();
  const standError = form.locator('[data-error-for="stand"]');
  await standError.waitFor();
  assert.match(await standError.innerText(), /not a stand of demo/);
  assert.equal(await form.locator('input[name="stand"]').getAttribute('aria-invalid'), 'true');
  await shot(page, 'regression-form-error');

  await form.locator('input[name="stand"]').fill('localhost');
  await form.locator('input[name="assessors"]').fill('');
  await form.locator('button[type="submit"]').click();
  const assessorsError = form.locator('[data-error-for="assessors"]');
  await assessorsError.waitFor();
  assert.match(await assessorsError.innerText(), /at least one assessor/);
  assert.ok(await standError.isHidden(), 'the fixed field no longer shows its error');
  assert.equal(await stored(), 0, 'an invalid form stores nothing');

  await form.locator('input[name="assessors"]').fill('alice, bob');
  await form.locator('input[name="name"]').fill('demo-2-0');
  await form.locator('input[name="queue"]').fill('QA');
  const tomorrow = new Date(Date.now() + 24 * 3600_000);
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  await form.locator('input[name="deadline"]').fill(local(tomorrow));
  await shot(page, 'regression-form');
  await form.locator('button[type="submit"]').click();
  await page.waitForURL(/\/regressions\/demo-2-0$/);

  const { status, data } = await apiCall('GET', '/api/v1/regressions/demo-2-0');
  assert.equal(status, 200);
  assert.deepEqual(data.spec.assessors, ['alice', 'bob']);
  assert.equal(data.spec.queue, 'QA');
  assert.equal(data.spec.plan, undefined, "no plan: the service's default applies");
  const deadlineOff = Math.abs(new Date(data.spec.deadline) - tomorrow);
  assert.ok(deadlineOff < 60_000, `the deadline is the one entered (off by ${deadlineOff} ms)`);

  const narrow = await newPage({ width: 390, height: 844 });
  await narrow.goto(BASE + '/regressions/new');
  await assertFitsScreen(narrow, '/regressions/new');
  await shot(narrow, 'regression-form-narrow');
});
