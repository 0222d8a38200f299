import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, record, subscribed, event, FakePusher, FakeClock } from './fake-pusher.mjs';
import { Herald } from '../herald.js';

test('events of non-durable channels pass through, data decoded as pusher-js does', async () => {
  const { pusher, herald, clock } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('chat');
  const got = record(ch);
  pusher.receive(subscribed('chat'));
  pusher.receive({ event: 'msg', channel: 'chat', data: '{"text":"hi"}' });
  pusher.receive({ event: 'msg', channel: 'chat', data: 'plain text' });
  pusher.receive({ event: 'msg', channel: 'chat', data: { already: 'object' } });
  pusher.receive({ event: 'msg', channel: 'chat', data: '42' });
  pusher.receive({ event: 'client-typing', channel: 'chat', data: '{}', user_id: 'u1' });
  assert.deepEqual(got.events, [
    ['msg', { text: 'hi' }, {}],
    ['msg', 'plain text', {}],
    ['msg', { already: 'object' }, {}],
    ['msg', 42, {}],
    ['client-typing', {}, { user_id: 'u1' }],
  ]);
  clock.advance(10_000);
  assert.deepEqual(got.gaps, []);
});

test('bind, bind_global and unbind follow pusher-js', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  pusher.receive(subscribed('orders', 'E1', 0));
  const calls = [];
  const a = (data, meta) => calls.push(['a', data, meta.seq]);
  const b = (data) => calls.push(['b', data.n]);
  const g = (name, data, meta) => calls.push(['g', name, meta.seq]);
  ch.bind('created', a).bind('created', b).bind('other', a).bind_global(g);
  pusher.receive(event('orders', 1, { n: 1 }, 'created'));
  assert.deepEqual(calls, [['g', 'created', 1], ['a', { n: 1 }, 1], ['b', 1]]);
  calls.length = 0;
  ch.unbind('created', a);
  pusher.receive(event('orders', 2, { n: 2 }, 'created'));
  assert.deepEqual(calls, [['g', 'created', 2], ['b', 2]]);
  calls.length = 0;
  ch.unbind('created');
  ch.unbind_global(g);
  pusher.receive(event('orders', 3, { n: 3 }, 'created'));
  pusher.receive(event('orders', 4, { n: 4 }, 'other'));
  assert.deepEqual(calls, [['a', { n: 4 }, 4]]);
  calls.length = 0;
  ch.bind_global(g).unbind_all();
  pusher.receive(event('orders', 5, { n: 5 }, 'other'));
  assert.deepEqual(calls, []);
});

test('internal events are not delivered; subscription results are re-emitted', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('presence-room');
  const names = [];
  ch.bind_global((name) => names.push(name));
  let succeeded = null;
  ch.bind('pusher:subscription_succeeded', (data) => (succeeded = data));
  pusher.receive({ event: 'pusher_internal:subscription_succeeded', channel: 'presence-room', data: '{"x":1}' });
  pusher.receive({ event: 'pusher_internal:member_added', channel: 'presence-room', data: '{}' });
  pusher.receive({ event: 'pusher_internal:subscription_count', channel: 'presence-room', data: '{}' });
  pusher.receive({ event: 'pusher:signin_success', channel: 'presence-room', data: '{}' });
  pusher.receive({ event: 'herald:something_new', channel: 'presence-room', data: '{}' });
  pusher.receive({ event: 'visible', channel: 'presence-room', data: '{}' });
  pusher.channel('presence-room').emit('pusher:subscription_error', { type: 'AuthError', status: 403 });
  assert.deepEqual(names, ['pusher:subscription_succeeded', 'visible', 'pusher:subscription_error']);
  assert.deepEqual(succeeded, { x: 1 });
});

test('frames of other channels and unparsable frames are ignored', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  const got = record(ch);
  pusher.receive(subscribed('orders', 'E1', 0));
  pusher.connection.transport.emit('message', { data: 'not json' });
  pusher.connection.transport.emit('message', { data: '{"event":"pusher:pong","data":{}}' });
  pusher.receive(event('invoices', 1));
  assert.deepEqual(got.events, []);
});

test('a throwing handler does not stop the others; its error still surfaces', async (t) => {
  const { pusher, herald } = await setup();
  const thrown = [];
  t.mock.method(globalThis, 'queueMicrotask', (fn) => {
    try {
      fn();
    } catch (err) {
      thrown.push(err.message);
    }
  });
  pusher.connection.open();
  const ch = herald.subscribe('orders');
  pusher.receive(subscribed('orders', 'E1', 0));
  const seen = [];
  ch.bind('e', () => {
    throw new Error('boom');
  });
  ch.bind('e', (data, meta) => seen.push(meta.seq));
  pusher.receive(event('orders', 1));
  pusher.receive(event('orders', 2));
  assert.deepEqual(seen, [1, 2]);
  assert.deepEqual(thrown, ['boom', 'boom']);
  assert.deepEqual(ch.cursor(), { epoch: 'E1', seq: 2 });
});

test('without the transport internals: one warning, plain pusher-js delivery, no resume', async (t) => {
  const warn = t.mock.method(console, 'warn', () => {});
  const pusher = new FakePusher();
  const clock = new FakeClock();
  const herald = new Herald(pusher, { setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
  const ch = herald.subscribe('orders', { cursor: { epoch: 'E1', seq: 10 } });
  const got = record(ch);
  let succeeded = 0;
  ch.bind('pusher:subscription_succeeded', () => succeeded++);
  pusher.connection.open({ withTransport: false });
  assert.deepEqual(pusher.sentEvents().map((f) => f.event), ['pusher:subscribe']);
  // Frames reach pusher-js's decoder (which drops seq); the plugin relays them.
  pusher.connection.transport.receive(subscribed('orders', 'E1', 12));
  pusher.connection.transport.receive(event('orders', 11));
  pusher.connection.transport.receive(event('orders', 11));
  assert.deepEqual(got.events, [['e', { n: 11 }, {}], ['e', { n: 11 }, {}]]);
  assert.equal(succeeded, 1);
  pusher.connection.drop();
  pusher.connection.open({ withTransport: false });
  assert.equal(warn.mock.callCount(), 1);
  assert.equal(pusher.sentEvents('herald:resume').length, 0);
});

test('encrypted channels pass through pusher-js, which decrypts them, without resume', async () => {
  const { pusher, herald } = await setup();
  pusher.connection.open();
  const ch = herald.subscribe('private-encrypted-x', { cursor: { epoch: 'E1', seq: 1 } });
  assert.deepEqual(pusher.sentEvents().map((f) => f.event), ['pusher:subscribe']);
  const got = record(ch);
  // The fake "decrypts" nothing: it shows the event comes from pusher-js, once.
  pusher.receive({ event: 'secret', channel: 'private-encrypted-x', data: '{"plain":true}', seq: 2 });
  assert.deepEqual(got.events, [['secret', { plain: true }, {}]]);
});

test('Herald needs a pusher-js instance', () => {
  assert.throws(() => new Herald(null), TypeError);
  assert.throws(() => new Herald({}), TypeError);
});
