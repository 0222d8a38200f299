// 5. Client events: delivered to other subscribers only, user_id on presence,
//    refused on public channels, rate-limited at 10/s with pusher:error 4301.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, QUIET_MS, sleep } from '../lib/clients.mjs';

const NO_CLIENT_EVENTS = {
  id: 'appquiet',
  key: 'key-quiet',
  secret: 'secret-quiet',
  name: 'Client events off',
  settings: { features: { client_events: false } },
};
const h = useHerald({ apps: [APP1, NO_CLIENT_EVENTS] });

test('client events on a private channel reach other subscribers and are not echoed', async () => {
  const name = uniq('private-chat');
  const sender = await connectPusher(h, { label: 'sender' });
  const other = await connectPusher(h, { label: 'other' });
  const third = await connectPusher(h, { label: 'third' });
  for (const c of [sender, other, third]) await c.subscribe(name);
  const echo = sender.record(name, 'client-typing');
  const got = other.record(name, 'client-typing');
  const got3 = third.record(name, 'client-typing');

  assert.equal(sender.pusher.channel(name).trigger('client-typing', { typing: true }), true);

  const ev = await got.take();
  assert.deepEqual(ev.data, { typing: true });
  assert.equal(ev.metadata && ev.metadata.user_id, undefined, 'no user_id on private channels');
  assert.deepEqual((await got3.take()).data, { typing: true });
  await sleep(QUIET_MS);
  assert.equal(echo.all.length, 0, 'client event must not be echoed to its sender');
  assert.equal(sender.errors.all.length, 0, `sender got errors: ${JSON.stringify(sender.errors.all)}`);
});

test('client events on a presence channel carry metadata.user_id of the sender', async () => {
  const name = uniq('presence-game');
  const sender = await connectPusher(h, { user: { user_id: 'u1', user_info: { name: 'A' } }, label: 'u1' });
  const sameUser = await connectPusher(h, { user: { user_id: 'u1', user_info: { name: 'A' } }, label: 'u1-second' });
  const other = await connectPusher(h, { user: { user_id: 'u2' }, label: 'u2' });
  for (const c of [sender, sameUser, other]) await c.subscribe(name);
  const echo = sender.record(name, 'client-moved');
  const got = other.record(name, 'client-moved');
  const gotSame = sameUser.record(name, 'client-moved');

  sender.pusher.channel(name).trigger('client-moved', { x: 1, y: 2 });

  const ev = await got.take();
  assert.deepEqual(ev.data, { x: 1, y: 2 });
  assert.equal(ev.metadata.user_id, 'u1');
  // Another connection of the same user is another subscriber: it gets it too.
  const evSame = await gotSame.take();
  assert.equal(evSame.metadata.user_id, 'u1');
  await sleep(QUIET_MS);
  assert.equal(echo.all.length, 0, 'client event must not be echoed to its sender');
});

test('client event on a public channel → connection error PusherError with code null', async () => {
  const name = uniq('public-chat');
  const sender = await connectPusher(h, { label: 'sender' });
  const other = await connectPusher(h, { label: 'other' });
  await sender.subscribe(name);
  await other.subscribe(name);
  const got = other.record(name, 'client-hello');

  sender.pusher.channel(name).trigger('client-hello', { hi: 1 });

  const err = await sender.errors.take();
  assert.equal(err.type, 'PusherError');
  assert.equal(err.data.code, null);
  assert.equal(typeof err.data.message, 'string');
  assert.ok(err.data.message.length > 0);
  await sleep(QUIET_MS);
  assert.equal(got.all.length, 0, 'client event on a public channel must not be delivered');
  assert.equal(sender.state, 'connected');
});

test('client event on a channel the sender has not subscribed to is not delivered', async () => {
  const name = uniq('private-not-mine');
  const sender = await connectPusher(h, { label: 'sender' });
  const member = await connectPusher(h, { label: 'member' });
  await member.subscribe(name);
  const got = member.record(name, 'client-sneak');

  sender.pusher.send_event('client-sneak', { x: 1 }, name);

  // Positive control: once subscribed, the same sender's client events do arrive.
  await sender.subscribe(name);
  sender.pusher.channel(name).trigger('client-sneak', { x: 2 });
  const ev = await got.take();
  assert.deepEqual(ev.data, { x: 2 }, 'the event sent before subscribing must not be delivered');
  await sleep(QUIET_MS);
  assert.equal(got.all.length, 1);
  assert.equal(sender.state, 'connected');
});

test('client events: more than 10 per second get pusher:error 4301 and the connection stays open', async () => {
  const name = uniq('private-burst');
  const sender = await connectPusher(h, { label: 'sender' });
  const other = await connectPusher(h, { label: 'other' });
  await sender.subscribe(name);
  await other.subscribe(name);
  const got = other.record(name, 'client-tick');
  const closes = [];
  sender.pusher.connection.bind('state_change', (s) => closes.push(s));

  const N = 25;
  const channel = sender.pusher.channel(name);
  for (let i = 0; i < N; i++) channel.trigger('client-tick', { i });

  // At least 10 pass, the rest are refused with 4301 (a window straddling a
  // second boundary may let up to 20 through).
  await got.take((e) => e.data.i === 9, { what: 'the 10th event' });
  const firstRefusal = await sender.errors.take((e) => e.data && e.data.code === 4301, { what: 'pusher:error 4301' });
  assert.equal(firstRefusal.type, 'PusherError');
  await sleep(500);
  const refused = sender.errors.filter((e) => e.data && e.data.code === 4301).length;
  const delivered = got.all.length;
  assert.ok(delivered >= 10 && delivered <= 20, `delivered ${delivered} of ${N}`);
  assert.equal(delivered + refused, N, `delivered ${delivered} + refused ${refused} should be ${N}`);
  // Events are delivered in order, the first 10 all pass.
  assert.deepEqual(got.all.slice(0, 10).map((e) => e.data.i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  // Never disconnected by the rate limit.
  assert.equal(sender.state, 'connected');
  assert.deepEqual(closes, [], `unexpected state changes: ${JSON.stringify(closes)}`);

  // The limit is per connection: the other subscriber can still send right now.
  const back = sender.record(name, 'client-reply');
  other.pusher.channel(name).trigger('client-reply', { ok: true });
  assert.deepEqual((await back.take()).data, { ok: true });

  // After the window passes, client events flow again on the same connection.
  await sleep(1100);
  const socketBefore = sender.socketId;
  channel.trigger('client-tick', { i: 'later' });
  await got.take((e) => e.data.i === 'later', { what: 'an event after the rate window' });
  assert.equal(sender.socketId, socketBefore);
  assert.equal(sender.state, 'connected');
});

test('client events disabled for the app → pusher:error code null, not delivered', async () => {
  const name = uniq('private-quiet');
  const sender = await connectPusher(h, { app: NO_CLIENT_EVENTS, label: 'sender' });
  const other = await connectPusher(h, { app: NO_CLIENT_EVENTS, label: 'other' });
  await sender.subscribe(name);
  await other.subscribe(name);
  const got = other.record(name, 'client-psst');
  sender.pusher.channel(name).trigger('client-psst', { a: 1 });
  const err = await sender.errors.take();
  assert.equal(err.type, 'PusherError');
  assert.equal(err.data.code, null);
  await sleep(QUIET_MS);
  assert.equal(got.all.length, 0);
  assert.equal(sender.state, 'connected');
});
