// 8. Protocol errors with raw WebSocket clients. Every raw connection is checked
//    (in rawConnect) to start with pusher:connection_established or a 4xxx
//    pusher:error. A healthy pusher-js client must be unaffected throughout.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { rawConnect, connectPusher, createPusher, sdkFor, call, QUIET_MS, sleep, pusherErrorCode } from '../lib/clients.mjs';

const DISABLED = { id: 'appoff', key: 'key-off', secret: 'secret-off', name: 'Disabled', enabled: false };
const h = useHerald({ apps: [APP1, DISABLED] });

/** A fresh healthy client on a public channel; call assertHealthy() after the bad client's errors. */
async function healthyBystander() {
  const client = await connectPusher(h, { label: 'healthy-bystander' });
  const name = uniq('healthy');
  await client.subscribe(name);
  const got = client.record(name, 'heartbeat');
  return {
    async assertHealthy() {
      const n = Math.random();
      const res = await call(sdkFor(h, APP1).trigger(name, 'heartbeat', { n }));
      assert.equal(res.status, 200, res.text);
      assert.deepEqual((await got.take((e) => e.data.n === n)).data, { n });
      assert.equal(client.state, 'connected');
      assert.equal(client.errors.all.length, 0, `bystander saw errors: ${JSON.stringify(client.errors.all)}`);
    },
  };
}

async function expectFatal(opts, code) {
  const c = await rawConnect(h, opts);
  const first = await c.next();
  assert.equal(first.event, 'pusher:error', `first frame: ${first.raw}`);
  assert.equal(first.payload.code, code, `first frame: ${first.raw}`);
  assert.equal(typeof first.payload.message, 'string');
  const closed = await c.waitClose();
  assert.equal(closed.code, code, `close code ${closed.code} "${closed.reason}"`);
  assert.equal(c.seen('pusher:connection_established').length, 0);
}

test('unknown app key → pusher:error 4001 then close 4001', async () => {
  const bystander = await healthyBystander();
  await expectFatal({ key: 'no-such-key' }, 4001);
  await bystander.assertHealthy();
});

test('disabled app → pusher:error 4003 then close 4003', async () => {
  await expectFatal({ key: DISABLED.key }, 4003);
});

test('unsupported protocol version (protocol=3) → 4007', async () => {
  await expectFatal({ key: APP1.key, query: 'protocol=3&client=js&version=8.6.0' }, 4007);
});

test('missing protocol version → 4008', async () => {
  await expectFatal({ key: APP1.key, query: 'client=js&version=8.6.0' }, 4008);
});

test('protocol versions 5, 6 and 7 are accepted', async () => {
  for (const v of [5, 6, 7]) {
    const c = await rawConnect(h, { key: APP1.key, query: `protocol=${v}` });
    assert.equal(c.first.event, 'pusher:connection_established', `protocol=${v}: ${c.first.raw}`);
  }
});

test('pusher-js gives up on an unknown key (PusherError 4001, state disconnected, no retry)', async () => {
  const c = createPusher(h, { app: { ...APP1, key: 'unknown-key-js' }, label: 'pusher-js-bad-key' });
  const err = await c.errors.take((e) => pusherErrorCode(e) !== undefined, { what: 'a PusherError' });
  assert.equal(pusherErrorCode(err), 4001, JSON.stringify(err));
  await c.waitForState('disconnected');
  await sleep(1500);
  assert.equal(c.state, 'disconnected');
  assert.equal(c.states.filter((s) => s.current === 'connected').length, 0);
});

test('malformed JSON frame → pusher:error code null; the connection stays open and works', async () => {
  const bystander = await healthyBystander();
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  c.sendText('{"event":"pusher:ping", this is not json');
  const err = await c.next('pusher:error');
  assert.equal(err.payload.code, null, err.raw);
  assert.equal(typeof err.payload.message, 'string');
  assert.ok(c.isOpen);
  await c.ping();
  // And it can still subscribe and receive.
  const name = uniq('after-bad-json');
  await c.subscribe(name);
  await call(sdkFor(h, APP1).trigger(name, 'ok', { v: 1 }));
  const ev = await c.next('ok', { channel: name });
  assert.deepEqual(ev.payload, { v: 1 });
  await bystander.assertHealthy();
});

test('unknown pusher:foo event → pusher:error code null, connection stays open', async () => {
  const bystander = await healthyBystander();
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  c.send({ event: 'pusher:foo', data: {} });
  const err = await c.next('pusher:error');
  assert.equal(err.payload.code, null, err.raw);
  assert.ok(c.isOpen);
  await c.ping();
  await bystander.assertHealthy();
});

test('invalid channel name → pusher:subscription_error, connection stays open', async () => {
  const bystander = await healthyBystander();
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  c.send({ event: 'pusher:subscribe', data: { auth: '', channel: 'bad channel!' } });
  const err = await c.next('pusher:subscription_error', { channel: 'bad channel!' });
  assert.ok(err.payload, `subscription_error frame: ${err.raw}`);
  await c.ping();
  assert.equal(c.seen('pusher_internal:subscription_succeeded', 'bad channel!').length, 0);
  assert.ok(c.isOpen);
  await bystander.assertHealthy();
});

test('channel name longer than 164 characters → subscription error', async () => {
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  const long = 'x'.repeat(165);
  c.send({ event: 'pusher:subscribe', data: { auth: '', channel: long } });
  await c.next('pusher:subscription_error', { channel: long });
  await c.ping();
  assert.equal(c.seen('pusher_internal:subscription_succeeded', long).length, 0);
  // 164 is fine.
  await c.subscribe('y'.repeat(164));
});

test('frame larger than 32 KiB → close 1009', async () => {
  const bystander = await healthyBystander();
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  c.send({ event: 'pusher:ping', data: { padding: 'x'.repeat(33 * 1024) } });
  const closed = await c.waitClose();
  assert.equal(closed.code, 1009, `close code ${closed.code} "${closed.reason}"`);
  await bystander.assertHealthy();
});

test('client event with data over 10 KB → pusher:error code null, not delivered, connection stays open', async () => {
  const bystander = await healthyBystander();
  const name = uniq('private-big');
  const sdk = sdkFor(h, APP1);
  const c = await rawConnect(h, { key: APP1.key, label: 'raw-sender' });
  await c.next('pusher:connection_established');
  await c.subscribe(name, sdk.authorizeChannel(c.socketId, name));
  const receiver = await connectPusher(h, { label: 'receiver' });
  await receiver.subscribe(name);
  const got = receiver.record(name, 'client-big');

  c.send({ event: 'client-big', channel: name, data: { blob: 'x'.repeat(11 * 1024) } });
  const err = await c.next('pusher:error');
  assert.equal(err.payload.code, null, err.raw);
  assert.ok(c.isOpen);
  await c.ping();

  // Positive control: a small client event is delivered.
  c.send({ event: 'client-big', channel: name, data: { blob: 'small' } });
  assert.deepEqual((await got.take()).data, { blob: 'small' });
  await sleep(QUIET_MS);
  assert.equal(got.all.length, 1, 'the oversized client event must not be delivered');
  await bystander.assertHealthy();
});

test('subscribing twice to the same channel succeeds again without duplicate delivery', async () => {
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  const name = uniq('twice');
  await c.subscribe(name);
  await c.subscribe(name);
  assert.equal(c.seen('pusher:error').length, 0, JSON.stringify(c.seen('pusher:error')));
  await call(sdkFor(h, APP1).trigger(name, 'once', { k: 1 }));
  await c.next('once', { channel: name });
  await c.ping(); // everything the server sent before the pong has arrived
  await sleep(QUIET_MS);
  assert.equal(c.seen('once', name).length, 1, 'event delivered once');
});

test('unsubscribe stops delivery on that channel only', async () => {
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  const [a, b] = [uniq('unsub-a'), uniq('unsub-b')];
  await c.subscribe(a);
  await c.subscribe(b);
  c.send({ event: 'pusher:unsubscribe', data: { channel: a } });
  await c.ping();
  const sdk = sdkFor(h, APP1);
  await call(sdk.trigger(a, 'e', { ch: 'a' }));
  await call(sdk.trigger(b, 'e', { ch: 'b' }));
  await c.next('e', { channel: b });
  await sleep(QUIET_MS);
  assert.equal(c.seen('e', a).length, 0);
});

test('server → client channel event frames have data as a JSON string', async () => {
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  const name = uniq('wire');
  const ok = await c.subscribe(name);
  assert.equal(typeof ok.data, 'string', `subscription_succeeded: ${ok.raw}`);
  await call(sdkFor(h, APP1).trigger(name, 'shape', { a: [1, 2] }));
  const ev = await c.next('shape', { channel: name });
  assert.equal(ev.data, '{"a":[1,2]}', `frame: ${ev.raw}`);
});
