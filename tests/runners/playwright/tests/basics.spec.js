// Tomato's playwright preset suite (no browser: plain test() without the page fixture).
const { test, expect } = require('@playwright/test');

const firstAttempt = () => (process.env.TOMATO_ATTEMPT || '1') === '1';

test('passes', () => {
  console.log('output of passes');
});

test('always fails', () => {
  expect(1).toBe(2);
});

test('flaky (fails on attempt 1)', () => {
  expect(firstAttempt()).toBe(false);
});

test.skip('skipped', () => {});

test.describe('checkout', () => {
  test('refund passes', () => {});
  test('refund is flaky', () => {
    expect(firstAttempt()).toBe(false);
  });
  test.describe('nested [deep] (group)', () => {
    test('deep flaky: a.b*c?', () => {
      expect(firstAttempt()).toBe(false);
    });
  });
});

test.describe('setup error', () => {
  test.beforeEach(() => {
    throw new Error('the fixture could not connect');
  });
  test('never gets to run', () => {});
});

for (const value of ['with space', 'quote " and \' too', 'brackets [x]', 'slash/and\\back', 'кириллица', '$1 ^ | +']) {
  test(`odd param ${value}`, () => {
    expect(firstAttempt()).toBe(false);
  });
}
