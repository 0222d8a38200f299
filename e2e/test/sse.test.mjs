// Server-sent events: GET /app/{key}/sse?channels=a,b through a WhatWG
// EventSource (the `eventsource` package). Every message's data is a Pusher
// frame; durable channels' events carry an id listing the stream's cursors,
// and a reconnecting EventSource (Last-Event-ID, or ?last_event_id=) resumes
// without loss or duplicate. Private channels need a stream token; presence
// channels are refused; the response is a cacheless, unbuffered, CORS-open
// event stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { uniq } from '../lib/apps.mjs';
import { sdkFor, call, QUIET_MS, sleep } from '../lib/clients.mjs';
import { SseSubscriber, streamToken, query, waitFor } from '../lib/durable.mjs';

const SAPP = {
  id: 'sapp1',
  key: 'skey1',
  secret: 'ssecret1',
  name: 'SSE App',
  enabled: true,
  settings: {
    durable: [
      { pattern: 'durable-*', max_events: 1000, max_age: '24h' },
      { pattern: 'private-durable-*', max_events: 1000, max_age: '24h' },
    ],
  },
};
const OTHER = { id: 'sapp2', key: 'skey2', secret: 'ssecret2', name: 'Other', enabled: true };

// A short activity timeout makes heartbeats frequent (every activity_timeout/2 at most).
const h = useHerald({ apps: [SAPP, OTHER], env: { HERALD_ACTIVITY_TIMEOUT: '4s' } });

const sseUrl = (params, key = SAPP.key) => `${h.httpBase}/app/${key}/sse?${query(params)}`;

async function publish(channel, from, count, { event = 'ev' } = {}) {
  const sdk = sdkFor(h, SAPP);
  for (let n = from; n < from + count; n++) {
    const res = await call(sdk.trigger(channel, event, { n }));
    assert.equal(res.status, 200, `publish #${n} to ${channel}: ${res.text}`);
  }
}

/** A plain GET of an SSE URL: {status, headers, json} for refusals; for a stream, the headers, then aborted. */
async function probe(url, headers = {}) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 5000);
  try {
    const res = await fetch(url, { headers, signal: ac.signal });
    const out = { status: res.status, headers: res.headers };
    if (res.status !== 200) {
      out.text = await res.text();
      try {
        out.json = JSON.parse(out.text);
      } catch {
        // not JSON
      }
    }
    return out;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

/** Waits until the stream is subscribed to every channel (subscription_succeeded for each). */
async function subscribed(sse, channels) {
  await sse.waitFrames(
    () => channels.every((ch) => sse.seen('pusher_internal:subscription_succeeded', ch).length > 0),
    { what: `subscription_succeeded for ${channels.join(',')}` },
  );
}

const ns = (frames) => frames.map((f) => JSON.parse(f.frame.data).n);

test('SSE: response headers — text/event-stream, no-cache, X-Accel-Buffering: no, CORS * without credentials', async () => {
  const res = await probe(sseUrl({ channels: uniq('pub') }), { Origin: 'https://app.example' });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') || '', /^text\/event-stream\b/);
  assert.match(res.headers.get('cache-control') || '', /no-cache/);
  assert.equal(res.headers.get('x-accel-buffering'), 'no');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(res.headers.get('access-control-allow-credentials'), null);
  // Refusals are readable cross-origin too.
  const refused = await probe(sseUrl({ channels: uniq('private-x') }), { Origin: 'https://app.example' });
  assert.equal(refused.status, 403);
  assert.equal(refused.headers.get('access-control-allow-origin'), '*');
  assert.equal(refused.headers.get('access-control-allow-credentials'), null);
});

test('SSE: a public channel stream gets connection_established, subscription_succeeded and published events as Pusher frames', async () => {
  const ch = uniq('pub');
  const ch2 = uniq('pub');
  const sse = new SseSubscriber(sseUrl({ channels: `${ch},${ch2}` }), { label: 'sse' });
  await subscribed(sse, [ch, ch2]);
  const first = sse.frames[0].frame;
  assert.equal(first.event, 'pusher:connection_established', `first message: ${JSON.stringify(first)}`);
  assert.match(JSON.parse(first.data).socket_id, /^\d+\.\d+$/);

  await publish(ch, 1, 3);
  await publish(ch2, 10, 1, { event: 'other' });
  await sse.waitFrames(() => sse.seen('ev', ch).length === 3 && sse.seen('other', ch2).length === 1, { what: 'the events' });
  const evs = sse.seen('ev', ch);
  assert.deepEqual(ns(evs), [1, 2, 3]);
  assert.deepEqual(evs[0].frame, { event: 'ev', channel: ch, data: '{"n":1}' }, 'a complete Pusher frame, no seq on a public channel');
  assert.ok(evs.every((f) => f.id === ''), 'no id on non-durable events');
  assert.deepEqual(JSON.parse(sse.seen('other', ch2)[0].frame.data), { n: 10 });
  await sleep(QUIET_MS);
  assert.equal(sse.seen('ev', ch).length, 3, 'each once');
  assert.equal(sse.reconnects, 0);
});

test('SSE: heartbeat comment lines keep an idle stream alive', async () => {
  const ac = new AbortController();
  const res = await fetch(sseUrl({ channels: uniq('idle') }), { signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const started = Date.now();
  try {
    await waitFor(
      async () => {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${text}`);
        text += decoder.decode(value, { stream: true });
        return /^:[^\n]*\n/m.test(text);
      },
      { timeout: 5000, interval: 0, what: 'a comment line' },
    );
  } finally {
    ac.abort();
  }
  process.stderr.write(`# first heartbeat after ${Date.now() - started} ms\n`);
  assert.match(text, /^retry: \d+\n/m);
  assert.match(text, /^data: \{"event":"pusher:connection_established"/m);
  assert.ok(!/^event:/m.test(text), 'no event: field, so onmessage sees every message');
});

test('SSE: durable events carry "id: <channel>:<seq>:<epoch> ..." and the stream resumes from Last-Event-ID (header, then ?last_event_id=) exactly once, in order', async () => {
  const a = uniq('durable-a');
  const b = uniq('durable-b');
  const [first, second] = [a, b].sort();
  await publish(a, 1, 2); // a: seq 1, 2 before the stream starts
  const sse = new SseSubscriber(sseUrl({ channels: `${a},${b}` }), { label: 'sse' });
  await subscribed(sse, [a, b]);
  const okA = sse.seen('pusher_internal:subscription_succeeded', a)[0];
  assert.equal(okA.frame.seq, 2);
  assert.equal(typeof okA.frame.epoch, 'string');
  const okB = sse.seen('pusher_internal:subscription_succeeded', b)[0];
  assert.equal(okB.frame.seq, 0, 'b has no event yet');
  // The id lists every durable cursor of the stream, sorted by channel, each
  // with its channel's epoch (b has one before its first event).
  assert.match(okB.frame.epoch, /^[0-9a-f]{16}$/);
  const epochs = { [a]: okA.frame.epoch, [b]: okB.frame.epoch };
  const cursor = (c, s) => `${c}:${s}:${epochs[c]}`;
  assert.equal(okB.id, `${cursor(first, first === a ? 2 : 0)} ${cursor(second, second === a ? 2 : 0)}`);

  const id = (sa, sb) => [[a, sa], [b, sb]].sort(([x], [y]) => (x < y ? -1 : 1)).map(([c, s]) => cursor(c, s)).join(' ');
  await publish(a, 3, 1);
  await publish(b, 1, 2);
  await publish(a, 4, 1);
  await sse.waitFrames(() => sse.durable(a).length === 2 && sse.durable(b).length === 2, { what: 'live events' });
  const live = sse.frames.filter((f) => f.frame.event === 'ev');
  assert.deepEqual(live.map((f) => [f.frame.channel, f.frame.seq, f.id]), [
    [a, 3, id(3, 0)],
    [b, 1, id(3, 1)],
    [b, 2, id(3, 2)],
    [a, 4, id(4, 2)],
  ]);

  // A page closes its EventSource and opens another one from the last id.
  for (const via of ['header', 'query']) {
    sse.es.close();
    const [ha, hb] = [sse.durable(a).length, sse.durable(b).length];
    await publish(a, 100, 5);
    await publish(b, 200, 3);
    sse.reopen(via);
    await sse.waitFrames(() => sse.opens === (via === 'header' ? 2 : 3), { what: `reopened (${via})` });
    await publish(a, 300, 2); // live after the replay
    await sse.waitFrames(() => sse.durable(a).length === ha + 7 && sse.durable(b).length === hb + 3, { what: `replay via ${via}` });
    const last = sse.requests.at(-1);
    if (via === 'header') assert.ok(last.lastEventId, `Last-Event-ID sent: ${JSON.stringify(last)}`);
    else assert.match(last.url, /last_event_id=/);
  }
  await sleep(QUIET_MS);
  const seqA = sse.durable(a).map((f) => f.frame.seq);
  const seqB = sse.durable(b).map((f) => f.frame.seq);
  assert.deepEqual(seqA, Array.from({ length: seqA.length }, (_, i) => i + 3), `a: ${seqA}`);
  assert.deepEqual(seqB, Array.from({ length: seqB.length }, (_, i) => i + 1), `b: ${seqB}`);
  assert.deepEqual(ns(sse.durable(a)), [3, 4, 100, 101, 102, 103, 104, 300, 301, 100, 101, 102, 103, 104, 300, 301]);
  assert.deepEqual(ns(sse.durable(b)), [1, 2, 200, 201, 202, 200, 201, 202]);
  assert.equal(sse.durable(a).length, 16);
});

test('SSE: when the server ends the stream, the EventSource reconnects by itself with Last-Event-ID and nothing is lost', async () => {
  const ch = uniq('private-durable-user');
  const user = uniq('user');
  const tok = streamToken(SAPP, [ch], { userId: user });
  const sse = new SseSubscriber(sseUrl({ channels: ch, ...tok }), { label: 'sse' });
  await subscribed(sse, [ch]);
  await publish(ch, 1, 3);
  await sse.waitFrames(() => sse.durable(ch).length === 3, { what: 'events 1..3' });

  // terminate_connections for the token's user ends the stream; the
  // EventSource retries after the server's retry: delay.
  const term = await call(sdkFor(h, SAPP).terminateUserConnections(user));
  assert.equal(term.status, 200, term.text);
  await waitFor(() => sse.errors.length > 0, { what: 'the stream to end' });
  await publish(ch, 4, 5); // while it is away
  await sse.waitFrames(() => sse.opens >= 2, { timeout: 6000, what: 'the EventSource to reconnect by itself' });
  await publish(ch, 9, 2);
  await sse.waitFrames(() => sse.durable(ch).length >= 10, { what: 'events 4..10' });
  await sleep(QUIET_MS);
  assert.deepEqual(sse.durable(ch).map((f) => f.frame.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(ns(sse.durable(ch)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(sse.requests.length, 2, JSON.stringify(sse.requests));
  const epoch = sse.seen('pusher_internal:subscription_succeeded', ch)[0].frame.epoch;
  assert.equal(sse.requests[1].lastEventId, `${ch}:3:${epoch}`, 'the EventSource sent the last id');
  assert.equal(sse.reopens, 0, 'no help from the test');
});

test('SSE: private channels need a stream token — none 403, bad 401, expired 401, other channels 401; a valid one streams only its channels', async () => {
  const p1 = uniq('private-feed');
  const p2 = uniq('private-feed');
  const pub = uniq('pub');
  const user = 'u-1';
  const now = Math.floor(Date.now() / 1000);

  const none = await probe(sseUrl({ channels: p1 }));
  assert.equal(none.status, 403, none.text);
  assert.equal(typeof none.json?.error, 'string', `JSON refusal: ${none.text}`);

  const valid = streamToken(SAPP, [p1, pub], { userId: user });
  const cases = {
    'garbage signature': { channels: `${p1},${pub}`, ...valid, auth: `${SAPP.key}:${'0'.repeat(64)}` },
    'other app secret': { channels: `${p1},${pub}`, ...streamToken(SAPP, [p1, pub], { userId: user, secret: OTHER.secret }) },
    'expired': { channels: p1, ...streamToken(SAPP, [p1], { userId: user, expires: now - 5 }) },
    'more than 24 h ahead': { channels: p1, ...streamToken(SAPP, [p1], { userId: user, expires: now + 25 * 3600 }) },
    'token for another channel': { channels: p1, ...streamToken(SAPP, [p2], { userId: user }) },
    'token for fewer channels': { channels: `${p1},${pub}`, ...streamToken(SAPP, [p1], { userId: user }) },
    'token for more channels': { channels: p1, ...streamToken(SAPP, [p1, p2], { userId: user }) },
    'another user_id': { channels: `${p1},${pub}`, ...valid, user_id: 'u-2' },
    'another expires': { channels: `${p1},${pub}`, ...valid, expires: String(Number(valid.expires) + 1) },
  };
  for (const [name, params] of Object.entries(cases)) {
    const res = await probe(sseUrl(params));
    assert.equal(res.status, 401, `${name}: ${res.status} ${res.text}`);
    assert.equal(typeof res.json?.error, 'string', `${name}: JSON refusal: ${res.text}`);
  }
  // The other app's key with this app's token: that app has no such secret.
  const foreign = await probe(sseUrl({ channels: `${p1},${pub}`, ...valid }, OTHER.key));
  assert.equal(foreign.status, 401, foreign.text);
  assert.equal((await probe(sseUrl({ channels: pub }, 'no-such-key'))).status, 404);

  // Channel order and duplicates do not matter: the token signs the sorted, unique list.
  const sse = new SseSubscriber(sseUrl({ channels: `${pub},${p1},${pub}`, ...valid }), { label: 'sse' });
  await subscribed(sse, [p1, pub]);
  await publish(p2, 1, 1);
  await publish(p1, 2, 1);
  await publish(pub, 3, 1);
  await sse.waitFrames(() => sse.seen('ev', p1).length === 1 && sse.seen('ev', pub).length === 1, { what: 'p1 and pub events' });
  await sleep(QUIET_MS);
  const channels = sse.frames.map((f) => f.frame.channel).filter(Boolean);
  assert.ok(!channels.includes(p2), `a channel outside the token was streamed: ${JSON.stringify(channels)}`);
  assert.deepEqual(ns(sse.seen('ev', p1)), [2]);
  assert.deepEqual(ns(sse.seen('ev', pub)), [3]);
});

test('SSE: presence channels are refused with 400, with or without a token', async () => {
  const room = uniq('presence-room');
  const pub = uniq('pub');
  for (const params of [
    { channels: room },
    { channels: `${pub},${room}` },
    { channels: room, ...streamToken(SAPP, [room], { userId: 'u-1' }) },
  ]) {
    const res = await probe(sseUrl(params));
    assert.equal(res.status, 400, `${JSON.stringify(params)}: ${res.status} ${res.text}`);
    assert.equal(typeof res.json?.error, 'string', res.text);
  }
});
