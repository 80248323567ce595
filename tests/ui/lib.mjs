// Shared helpers of the browser tests: Debian's chromium through playwright-core (never a
// downloaded browser), the server's base URL from the Rust harness (tests/ui.rs), screenshots.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { after, before } from 'node:test';
import assert from 'node:assert/strict';

export const BASE = process.env.TOMATO_URL;
const ARTIFACTS = process.env.TOMATO_UI_ARTIFACTS;
assert.ok(BASE, 'TOMATO_URL is set (run these through `cargo nextest run --test ui`)');
assert.ok(ARTIFACTS, 'TOMATO_UI_ARTIFACTS is set');
mkdirSync(ARTIFACTS, { recursive: true });

/** Every page's script errors and unexpected dialogs, checked after each test file. */
export const problems = [];

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});
after(async () => {
  await browser?.close();
});

/**
 * A fresh browser context (its own storage) and page at the given width. Script errors are
 * collected; `confirm()` dialogs are accepted, any other dialog (an `alert` a payload could
 * raise) is recorded as a problem.
 */
/** A fresh browser context with Playwright's `options` (e.g. `httpCredentials`). */
export async function newContext(options = {}) {
  return browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
}

export async function newPage({ width = 1280, height = 900, context } = {}) {
  const ctx = context ?? (await browser.newContext({ viewport: { width, height } }));
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push(`script error on ${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    // The pages' Content-Security-Policy must never have to block anything of the UI's own.
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) problems.push(`CSP on ${page.url()}: ${m.text()}`);
  });
  page.on('dialog', async (d) => {
    if (d.type() !== 'confirm') problems.push(`unexpected ${d.type()} dialog: ${d.message()}`);
    await d.accept();
  });
  return page;
}

/** Saves a full-page screenshot as tests/artifacts/ui/<name>.png. */
export async function shot(page, name) {
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

/** Marks the page so that a later check can tell it was never reloaded. */
export async function markLoaded(page) {
  await page.evaluate(() => { window.__loadedOnce = 'yes'; });
}

export async function assertNotReloaded(page) {
  assert.equal(await page.evaluate(() => window.__loadedOnce), 'yes', 'the page was reloaded');
}

/** Calls the server directly, as an API client (no browser headers). */
export async function apiCall(method, path, body, headers = {}) {
  const r = await fetch(BASE + path, {
    method,
    headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = JSON.parse(text); } catch { data = text; }
  return { status: r.status, data };
}

/** Queues a run through the legacy handle; returns its id. */
export async function runNow(query, headers = {}) {
  const { status, data } = await apiCall('POST', `/api/run_now?${query}`, undefined, headers);
  assert.equal(status, 200, JSON.stringify(data));
  return data.run_id;
}

export async function waitForPhase(page, phase, timeout = 60_000) {
  await page.locator(`#run-phase [data-phase="${phase}"]`).waitFor({ timeout });
}

/** The page is no wider than the screen (tables scroll inside their cards). */
export async function assertFitsScreen(page, what) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `${what} fits a phone screen (overflows by ${overflow}px)`);
}

export function assertNoProblems() {
  assert.deepEqual(problems, [], 'no script errors and no unexpected dialogs');
}

// The box of an element that live updates may replace or remove between the look-up and the
// measurement (boundingBox answers null for a detached element): measured again until it holds.
export async function stableBox(locator, tries = 20) {
  for (let i = 0; i < tries; i++) {
    await locator.waitFor({ state: 'visible' });
    const box = await locator.boundingBox();
    if (box) return box;
  }
  return null;
}
