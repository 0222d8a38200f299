// 10. REST API through the official `pusher` SDK, plus hand-signed requests for
//     the error cases the SDK refuses to produce.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, rawConnect, sdkFor, call, signedRequest, md5, QUIET_MS, sleep } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1] });
const sdk = () => sdkFor(h, APP1);

function assertJsonError(res, status) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.ok(res.json && typeof res.json.error === 'string' && res.json.error.length > 0,
    `expected a JSON body {"error": "..."}, got: ${res.text}`);
}

test('REST trigger with info=user_count,subscription_count reports counts per channel', async () => {
  const presence = uniq('presence-stats');
  const pub = uniq('stats');
  const u1a = await connectPusher(h, { user: { user_id: 'u1' } });
  const u1b = await connectPusher(h, { user: { user_id: 'u1' } });
  const u2 = await connectPusher(h, { user: { user_id: 'u2' } });
  for (const c of [u1a, u1b, u2]) await c.subscribe(presence);
  await u1a.subscribe(pub);
  await u2.subscribe(pub);

  const res = await call(sdk().trigger([presence, pub], 'tick', { t: 1 }, { info: 'user_count,subscription_count' }));
  assert.equal(res.status, 200, res.text);
  assert.ok(res.json && res.json.channels, `body: ${res.text}`);
  assert.equal(res.json.channels[presence].user_count, 2, `body: ${res.text}`);
  assert.equal(res.json.channels[pub].subscription_count, 2, `body: ${res.text}`);
});

test('REST trigger without info answers {}', async () => {
  const res = await call(sdk().trigger(uniq('empty'), 'e', {}));
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, {});
});

test('REST triggerBatch delivers every event to its channel, info aligned with request order', async () => {
  const [c1, c2] = [uniq('batch'), uniq('batch')];
  const client = await connectPusher(h);
  await client.subscribe(c1);
  await client.subscribe(c2);
  const got1 = client.record(c1, 'first');
  const got2 = client.record(c2, 'second');
  const res = await call(
    sdk().triggerBatch([
      { channel: c1, name: 'first', data: { a: 1 }, info: 'subscription_count' },
      { channel: c2, name: 'second', data: 'raw text' },
    ]),
  );
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await got1.take()).data, { a: 1 });
  assert.equal((await got2.take()).data, 'raw text');
  assert.ok(Array.isArray(res.json.batch), `body: ${res.text}`);
  assert.equal(res.json.batch.length, 2);
  assert.equal(res.json.batch[0].subscription_count, 1);
});

test('REST triggerBatch honours socket_id per item', async () => {
  const name = uniq('batch-excl');
  const a = await connectPusher(h, { label: 'a' });
  const b = await connectPusher(h, { label: 'b' });
  await a.subscribe(name);
  await b.subscribe(name);
  const gotA = a.record(name, 'e');
  const gotB = b.record(name, 'e');
  const res = await call(sdk().triggerBatch([{ channel: name, name: 'e', data: { n: 1 }, socket_id: a.socketId }]));
  assert.equal(res.status, 200, res.text);
  await gotB.take();
  await sleep(QUIET_MS);
  assert.equal(gotA.all.length, 0);
});

test('REST GET /channels with filter_by_prefix=presence- and info=user_count', async () => {
  const p1 = uniq('presence-list');
  const p2 = uniq('presence-list');
  const pub = uniq('list-public');
  const a = await connectPusher(h, { user: { user_id: 'a' } });
  const b = await connectPusher(h, { user: { user_id: 'b' } });
  await a.subscribe(p1);
  await b.subscribe(p1);
  await a.subscribe(p2);
  await a.subscribe(pub);

  const res = await call(sdk().get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json.channels[p1], { user_count: 2 });
  assert.deepEqual(res.json.channels[p2], { user_count: 1 });
  assert.equal(res.json.channels[pub], undefined, 'public channel must be filtered out');
  for (const name of Object.keys(res.json.channels)) assert.ok(name.startsWith('presence-'), name);

  // Without params: all occupied channels, each {}.
  const all = await call(sdk().get({ path: '/channels' }));
  assert.equal(all.status, 200, all.text);
  assert.deepEqual(all.json.channels[pub], {});
  assert.ok(p1 in all.json.channels);
});

test('REST GET /channels?info=user_count without the presence- prefix → 400', async () => {
  const res = await call(sdk().get({ path: '/channels', params: { info: 'user_count' } }));
  assert.equal(res.status, 400, res.text);
});

test('REST GET /channels/NAME?info=subscription_count → {occupied:true, subscription_count:N}', async () => {
  const name = uniq('info');
  const clients = [await connectPusher(h), await connectPusher(h), await connectPusher(h)];
  for (const c of clients) await c.subscribe(name);
  const res = await call(sdk().get({ path: `/channels/${name}`, params: { info: 'subscription_count' } }));
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.occupied, true);
  assert.equal(res.json.subscription_count, 3);

  const empty = await call(sdk().get({ path: `/channels/${uniq('nobody')}` }));
  assert.equal(empty.status, 200, empty.text);
  assert.equal(empty.json.occupied, false);
});

test('REST GET /channels/presence-x?info=user_count counts users, not connections', async () => {
  const name = uniq('presence-info');
  const a1 = await connectPusher(h, { user: { user_id: 'same' } });
  const a2 = await connectPusher(h, { user: { user_id: 'same' } });
  await a1.subscribe(name);
  await a2.subscribe(name);
  const res = await call(sdk().get({ path: `/channels/${name}`, params: { info: 'user_count' } }));
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.occupied, true);
  assert.equal(res.json.user_count, 1);
});

test('REST GET /channels/presence-x/users lists distinct user ids', async () => {
  const name = uniq('presence-users');
  const u1a = await connectPusher(h, { user: { user_id: 'u1', user_info: { n: 1 } } });
  const u1b = await connectPusher(h, { user: { user_id: 'u1', user_info: { n: 1 } } });
  const u2 = await connectPusher(h, { user: { user_id: 'u2' } });
  for (const c of [u1a, u1b, u2]) await c.subscribe(name);
  const res = await call(sdk().get({ path: `/channels/${name}/users` }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(
    [...res.json.users].sort((x, y) => x.id.localeCompare(y.id)),
    [{ id: 'u1' }, { id: 'u2' }],
  );

  const notPresence = await call(sdk().get({ path: `/channels/${uniq('public')}/users` }));
  assert.equal(notPresence.status, 400, notPresence.text);
});

test('REST: a request signed with the wrong secret → 401 with a JSON error body', async () => {
  const res = await call(sdkFor(h, { ...APP1, secret: 'wrong-secret' }).trigger('x', 'e', {}));
  assertJsonError(res, 401);
  const get = await call(sdkFor(h, { ...APP1, secret: 'wrong-secret' }).get({ path: '/channels' }));
  assertJsonError(get, 401);
});

test('REST: unknown app id → 404', async () => {
  const res = await call(sdkFor(h, { ...APP1, id: 'no-such-app' }).trigger('x', 'e', {}));
  assert.equal(res.status, 404, res.text);
});

test('REST: data of exactly 10240 bytes is accepted, 10241 bytes → 413', async () => {
  const name = uniq('big');
  const client = await connectPusher(h);
  await client.subscribe(name);
  const got = client.record(name, 'big');
  const ok = await call(sdk().trigger(name, 'big', 'x'.repeat(10240)));
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await got.take()).data.length, 10240);
  const tooBig = await call(sdk().trigger(name, 'big', 'x'.repeat(10241)));
  assert.equal(tooBig.status, 413, tooBig.text);
  await sleep(QUIET_MS);
  assert.equal(got.all.length, 1, 'the rejected event must not be delivered');
});

test('REST: data well over 10 KB → 413', async () => {
  const res = await call(sdk().trigger(uniq('big'), 'big', { blob: 'y'.repeat(20000) }));
  assert.equal(res.status, 413, res.text);
});

test('REST: 101 channels in one trigger → 400 (hand-signed, the SDK refuses)', async () => {
  const channels = Array.from({ length: 101 }, (_, i) => `many-${i}`);
  const res = await signedRequest(h, { app: APP1, method: 'POST', path: '/events', body: { name: 'e', data: '{}', channels } });
  assert.equal(res.status, 400, res.text);
  const hundred = await signedRequest(h, {
    app: APP1, method: 'POST', path: '/events', body: { name: 'e', data: '{}', channels: channels.slice(0, 100) },
  });
  assert.equal(hundred.status, 200, hundred.text);
});

test('REST: a batch of 11 events → 400, 10 is fine', async () => {
  const item = (i) => ({ channel: `batch-limit-${i}`, name: 'e', data: { i } });
  const eleven = await call(sdk().triggerBatch(Array.from({ length: 11 }, (_, i) => item(i))));
  assert.equal(eleven.status, 400, eleven.text);
  const ten = await call(sdk().triggerBatch(Array.from({ length: 10 }, (_, i) => item(i))));
  assert.equal(ten.status, 200, ten.text);
});

test('REST: reserved event names pusher:x and pusher_internal:x → 400 and not delivered', async () => {
  const name = uniq('reserved');
  const client = await connectPusher(h);
  await client.subscribe(name);
  const res = await call(sdk().trigger(name, 'pusher:x', {}));
  assert.equal(res.status, 400, res.text);
  const res2 = await call(sdk().trigger(name, 'pusher_internal:subscription_succeeded', {}));
  assert.equal(res2.status, 400, res2.text);
  await call(sdk().trigger(name, 'control', {}));
  await client.messages.take((m) => m.event === 'control');
  assert.equal(client.messages.filter((m) => m.event === 'pusher:x').length, 0);
});

test('REST: invalid JSON body → 400', async () => {
  const res = await signedRequest(h, { app: APP1, method: 'POST', path: '/events', body: '{"name":"e","data":' });
  assert.equal(res.status, 400, res.text);
});

test('REST: auth_timestamp 601 s old → 401, 500 s old is accepted', async () => {
  const body = { name: 'e', data: '{}', channels: ['ts'] };
  const old = await signedRequest(h, {
    app: APP1, method: 'POST', path: '/events', body, timestamp: Math.floor(Date.now() / 1000) - 601,
  });
  assertJsonError(old, 401);
  const future = await signedRequest(h, {
    app: APP1, method: 'POST', path: '/events', body, timestamp: Math.floor(Date.now() / 1000) + 601,
  });
  assertJsonError(future, 401);
  const fine = await signedRequest(h, {
    app: APP1, method: 'POST', path: '/events', body, timestamp: Math.floor(Date.now() / 1000) - 500,
  });
  assert.equal(fine.status, 200, fine.text);
});

test('REST: wrong body_md5 → 401', async () => {
  const res = await signedRequest(h, {
    app: APP1, method: 'POST', path: '/events', body: { name: 'e', data: '{}', channels: ['md5'] },
    bodyMd5: '0'.repeat(32),
  });
  assertJsonError(res, 401);
});

test('REST: signature over a different body (body tampered after signing) → 401', async () => {
  const signed = JSON.stringify({ name: 'e', data: '{}', channels: ['tamper'] });
  const sent = JSON.stringify({ name: 'e', data: '{"evil":1}', channels: ['tamper'] });
  const res = await signedRequest(h, { app: APP1, method: 'POST', path: '/events', body: sent, bodyMd5: md5(signed) });
  assertJsonError(res, 401);
});

test('REST: missing auth_signature → 401', async () => {
  const res = await fetch(`${h.httpBase}/apps/${APP1.id}/channels?auth_key=${APP1.key}&auth_timestamp=${Math.floor(Date.now() / 1000)}&auth_version=1.0`);
  const text = await res.text();
  assert.equal(res.status, 401, text);
});

test('REST: terminate_connections for a user with no connections answers {}', async () => {
  const res = await call(sdk().terminateUserConnections(uniq('nobody')));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json, {});
});

test('REST: raw subscriber receives a REST event byte-for-byte', async () => {
  const name = uniq('bytes');
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  await c.subscribe(name);
  const data = '{"b":2,"a":1, "spaced" : "Zoë"}';
  const res = await call(sdk().trigger(name, 'exact', data));
  assert.equal(res.status, 200, res.text);
  const ev = await c.next('exact', { channel: name });
  assert.equal(ev.data, data);
});
