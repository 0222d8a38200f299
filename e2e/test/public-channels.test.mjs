// 1. Public channels: SDK trigger → pusher-js receives; multi-channel trigger; socket_id exclusion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, sdkFor, call, QUIET_MS, sleep } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1] });

test('public channel: subscribe, then an SDK trigger is received with the same data', async () => {
  const client = await connectPusher(h);
  const name = uniq('orders');
  await client.subscribe(name);
  const events = client.record(name, 'order-placed');

  const payload = { id: 42, items: ['a', 'b'], note: 'Zoë 🙂 "quoted"', nested: { ok: true } };
  const res = await call(sdkFor(h, APP1).trigger(name, 'order-placed', payload));
  assert.equal(res.status, 200, `trigger answered ${res.status} ${res.text}`);

  const ev = await events.take();
  assert.deepEqual(ev.data, payload);
});

test('public channel: socket_id is assigned in the documented digits.digits form', async () => {
  const client = await connectPusher(h);
  assert.match(client.socketId, /^\d+\.\d+$/);
  const other = await connectPusher(h);
  assert.notEqual(other.socketId, client.socketId);
});

test('public channel: one trigger to several channels reaches every channel once', async () => {
  const a = await connectPusher(h, { label: 'client-a' });
  const b = await connectPusher(h, { label: 'client-b' });
  const [c1, c2, c3] = [uniq('multi'), uniq('multi'), uniq('multi')];
  await a.subscribe(c1);
  await a.subscribe(c2);
  await b.subscribe(c3);
  const got1 = a.record(c1, 'ping');
  const got2 = a.record(c2, 'ping');
  const got3 = b.record(c3, 'ping');

  const res = await call(sdkFor(h, APP1).trigger([c1, c2, c3], 'ping', { n: 1 }));
  assert.equal(res.status, 200, res.text);

  assert.deepEqual((await got1.take()).data, { n: 1 });
  assert.deepEqual((await got2.take()).data, { n: 1 });
  assert.deepEqual((await got3.take()).data, { n: 1 });
  await sleep(QUIET_MS);
  assert.equal(got1.all.length + got2.all.length + got3.all.length, 3, 'each channel got the event exactly once');
});

test('public channel: socket_id exclusion skips that connection only', async () => {
  const excluded = await connectPusher(h, { label: 'excluded' });
  const receiver = await connectPusher(h, { label: 'receiver' });
  const name = uniq('news');
  await excluded.subscribe(name);
  await receiver.subscribe(name);
  const exclGot = excluded.record(name, 'headline');
  const recvGot = receiver.record(name, 'headline');

  const res = await call(
    sdkFor(h, APP1).trigger(name, 'headline', { t: 'x' }, { socket_id: excluded.socketId }),
  );
  assert.equal(res.status, 200, res.text);

  assert.deepEqual((await recvGot.take()).data, { t: 'x' });
  await sleep(QUIET_MS);
  assert.equal(exclGot.all.length, 0, 'the excluded connection must not receive the event');

  // Positive control: without socket_id both get it.
  await call(sdkFor(h, APP1).trigger(name, 'headline', { t: 'y' }));
  assert.deepEqual((await exclGot.take()).data, { t: 'y' });
  assert.deepEqual((await recvGot.take()).data, { t: 'y' });
});

test('public channel: non-JSON string data is delivered verbatim', async () => {
  const client = await connectPusher(h);
  const name = uniq('text');
  await client.subscribe(name);
  const got = client.record(name, 'plain');
  const res = await call(sdkFor(h, APP1).trigger(name, 'plain', 'just some text'));
  assert.equal(res.status, 200, res.text);
  assert.equal((await got.take()).data, 'just some text');
});
