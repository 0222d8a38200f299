// Durable channels on one node (memory event log): the wire (seq on live
// frames, epoch+seq on subscription_succeeded), herald:resume before the
// subscribe, the Herald client plugin (web/client/herald.js) over the
// official pusher-js: resume after a forced disconnect delivers exactly what
// was missed, in order, then live events; a stale cursor, another epoch, or
// a restart of the node (a memory log's epochs are per process) is reported
// as a gap, never a silent hole. The history REST API: paging, 404/410/400,
// tenant isolation, and the frontend endpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald, startHerald } from '../lib/herald.mjs';
import { uniq } from '../lib/apps.mjs';
import { rawConnect, sdkFor, call, createPusher, QUIET_MS, sleep } from '../lib/clients.mjs';
import { PluginSubscriber, historyRequest, readLog, frontendGet, streamToken, query, waitFor, summarize } from '../lib/durable.mjs';

const DURABLE = [
  { pattern: 'short-*', max_events: 5, max_age: '24h' },
  { pattern: 'durable-*', max_events: 1000, max_age: '24h' },
  { pattern: 'private-durable-*', max_events: 1000, max_age: '24h' },
];
const DAPP = { id: 'dapp1', key: 'dkey1', secret: 'dsecret1', name: 'Durable One', enabled: true, settings: { durable: DURABLE } };
// Same durable settings, another tenant: it must never see DAPP's logs.
const DAPP2 = { id: 'dapp2', key: 'dkey2', secret: 'dsecret2', name: 'Durable Two', enabled: true, settings: { durable: DURABLE } };

const h = useHerald({ apps: [DAPP, DAPP2] });

/** Publishes `count` events {n} to channel through the SDK, one after the other, each answered 200. */
async function publish(channel, from, count, { app = DAPP, event = 'ev', server = h } = {}) {
  const sdk = sdkFor(server, app);
  for (let n = from; n < from + count; n++) {
    const res = await call(sdk.trigger(channel, event, { n }));
    assert.equal(res.status, 200, `publish #${n} to ${channel}: ${res.status} ${res.text}`);
  }
}

const seqs = (events) => events.map((e) => e.seq);
const ns = (events) => events.map((e) => e.data.n);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test('durable wire: live frames carry seq, subscription_succeeded carries epoch and seq; the plugin exposes them as meta', async () => {
  const ch = uniq('durable-wire');
  const plain = uniq('plain');
  await publish(ch, 1, 2); // seq 1, 2 before anyone subscribes

  const raw = await rawConnect(h, { key: DAPP.key, label: 'raw' });
  const ok = await raw.subscribe(ch);
  assert.equal(typeof ok.epoch, 'string', `subscription_succeeded: ${ok.raw}`);
  assert.match(ok.epoch, /^.+$/, `a channel with events has an epoch: ${ok.raw}`);
  assert.equal(ok.seq, 2, `subscription_succeeded seq is the last seq before the live stream: ${ok.raw}`);
  const okPlain = await raw.subscribe(plain);
  assert.equal(okPlain.seq, undefined, `a non-durable channel has no seq: ${okPlain.raw}`);
  assert.equal(okPlain.epoch, undefined, `a non-durable channel has no epoch: ${okPlain.raw}`);

  // Stock pusher-js gets the data (it drops unknown fields); the plugin adds seq and epoch.
  const sub = new PluginSubscriber(h, { app: DAPP, channel: ch, label: 'plugin' });
  await sub.ready();
  const stock = createPusher(h, { app: DAPP, label: 'stock' });
  await stock.subscribe(ch);
  const stockGot = stock.record(ch, 'ev');

  await publish(ch, 3, 1);
  await publish(plain, 100, 1);
  const live = await raw.next('ev', { channel: ch });
  assert.equal(live.seq, 3, `live frame: ${live.raw}`);
  assert.deepEqual(live.payload, { n: 3 });
  const livePlain = await raw.next('ev', { channel: plain });
  assert.equal(livePlain.seq, undefined, `non-durable live frame: ${livePlain.raw}`);

  await sub.waitEvents((evs) => evs.length === 1, { what: 'event 3' });
  assert.deepEqual(sub.events.map(({ event, data, seq, epoch }) => ({ event, data, seq, epoch })), [
    { event: 'ev', data: { n: 3 }, seq: 3, epoch: ok.epoch },
  ]);
  assert.deepEqual(sub.channel.cursor(), { epoch: ok.epoch, seq: 3 });
  const s = await stockGot.take();
  assert.deepEqual(s.data, { n: 3 });
  assert.equal(s.metadata && s.metadata.seq, undefined, 'stock pusher-js does not expose seq');

  const log = await readLog(h, DAPP, ch);
  assert.equal(log.epoch, ok.epoch);
  assert.deepEqual(log.events.map((e) => [e.seq, JSON.parse(e.data).n]), [[1, 1], [2, 2], [3, 3]]);
});

test('herald:resume before pusher:subscribe: subscription_succeeded, then the missed events in order, then live', async () => {
  const ch = uniq('durable-rawresume');
  await publish(ch, 1, 12);
  const { epoch } = await readLog(h, DAPP, ch);

  const raw = await rawConnect(h, { key: DAPP.key, label: 'raw' });
  raw.send({ event: 'herald:resume', data: { channel: ch, epoch, seq: 4 } });
  raw.send({ event: 'pusher:subscribe', data: { channel: ch, auth: '' } });
  const ok = await raw.next('pusher_internal:subscription_succeeded', { channel: ch });
  assert.equal(ok.epoch, epoch);
  assert.equal(ok.seq, 12, `live starts after the head: ${ok.raw}`);
  await publish(ch, 13, 3); // live
  const got = [];
  for (let i = 5; i <= 15; i++) got.push(await raw.next('ev', { channel: ch, what: `seq ${i}` }));
  assert.deepEqual(got.map((f) => f.seq), range(5, 15), 'replay 5..12 then live 13..15, strictly ordered');
  assert.deepEqual(got.map((f) => f.payload.n), range(5, 15));
  // The success frame came before every replayed event.
  const order = raw.frames.all.filter((f) => f.channel === ch).map((f) => f.event);
  assert.equal(order[0], 'pusher_internal:subscription_succeeded', `frame order: ${order.join(',')}`);

  // After subscription_succeeded (no live event yet): the replay follows at once.
  const raw2 = await rawConnect(h, { key: DAPP.key, label: 'raw2' });
  const ok2 = await raw2.subscribe(ch);
  assert.equal(ok2.seq, 15);
  raw2.send({ event: 'herald:resume', data: { channel: ch, epoch, seq: 10 } });
  const got2 = [];
  for (let i = 11; i <= 15; i++) got2.push((await raw2.next('ev', { channel: ch, what: `seq ${i}` })).seq);
  assert.deepEqual(got2, range(11, 15));
  await publish(ch, 16, 1);
  assert.equal((await raw2.next('ev', { channel: ch })).seq, 16);
  await sleep(QUIET_MS);
  assert.equal(raw2.seen('ev', ch).length, 6, 'each event once');
});

test('plugin: after a forced disconnect, the 20 events published meanwhile arrive exactly once, in order, then live ones', async () => {
  const ch = uniq('durable-resume');
  const sub = new PluginSubscriber(h, { app: DAPP, channel: ch, label: 'plugin' });
  // A stock pusher-js client beside it shows what would be lost without the plugin.
  const stock = createPusher(h, { app: DAPP, label: 'stock' });
  await sub.ready();
  await stock.subscribe(ch);
  const stockGot = stock.record(ch, 'ev');

  await publish(ch, 1, 5);
  await sub.waitEvents((evs) => evs.length === 5, { what: 'events 1..5' });
  await stockGot.take((e) => e.data.n === 5, { what: 'n=5 on stock pusher-js' });

  await sub.disconnect();
  await stock.disconnect();
  await publish(ch, 6, 20);
  await sub.connect();
  stock.pusher.connect();
  await sub.waitEvents((evs) => evs.length >= 25, { what: 'the 20 missed events' });
  await stock.waitForState('connected', 5000);
  await waitFor(() => stock.pusher.channel(ch).subscribed, { what: 'stock resubscribed' });
  await publish(ch, 26, 5);
  await sub.waitEvents((evs) => evs.length >= 30, { what: 'live events 26..30' });
  await stockGot.take((e) => e.data.n === 30, { what: 'n=30 on stock pusher-js' });
  await sleep(QUIET_MS);

  assert.deepEqual(seqs(sub.events), range(1, 30), `seqs: ${summarize(seqs(sub.events))}`);
  assert.deepEqual(ns(sub.events), range(1, 30));
  assert.deepEqual(sub.gaps, [], 'no gap');
  assert.equal(sub.reconnects, 1);
  // Without the plugin's resume, what was published during the disconnection is gone.
  const stockNs = stockGot.all.map((e) => e.data.n);
  assert.deepEqual(stockNs, [...range(1, 5), ...range(26, 30)], `stock pusher-js got ${summarize(stockNs)}`);
});

test('plugin: a cursor older than the retention gives a gap "expired" and delivery goes on after it, no silent hole', async () => {
  const ch = uniq('short-stale'); // max_events 5
  const sub = new PluginSubscriber(h, { app: DAPP, channel: ch, label: 'plugin' });
  await sub.ready();
  await publish(ch, 1, 2);
  await sub.waitEvents((evs) => evs.length === 2, { what: 'events 1..2' });

  await sub.disconnect();
  await publish(ch, 3, 20); // the log keeps 18..22 only
  const log = await readLog(h, DAPP, ch);
  const { epoch } = log;
  assert.equal(log.oldest, 18, `retention max_events 5: ${JSON.stringify(log)}`);
  await sub.connect();
  await waitFor(() => sub.gaps.length > 0, { what: `a gap on ${ch} (events: ${summarize(seqs(sub.events))})` });
  await publish(ch, 23, 3);
  await sub.waitEvents((evs) => evs.some((e) => e.seq === 25), { what: 'live events after the gap' });
  await sleep(QUIET_MS);

  assert.deepEqual(sub.gaps, [{ reason: 'expired', from: { epoch, seq: 2 }, to: { epoch, seq: 22 } }]);
  assert.deepEqual(sub.onGapCalls, [{ channel: ch, reason: 'expired', from: { epoch, seq: 2 }, to: { epoch, seq: 22 } }]);
  // Every seq 1..25 is either delivered or inside a reported gap, once.
  assert.deepEqual(seqs(sub.events), [1, 2, 23, 24, 25]);
  assert.deepEqual(ns(sub.events), [1, 2, 23, 24, 25]);

  // A cursor given at subscribe time, far back: the same gap, then live.
  const late = new PluginSubscriber(h, { app: DAPP, channel: ch, label: 'late', cursor: { epoch, seq: 1 } });
  await waitFor(() => late.gaps.length > 0, { what: 'a gap for the late subscriber' });
  assert.deepEqual(late.gaps, [{ reason: 'expired', from: { epoch, seq: 1 }, to: { epoch, seq: 25 } }]);
  await publish(ch, 26, 1);
  await late.waitEvents((evs) => evs.length === 1, { what: 'live event 26' });
  assert.deepEqual(seqs(late.events), [26]);

  // A cursor still inside the retention replays without a gap.
  const fresh = new PluginSubscriber(h, { app: DAPP, channel: ch, label: 'fresh', cursor: { epoch, seq: 23 } });
  await fresh.waitEvents((evs) => evs.length === 3, { what: 'replay 24..26' });
  assert.deepEqual(seqs(fresh.events), [24, 25, 26]);
  assert.deepEqual(fresh.gaps, []);
});

test('plugin: a cursor from another epoch gives a gap "epoch_changed" to the current position, then live events', async () => {
  const ch = uniq('durable-epoch');
  await publish(ch, 1, 3);
  const { epoch } = await readLog(h, DAPP, ch);
  const other = epoch === 'ffffffffffffffff' ? 'eeeeeeeeeeeeeeee' : 'ffffffffffffffff';
  const sub = new PluginSubscriber(h, { app: DAPP, channel: ch, label: 'plugin', cursor: { epoch: other, seq: 1 } });
  await waitFor(() => sub.gaps.length > 0, { what: 'a gap' });
  assert.deepEqual(sub.gaps, [{ reason: 'epoch_changed', from: { epoch: other, seq: 1 }, to: { epoch, seq: 3 } }]);
  await publish(ch, 4, 2);
  await sub.waitEvents((evs) => evs.length === 2, { what: 'live events 4, 5' });
  assert.deepEqual(sub.events.map((e) => [e.seq, e.epoch, e.data.n]), [[4, epoch, 4], [5, epoch, 5]]);

  // The raw frame of the failure.
  const raw = await rawConnect(h, { key: DAPP.key, label: 'raw' });
  raw.send({ event: 'herald:resume', data: { channel: ch, epoch: other, seq: 2 } });
  raw.send({ event: 'pusher:subscribe', data: { channel: ch, auth: '' } });
  await raw.next('pusher_internal:subscription_succeeded', { channel: ch });
  const failed = await raw.next('herald:resume_failed', { channel: ch });
  assert.equal(typeof failed.data, 'string', `data is a JSON string: ${failed.raw}`);
  assert.deepEqual(failed.payload, { reason: 'epoch_changed', epoch, seq: 5 });
});

test('plugin: a single node restarted while clients are away (memory log: new epochs) — every event of the new process is delivered or reported in a gap', async () => {
  // known: had events before the plugin subscribed, so the plugin knows its epoch;
  // fresh: empty when the plugin subscribed (its subscription_succeeded had epoch "").
  const known = uniq('durable-restart-known');
  const fresh = uniq('durable-restart-fresh');
  const s1 = await startHerald({ apps: [DAPP], label: 'first' });
  let s2;
  try {
    const node = { port: s1.port, apps: [DAPP] };
    await publish(known, 1, 2, { server: s1 });
    const subs = [known, fresh].map((channel) => new PluginSubscriber(node, { app: DAPP, channel, label: `plugin(${channel})` }));
    const [k, f] = subs;
    for (const sub of subs) await sub.ready();
    await publish(known, 3, 1, { server: s1 });
    await publish(fresh, 1, 3, { server: s1 });
    await k.waitEvents((evs) => evs.length === 1, { what: 'n=3' });
    await f.waitEvents((evs) => evs.length === 3, { what: 'n=1..3' });
    const oldEpoch = (await readLog(s1, DAPP, known)).epoch;
    assert.deepEqual(k.channel.cursor(), { epoch: oldEpoch, seq: 3 });

    // The clients go away; the node restarts and gets new events meanwhile.
    for (const sub of subs) await sub.disconnect();
    await s1.stop();
    s2 = await startHerald({ apps: [DAPP], label: 'second', port: s1.port });
    await publish(known, 4, 4, { server: s2 });
    await publish(fresh, 4, 4, { server: s2 });
    for (const sub of subs) {
      await sub.connect();
      await waitFor(() => sub.subscribed >= 2, { what: `${sub.label} resubscribed on the new process` });
    }
    await publish(known, 8, 1, { server: s2 });
    await publish(fresh, 8, 1, { server: s2 });
    for (const sub of subs) await sub.waitEvents((evs) => evs.some((e) => e.data.n === 8), { what: 'live n=8' });
    await sleep(QUIET_MS);

    for (const [sub, channel] of [[k, known], [f, fresh]]) {
      const log = await readLog(s2, DAPP, channel);
      assert.notEqual(log.epoch, oldEpoch, 'a new process has a new epoch');
      assert.deepEqual(log.events.map((e) => [e.seq, JSON.parse(e.data).n]), [[1, 4], [2, 5], [3, 6], [4, 7], [5, 8]]);
      // Each event of the new process: delivered, or inside a reported gap
      // that ends in the new epoch at or after it.
      const delivered = new Set(sub.events.map((e) => e.data.n));
      const silent = log.events
        .map((e) => ({ seq: e.seq, n: JSON.parse(e.data).n }))
        .filter(({ seq, n }) => !delivered.has(n) && !sub.gaps.some((g) => g.to.epoch === log.epoch && g.to.seq >= seq));
      assert.deepEqual(
        silent,
        [],
        `${channel}: events of the new process lost without a gap; delivered n=${JSON.stringify(sub.events.map((e) => e.data.n))}, ` +
          `gaps ${JSON.stringify(sub.gaps)}, new epoch ${log.epoch}`,
      );
      assert.deepEqual(sub.events.slice(-1).map((e) => [e.data.n, e.seq]), [[8, 5]], 'then live');
    }
    assert.equal(k.gaps.length, 1, `gaps: ${JSON.stringify(k.gaps)}`);
    assert.equal(k.gaps[0].reason, 'epoch_changed');
    assert.deepEqual(k.gaps[0].from, { epoch: oldEpoch, seq: 3 });
  } finally {
    await s1.stop();
    if (s2) await s2.stop();
  }
});

test('history REST API: paging with limit, next_after_seq and has_more', async () => {
  const ch = uniq('durable-history');
  await publish(ch, 1, 25, { event: 'item' });
  const pages = [];
  let after = 0;
  for (;;) {
    const res = await historyRequest(h, DAPP, ch, { after_seq: String(after), limit: '10' });
    assert.equal(res.status, 200, res.text);
    pages.push(res.json);
    if (!res.json.has_more) break;
    after = res.json.next_after_seq;
    assert.ok(pages.length < 10, 'paging does not end');
  }
  assert.deepEqual(pages.map((p) => p.events.map((e) => e.seq)), [range(1, 10), range(11, 20), range(21, 25)]);
  assert.deepEqual(pages.map((p) => [p.next_after_seq, p.has_more]), [[10, true], [20, true], [25, false]]);
  const epoch = pages[0].epoch;
  for (const p of pages) {
    assert.equal(p.channel, ch);
    assert.equal(p.epoch, epoch);
    assert.equal(p.head, 25);
    assert.equal(p.oldest_seq, 1);
  }
  const first = pages[0].events[0];
  assert.equal(first.event, 'item');
  assert.equal(typeof first.data, 'string', 'data is the published string, as on the wire');
  assert.deepEqual(JSON.parse(first.data), { n: 1 });
  assert.ok(!Number.isNaN(Date.parse(first.published_at)), `published_at: ${first.published_at}`);
  assert.ok(Math.abs(Date.now() - Date.parse(first.published_at)) < 60_000, `published_at: ${first.published_at}`);
  assert.equal(first.user_id, undefined);
  const all = pages.flatMap((p) => p.events);
  assert.deepEqual(all.map((e) => JSON.parse(e.data).n), range(1, 25));

  // Default limit; the right epoch; at the head: nothing more.
  const whole = await historyRequest(h, DAPP, ch, {});
  assert.equal(whole.status, 200, whole.text);
  assert.deepEqual(whole.json.events.map((e) => e.seq), range(1, 25));
  const withEpoch = await historyRequest(h, DAPP, ch, { after_seq: '20', epoch });
  assert.equal(withEpoch.status, 200, withEpoch.text);
  assert.deepEqual(withEpoch.json.events.map((e) => e.seq), range(21, 25));
  const atHead = await historyRequest(h, DAPP, ch, { after_seq: '25' });
  assert.equal(atHead.status, 200, atHead.text);
  assert.deepEqual([atHead.json.events, atHead.json.has_more, atHead.json.next_after_seq], [[], false, 25]);
});

test('history REST API: 404 for a non-durable channel, 410 for a stale cursor, 400 for a bad limit', async () => {
  const notDurable = await historyRequest(h, DAPP, uniq('plain'), { after_seq: '0' });
  assert.equal(notDurable.status, 404, notDurable.text);
  assert.equal(typeof notDurable.json?.error, 'string', `404 is JSON with an error: ${notDurable.text}`);

  const ch = uniq('short-history'); // max_events 5
  await publish(ch, 1, 12);
  const { epoch } = await readLog(h, DAPP, ch);
  const expired = await historyRequest(h, DAPP, ch, { after_seq: '2' });
  assert.equal(expired.status, 410, expired.text);
  assert.equal(typeof expired.json.error, 'string');
  assert.deepEqual([expired.json.reason, expired.json.epoch, expired.json.head, expired.json.oldest_seq], ['expired', epoch, 12, 8], expired.text);
  // The oldest kept event is readable: after_seq = oldest - 1.
  const edge = await historyRequest(h, DAPP, ch, { after_seq: '7' });
  assert.equal(edge.status, 200, edge.text);
  assert.deepEqual(edge.json.events.map((e) => e.seq), range(8, 12));

  const otherEpoch = await historyRequest(h, DAPP, ch, { after_seq: '10', epoch: `x${epoch}` });
  assert.equal(otherEpoch.status, 410, otherEpoch.text);
  assert.deepEqual([otherEpoch.json.reason, otherEpoch.json.epoch, otherEpoch.json.head], ['epoch_changed', epoch, 12], otherEpoch.text);
  const ahead = await historyRequest(h, DAPP, ch, { after_seq: '13' });
  assert.equal(ahead.status, 410, ahead.text);
  assert.deepEqual([ahead.json.reason, ahead.json.head], ['unknown_position', 12], ahead.text);

  for (const limit of ['0', '1001', '-1', 'ten']) {
    const bad = await historyRequest(h, DAPP, ch, { after_seq: '7', limit });
    assert.equal(bad.status, 400, `limit=${limit}: ${bad.text}`);
  }
  for (const limit of ['1', '1000']) {
    const good = await historyRequest(h, DAPP, ch, { after_seq: '7', limit });
    assert.equal(good.status, 200, `limit=${limit}: ${good.text}`);
    assert.equal(good.json.events.length, Math.min(Number(limit), 5));
  }
  const badAfter = await historyRequest(h, DAPP, ch, { after_seq: 'abc' });
  assert.equal(badAfter.status, 400, badAfter.text);
});

test('history REST API: tenants are isolated — another app\'s credentials cannot read the log', async () => {
  const ch = uniq('durable-tenant');
  await publish(ch, 1, 3);
  // app2's key and secret on app1's path: the key is not app1's.
  const foreign = await historyRequest(h, DAPP, ch, {}, { key: DAPP2.key, secret: DAPP2.secret });
  assert.equal(foreign.status, 401, `app2's credentials on /apps/${DAPP.id}: ${foreign.text}`);
  assert.ok(!foreign.text.includes('"events"'), foreign.text);
  // app1's key signed with app2's secret.
  const badSig = await historyRequest(h, DAPP, ch, {}, { secret: DAPP2.secret });
  assert.equal(badSig.status, 401, badSig.text);
  // app1's credentials on app2's path.
  const cross = await historyRequest(h, DAPP, ch, {}, { appId: DAPP2.id });
  assert.equal(cross.status, 401, `app1's credentials on /apps/${DAPP2.id}: ${cross.text}`);
  assert.ok(!cross.text.includes('"events"'), cross.text);
  // app2 reading the same channel name in its own app: its own (empty) log.
  const own = await historyRequest(h, DAPP2, ch, {});
  assert.equal(own.status, 200, own.text);
  assert.deepEqual([own.json.head, own.json.events], [0, []], own.text);
  // Publishing in app2 does not touch app1's log.
  await publish(ch, 100, 1, { app: DAPP2 });
  const mine = await readLog(h, DAPP, ch);
  assert.deepEqual(mine.events.map((e) => JSON.parse(e.data).n), [1, 2, 3]);
  const theirs = await readLog(h, DAPP2, ch);
  assert.deepEqual(theirs.events.map((e) => [e.seq, JSON.parse(e.data).n]), [[1, 100]]);
});

test('frontend history endpoint: public durable channels without auth, private ones with a stream token', async () => {
  const ch = uniq('durable-front');
  await publish(ch, 1, 7);
  const res = await frontendGet(h, `/app/${DAPP.key}/channels/${ch}/events?after_seq=2&limit=3`);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.deepEqual(res.json.events.map((e) => [e.seq, JSON.parse(e.data).n]), [[3, 3], [4, 4], [5, 5]]);
  assert.deepEqual([res.json.channel, res.json.head, res.json.next_after_seq, res.json.has_more], [ch, 7, 5, true]);
  const signed = await historyRequest(h, DAPP, ch, { after_seq: '2', limit: '3' });
  assert.deepEqual(res.json, signed.json, 'the same page as the signed API');

  // The other app's key does not reach this app's log.
  const other = await frontendGet(h, `/app/${DAPP2.key}/channels/${ch}/events?after_seq=0`);
  assert.equal(other.status, 200, other.text);
  assert.equal(other.json.head, 0, other.text);
  assert.equal((await frontendGet(h, `/app/nosuchkey/channels/${ch}/events`)).status, 404);
  assert.equal((await frontendGet(h, `/app/${DAPP.key}/channels/${uniq('plain')}/events`)).status, 404);
  const stale = await frontendGet(h, `/app/${DAPP.key}/channels/${ch}/events?after_seq=99`);
  assert.equal(stale.status, 410, stale.text);
  assert.equal((await frontendGet(h, `/app/${DAPP.key}/channels/${ch}/events?limit=0`)).status, 400);

  const priv = uniq('private-durable-front');
  await publish(priv, 1, 2);
  const none = await frontendGet(h, `/app/${DAPP.key}/channels/${priv}/events`);
  assert.equal(none.status, 403, none.text);
  const tok = streamToken(DAPP, [priv], { userId: 'u1' });
  const ok = await frontendGet(h, `/app/${DAPP.key}/channels/${priv}/events?${query(tok)}`);
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json.events.map((e) => JSON.parse(e.data).n), [1, 2]);
  const wrong = streamToken(DAPP, [uniq('private-durable-other')], { userId: 'u1' });
  assert.equal((await frontendGet(h, `/app/${DAPP.key}/channels/${priv}/events?${query(wrong)}`)).status, 401);
  const forged = streamToken(DAPP, [priv], { userId: 'u1', secret: DAPP2.secret });
  assert.equal((await frontendGet(h, `/app/${DAPP.key}/channels/${priv}/events?${query(forged)}`)).status, 401);
});
