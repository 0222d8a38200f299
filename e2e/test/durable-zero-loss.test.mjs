// The acceptance test of durable channels, on a real cluster: nodes A and B
// on one PostgreSQL (the event log) and this file's own Redis. A publisher
// (the pusher SDK, against B, which is never killed) publishes a numbered
// stream at a steady rate while subscribers (pusher-js + the Herald plugin,
// and SSE EventSources, on both nodes) are disconnected at random moments,
// node A is killed with SIGKILL and restarted on the same port, and Redis is
// restarted. At the end every subscriber must have exactly the acknowledged
// events, each once, in publish order, with no gap.
//
// Then: concurrent publishers through A and B to one durable channel; every
// subscriber sees the same order, which is the log's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, OwnRedis } from '../lib/cluster.mjs';
import { uniq } from '../lib/apps.mjs';
import { sdkFor, call, sleep } from '../lib/clients.mjs';
import { PluginSubscriber, SseSubscriber, readLog, waitFor, summarize, networkOnline } from '../lib/durable.mjs';

const ZAPP = {
  id: 'zapp',
  key: 'zkey',
  secret: 'zsecret',
  name: 'Zero Loss',
  enabled: true,
  settings: { durable: [{ pattern: 'durable-*', max_events: 100_000, max_age: '24h' }] },
};

const redis = new OwnRedis();
// Registered before useCluster's hooks, so Redis is up before the nodes start.
before(async () => {
  await redis.start();
});
after(async () => {
  await redis.destroy();
});
const c = useCluster({ tag: 'zeroloss', apps: [ZAPP], presenceTtl: '3s', redisUrl: () => redis.url });

const RATE_PER_SECOND = 50;
const PUBLISH_MS = 15_000;
const KILL_A_AT_MS = 4000;
const REDIS_RESTART_AT_MS = 9500;
const DELIVERY_TIMEOUT_MS = 30_000;

// pusher-js: notice a dead connection quickly (these bound the time a client
// waits for a pong, and before it reports "unavailable").
const PUSHER_OPTIONS = { activityTimeout: 3000, pongTimeout: 2000, unavailableTimeout: 1000 };

const rand = (lo, hi) => lo + Math.random() * (hi - lo);

/** Repeatedly disconnects and reconnects a subscriber at random moments until stop() is true. */
async function churnPusher(sub, stop, quiet) {
  let count = 0;
  while (!stop()) {
    await sleep(rand(1200, 3500));
    while (quiet() && !stop()) await sleep(100);
    if (stop()) break;
    sub.pusher.disconnect();
    count += 1;
    await sleep(rand(50, 900));
    sub.pusher.connect();
  }
  return count;
}

/** Closes an SSE subscriber's EventSource at random moments and opens a new one from its last id. */
async function churnSse(sse, stop, quiet) {
  let count = 0;
  while (!stop()) {
    await sleep(rand(1500, 4000));
    while (quiet() && !stop()) await sleep(100);
    if (stop()) break;
    sse.es.close();
    await sleep(rand(50, 900));
    sse.reopen(count % 2 ? 'query' : 'header');
    count += 1;
  }
  return count;
}

function checkSequence(label, got, expected) {
  // got: [{n, seq}] in delivery order.
  const gotN = got.map((e) => e.n);
  const seen = new Set();
  const dups = gotN.filter((n) => (seen.has(n) ? true : (seen.add(n), false)));
  const missing = expected.filter((n) => !seen.has(n));
  const extra = [...seen].filter((n) => !expected.includes(n));
  const outOfOrder = [];
  for (let i = 1; i < got.length; i++) {
    if (!(got[i].seq > got[i - 1].seq) || !(got[i].n > got[i - 1].n)) outOfOrder.push(`${got[i - 1].n}@${got[i - 1].seq}→${got[i].n}@${got[i].seq}`);
  }
  const problems = [];
  if (missing.length) problems.push(`missing ${missing.length}: ${summarize(missing)}`);
  if (dups.length) problems.push(`duplicated ${dups.length}: ${summarize(dups)}`);
  if (extra.length) problems.push(`unacknowledged ${extra.length}: ${summarize(extra)}`);
  if (outOfOrder.length) problems.push(`out of order ${outOfOrder.length}: ${outOfOrder.slice(0, 10).join(', ')}`);
  return problems.length ? `${label}: ${problems.join('; ')}` : null;
}

test('zero loss: every subscriber gets every acknowledged event once, in order, through random disconnects, kill -9 of a node and a Redis restart', async () => {
  const ch = uniq('durable-zero');
  const pubs = [
    ...['A1', 'A2'].map((l) => new PluginSubscriber(c.A, { app: ZAPP, channel: ch, label: `pusher@${l}`, pusherOptions: PUSHER_OPTIONS })),
    ...['B1', 'B2'].map((l) => new PluginSubscriber(c.B, { app: ZAPP, channel: ch, label: `pusher@${l}`, pusherOptions: PUSHER_OPTIONS })),
  ];
  const sses = [c.A, c.B].map(
    (node) => new SseSubscriber(`${node.httpBase}/app/${ZAPP.key}/sse?channels=${ch}`, { label: `sse@${node.label}`, keepAlive: true }),
  );
  for (const p of pubs) await p.ready();
  for (const s of sses) {
    await s.waitFrames(() => s.seen('pusher_internal:subscription_succeeded', ch).length > 0, { what: 'subscription_succeeded' });
  }

  // pusher-js in Node notices a refused connection only after its 15 s connect
  // timeout; tell it the network is back (as a browser's "online" event does)
  // whenever one of them is still trying, so that it retries at once.
  const nudger = setInterval(() => {
    if (pubs.some((p) => ['connecting', 'unavailable'].includes(p.pusher.connection.state))) networkOnline();
  }, 1000);
  nudger.unref();
  let publishing = true;
  const stop = () => !publishing;
  // Node A's subscribers are left alone from 1.5 s before the kill until A
  // is back, so that the kill hits live connections.
  let killWindow = false;
  const onA = (x) => x.label.endsWith('@A1') || x.label.endsWith('@A2') || x.label.endsWith('@A');
  const quietFor = (x) => () => killWindow && onA(x);
  const churns = Promise.all([
    ...pubs.map((p) => churnPusher(p, stop, quietFor(p))),
    ...sses.map((s) => churnSse(s, stop, quietFor(s))),
  ]);

  const t0 = Date.now();
  const chaos = (async () => {
    await sleep(KILL_A_AT_MS - 1500);
    killWindow = true;
    await sleep(1500);
    const aPubs = pubs.filter(onA);
    const aSse = sses.filter(onA);
    await waitFor(() => aPubs.every((p) => p.pusher.connection.state === 'connected') && aSse.every((s) => s.es.readyState === 1), {
      timeout: 5000,
      what: "node A's subscribers to be connected before the kill",
    });
    const dropsBefore = aPubs.map((p) => p.drops);
    const retriesBefore = aSse.map((s) => s.retries);
    const oldA = c.A;
    const killedAt = Date.now();
    const exited = await c.killNode(oldA);
    assert.equal(exited.signal, 'SIGKILL');
    await sleep(1000);
    const A = await c.restartNode(oldA);
    assert.equal(A.port, oldA.port);
    const aDown = Date.now() - killedAt;
    // Every connection to A was lost (not closed by the test), and comes back.
    await waitFor(
      () => aPubs.every((p, i) => p.drops > dropsBefore[i] && p.pusher.connection.state === 'connected') &&
        aSse.every((s, i) => s.retries > retriesBefore[i] && s.es.readyState === 1),
      { timeout: 10_000, what: "node A's subscribers to lose their connections and reconnect to the new A" },
    );
    const aBack = Date.now() - killedAt;
    killWindow = false;
    await sleep(Math.max(0, REDIS_RESTART_AT_MS - (Date.now() - t0)));
    await redis.stop();
    const redisStoppedAt = Date.now();
    await sleep(1500);
    await redis.start();
    return { killAt: killedAt - t0, aDown, aBack, redisDown: Date.now() - redisStoppedAt };
  })();
  chaos.catch(() => {}); // awaited below, after the publisher; not an unhandled rejection meanwhile

  // The publisher: one event every 1/RATE s, each awaited; never retried.
  const sdk = sdkFor(c.B, ZAPP);
  const total = Math.round((PUBLISH_MS / 1000) * RATE_PER_SECOND);
  const acked = [];
  const refused = [];
  for (let n = 0; n < total; n++) {
    const due = t0 + (n * 1000) / RATE_PER_SECOND;
    if (due > Date.now()) await sleep(due - Date.now());
    try {
      const res = await call(sdk.trigger(ch, 'n', { n }));
      if (res.status === 200) acked.push(n);
      else refused.push({ n, status: res.status, text: res.text });
    } catch (err) {
      refused.push({ n, status: 'network', text: String(err && err.message) });
    }
  }
  const publishedIn = Date.now() - t0;
  const chaosInfo = await chaos;
  publishing = false;
  const [pusherChurn, sseChurn] = await churns.then((counts) => [counts.slice(0, pubs.length), counts.slice(pubs.length)]);
  // Every pusher-js client is connected again (a churn may have ended in a connect).
  for (const p of pubs) if (p.pusher.connection.state === 'disconnected') p.pusher.connect();

  // Wait (one deadline for all) until every subscriber has the last
  // acknowledged event; whoever does not is reported with the rest below.
  const lastAcked = acked.at(-1);
  const deliveredStart = Date.now();
  const waits = await Promise.allSettled([
    ...pubs.map((p) =>
      p.waitEvents((evs) => evs.some((e) => e.data.n === lastAcked), {
        timeout: DELIVERY_TIMEOUT_MS,
        what: `the last acknowledged event (n=${lastAcked})`,
      }),
    ),
    ...sses.map((s) =>
      s.waitFrames(() => s.durable(ch).some((f) => JSON.parse(f.frame.data).n === lastAcked), {
        timeout: DELIVERY_TIMEOUT_MS,
        what: `the last acknowledged event (n=${lastAcked})`,
      }),
    ),
  ]);
  clearInterval(nudger);
  const catchUpMs = Date.now() - deliveredStart;
  await sleep(300); // anything late (a duplicate) would show now

  // The log holds exactly the acknowledged events, in publish order.
  const log = await readLog(c.B, ZAPP, ch);
  const logN = log.events.map((e) => JSON.parse(e.data).n);
  const logProblem = checkSequence('the log', log.events.map((e) => ({ n: JSON.parse(e.data).n, seq: e.seq })), acked);
  const problems = logProblem ? [logProblem] : [];
  for (const w of waits) if (w.status === 'rejected') problems.push(w.reason.message);
  assert.deepEqual(log.events.map((e) => e.seq), log.events.map((_, i) => i + 1), 'the log has no hole');

  const seqOf = new Map(log.events.map((e) => [JSON.parse(e.data).n, e.seq]));
  for (const p of pubs) {
    const got = p.events.map((e) => ({ n: e.data.n, seq: e.seq }));
    problems.push(checkSequence(p.label, got, acked));
    if (p.gaps.length) problems.push(`${p.label}: gaps ${JSON.stringify(p.gaps)}`);
    const wrongSeq = got.filter((e) => seqOf.get(e.n) !== e.seq);
    if (wrongSeq.length) problems.push(`${p.label}: ${wrongSeq.length} events with another seq than the log's, e.g. ${JSON.stringify(wrongSeq.slice(0, 3))}`);
  }
  for (const s of sses) {
    const got = s.durable(ch).map((f) => ({ n: JSON.parse(f.frame.data).n, seq: f.frame.seq }));
    problems.push(checkSequence(s.label, got, acked));
    const failures = s.seen('herald:resume_failed', ch);
    if (failures.length) problems.push(`${s.label}: resume_failed ${JSON.stringify(failures.map((f) => f.frame.data))}`);
    const wrongSeq = got.filter((e) => seqOf.get(e.n) !== e.seq);
    if (wrongSeq.length) problems.push(`${s.label}: ${wrongSeq.length} events with another seq than the log's`);
  }

  const reconnects = {
    pusher: pubs.reduce((a, p) => a + p.reconnects, 0),
    sse: sses.reduce((a, s) => a + s.reconnects, 0),
  };
  const refusedBy = refused.reduce((m, r) => ({ ...m, [r.status]: (m[r.status] || 0) + 1 }), {});
  process.stderr.write(
    `# zero-loss: ${total} events published in ${(publishedIn / 1000).toFixed(1)} s, ${acked.length} acknowledged ` +
      `(refused: ${JSON.stringify(refusedBy)}), log ${logN.length}; ${pubs.length + sses.length} subscribers ` +
      `(${pubs.length} pusher-js+plugin, ${sses.length} SSE); reconnects: pusher ${reconnects.pusher} ` +
      `(${pusherChurn.reduce((a, b) => a + b, 0)} forced), SSE ${reconnects.sse} (${sseChurn.reduce((a, b) => a + b, 0)} forced); ` +
      `node A killed at ${(chaosInfo.killAt / 1000).toFixed(1)} s, restarted after ${chaosInfo.aDown} ms, its subscribers back after ${chaosInfo.aBack} ms; ` +
      `Redis down ${chaosInfo.redisDown} ms; connections lost (not closed by the test): pusher ${pubs.reduce((a, p) => a + p.drops, 0)}, ` +
      `SSE ${sses.reduce((a, s) => a + s.retries, 0)}; ` +
      `all caught up ${catchUpMs} ms after the last publish; ${problems.filter(Boolean).length ? 'PROBLEMS' : 'no loss, no duplicate, in order'}\n`,
  );
  if (refused.length) process.stderr.write(`# refused publishes: ${JSON.stringify(refused.slice(0, 5))}\n`);
  assert.deepEqual(problems.filter(Boolean), []);
  assert.ok(acked.length >= total * 0.9, `most publishes must be acknowledged: ${acked.length}/${total}, refused ${JSON.stringify(refused.slice(0, 5))}`);
  assert.ok(reconnects.pusher >= pubs.length, `every pusher-js client reconnected at least once: ${JSON.stringify(pubs.map((p) => p.reconnects))}`);
  assert.ok(reconnects.sse >= sses.length, `every SSE client reconnected at least once: ${JSON.stringify(sses.map((s) => s.reconnects))}`);
});

test('concurrent publishers through A and B: every subscriber sees the log\'s order', async () => {
  const ch = uniq('durable-concurrent');
  const subs = [
    new PluginSubscriber(c.A, { app: ZAPP, channel: ch, label: 'pusher@A' }),
    new PluginSubscriber(c.B, { app: ZAPP, channel: ch, label: 'pusher@B' }),
  ];
  const sses = [c.A, c.B].map((node) => new SseSubscriber(`${node.httpBase}/app/${ZAPP.key}/sse?channels=${ch}`, { label: `sse@${node.label}` }));
  for (const s of subs) await s.ready();
  for (const s of sses) {
    await s.waitFrames(() => s.seen('pusher_internal:subscription_succeeded', ch).length > 0, { what: 'subscription_succeeded' });
  }

  const PER_NODE = 200;
  const IN_FLIGHT = 8; // per node
  const publishVia = async (node) => {
    const sdk = sdkFor(node, ZAPP);
    let next = 0;
    const worker = async () => {
      while (next < PER_NODE) {
        const i = next++;
        for (;;) {
          const res = await call(sdk.trigger(ch, 'ev', { node: node.label, i }));
          if (res.status === 200) break;
          // A rate-limit refusal is made before anything is committed: safe to retry.
          assert.equal(res.status, 429, `publish ${node.label}#${i}: ${res.status} ${res.text}`);
          await sleep(50);
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  };
  await Promise.all([publishVia(c.A), publishVia(c.B)]);

  const log = await readLog(c.A, ZAPP, ch);
  assert.equal(log.events.length, 2 * PER_NODE);
  assert.deepEqual(log.events.map((e) => e.seq), log.events.map((_, i) => i + 1), 'seq 1..400 without a hole');
  const keys = log.events.map((e) => {
    const d = JSON.parse(e.data);
    return `${d.node}#${d.i}`;
  });
  assert.equal(new Set(keys).size, 2 * PER_NODE, 'each publish once in the log');
  const expected = log.events.map((e) => [e.seq, e.data]);
  const interleavings = keys.reduce((a, k, i) => a + (i > 0 && k[0] !== keys[i - 1][0] ? 1 : 0), 0);

  for (const s of subs) {
    await s.waitEvents((evs) => evs.length >= 2 * PER_NODE, { timeout: 10_000, what: `${2 * PER_NODE} events` });
  }
  for (const s of sses) {
    await s.waitFrames(() => s.durable(ch).length >= 2 * PER_NODE, { timeout: 10_000, what: `${2 * PER_NODE} events` });
  }
  await sleep(300);
  for (const s of subs) {
    assert.deepEqual(s.events.map((e) => [e.seq, JSON.stringify(e.data)]), expected, `${s.label} order differs from the log's`);
    assert.deepEqual(s.gaps, []);
  }
  for (const s of sses) {
    assert.deepEqual(s.durable(ch).map((f) => [f.frame.seq, f.frame.data]), expected, `${s.label} order differs from the log's`);
  }
  process.stderr.write(`# concurrent: ${2 * PER_NODE} events through A and B, ${interleavings} switches between publishers in the log's order; ${subs.length + sses.length} subscribers agree with it\n`);
});
