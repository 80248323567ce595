// Escaping and cross-site request forgery, in a real browser. The server runs a `markup`
// service (tests/ui.rs) whose description, pack, test names and failure messages are markup
// and scripts; none of it may run or render as markup anywhere.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { BASE, newPage, shot, apiCall, runNow, waitForPhase, assertNoProblems } from './lib.mjs';

after(assertNoProblems);

const EVIL_NAME = '<script>window.__pwned = "name"</script><img src=x onerror="window.__pwned = 1">';
const EVIL_VERSION = '<script>window.__pwned = "version"</script><b>v1</b>';

async function assertNothingRan(page, where) {
  assert.equal(await page.evaluate(() => window.__pwned), undefined, `no payload ran on ${where}`);
  // The only script element is the UI's own; no image from a payload exists.
  const scripts = await page.locator('script').evaluateAll((s) => s.map((x) => x.getAttribute('src')));
  assert.equal(scripts.length, 1, `${where} has only the UI's script: ${JSON.stringify(scripts)}`);
  assert.match(scripts[0], /^\/ui\/static\/app\.js/);
  assert.equal(await page.locator('img, b').count(), 0, `no markup from data on ${where}`);
}

test('test names, messages and user input that are markup show as text and run nothing', { timeout: 90_000 }, async () => {
  const { status, data } = await apiCall('POST', '/api/v1/runs', {
    spec: { service: 'markup', stand: 'localhost', version: EVIL_VERSION },
  });
  assert.equal(status, 201, JSON.stringify(data));
  const id = data.metadata.name;

  const page = await newPage();
  await page.goto(`${BASE}/runs/${id}`);
  await waitForPhase(page, 'Failed', 60_000);
  await assertNothingRan(page, 'the run page after live updates');
  await page.reload();
  await assertNothingRan(page, 'the run page');

  // The name is there, character for character as the run's results hold it, as text. (Node's
  // JUnit reporter escapes quotes twice, so the stored name has `&quot;` where EVIL_NAME has `"`.)
  const tests = (await apiCall('GET', `/api/v1/runs/${id}/tests`)).data;
  const stored = tests.find((t) => t.verdict === 'failed').name;
  assert.match(stored, /^<script>window.__pwned = .*<\/script><img src=x onerror=.*>$/);
  assert.equal(stored.replaceAll('&quot;', '"'), EVIL_NAME);
  const failedRow = page.locator('table.tests tr[data-verdict="failed"] .test-name');
  assert.equal(await failedRow.innerText(), stored);
  assert.ok((await page.locator('#failures').innerText()).includes(stored));
  assert.match(await page.locator('table.tests').innerText(), /<b>plain<\/b> & /);
  assert.match(await page.locator('#facts').innerText(), /<script>window.__pwned = "version"<\/script><b>v1<\/b>/);
  // The failure message and trace hold markup too (Node escapes the message attribute twice).
  await page.locator('table.tests tr[data-verdict="failed"] details.trace summary').click();
  assert.match(await page.locator('table.tests tr[data-verdict="failed"] details.trace').innerText(), /window.__pwned = "message"/);
  await page.waitForTimeout(300);
  await assertNothingRan(page, 'the run page with the trace open');
  await shot(page, 'run-markup-escaped');

  for (const path of ['/', '/services/markup']) {
    await page.goto(BASE + path);
    await page.waitForTimeout(300);
    await assertNothingRan(page, path);
  }
  await page.goto(BASE + '/');
  await page.click('#run-now-markup > summary');
  assert.match(await page.locator('#svc-markup').innerText(), /<i>Markup<\/i> in every field <script>/);
  assert.match(await page.locator('#svc-markup').innerText(), /<b>names<\/b> that are markup/);
});

test('a form posted to Tomato from another site is refused and queues nothing', { timeout: 60_000 }, async () => {
  const before = (await apiCall('GET', '/api/v1/runs?service=demo')).data.items.length;
  // A hostile page on another origin (localhost vs 127.0.0.1: another site) that posts a form.
  const target = BASE;
  const evil = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><form id="f" method="POST" action="${target}/api/run_now?service=demo&stand=localhost">
      <input name="category" value="smoke"></form><script>document.getElementById('f').submit()</script>`);
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  const evilUrl = `http://localhost:${evil.address().port}/`;
  try {
    const page = await newPage();
    const answer = page.waitForResponse((r) => r.url().startsWith(`${target}/api/run_now`));
    await page.goto(evilUrl);
    const res = await answer;
    assert.equal(res.status(), 403);
    const body = await res.json();
    assert.equal(body.parameter, 'Origin');
    assert.match(body.error, /cross-site request refused/);
    await shot(page, 'csrf-refused');
  } finally {
    evil.close();
  }
  const afterCount = (await apiCall('GET', '/api/v1/runs?service=demo')).data.items.length;
  assert.equal(afterCount, before, 'nothing was queued');

  // The UI itself, on its own origin, still changes things.
  const page = await newPage();
  await page.goto(BASE + '/');
  const id = await runNow('service=demo&stand=localhost&category=slow');
  await page.locator(`tr[data-run="${id}"] button[data-action="cancel"]`).click();
  await page.locator('#toast', { hasText: `Cancelling ${id}` }).waitFor();
  await page.goto(`${BASE}/runs/${id}`);
  await waitForPhase(page, 'Cancelled', 30_000);
});

test("an attempt's files are never run as pages of this origin", { timeout: 90_000 }, async () => {
  const { status, data } = await apiCall('POST', '/api/v1/runs', { spec: { service: 'rawxml', stand: 'localhost' } });
  assert.equal(status, 201, JSON.stringify(data));
  const id = data.metadata.name;
  for (let i = 0; i < 300; i++) {
    const run = (await apiCall('GET', `/api/v1/runs/${id}`)).data;
    if (['Succeeded', 'Failed', 'Error'].includes(run.status?.phase)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const page = await newPage();
  const junit = await page.goto(`${BASE}/api/v1/runs/${id}/attempts/1/junit`);
  assert.equal(junit.status(), 200);
  // The XHTML script in the file would mark the document if it ran.
  assert.equal(await page.evaluate(() => document.documentElement.getAttribute('data-pwned')), null);
  assert.match(junit.headers()['content-security-policy'] ?? '', /sandbox/);
  const log = await page.goto(`${BASE}/api/v1/runs/${id}/attempts/1/log`);
  assert.equal(log.status(), 200);
  assert.equal(log.headers()['x-content-type-options'], 'nosniff');
});
