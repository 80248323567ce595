// One slow test (about five seconds), so a queue can be watched live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

test('waits for the nightly export', async () => {
  await sleep(5000);
  assert.ok(true);
});
