import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, record, subscribed, event } from './fake-pusher.mjs';

test('a fresh subscribe sends no resume and adopts the cursor from subscription_succeeded', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  assert.deepEqual(pusher.sentEvents().map((f) => f.event), ['pusher:subscribe']);
  assert.equal(ch.cursor(), null);
  pusher.receive(subscribed('orders', 'E1', 41));
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 41 });
  const got = record(ch);
  pusher.receive(event('orders', 42));
  assert.deepEqual(got.seqs(), [42]);
  assert.deepEqual(got.events[0], ['e', { n: 42 }, { seq: 42, epoch: 'E1' }]);
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 42 });
});

test('on reconnect every resume is sent before the resubscribes', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const a = herald.subscribe('orders');
  const b = herald.subscribe('invoices');
  const c = herald.subscribe('chat'); // not durable
  pusher.receive(subscribed('orders', 'E1', 5));
  pusher.receive(subscribed('invoices', 'E2', 0));
  pusher.receive(subscribed('chat'));
  pusher.receive(event('orders', 6));
  pusher.sent.length = 0;

  pusher.connection.drop();
  pusher.connection.open();
  assert.deepEqual(pusher.sent, [
    { event: 'herald:resume', data: { channel: 'orders', epoch: 'E1', seq: 6 } },
    { event: 'herald:resume', data: { channel: 'invoices', epoch: 'E2', seq: 0 } },
    { event: 'pusher:subscribe', data: { auth: '', channel: 'orders' } },
    { event: 'pusher:subscribe', data: { auth: '', channel: 'invoices' } },
    { event: 'pusher:subscribe', data: { auth: '', channel: 'chat' } },
  ]);
  assert.deepEqual(a.cursor(), { epoch: 'E1', seq: 6 });
  assert.deepEqual(b.cursor(), { epoch: 'E2', seq: 0 });
  assert.equal(c.cursor(), null);
});

test('a subscribe with a cursor while connected sends the resume right before pusher:subscribe', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  herald.subscribe('orders', { cursor: { epoch: 'E1', seq: 10 } });
  assert.deepEqual(pusher.sent, [
    { event: 'herald:resume', data: { channel: 'orders', epoch: 'E1', seq: 10 } },
    { event: 'pusher:subscribe', data: { auth: '', channel: 'orders' } },
  ]);
});

test('a subscribe with a cursor before connecting resumes when the connection comes up', async () => {
  const { pusher, herald } = await setup();
  herald.subscribe('orders', { cursor: { epoch: 'E1', seq: 10 } });
  assert.deepEqual(pusher.sent, []);
  pusher.connection.open();
  assert.deepEqual(pusher.sentEvents().map((f) => f.event), ['herald:resume', 'pusher:subscribe']);
});

test('the replay after a resume is delivered in order, then live events', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders', { cursor: { epoch: 'E1', seq: 10 } });
  const got = record(ch);
  pusher.receive(subscribed('orders', 'E1', 13));
  for (const seq of [11, 12, 13, 14, 15]) pusher.receive(event('orders', seq));
  assert.deepEqual(got.seqs(), [11, 12, 13, 14, 15]);
  assert.deepEqual(got.gaps, []);
});

test('an empty epoch is adopted from subscription_succeeded ("from the start")', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders', { cursor: { epoch: '', seq: 0 } });
  assert.deepEqual(pusher.sent[0], { event: 'herald:resume', data: { channel: 'orders', epoch: '', seq: 0 } });
  const got = record(ch);
  pusher.receive(subscribed('orders', 'E9', 2));
  assert.deepEqual(ch.cursor(), { epoch: 'E9', seq: 0 });
  pusher.receive(event('orders', 1));
  pusher.receive(event('orders', 2));
  pusher.receive(event('orders', 3));
  assert.deepEqual(got.seqs(), [1, 2, 3]);
  assert.deepEqual(got.events[0][2], { seq: 1, epoch: 'E9' });
});

test('a channel that turns out not durable is not resumed again', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('chat', { cursor: { epoch: 'E1', seq: 3 } });
  pusher.receive(subscribed('chat'));
  assert.equal(ch.cursor(), null);
  pusher.sent.length = 0;
  pusher.connection.drop();
  pusher.connection.open();
  assert.deepEqual(pusher.sentEvents().map((f) => f.event), ['pusher:subscribe']);
});

test('a seq on a channel without a known epoch starts a cursor in the current ("") epoch', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  const got = record(ch);
  pusher.receive(subscribed('orders')); // e.g. a durable channel with no history yet
  pusher.receive(event('orders', 1));
  pusher.receive(event('orders', 2));
  assert.deepEqual(got.seqs(), [1, 2]);
  assert.deepEqual(ch.cursor(), { epoch: '', seq: 2 });
  pusher.sent.length = 0;
  pusher.connection.drop();
  pusher.connection.open();
  assert.deepEqual(pusher.sent[0], { event: 'herald:resume', data: { channel: 'orders', epoch: '', seq: 2 } });
});

test('a drop during a resume discards held events and resumes again from the cursor', async () => {
  const { pusher, herald, clock } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders', { cursor: { epoch: 'E1', seq: 10 } });
  const got = record(ch);
  pusher.receive(subscribed('orders', 'E1', 20));
  pusher.receive(event('orders', 11));
  pusher.receive(event('orders', 13)); // held behind 12
  pusher.connection.drop();
  clock.advance(10_000); // no gap timer survives the connection
  assert.deepEqual(got.gaps, []);
  pusher.sent.length = 0;
  pusher.connection.open();
  assert.deepEqual(pusher.sent[0], { event: 'herald:resume', data: { channel: 'orders', epoch: 'E1', seq: 11 } });
  pusher.receive(subscribed('orders', 'E1', 20));
  for (let seq = 12; seq <= 21; seq++) pusher.receive(event('orders', seq));
  assert.deepEqual(got.seqs(), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]);
});

test('frames of the old transport are ignored after a reconnect', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const old = pusher.connection.transport;
  const ch = herald.subscribe('orders');
  const got = record(ch);
  pusher.receive(subscribed('orders', 'E1', 0));
  pusher.connection.drop();
  pusher.connection.open();
  old.receive(event('orders', 1));
  assert.deepEqual(got.seqs(), []);
  assert.equal(old.listeners('message'), 1); // only the fake's own Connection listener is left
});

test('unsubscribe stops delivery and resumes', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  const got = record(ch);
  pusher.receive(subscribed('orders', 'E1', 0));
  herald.unsubscribe('orders');
  assert.equal(herald.channel('orders'), undefined);
  assert.deepEqual(pusher.sentEvents('pusher:unsubscribe'), [
    { event: 'pusher:unsubscribe', data: { channel: 'orders' } },
  ]);
  pusher.receive(event('orders', 1));
  assert.deepEqual(got.seqs(), []);
  pusher.sent.length = 0;
  pusher.connection.drop();
  pusher.connection.open();
  assert.deepEqual(pusher.sent, []);
});

test('subscribing twice returns the same channel; a bad cursor throws', async () => {
  const { herald } = await setup();
  const ch = herald.subscribe('orders');
  assert.equal(herald.subscribe('orders'), ch);
  assert.equal(herald.channel('orders'), ch);
  assert.throws(() => herald.subscribe('x', { cursor: { epoch: 1, seq: 2 } }), TypeError);
  assert.throws(() => herald.subscribe('y', { cursor: { epoch: 'E', seq: -1 } }), TypeError);
  assert.throws(() => herald.subscribe('z', { cursor: { epoch: 'E', seq: 1.5 } }), TypeError);
});

test('a Herald created on an open connection reads its frames at once', async () => {
  const { FakePusher, FakeClock } = await import('./fake-pusher.mjs');
  const { Herald } = await import('../herald.js');
  const pusher = new FakePusher();
  pusher.connection.open();
  const clock = new FakeClock();
  const herald = new Herald(pusher, { setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
  const ch = herald.subscribe('orders', { cursor: { epoch: 'E1', seq: 1 } });
  const got = record(ch);
  assert.equal(pusher.sent[0].event, 'herald:resume');
  pusher.receive(subscribed('orders', 'E1', 2));
  pusher.receive(event('orders', 2));
  assert.deepEqual(got.seqs(), [2]);
});
