import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, record, subscribed, event, resumeFailed } from './fake-pusher.mjs';

async function resumed(from, target, options, epoch = 'E1') {
  const env = await setup(options);
  env.pusher.connection.open();
  env.ch = env.herald.subscribe('orders', { cursor: { epoch: 'E1', seq: from } });
  env.got = record(env.ch);
  env.pusher.receive(subscribed('orders', epoch, target));
  env.pusher.sent.length = 0;
  return env;
}

for (const reason of ['expired', 'too_far_behind']) {
  test(`resume_failed "${reason}" is a gap: the cursor moves and live events follow`, async () => {
    const onGap = [];
    const { pusher, got, ch, clock } = await resumed(10, 500, { onGap: (name, info) => onGap.push([name, info]) });
    pusher.receive(resumeFailed('orders', reason, 'E1', 500));
    const info = { reason, from: { epoch: 'E1', seq: 10 }, to: { epoch: 'E1', seq: 500 } };
    assert.deepEqual(got.gaps, [info]);
    assert.deepEqual(onGap, [['orders', info]]);
    assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 500 });
    pusher.receive(event('orders', 501));
    pusher.receive(event('orders', 503)); // not resuming any more: a jump is fine
    assert.deepEqual(got.seqs(), [501, 503]);
    clock.advance(60_000);
    assert.equal(got.gaps.length, 1);
    assert.deepEqual(pusher.sent, []); // no retry
    assert.equal(got.events.some(([name]) => name.startsWith('herald:')), false);
  });
}

test('resume_failed "epoch_changed" moves the cursor to the new epoch', async () => {
  const { pusher, got, ch } = await resumed(10, 3, undefined, 'E2');
  pusher.receive(resumeFailed('orders', 'epoch_changed', 'E2', 3));
  assert.deepEqual(got.gaps, [{ reason: 'epoch_changed', from: { epoch: 'E1', seq: 10 }, to: { epoch: 'E2', seq: 3 } }]);
  assert.deepEqual(ch.cursor(), { epoch: 'E2', seq: 3 });
  pusher.receive(event('orders', 4)); // below the old seq 10, but in the new epoch
  assert.deepEqual(got.seqs(), [4]);
  assert.deepEqual(got.events[0][2], { seq: 4, epoch: 'E2' });
});

test('live events held when resume_failed arrives late are released after it', async () => {
  const { pusher, got } = await resumed(10, 500);
  pusher.receive(event('orders', 502));
  pusher.receive(event('orders', 501));
  pusher.receive(event('orders', 499)); // older than the new cursor: dropped
  pusher.receive(resumeFailed('orders', 'expired', 'E1', 500));
  assert.deepEqual(got.seqs(), [501, 502]);
});

test('resume_failed never moves the cursor back within an epoch', async () => {
  const { pusher, got, ch } = await resumed(10, 12);
  pusher.receive(event('orders', 11));
  pusher.receive(resumeFailed('orders', 'expired', 'E1', 5));
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 11 });
  pusher.receive(event('orders', 6));
  pusher.receive(event('orders', 12));
  assert.deepEqual(got.seqs(), [11, 12]);
});

test('"unavailable" retries with exponential backoff, capped, with full jitter', async () => {
  const randoms = [1, 0.5, 0.25, 1, 1, 1, 1, 1, 1, 1];
  const { pusher, clock, got } = await resumed(10, 20, { random: () => randoms.shift() });
  const resume = { event: 'herald:resume', data: { channel: 'orders', epoch: 'E1', seq: 10 } };
  const expected = [500, 500, 500, 4000, 8000, 16000, 30000, 30000, 30000];
  // random * min(30000, 500 * 2^n): 1*500, 0.5*1000, 0.25*2000, 1*4000, ...
  for (const delay of expected) {
    pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 20));
    assert.deepEqual(pusher.sent, []);
    assert.equal(clock.delays.at(-1), delay);
    clock.advance(delay - 1);
    assert.deepEqual(pusher.sent, []);
    clock.advance(1);
    assert.deepEqual(pusher.sent, [resume]);
    pusher.sent.length = 0;
  }
  assert.deepEqual(got.gaps, []); // nothing skipped on a quiet channel, however long it takes
  // The history is back: the replay completes the resume and stops retrying.
  for (let seq = 11; seq <= 21; seq++) pusher.receive(event('orders', seq));
  assert.deepEqual(got.seqs(), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]);
  clock.advance(120_000);
  assert.deepEqual(pusher.sent, []);
  assert.equal(clock.pending(), 0);
});

test('the backoff starts over on a new connection', async () => {
  const { pusher, clock } = await resumed(10, 20);
  pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 20));
  clock.advance(500);
  pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 20));
  assert.equal(clock.delays.at(-1), 1000);
  clock.advance(1000);
  for (let seq = 11; seq <= 20; seq++) pusher.receive(event('orders', seq));
  // A new connection, a new failure: back to the first step.
  pusher.connection.drop();
  pusher.connection.open();
  pusher.receive(subscribed('orders', 'E1', 30));
  pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 30));
  assert.equal(clock.delays.at(-1), 500);
});

test('"unavailable" with live traffic: events wait gapWait, then a gap with that reason', async () => {
  const { pusher, clock, got, ch } = await resumed(10, 20);
  pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 20));
  pusher.receive(event('orders', 21));
  pusher.receive(event('orders', 22));
  clock.advance(500); // the first retry goes out and fails again
  assert.equal(pusher.sentEvents('herald:resume').length, 1);
  pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 22));
  clock.advance(1500);
  assert.deepEqual(got.seqs(), [21, 22]);
  assert.deepEqual(got.gaps, [{ reason: 'unavailable', from: { epoch: 'E1', seq: 10 }, to: { epoch: 'E1', seq: 20 } }]);
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 22 });
  pusher.sent.length = 0;
  clock.advance(120_000);
  assert.deepEqual(pusher.sent, []); // no more retries once past the hole
});

test('a retry that succeeds releases the held live events in order', async () => {
  const { pusher, clock, got } = await resumed(10, 12);
  pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 12));
  pusher.receive(event('orders', 13));
  clock.advance(500);
  pusher.receive(event('orders', 11));
  pusher.receive(event('orders', 12));
  assert.deepEqual(got.seqs(), [11, 12, 13]);
  clock.advance(10_000);
  assert.deepEqual(got.gaps, []);
});

test('no retry is sent while disconnected; the reconnect resumes instead', async () => {
  const { pusher, clock } = await resumed(10, 20);
  pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 20));
  pusher.connection.drop();
  clock.advance(60_000);
  assert.deepEqual(pusher.sent, []);
  pusher.connection.open();
  assert.deepEqual(pusher.sentEvents().map((f) => f.event), ['herald:resume', 'pusher:subscribe']);
});

test('"unavailable" when nothing was missed needs no retry', async () => {
  const { pusher, clock, got } = await resumed(20, 20);
  pusher.receive(resumeFailed('orders', 'unavailable', 'E1', 20));
  clock.advance(60_000);
  assert.deepEqual(pusher.sent, []);
  assert.deepEqual(got.gaps, []);
});

test('malformed resume_failed data is ignored', async () => {
  const { pusher, got, ch } = await resumed(10, 12);
  pusher.receive({ event: 'herald:resume_failed', channel: 'orders', data: 'nonsense' });
  pusher.receive({ event: 'herald:resume_failed', channel: 'orders', data: '{"reason":"expired"}' });
  assert.deepEqual(got.gaps, []);
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 10 });
});

test('resume_failed "unknown_position" moves the cursor back to the server\'s position', async () => {
  const { pusher, got, ch } = await resumed(10, 3);
  pusher.receive(resumeFailed('orders', 'unknown_position', 'E1', 3));
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 3 });
  assert.deepEqual(got.gaps, [{ reason: 'unknown_position', from: { epoch: 'E1', seq: 10 }, to: { epoch: 'E1', seq: 3 } }]);
  pusher.receive(event('orders', 4));
  assert.deepEqual(got.seqs(), [4]);
});
