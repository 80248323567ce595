// Core behaviour of the demo service. Run by Tomato with Node's built-in test runner.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

const attempt = Number(process.env.TOMATO_ATTEMPT ?? '1');

test('adds numbers', () => {
  assert.equal(1 + 2, 3);
});

test('formats prices', () => {
  assert.equal((1234.5).toFixed(2), '1234.50');
});

describe('cart', () => {
  test('totals line items', () => {
    const items = [{ price: 10, qty: 2 }, { price: 5, qty: 1 }];
    assert.equal(items.reduce((s, i) => s + i.price * i.qty, 0), 25);
  });

  // Always fails: a real product defect the report must show as failed.
  test('applies the discount', () => {
    const total = 100 * 0.9;
    assert.equal(total, 85, 'AssertionError: expected total 85 but was 90');
  });
});

// Flaky: fails on the first attempt only, as a test racing a slow page would.
test('submits the order form', () => {
  if (attempt === 1) {
    throw new Error('TimeoutError: waiting for selector "#submit" failed: timeout 3000ms exceeded');
  }
  assert.ok(true);
});

test('exports to PDF', { skip: 'the PDF service is not deployed on test stands' }, () => {});
