// Multi-node, Redis restarted mid-test: two Herald nodes on this file's own
// redis-server (no persistence, so a restart loses every key). While Redis is
// down /readyz says so (503 with a reason); after it is back, delivery across
// nodes resumes by itself, without restarting Herald, and the cluster's view
// of presence members and channel counts is rebuilt.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, OwnRedis, waitUntil, httpGet } from '../lib/cluster.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, sdkFor, call, signedRequest, QUIET_MS, sleep } from '../lib/clients.mjs';

const redis = new OwnRedis();
// Registered before useCluster's hooks, so Redis is up before the nodes start.
before(async () => {
  await redis.start();
});
after(async () => {
  await redis.destroy();
});
const c = useCluster({ tag: 'redisrestart', apps: [APP1], presenceTtl: '3s', redisUrl: () => redis.url });

/** How long after Redis is back the nodes may take to be ready and deliver again. */
const RECOVERY_MS = 10_000;
/** How long a stopped Redis may take to show in /readyz. */
const DETECT_MS = 5000;

function memberIds(members) {
  const ids = [];
  members.each((m) => ids.push(String(m.id)));
  return ids.sort();
}

async function readyz(node) {
  return httpGet(node, '/readyz');
}

async function restartRedis() {
  await redis.stop();
  const stoppedAt = Date.now();
  // Both nodes notice: 503 with a reason naming Redis, while staying alive.
  for (const node of [c.A, c.B]) {
    const down = await waitUntil(
      async () => {
        const r = await readyz(node);
        return r.status === 503 && r;
      },
      { timeout: DETECT_MS, interval: 100, what: `${node.label} /readyz to answer 503 while Redis is down` },
    );
    assert.equal(down.json && down.json.ready, false, `${node.label} /readyz: ${down.text}`);
    const reason = down.json && down.json.reasons && down.json.reasons.redis;
    assert.ok(typeof reason === 'string' && reason.length > 0, `${node.label} /readyz gives no Redis reason: ${down.text}`);
    assert.ok(!reason.includes('redis://'), `the reason must not echo the Redis URL: ${reason}`);
    const health = await httpGet(node, '/healthz');
    assert.equal(health.status, 200, `${node.label} /healthz while Redis is down: ${health.text}`);
  }
  // A publish that cannot reach the backplane is not acknowledged.
  const sentAt = Date.now();
  const lost = await call(sdkFor(c.A, APP1).trigger(uniq('void'), 'e', {})).catch((err) => {
    throw new Error(`REST publish while Redis is down got no answer within 5 s: ${err.message || err}`);
  });
  assert.ok(lost.status >= 500, `REST publish while Redis is down answered ${lost.status} ${lost.text}`);
  process.stderr.write(`# REST publish while Redis is down: ${lost.status} after ${Date.now() - sentAt} ms\n`);

  await redis.start();
  const restartedAt = Date.now();
  for (const node of [c.A, c.B]) {
    await waitUntil(
      async () => {
        const r = await readyz(node);
        return r.status === 200 && r;
      },
      { timeout: RECOVERY_MS, interval: 100, what: `${node.label} /readyz to answer 200 after Redis is back` },
    );
  }
  process.stderr.write(
    `# Redis down ${restartedAt - stoppedAt} ms; both nodes ready ${Date.now() - restartedAt} ms after its restart\n`,
  );
  return restartedAt;
}

test('Redis restart: /readyz reports it, and delivery between nodes resumes without restarting Herald', async () => {
  const pids = [c.A.child.pid, c.B.child.pid];
  const ch = uniq('survivor');
  const priv = uniq('private-survivor');
  const onA = await connectPusher(c.A, { label: 'client@A' });
  const onB = await connectPusher(c.B, { label: 'client@B' });
  for (const cl of [onA, onB]) {
    await cl.subscribe(ch);
    await cl.subscribe(priv);
  }
  const gotA = onA.record(ch, 'tick');
  const gotB = onB.record(ch, 'tick');
  let res = await call(sdkFor(c.A, APP1).trigger(ch, 'tick', { n: 'before' }));
  assert.equal(res.status, 200, res.text);
  await gotA.take((e) => e.data.n === 'before');
  await gotB.take((e) => e.data.n === 'before');

  const restartedAt = await restartRedis();

  // Keep publishing through A until both clients (the same pusher-js objects,
  // whatever they had to do meanwhile) receive one.
  let n = 0;
  await waitUntil(
    async () => {
      n += 1;
      const tag = `retry-${n}`;
      await call(sdkFor(c.A, APP1).trigger(ch, 'tick', { n: tag }));
      await sleep(150);
      return gotA.filter((e) => e.data.n === tag).length > 0 && gotB.filter((e) => e.data.n === tag).length > 0;
    },
    { timeout: RECOVERY_MS, interval: 50, what: 'a publish through A to reach clients on A and B after the Redis restart' },
  );
  process.stderr.write(`# delivery resumed ${Date.now() - restartedAt} ms after Redis restarted (${n} tries)\n`);

  // From now on every publish, through either node, is delivered on both.
  for (const via of [c.A, c.B]) {
    const tag = `after-${via.label}`;
    res = await call(sdkFor(via, APP1).trigger(ch, 'tick', { n: tag }));
    assert.equal(res.status, 200, res.text);
    await gotA.take((e) => e.data.n === tag, { what: `${tag} on A` });
    await gotB.take((e) => e.data.n === tag, { what: `${tag} on B` });
  }
  // Client events cross nodes again.
  await onA.waitForState('connected', RECOVERY_MS);
  await onB.waitForState('connected', RECOVERY_MS);
  await waitUntil(() => onA.pusher.channel(priv).subscribed && onB.pusher.channel(priv).subscribed, {
    timeout: RECOVERY_MS,
    what: `both clients to be subscribed to ${priv}`,
  });
  const reconnects = [onA, onB].map((cl) => `${cl.label}: ${cl.states.filter((s) => s.previous === 'connected').length}`);
  process.stderr.write(`# connections lost during the Redis restart: ${reconnects.join(', ')}\n`);
  const typing = onB.record(priv, 'client-typing');
  onA.pusher.channel(priv).trigger('client-typing', { again: true });
  assert.deepEqual((await typing.take(() => true, { what: 'client-typing on B' })).data, { again: true });

  // Herald was never restarted.
  assert.equal(c.A.exited, null, `node A exited: ${JSON.stringify(c.A.exited)}`);
  assert.equal(c.B.exited, null, `node B exited: ${JSON.stringify(c.B.exited)}`);
  assert.deepEqual([c.A.child.pid, c.B.child.pid], pids);
});

test('Redis restart: presence members and channel counts are rebuilt within the TTL, without spurious member_removed', async () => {
  const room = uniq('presence-keep');
  const pub = uniq('keep');
  const alice = await connectPusher(c.A, { user: { user_id: 'alice' }, label: 'alice@A' });
  const bob = await connectPusher(c.B, { user: { user_id: 'bob' }, label: 'bob@B' });
  for (const cl of [alice, bob]) {
    await cl.subscribe(room);
    await cl.subscribe(pub);
  }
  const removedAtA = alice.record(room, 'pusher:member_removed');
  const removedAtB = bob.record(room, 'pusher:member_removed');
  for (const node of [c.A, c.B]) {
    const users = await signedRequest(node, { app: APP1, path: `/channels/${room}/users` });
    assert.deepEqual(users.json.users.map((u) => String(u.id)).sort(), ['alice', 'bob'], `${node.label}: ${users.text}`);
  }

  const restartedAt = await restartRedis();
  const limit = c.presenceTtlMs + RECOVERY_MS;
  for (const node of [c.A, c.B]) {
    await waitUntil(
      async () => {
        const users = await signedRequest(node, { app: APP1, path: `/channels/${room}/users` });
        const info = await signedRequest(node, { app: APP1, path: `/channels/${pub}`, params: { info: 'subscription_count' } });
        const ids = users.json && users.json.users ? users.json.users.map((u) => String(u.id)).sort() : null;
        if (JSON.stringify(ids) === '["alice","bob"]' && info.json && info.json.subscription_count === 2) return true;
        throw new Error(`users: ${users.status} ${users.text}; ${pub}: ${info.status} ${info.text}`);
      },
      { timeout: Math.max(limit - (Date.now() - restartedAt), 1), interval: 200, what: `${node.label} to list alice and bob and count 2 subscribers again` },
    );
  }
  process.stderr.write(`# presence and counts rebuilt ${Date.now() - restartedAt} ms after Redis restarted\n`);

  // A newcomer sees everyone who is still connected.
  const carol = await connectPusher(c.A, { user: { user_id: 'carol' }, label: 'carol@A' });
  const { data: members } = await carol.subscribe(room);
  assert.deepEqual(memberIds(members), ['alice', 'bob', 'carol']);

  // alice and bob never left: their peers must not have been told they did.
  await sleep(QUIET_MS);
  assert.deepEqual(removedAtA.all.map((e) => e.data.id), [], 'alice@A got member_removed for a member that is still connected');
  assert.deepEqual(removedAtB.all.map((e) => e.data.id), [], 'bob@B got member_removed for a member that is still connected');
});
