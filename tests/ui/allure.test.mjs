// Allure results on the run page, in a real browser: the allure-shop service (tests/ui.rs,
// tests/allure_shop) runs a real pytest suite with allure-pytest. The failed test shows its
// screenshot at the top, really loaded as an image; passed tests show their nested steps with
// status and duration, and their parameters; a refused attachment says why.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, newPage, shot, runNow, waitForPhase, assertNoProblems } from './lib.mjs';

after(assertNoProblems);

test('steps, parameters and the inline failure screenshot show on the run page', { timeout: 120_000 }, async () => {
  const id = await runNow('service=allure-shop&stand=localhost');
  const page = await newPage();
  await page.goto(`${BASE}/runs/${id}`);
  await waitForPhase(page, 'Failed', 90_000);
  await page.reload();

  // The failed test: its screenshot at the top of its cell, loaded (a real 96×64 PNG).
  const failed = page.locator('tr[data-verdict="failed"]');
  assert.equal(await failed.count(), 1);
  assert.match(await failed.locator('.test-name').innerText(), /test_declined_card/);
  const img = failed.locator('figure.failure-shot img');
  await img.waitFor();
  const size = await img.evaluate((i) => [i.complete, i.naturalWidth, i.naturalHeight]);
  assert.deepEqual(size, [true, 96, 64], 'the screenshot loaded as an image');
  // Above the message and the steps.
  const order = await failed.locator('td.test').evaluate((td) => {
    const kids = [...td.querySelectorAll('figure.failure-shot, details.trace, details.steps')];
    return kids.map((k) => k.className.split(' ')[0] || k.tagName);
  });
  assert.deepEqual(order, ['failure-shot', 'trace', 'steps']);
  // Its step's text attachment is a link to a download.
  const log = failed.locator('details.steps a.attachment.file', { hasText: 'server log' });
  assert.equal(await log.getAttribute('download'), '');
  assert.match(await failed.locator('.labels').innerText(), /owner: payments-team/);
  // A live update may re-render the results table while the screenshot is taken (the row is
  // then replaced by its twin): take it again from the new row.
  for (let tries = 1; ; tries++) {
    try {
      await failed.scrollIntoViewIfNeeded();
      await failed.screenshot({ path: `${process.env.TOMATO_UI_ARTIFACTS}/allure-failed-test.png` });
      break;
    } catch (e) {
      if (tries >= 3 || !/not attached to the DOM|not stable/.test(String(e))) throw e;
    }
  }

  // A passed, parametrised test: nested steps with status and duration, and its parameter.
  const total = page.locator('tr[data-verdict="passed"]', { hasText: 'test_total[3]' });
  const outer = total.locator('details.steps > ol.steps > li.step').first();
  assert.match(await outer.locator('> .step-name').innerText(), /add 3 items/);
  assert.equal((await outer.locator('> .badge').innerText()).trim(), 'passed');
  assert.match(await outer.innerText(), /\d+ ms/);
  const inner = await outer.locator('> ol.steps > li.step > .step-name').allInnerTexts();
  assert.deepEqual(inner, ['open the cart', 'check the total']);
  assert.equal(await total.locator('dl.params dt').innerText(), 'qty');
  assert.equal(await total.locator('dl.params dd').innerText(), '3');

  // Over the service's per-test limit: said, not silently dropped.
  const receipt = page.locator('tr', { hasText: 'test_receipt_download' });
  assert.match(await receipt.locator('.attachment.refused').innerText(), /receipt\.bin: not kept .*64\.0 KB of attachments per test/);

  await shot(page, 'allure-run-page');
});
