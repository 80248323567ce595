// With TOMATO_API_TOKENS set (tests/ui.rs sets "ui-test-token"), pages stay readable and
// every change asks for the token first; a wrong token is refused and asked for again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, newPage, shot, runNow, waitForPhase, assertNoProblems, apiCall } from './lib.mjs';

after(assertNoProblems);

const TOKEN = 'ui-test-token';

test('queuing a run from the form asks for the token, refuses a wrong one, then goes on', { timeout: 90_000 }, async () => {
  const page = await newPage();
  await page.goto(BASE + '/');
  await page.locator('#token-button').waitFor();
  await page.click('#run-now-demo > summary');
  await page.fill('#stand-demo', 'localhost');
  await page.selectOption('#category-demo', 'smoke');
  await page.click('#run-now-demo button[type=submit]');

  const dialog = page.locator('#token-dialog');
  await dialog.waitFor({ state: 'visible' });
  assert.match(await page.locator('#token-reason').innerText(), /asks for an API token/);
  await shot(page, 'token-asked');

  await page.fill('#token-input', 'wrong-token');
  await page.click('#token-form button[type=submit]');
  await page.locator('#token-reason[data-error="true"]').waitFor();
  assert.match(await page.locator('#token-reason').innerText(), /not valid/);
  assert.ok(await dialog.isVisible(), 'asked again after a wrong token');

  await page.fill('#token-input', TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.waitForURL(/\/runs\/demo-[a-z0-9]+$/);
  await waitForPhase(page, 'Failed', 90_000);
});

test('with the token stored, cancelling asks nothing more; without it, a cancel asks first', { timeout: 60_000 }, async () => {
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const first = await runNow('service=demo&stand=localhost&category=slow', auth);
  const second = await runNow('service=demo&stand=localhost&category=slow', auth);

  // A fresh browser has no token: the cancel button asks for it; cancelling the dialog changes nothing.
  const page = await newPage();
  await page.goto(`${BASE}/runs/${second}`);
  await waitForPhase(page, 'Queued', 10_000);
  await page.click('button[data-action="cancel"]');
  await page.locator('#token-dialog').waitFor({ state: 'visible' });
  await page.click('#token-cancel');
  await page.locator('#token-dialog').waitFor({ state: 'hidden' });
  assert.equal((await apiCall('GET', `/api/v1/runs/${second}`)).data.spec.cancel, undefined);

  // With the token given once, later changes go straight through.
  await page.click('button[data-action="cancel"]');
  await page.fill('#token-input', TOKEN);
  await page.click('#token-form button[type=submit]');
  await waitForPhase(page, 'Cancelled', 20_000);
  await page.goto(`${BASE}/runs/${first}`);
  await page.click('button[data-action="cancel"]');
  await waitForPhase(page, 'Cancelled', 20_000);
  assert.ok(await page.locator('#token-dialog').isHidden());
  await shot(page, 'token-run-cancelled');
});

test('reading needs no token', async () => {
  const r = await fetch(BASE + '/');
  assert.equal(r.status, 200);
  const { status } = await apiCall('POST', '/api/run_now?service=demo&stand=localhost');
  assert.equal(status, 401, 'writes without a token are refused');
});
