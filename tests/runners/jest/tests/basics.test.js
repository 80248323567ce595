// Tomato's jest preset suite: every kind of outcome a rerun must handle.
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

describe('checkout', () => {
  test('refund passes', () => {});
  test('refund is flaky', () => {
    expect(firstAttempt()).toBe(false);
  });
  describe('nested [deep] (group)', () => {
    test('deep flaky: a.b*c?', () => {
      expect(firstAttempt()).toBe(false);
    });
  });
});

describe('setup error', () => {
  beforeEach(() => {
    throw new Error('the fixture could not connect');
  });
  test('never gets to run', () => {});
});

test.each(['with space', 'quote " and \' too', 'brackets [x]', 'slash/and\\back', 'кириллица', '$1 ^ | +'])(
  'odd param %s',
  (value) => {
    expect(firstAttempt()).toBe(false);
  },
);
