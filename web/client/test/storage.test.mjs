import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, record, subscribed, event } from './fake-pusher.mjs';
import { Herald } from '../herald.js';

function memoryStorage(initial = {}) {
  const data = new Map(Object.entries(initial));
  return {
    data,
    writes: [],
    get(name) {
      return data.get(name) ?? null;
    },
    set(name, cursor) {
      this.writes.push([name, cursor]);
      data.set(name, cursor);
    },
  };
}

test('the cursor is stored as it moves, after the handlers ran', async () => {
  const storage = memoryStorage();
  const { pusher, herald } = await setup({ storage });
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  const storedDuringHandler = [];
  ch.bind('e', () => storedDuringHandler.push(storage.get('orders').seq));
  pusher.receive(subscribed('orders', 'E1', 4));
  assert.deepEqual(storage.get('orders'), { epoch: 'E1', seq: 4 });
  pusher.receive(event('orders', 5));
  pusher.receive(event('orders', 6));
  assert.deepEqual(storage.get('orders'), { epoch: 'E1', seq: 6 });
  assert.deepEqual(storedDuringHandler, [4, 5]);
});

test('a stored cursor is resumed from, as after a page reload', async () => {
  const storage = memoryStorage({ orders: { epoch: 'E1', seq: 7 } });
  const { pusher, herald } = await setup({ storage });
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  const got = record(ch);
  assert.deepEqual(pusher.sent[0], { event: 'herald:resume', data: { channel: 'orders', epoch: 'E1', seq: 7 } });
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 7 });
  pusher.receive(subscribed('orders', 'E1', 9));
  pusher.receive(event('orders', 8));
  pusher.receive(event('orders', 9));
  assert.deepEqual(got.seqs(), [8, 9]);
  assert.deepEqual(storage.get('orders'), { epoch: 'E1', seq: 9 });
});

test('an explicit cursor wins over the stored one; a corrupt stored one is ignored', async () => {
  const storage = memoryStorage({ orders: { epoch: 'E1', seq: 7 }, invoices: { seq: 'x' } });
  const { pusher, herald } = await setup({ storage });
  pusher.connection.open();
  herald.subscribe('orders', { cursor: { epoch: 'E1', seq: 3 } });
  herald.subscribe('invoices');
  assert.deepEqual(pusher.sent, [
    { event: 'herald:resume', data: { channel: 'orders', epoch: 'E1', seq: 3 } },
    { event: 'pusher:subscribe', data: { auth: '', channel: 'orders' } },
    { event: 'pusher:subscribe', data: { auth: '', channel: 'invoices' } },
  ]);
});

test('gaps and epoch changes are stored; unsubscribe keeps the stored cursor', async () => {
  const storage = memoryStorage({ orders: { epoch: 'E1', seq: 7 } });
  const { pusher, herald } = await setup({ storage });
  pusher.connection.open();
  herald.subscribe('orders');
  pusher.receive(subscribed('orders', 'E2', 2));
  pusher.receive({
    event: 'herald:resume_failed',
    channel: 'orders',
    data: JSON.stringify({ reason: 'epoch_changed', epoch: 'E2', seq: 2 }),
  });
  assert.deepEqual(storage.get('orders'), { epoch: 'E2', seq: 2 });
  herald.unsubscribe('orders');
  assert.deepEqual(storage.get('orders'), { epoch: 'E2', seq: 2 });
});

test('non-durable channels store nothing', async () => {
  const storage = memoryStorage();
  const { pusher, herald } = await setup({ storage });
  pusher.connection.open();
  herald.subscribe('chat');
  pusher.receive(subscribed('chat'));
  pusher.receive({ event: 'msg', channel: 'chat', data: '{}' });
  assert.deepEqual(storage.writes, []);
});

test('a throwing storage does not stop delivery', async (t) => {
  t.mock.method(globalThis, 'queueMicrotask', () => {});
  const storage = { get: () => null, set: () => { throw new Error('quota'); } };
  const { pusher, herald } = await setup({ storage });
  pusher.connection.open();
  const got = record(herald.subscribe('orders'));
  pusher.receive(subscribed('orders', 'E1', 0));
  pusher.receive(event('orders', 1));
  pusher.receive(event('orders', 2));
  assert.deepEqual(got.seqs(), [1, 2]);
});

test('Herald.localStorage stores JSON under a prefix', (t) => {
  const items = new Map();
  globalThis.localStorage = {
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => items.set(k, String(v)),
  };
  t.after(() => delete globalThis.localStorage);
  const storage = Herald.localStorage('app1:');
  assert.equal(storage.get('orders'), null);
  storage.set('orders', { epoch: 'E1', seq: 3 });
  assert.equal(items.get('app1:orders'), '{"epoch":"E1","seq":3}');
  assert.deepEqual(storage.get('orders'), { epoch: 'E1', seq: 3 });
  items.set('app1:bad', '{oops');
  assert.equal(storage.get('bad'), null);
  assert.deepEqual(Herald.localStorage().get('orders'), null); // default prefix "herald:"
  Herald.localStorage().set('orders', { epoch: 'E', seq: 1 });
  assert.equal(items.get('herald:orders'), '{"epoch":"E","seq":1}');
});

test('Herald.localStorage without localStorage stores nothing and never throws', () => {
  assert.equal(globalThis.localStorage, undefined);
  const storage = Herald.localStorage();
  assert.equal(storage.get('orders'), null);
  assert.doesNotThrow(() => storage.set('orders', { epoch: 'E', seq: 1 }));
});
