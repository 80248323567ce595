const firstAttempt = () => (process.env.TOMATO_ATTEMPT || '1') === '1';
// Same name as a test of basics.test.js: a rerun of that one must not run this one.
test('passes', () => {});
test('other file flaky', () => {
  expect(firstAttempt()).toBe(false);
});
