// 9. Connection quota: an app with max_connections 2 refuses the third with 4004.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { rawConnect, connectPusher, createPusher, sdkFor, call, sleep, pusherErrorCode } from '../lib/clients.mjs';

// One small app per test, so that slots released by a previous test's cleanup don't matter.
const small = (n) => ({
  id: `appsmall${n}`,
  key: `key-small-${n}`,
  secret: `secret-small-${n}`,
  name: `Small ${n}`,
  settings: { limits: { max_connections: 2 } },
});
const [SMALL, SMALL_JS, SMALL_FREE] = [small(1), small(2), small(3)];
const h = useHerald({ apps: [SMALL, SMALL_JS, SMALL_FREE, APP1] });

test('quota: the third connection of an app with max_connections 2 gets 4004', async () => {
  const c1 = await rawConnect(h, { key: SMALL.key, label: 'small-1' });
  const c2 = await rawConnect(h, { key: SMALL.key, label: 'small-2' });
  assert.equal(c1.first.event, 'pusher:connection_established', c1.first.raw);
  assert.equal(c2.first.event, 'pusher:connection_established', c2.first.raw);

  const c3 = await rawConnect(h, { key: SMALL.key, label: 'small-3' });
  assert.equal(c3.first.event, 'pusher:error', c3.first.raw);
  assert.equal(c3.first.payload.code, 4004, c3.first.raw);
  const closed = await c3.waitClose();
  assert.equal(closed.code, 4004);

  // The two admitted connections are unaffected.
  await c1.ping();
  await c2.ping();
  // Other apps are not limited by this app's quota.
  for (let i = 0; i < 3; i++) {
    const other = await rawConnect(h, { key: APP1.key, label: `app1-${i}` });
    assert.equal(other.first.event, 'pusher:connection_established');
  }
});

test('quota: pusher-js over quota sees PusherError 4004 and stops (no retry loop)', async () => {
  const a = await connectPusher(h, { app: SMALL_JS, label: 'small-js-1' });
  const b = await connectPusher(h, { app: SMALL_JS, label: 'small-js-2' });
  const c = createPusher(h, { app: SMALL_JS, label: 'small-js-3' });
  const err = await c.errors.take((e) => pusherErrorCode(e) !== undefined, { what: 'a PusherError' });
  assert.equal(pusherErrorCode(err), 4004, JSON.stringify(err));
  await c.waitForState('disconnected');
  assert.equal(a.state, 'connected');
  assert.equal(b.state, 'connected');
  const name = uniq('small-chan');
  await a.subscribe(name);
  const got = a.record(name, 'e');
  await call(sdkFor(h, SMALL_JS).trigger(name, 'e', { ok: 1 }));
  assert.deepEqual((await got.take()).data, { ok: 1 });
});

test('quota: closing a connection frees its slot', async () => {
  const c1 = await rawConnect(h, { key: SMALL_FREE.key, label: 'slot-1' });
  const c2 = await rawConnect(h, { key: SMALL_FREE.key, label: 'slot-2' });
  assert.equal(c2.first.event, 'pusher:connection_established', c2.first.raw);
  await c1.close();
  // The server needs a moment to notice the close; retry for up to 3 s.
  const deadline = Date.now() + 3000;
  let last;
  for (;;) {
    last = await rawConnect(h, { key: SMALL_FREE.key, label: 'slot-3' });
    if (last.first.event === 'pusher:connection_established') break;
    await last.close();
    if (Date.now() > deadline) assert.fail(`slot never freed; last first frame: ${last.first.raw}`);
    await sleep(100);
  }
  await last.ping();
});
