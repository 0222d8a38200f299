import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, subscribed } from './fake-pusher.mjs';

const refusal = (channel, status) => ({
  event: 'pusher:subscription_error',
  channel,
  data: JSON.stringify({ type: 'AuthError', error: 'temporarily unable to subscribe, retry', status }),
});

test('a subscription refused with 503 is retried with backoff and jitter, resuming from the cursor', async () => {
  const draws = [0.5, 0.25];
  const { pusher, herald, clock } = await setup({ random: () => draws.shift() ?? 1 });
  pusher.connection.open();
  herald.subscribe('orders', { cursor: { epoch: 'E1', seq: 7 } });
  pusher.sent.length = 0;
  pusher.receive(refusal('orders', 503));
  clock.advance(249); // 0.5 × 500 ms
  assert.deepEqual(pusher.sentEvents('pusher:subscribe'), []);
  clock.advance(1);
  assert.deepEqual(pusher.sent.map((f) => f.event), ['herald:resume', 'pusher:subscribe']);
  assert.deepEqual(pusher.sent[0].data, { channel: 'orders', epoch: 'E1', seq: 7 });
  // The second refusal waits for the doubled step: 0.25 × 1000 ms.
  pusher.sent.length = 0;
  pusher.receive(refusal('orders', 503));
  clock.advance(249);
  assert.equal(pusher.sentEvents('pusher:subscribe').length, 0);
  clock.advance(1);
  assert.equal(pusher.sentEvents('pusher:subscribe').length, 1);
  pusher.receive(subscribed('orders', 'E1', 9));
});

test('a subscription refused for good (403) is not retried', async () => {
  const { pusher, herald, clock } = await setup();
  pusher.connection.open();
  herald.subscribe('orders');
  pusher.sent.length = 0;
  pusher.receive(refusal('orders', 403));
  clock.advance(120_000);
  assert.deepEqual(pusher.sent, []);
});
