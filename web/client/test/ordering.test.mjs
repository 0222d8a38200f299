import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, record, subscribed, event } from './fake-pusher.mjs';

// A channel resumed from (E1, from) whose subscription starts live after `target`.
async function resumed(from, target, options) {
  const env = await setup(options);
  env.pusher.connection.open();
  env.ch = env.herald.subscribe('orders', { cursor: { epoch: 'E1', seq: from } });
  env.got = record(env.ch);
  env.pusher.receive(subscribed('orders', 'E1', target));
  return env;
}

test('duplicates are dropped, live or replayed', async () => {
  const { pusher, got } = await resumed(10, 12);
  for (const seq of [9, 10, 11, 11, 12, 12, 10, 13, 13]) pusher.receive(event('orders', seq));
  assert.deepEqual(got.seqs(), [11, 12, 13]);
});

test('events above a hole wait for the replay and are released in order', async () => {
  // The resume reached the server after live events had gone out (a resume
  // sent after subscription_succeeded): the older ones come after.
  const { pusher, got, clock } = await resumed(10, 13);
  pusher.receive(event('orders', 14));
  pusher.receive(event('orders', 15));
  assert.deepEqual(got.seqs(), []);
  pusher.receive(event('orders', 11));
  pusher.receive(event('orders', 13));
  assert.deepEqual(got.seqs(), [11]);
  pusher.receive(event('orders', 12));
  assert.deepEqual(got.seqs(), [11, 12, 13, 14, 15]);
  clock.advance(5000);
  assert.deepEqual(got.gaps, []);
  assert.equal(clock.pending(), 0);
});

test('a hole still open after gapWait is delivered past and reported', async () => {
  const onGap = [];
  const { pusher, got, clock, ch } = await resumed(10, 13, { onGap: (name, info) => onGap.push([name, info]) });
  pusher.receive(event('orders', 11));
  pusher.receive(event('orders', 14));
  pusher.receive(event('orders', 15));
  clock.advance(1999);
  assert.deepEqual(got.seqs(), [11]);
  clock.advance(1);
  assert.deepEqual(got.seqs(), [11, 14, 15]);
  const info = { reason: 'timeout', from: { epoch: 'E1', seq: 11 }, to: { epoch: 'E1', seq: 13 } };
  assert.deepEqual(got.gaps, [info]);
  assert.deepEqual(onGap, [['orders', info]]);
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 15 });
  // The resume is over: a late 12 or 13 is a duplicate now, jumps are normal.
  pusher.receive(event('orders', 12));
  pusher.receive(event('orders', 18));
  assert.deepEqual(got.seqs(), [11, 14, 15, 18]);
  assert.equal(got.gaps.length, 1);
});

test('the gap skips only to the hole: held events below the target are delivered after it', async () => {
  const { pusher, got, clock } = await resumed(10, 20);
  pusher.receive(event('orders', 11));
  pusher.receive(event('orders', 15)); // the replay itself has a hole at 12..14
  pusher.receive(event('orders', 16));
  clock.advance(2000);
  assert.deepEqual(got.gaps.map((g) => [g.from.seq, g.to.seq]), [[11, 14]]);
  assert.deepEqual(got.seqs(), [11, 15, 16]);
});

test('progress restarts the gap wait: a long replay is not a gap', async () => {
  const { pusher, got, clock } = await resumed(0, 100);
  pusher.receive(event('orders', 101)); // live, held until the replay ends
  for (let seq = 1; seq <= 100; seq++) {
    clock.advance(1500);
    pusher.receive(event('orders', seq));
  }
  assert.deepEqual(got.gaps, []);
  assert.equal(got.seqs().length, 101);
  assert.deepEqual(got.seqs().slice(-3), [99, 100, 101]);
});

test('outside a resume a jump in seq is delivered at once (socket_id exclusion)', async () => {
  const { pusher, herald, clock } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  const got = record(ch);
  pusher.receive(subscribed('orders', 'E1', 5));
  pusher.receive(event('orders', 6));
  pusher.receive(event('orders', 9));
  pusher.receive(event('orders', 10));
  assert.deepEqual(got.seqs(), [6, 9, 10]);
  clock.advance(10_000);
  assert.deepEqual(got.gaps, []);
});

test('above the target, jumps are exclusions: released once the replay is complete', async () => {
  const { pusher, got, clock } = await resumed(10, 12);
  pusher.receive(event('orders', 14)); // 13 was excluded by the publisher's socket_id
  pusher.receive(event('orders', 16));
  pusher.receive(event('orders', 11));
  assert.deepEqual(got.seqs(), [11]);
  pusher.receive(event('orders', 12));
  assert.deepEqual(got.seqs(), [11, 12, 14, 16]);
  pusher.receive(event('orders', 18));
  assert.deepEqual(got.seqs(), [11, 12, 14, 16, 18]);
  clock.advance(10_000);
  assert.deepEqual(got.gaps, []);
});

test('a resume that finds nothing missed is complete at once', async () => {
  const { pusher, got, clock } = await resumed(10, 10);
  pusher.receive(event('orders', 12));
  assert.deepEqual(got.seqs(), [12]);
  clock.advance(10_000);
  assert.deepEqual(got.gaps, []);
});

test('events of two channels are ordered independently', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const a = herald.subscribe('a', { cursor: { epoch: 'A', seq: 1 } });
  const b = herald.subscribe('b', { cursor: { epoch: 'B', seq: 7 } });
  const gotA = record(a);
  const gotB = record(b);
  pusher.receive(subscribed('a', 'A', 3));
  pusher.receive(subscribed('b', 'B', 8));
  pusher.receive(event('a', 3));
  pusher.receive(event('b', 8));
  pusher.receive(event('a', 2));
  pusher.receive(event('b', 9));
  assert.deepEqual(gotA.seqs(), [2, 3]);
  assert.deepEqual(gotB.seqs(), [8, 9]);
});

test('a long replay behind many held live events stays in order (and linear)', async () => {
  const { pusher, got } = await resumed(0, 20_000);
  for (let seq = 20_001; seq <= 25_000; seq++) pusher.receive(event('orders', seq));
  for (let seq = 1; seq <= 20_000; seq++) pusher.receive(event('orders', seq));
  const seqs = got.seqs();
  assert.equal(seqs.length, 25_000);
  assert.ok(seqs.every((s, i) => s === i + 1));
  assert.deepEqual(got.gaps, []);
});
