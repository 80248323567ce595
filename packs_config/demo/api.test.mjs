// Backend calls of the demo service. One test connects to a closed port, failing the way
// a test does when its stand's backend is down (connection refused).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

function connect(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.end();
      resolve();
    });
    socket.on('error', reject);
  });
}

test('stand is named', () => {
  assert.ok((process.env.TOMATO_STAND ?? '').length > 0, 'TOMATO_STAND is set');
});

test('talks to the billing backend', async () => {
  await connect(1); // nothing listens on port 1: ECONNREFUSED
});
