const { test, expect } = require('@playwright/test');
// Same name as a test of basics.spec.js: a rerun of that one must not run this one.
test('passes', () => {});
test('other file flaky', () => {
  expect((process.env.TOMATO_ATTEMPT || '1') === '1').toBe(false);
});
