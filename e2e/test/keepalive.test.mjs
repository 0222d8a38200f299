// 7. Ping/pong and server-side activity timeout (HERALD_ACTIVITY_TIMEOUT=2s,
//    HERALD_PONG_TIMEOUT=1s for this file only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1 } from '../lib/apps.mjs';
import { rawConnect, connectPusher, sleep } from '../lib/clients.mjs';

const h = useHerald({
  apps: [APP1],
  env: { HERALD_ACTIVITY_TIMEOUT: '2s', HERALD_PONG_TIMEOUT: '1s' },
});

test('ping/pong: pusher:ping from a raw client is answered with pusher:pong', async () => {
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  c.send({ event: 'pusher:ping', data: {} });
  const pong = await c.next('pusher:pong');
  assert.equal(pong.event, 'pusher:pong');
  // The string form of data (older clients) is accepted too.
  c.sendText(JSON.stringify({ event: 'pusher:ping', data: '{}' }));
  await c.next('pusher:pong');
  assert.ok(c.isOpen);
});

test('activity timeout: connection_established carries activity_timeout 2', async () => {
  const c = await rawConnect(h, { key: APP1.key });
  const est = await c.next('pusher:connection_established');
  assert.equal(est.payload.activity_timeout, 2);
  assert.match(est.payload.socket_id, /^\d+\.\d+$/);
  assert.equal(typeof est.data, 'string', 'connection_established data is double-encoded JSON text');
});

test('activity timeout: a silent client is pinged after ~2 s and closed with 4201 ~1 s later', async () => {
  const c = await rawConnect(h, { key: APP1.key });
  const est = await c.next('pusher:connection_established');
  const ping = await c.next('pusher:ping', { timeout: 4000 });
  const pingAfter = ping.at - est.at;
  assert.ok(pingAfter >= 1500 && pingAfter <= 3500, `server ping came ${pingAfter} ms after connect (expected ~2000)`);

  const closed = await c.waitClose(3000);
  assert.equal(closed.code, 4201, `close code ${closed.code} "${closed.reason}"`);
  const closeAfter = closed.at - ping.at;
  assert.ok(closeAfter >= 600 && closeAfter <= 2500, `closed ${closeAfter} ms after the ping (expected ~1000)`);
});

test('activity timeout: clients that answer pings stay open past 5 s', async () => {
  // A raw client that answers every server ping with a pong.
  const raw = await rawConnect(h, { key: APP1.key, label: 'raw-responder' });
  await raw.next('pusher:connection_established');
  let pings = 0;
  raw.ws.on('message', (buf) => {
    const msg = JSON.parse(buf.toString());
    if (msg.event === 'pusher:ping') {
      pings += 1;
      raw.send({ event: 'pusher:pong', data: {} });
    }
  });
  // The official client: its own activity timer follows the server's 2 s value.
  const pjs = await connectPusher(h, { label: 'pusher-js' });
  const socketId = pjs.socketId;

  await sleep(5500);

  assert.ok(raw.isOpen, `raw responder was closed: ${JSON.stringify(raw.closeInfo)}`);
  assert.ok(pings >= 1, 'the server pinged the idle raw client at least once');
  const pong = await raw.ping();
  assert.equal(pong.event, 'pusher:pong');
  assert.equal(pjs.state, 'connected');
  assert.equal(pjs.socketId, socketId, 'pusher-js kept the same connection');
  assert.equal(pjs.states.filter((s) => s.previous === 'connected').length, 0);
});
