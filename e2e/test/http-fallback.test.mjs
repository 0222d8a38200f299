// HTTP fallback: pusher-js's own xhr_streaming and xhr_polling transports
// (reference §10.5), with WebSockets out of reach: connect, public and
// private subscriptions, SDK triggers, client events, and a streaming
// session that outlives pusher-js's 256 K-character stream restart.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald, freePort } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, sdkFor, call, sleep, QUIET_MS } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1] });

let closedPort;
before(async () => {
  closedPort = await freePort(); // nothing listens there: no WebSocket can open
});

/** Connects pusher-js over one HTTP transport only. */
async function connectOver(transport, opts = {}) {
  const client = await connectPusher(h, {
    ...opts,
    options: {
      httpHost: '127.0.0.1',
      httpPort: h.port,
      wsPort: closedPort,
      wssPort: closedPort,
      forceTLS: false,
      enabledTransports: [transport],
      disabledTransports: ['ws', 'wss'],
    },
  });
  const used = client.pusher.connection.connection.transport.name;
  assert.equal(used, transport, `connected over ${used}`);
  return client;
}

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  test(`${transport}: connects and receives an SDK trigger on a public channel`, async () => {
    const client = await connectOver(transport);
    assert.match(client.socketId, /^\d+\.\d+$/);
    const name = uniq('fallback-news');
    await client.subscribe(name);
    const got = client.record(name, 'headline');

    const payload = { title: 'Zoë 🙂 "quoted"\nline', n: 1 };
    const res = await call(sdkFor(h, APP1).trigger(name, 'headline', payload));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((await got.take()).data, payload);
  });

  test(`${transport}: private channel events and client events between two clients`, async () => {
    const a = await connectOver(transport, { label: `${transport}-a` });
    const b = await connectOver(transport, { label: `${transport}-b` });
    const name = uniq('private-fallback');
    await a.subscribe(name);
    await b.subscribe(name);

    const balance = a.record(name, 'balance');
    const res = await call(sdkFor(h, APP1).trigger(name, 'balance', { cents: 1234 }));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((await balance.take()).data, { cents: 1234 });

    const typing = b.record(name, 'client-typing');
    const echo = a.record(name, 'client-typing');
    assert.equal(a.pusher.channel(name).trigger('client-typing', { typing: true }), true);
    assert.deepEqual((await typing.take()).data, { typing: true });
    await sleep(QUIET_MS);
    assert.equal(echo.all.length, 0, 'a client event must not be echoed to its sender');
    assert.equal(a.errors.all.length + b.errors.all.length, 0, `errors: ${JSON.stringify([...a.errors.all, ...b.errors.all])}`);
  });
}

test('xhr_streaming: a session outlives the stream restart after 256 K characters', async () => {
  const client = await connectOver('xhr_streaming');
  const socketId = client.socketId;
  const name = uniq('fallback-bulk');
  await client.subscribe(name);
  const got = client.record(name, 'chunk');

  // pusher-js reopens its stream once it has carried more than 256 Ki
  // characters; count the reopenings.
  const socket = client.pusher.connection.connection.transport.socket;
  let restarts = 0;
  const reconnect = socket.reconnect.bind(socket);
  socket.reconnect = () => {
    restarts += 1;
    reconnect();
  };

  // About 7,300 characters an event (the app's payload limit is 10 KB),
  // some of them outside the BMP: > 360 K characters in all.
  const filler = 'x'.repeat(7000) + 'é😀'.repeat(100);
  const events = 50;
  const sdk = sdkFor(h, APP1);
  for (let i = 0; i < events; i++) {
    const res = await call(sdk.trigger(name, 'chunk', { i, filler }));
    assert.equal(res.status, 200, res.text);
  }
  for (let i = 0; i < events; i++) {
    const ev = await got.take(() => true, { timeout: 5000, what: `chunk ${i}` });
    assert.equal(ev.data.i, i, 'events arrive in order, none lost');
    assert.equal(ev.data.filler, filler);
  }
  await sleep(QUIET_MS);
  assert.equal(got.all.length, events, 'no event arrived twice');
  assert.ok(restarts >= 1, `the stream was never restarted (${restarts})`);
  assert.equal(client.socketId, socketId, 'the connection is the same');
  assert.equal(client.state, 'connected');
  const left = client.states.all.filter((s) => s.previous === 'connected');
  assert.equal(left.length, 0, `the connection left "connected": ${JSON.stringify(left)}`);

  // And it still works after the restart.
  const after = client.record(name, 'after');
  await call(sdk.trigger(name, 'after', { ok: true }));
  assert.deepEqual((await after.take()).data, { ok: true });
});

test('fallback requests answer CORS preflights without credentials', async () => {
  const res = await fetch(`${h.httpBase}/pusher/app/${APP1.key}/1/abcdefgh/xhr_send`, {
    method: 'OPTIONS',
    headers: {
      origin: 'https://example.com',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    },
  });
  await res.arrayBuffer();
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.match(res.headers.get('access-control-allow-methods') || '', /POST/);
  assert.match((res.headers.get('access-control-allow-headers') || '').toLowerCase(), /content-type/);
  assert.equal(res.headers.get('access-control-allow-credentials'), null);
});
