// Tomato's node preset suite (Node's built-in runner): every kind of outcome a rerun must handle.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';

const firstAttempt = () => (process.env.TOMATO_ATTEMPT ?? '1') === '1';

test('passes', () => {
  console.log('output of passes');
});

test('always fails', () => {
  assert.equal(1, 2, 'expected 1 but was 2');
});

test('flaky (fails on attempt 1)', () => {
  assert.equal(firstAttempt(), false);
});

test('skipped', { skip: 'not today' }, () => {});

describe('checkout', () => {
  test('refund passes', () => {});
  test('refund is flaky', () => {
    assert.equal(firstAttempt(), false);
  });
  describe('nested [deep] (group)', () => {
    test('deep flaky: a.b*c?', () => {
      assert.equal(firstAttempt(), false);
    });
  });
});

describe('setup error', () => {
  before(() => {
    throw new Error('the fixture could not connect');
  });
  test('never gets to run', () => {});
});

for (const value of ['with space', 'quote " and \' too', 'brackets [x]', 'slash/and\\back', 'кириллица', '$1 ^ | +']) {
  test(`odd param ${value}`, () => {
    assert.equal(firstAttempt(), false);
  });
}
