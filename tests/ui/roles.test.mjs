// With a roles file (tests/ui.rs: `readsOpen: false`, "viewer" with the read role, "runner"
// with run), pages open through the browser's own sign-in prompt (HTTP Basic, the token as the
// password), and a change the token's role does not allow shows the API's reason.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, newContext, newPage, shot, runNow, waitForPhase, assertNoProblems, apiCall } from './lib.mjs';

after(assertNoProblems);

const VIEWER = 'ui-viewer-token';
const RUNNER = 'ui-runner-token';

test('closed reads: a page asks the browser to sign in, and opens with a token', async () => {
  const r = await fetch(BASE + '/');
  assert.equal(r.status, 401);
  assert.match(r.headers.get('www-authenticate'), /^Basic /);
  const page = await newPage({ context: await newContext({ httpCredentials: { username: 'me', password: VIEWER } }) });
  const res = await page.goto(BASE + '/');
  assert.equal(res.status(), 200);
  await page.locator('#token-button').waitFor();
});

test('a read token may look but not cancel; a run token may', { timeout: 60_000 }, async () => {
  const auth = { Authorization: `Bearer ${RUNNER}` };
  await runNow('service=demo&stand=localhost&category=slow', auth);
  const second = await runNow('service=demo&stand=localhost&category=slow', auth);

  const page = await newPage({ context: await newContext({ httpCredentials: { username: 'me', password: VIEWER } }) });
  await page.goto(`${BASE}/runs/${second}`);
  await waitForPhase(page, 'Queued', 10_000);
  await page.click('button[data-action="cancel"]');
  await page.locator('#token-dialog').waitFor({ state: 'visible' });
  await page.fill('#token-input', VIEWER);
  await page.click('#token-form button[type=submit]');
  const toast = page.locator('#toast[data-kind="error"]');
  await toast.waitFor({ state: 'visible' });
  assert.match(await toast.innerText(), /needs the run role/);
  await shot(page, 'roles-refused');
  assert.equal((await apiCall('GET', `/api/v1/runs/${second}`, undefined, auth)).data.spec.cancel, undefined);

  // The runner's token, given through "API token", may.
  await page.click('#token-button');
  await page.fill('#token-input', RUNNER);
  await page.click('#token-form button[type=submit]');
  await page.click('button[data-action="cancel"]');
  await waitForPhase(page, 'Cancelled', 20_000);
});
