// Multi-node: two Herald nodes (A and B) on one Redis + PostgreSQL, with
// official pusher-js clients on each. A publish through either node's REST
// API reaches clients on both; presence members, client events, channel
// counts, user events and terminations cross nodes; kill -9 of a node removes
// its presence members and counts on the others within the presence TTL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, waitUntil, httpGet } from '../lib/cluster.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, rawConnect, sdkFor, call, signedRequest, record, QUIET_MS, sleep } from '../lib/clients.mjs';

const PRESENCE_TTL = '3s';
const c = useCluster({ tag: 'cluster', apps: [APP1], presenceTtl: PRESENCE_TTL });

/** Extra time, beyond the presence TTL, a dead node's state may take to disappear. */
const DEAD_NODE_MARGIN_MS = 3000;

function memberIds(members) {
  const ids = [];
  members.each((m) => ids.push(String(m.id)));
  return ids.sort();
}

const userIds = (res) => res.json.users.map((u) => String(u.id)).sort();

/** Publishes a control event through `via` and waits for it on every client, so earlier frames have arrived. */
async function control(via, channel, clients) {
  const tag = Math.random().toString(36).slice(2);
  const inboxes = clients.map((cl) => cl.record(channel, 'control'));
  const res = await call(sdkFor(via, APP1).trigger(channel, 'control', { tag }));
  assert.equal(res.status, 200, res.text);
  for (const inbox of inboxes) await inbox.take((e) => e.data.tag === tag, { what: `control ${tag}` });
}

test('cluster: both nodes are healthy and ready with Redis and PostgreSQL', async () => {
  for (const node of [c.A, c.B]) {
    const health = await httpGet(node, '/healthz');
    assert.equal(health.status, 200, `${node.label} /healthz: ${health.text}`);
    const ready = await httpGet(node, '/readyz');
    assert.equal(ready.status, 200, `${node.label} /readyz: ${ready.text}`);
    assert.equal(ready.json && ready.json.ready, true, `${node.label} /readyz: ${ready.text}`);
  }
});

test('cluster: a publish through A\'s REST API reaches pusher-js clients on A and on B (and through B, A)', async () => {
  const pub = uniq('news');
  const priv = uniq('private-feed');
  const onA = await connectPusher(c.A, { label: 'client@A' });
  const onB = await connectPusher(c.B, { label: 'client@B' });
  for (const cl of [onA, onB]) {
    await cl.subscribe(pub);
    await cl.subscribe(priv);
  }
  const gotA = onA.record(pub, 'headline');
  const gotB = onB.record(pub, 'headline');
  const privA = onA.record(priv, 'secret');
  const privB = onB.record(priv, 'secret');

  // Right after subscription_succeeded, with no settling delay.
  let res = await call(sdkFor(c.A, APP1).trigger(pub, 'headline', { n: 1 }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await gotA.take()).data, { n: 1 });
  assert.deepEqual((await gotB.take()).data, { n: 1 });

  res = await call(sdkFor(c.A, APP1).trigger(priv, 'secret', { s: 'x' }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await privA.take()).data, { s: 'x' });
  assert.deepEqual((await privB.take()).data, { s: 'x' });

  // The other direction: published through B, received on A.
  res = await call(sdkFor(c.B, APP1).trigger(pub, 'headline', { n: 2 }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await gotA.take()).data, { n: 2 });
  assert.deepEqual((await gotB.take()).data, { n: 2 });

  // Exactly once on each node.
  await sleep(QUIET_MS);
  assert.equal(gotA.all.length, 2, `client@A got ${JSON.stringify(gotA.all)}`);
  assert.equal(gotB.all.length, 2, `client@B got ${JSON.stringify(gotB.all)}`);
});

test('cluster: events published through one node arrive in publish order on the other', async () => {
  const ch = uniq('ordered');
  const onB = await connectPusher(c.B, { label: 'client@B' });
  await onB.subscribe(ch);
  const got = onB.record(ch, 'seq');
  const sdk = sdkFor(c.A, APP1);
  const N = 30;
  for (let i = 0; i < N; i++) {
    const res = await call(sdk.trigger(ch, 'seq', { i }));
    assert.equal(res.status, 200, res.text);
  }
  for (let i = 0; i < N; i++) {
    const ev = await got.take(() => true, { what: `event #${i}` });
    assert.equal(ev.data.i, i, `event ${i} out of order: got ${JSON.stringify(got.all.map((e) => e.data.i))}`);
  }
});

test('cluster: socket_id exclusion applies to a socket on the other node only', async () => {
  const ch = uniq('exclude');
  const onA = await connectPusher(c.A, { label: 'client@A' });
  const excluded = await connectPusher(c.B, { label: 'excluded@B' });
  const otherB = await connectPusher(c.B, { label: 'other@B' });
  for (const cl of [onA, excluded, otherB]) await cl.subscribe(ch);
  const gotA = onA.record(ch, 'ev');
  const gotX = excluded.record(ch, 'ev');
  const gotB = otherB.record(ch, 'ev');

  const res = await call(sdkFor(c.A, APP1).trigger(ch, 'ev', { x: 1 }, { socket_id: excluded.socketId }));
  assert.equal(res.status, 200, res.text);
  await gotA.take();
  await gotB.take();
  await sleep(QUIET_MS);
  assert.equal(gotX.all.length, 0, `the excluded socket on B received ${JSON.stringify(gotX.all)}`);
});

test('cluster: batch events through B reach clients on A', async () => {
  const [c1, c2] = [uniq('batch'), uniq('batch')];
  const onA = await connectPusher(c.A, { label: 'client@A' });
  await onA.subscribe(c1);
  await onA.subscribe(c2);
  const got1 = onA.record(c1, 'first');
  const got2 = onA.record(c2, 'second');
  const res = await call(
    sdkFor(c.B, APP1).triggerBatch([
      { channel: c1, name: 'first', data: { a: 1 }, info: 'subscription_count' },
      { channel: c2, name: 'second', data: 'text' },
    ]),
  );
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await got1.take()).data, { a: 1 });
  assert.equal((await got2.take()).data, 'text');
  // B has no subscriber of c1: the count in B's answer is the cluster's.
  assert.equal(res.json.batch[0].subscription_count, 1, `B answered ${res.text}`);
});

test('cluster: presence members agree on both nodes; member_added/removed cross nodes, per user', async () => {
  const room = uniq('presence-room');
  const alice = { user_id: 'alice', user_info: { name: 'Alice' } };
  const bob = { user_id: 'bob', user_info: { name: 'Bob' } };
  const carol = { user_id: 'carol', user_info: { name: 'Carol' } };

  const carolA = await connectPusher(c.A, { user: carol, label: 'carol@A' });
  const { data: m0 } = await carolA.subscribe(room);
  assert.deepEqual(memberIds(m0), ['carol']);
  const addedAtA = carolA.record(room, 'pusher:member_added');
  const removedAtA = carolA.record(room, 'pusher:member_removed');

  // bob on B sees carol (a member on A) in his subscription_succeeded.
  const bobB = await connectPusher(c.B, { user: bob, label: 'bob@B' });
  const { data: m1 } = await bobB.subscribe(room);
  assert.equal(m1.count, 2, `bob@B members: ${JSON.stringify(memberIds(m1))}`);
  assert.deepEqual(memberIds(m1), ['bob', 'carol']);
  assert.deepEqual(m1.get('carol').info, { name: 'Carol' });
  const addBob = await addedAtA.take(() => true, { what: 'member_added bob on A' });
  assert.equal(addBob.data.id, 'bob');
  assert.deepEqual(addBob.data.info, { name: 'Bob' });
  const addedAtB = bobB.record(room, 'pusher:member_added');
  const removedAtB = bobB.record(room, 'pusher:member_removed');

  // alice joins on A: bob on B learns of her, with her info.
  const aliceA = await connectPusher(c.A, { user: alice, label: 'alice@A' });
  const { data: m2 } = await aliceA.subscribe(room);
  assert.deepEqual(memberIds(m2), ['alice', 'bob', 'carol']);
  const addAliceB = await addedAtB.take(() => true, { what: 'member_added alice on B' });
  assert.equal(addAliceB.data.id, 'alice');
  assert.deepEqual(addAliceB.data.info, { name: 'Alice' });
  assert.equal((await addedAtA.take(() => true, { what: 'member_added alice on A' })).data.id, 'alice');

  // alice's second connection, on B: one member still, no member_added anywhere.
  const aliceB = await connectPusher(c.B, { user: alice, label: 'alice@B' });
  const { data: m3 } = await aliceB.subscribe(room);
  assert.equal(m3.count, 3, `alice@B members: ${JSON.stringify(memberIds(m3))}`);
  assert.deepEqual(memberIds(m3), ['alice', 'bob', 'carol']);
  await control(c.A, room, [carolA, bobB]);
  await sleep(QUIET_MS);
  assert.equal(addedAtA.all.length, 2, `carol@A member_added: ${JSON.stringify(addedAtA.all)}`);
  assert.equal(addedAtB.all.length, 1, `bob@B member_added: ${JSON.stringify(addedAtB.all)}`);

  // The client-side lists agree, and so does the REST view through either node.
  assert.deepEqual(memberIds(carolA.pusher.channel(room).members), ['alice', 'bob', 'carol']);
  assert.deepEqual(memberIds(bobB.pusher.channel(room).members), ['alice', 'bob', 'carol']);
  for (const node of [c.A, c.B]) {
    const users = await signedRequest(node, { app: APP1, path: `/channels/${room}/users` });
    assert.equal(users.status, 200, `${node.label}: ${users.text}`);
    assert.deepEqual(userIds(users), ['alice', 'bob', 'carol'], `${node.label}: ${users.text}`);
  }

  // alice leaves A but is still on B: no member_removed.
  await aliceA.disconnect();
  await sleep(500);
  await control(c.B, room, [carolA, bobB]);
  await sleep(QUIET_MS);
  assert.equal(removedAtA.all.length, 0, `alice is still on B: ${JSON.stringify(removedAtA.all)}`);
  assert.equal(removedAtB.all.length, 0, `alice is still on B: ${JSON.stringify(removedAtB.all)}`);

  // alice's last connection (on B) leaves: member_removed on both nodes.
  await aliceB.disconnect();
  assert.equal((await removedAtA.take(() => true, { what: 'member_removed alice on A' })).data.id, 'alice');
  assert.equal((await removedAtB.take(() => true, { what: 'member_removed alice on B' })).data.id, 'alice');

  // bob unsubscribes on B: carol on A sees him go.
  bobB.pusher.unsubscribe(room);
  assert.equal((await removedAtA.take(() => true, { what: 'member_removed bob on A' })).data.id, 'bob');
  assert.deepEqual(memberIds(carolA.pusher.channel(room).members), ['carol']);
  for (const node of [c.A, c.B]) {
    const users = await signedRequest(node, { app: APP1, path: `/channels/${room}/users` });
    assert.deepEqual(userIds(users), ['carol'], `${node.label}: ${users.text}`);
  }
  await sleep(QUIET_MS);
  assert.equal(removedAtA.all.length, 2, `exactly one member_removed per user: ${JSON.stringify(removedAtA.all)}`);
});

test('cluster: a client event from A reaches a peer on B (private and presence), never echoed', async () => {
  const priv = uniq('private-chat');
  const sender = await connectPusher(c.A, { label: 'sender@A' });
  const peerB = await connectPusher(c.B, { label: 'peer@B' });
  const peerA = await connectPusher(c.A, { label: 'peer@A' });
  for (const cl of [sender, peerB, peerA]) await cl.subscribe(priv);
  const echo = sender.record(priv, 'client-typing');
  const gotB = peerB.record(priv, 'client-typing');
  const gotA = peerA.record(priv, 'client-typing');

  assert.equal(sender.pusher.channel(priv).trigger('client-typing', { typing: true }), true);
  assert.deepEqual((await gotB.take(() => true, { what: 'client-typing on B' })).data, { typing: true });
  assert.deepEqual((await gotA.take()).data, { typing: true });

  // Back from B to A.
  const back = sender.record(priv, 'client-reply');
  peerB.pusher.channel(priv).trigger('client-reply', { ok: 1 });
  assert.deepEqual((await back.take(() => true, { what: 'client-reply on A' })).data, { ok: 1 });
  await sleep(QUIET_MS);
  assert.equal(echo.all.length, 0, 'a client event must not be echoed to its sender');
  assert.equal(gotB.all.length, 1, `peer@B got the event ${gotB.all.length} times`);

  // Presence: the receiver on the other node gets the sender's user_id.
  const room = uniq('presence-chat');
  const zed = await connectPusher(c.B, { user: { user_id: 'zed' }, label: 'zed@B' });
  const yan = await connectPusher(c.A, { user: { user_id: 'yan' }, label: 'yan@A' });
  await zed.subscribe(room);
  await yan.subscribe(room);
  const gotYan = yan.record(room, 'client-wave');
  zed.pusher.channel(room).trigger('client-wave', { hi: 'there' });
  const wave = await gotYan.take(() => true, { what: 'client-wave on A' });
  assert.deepEqual(wave.data, { hi: 'there' });
  assert.equal(wave.metadata && String(wave.metadata.user_id), 'zed', `metadata: ${JSON.stringify(wave.metadata)}`);
  for (const cl of [sender, peerB, peerA, zed, yan]) {
    assert.equal(cl.errors.all.length, 0, `${cl.label} got errors: ${JSON.stringify(cl.errors.all)}`);
  }
});

test('cluster: channel info from either node counts subscribers on both', async () => {
  const prefix = uniq('count');
  const pub = `${prefix}-pub`;
  const room = `presence-${prefix}`;
  const a1 = await connectPusher(c.A, { user: { user_id: 'u-a' }, label: 'a1@A' });
  const b1 = await connectPusher(c.B, { user: { user_id: 'u-b' }, label: 'b1@B' });
  const b2 = await connectPusher(c.B, { user: { user_id: 'u-b' }, label: 'b2@B' });
  for (const cl of [a1, b1, b2]) {
    await cl.subscribe(pub);
    await cl.subscribe(room);
  }

  for (const node of [c.A, c.B]) {
    const info = await signedRequest(node, { app: APP1, path: `/channels/${pub}`, params: { info: 'subscription_count' } });
    assert.equal(info.status, 200, `${node.label}: ${info.text}`);
    assert.equal(info.json.occupied, true, `${node.label}: ${info.text}`);
    assert.equal(info.json.subscription_count, 3, `${node.label} ${pub}: ${info.text}`);

    const pinfo = await signedRequest(node, {
      app: APP1,
      path: `/channels/${room}`,
      params: { info: 'user_count,subscription_count' },
    });
    assert.equal(pinfo.status, 200, `${node.label}: ${pinfo.text}`);
    assert.equal(pinfo.json.user_count, 2, `${node.label} ${room}: ${pinfo.text}`);
    assert.equal(pinfo.json.subscription_count, 3, `${node.label} ${room}: ${pinfo.text}`);

    const list = await signedRequest(node, {
      app: APP1,
      path: '/channels',
      params: { filter_by_prefix: prefix, info: 'subscription_count' },
    });
    assert.equal(list.status, 200, `${node.label}: ${list.text}`);
    assert.deepEqual(list.json.channels, { [pub]: { subscription_count: 3 } }, `${node.label}: ${list.text}`);

    const plist = await signedRequest(node, {
      app: APP1,
      path: '/channels',
      params: { filter_by_prefix: 'presence-', info: 'user_count' },
    });
    assert.equal(plist.status, 200, `${node.label}: ${plist.text}`);
    assert.deepEqual(plist.json.channels[room], { user_count: 2 }, `${node.label}: ${plist.text}`);

    const trig = await call(sdkFor(node, APP1).trigger([pub, room], 'x', {}, { info: 'subscription_count,user_count' }));
    assert.equal(trig.status, 200, trig.text);
    assert.equal(trig.json.channels[pub].subscription_count, 3, `${node.label} trigger info: ${trig.text}`);
    assert.equal(trig.json.channels[room].user_count, 2, `${node.label} trigger info: ${trig.text}`);
  }

  // B's subscribers leave: both nodes count only A's.
  await b1.disconnect();
  await b2.disconnect();
  for (const node of [c.A, c.B]) {
    await waitUntil(
      async () => {
        const info = await signedRequest(node, { app: APP1, path: `/channels/${pub}`, params: { info: 'subscription_count' } });
        return info.json && info.json.subscription_count === 1 && info;
      },
      { timeout: 2000, what: `${node.label} to count 1 subscriber of ${pub}` },
    );
    const pinfo = await signedRequest(node, { app: APP1, path: `/channels/${room}`, params: { info: 'user_count' } });
    assert.equal(pinfo.json.user_count, 1, `${node.label}: ${pinfo.text}`);
  }

  // The last one leaves: unoccupied and unlisted everywhere.
  await a1.disconnect();
  for (const node of [c.A, c.B]) {
    await waitUntil(
      async () => {
        const info = await signedRequest(node, { app: APP1, path: `/channels/${pub}` });
        return info.json && info.json.occupied === false && info;
      },
      { timeout: 2000, what: `${node.label} to report ${pub} unoccupied` },
    );
    const list = await signedRequest(node, { app: APP1, path: '/channels', params: { filter_by_prefix: prefix } });
    assert.deepEqual(list.json.channels, {}, `${node.label}: ${list.text}`);
  }
});

test('cluster: sendToUser and terminate_connections through A reach a user signed in on B', async () => {
  const id = uniq('user');
  const onB = await connectPusher(c.B, { userData: { id }, label: 'user@B' });
  const bystander = await connectPusher(c.B, { userData: { id: uniq('user') }, label: 'bystander@B' });
  await onB.signin();
  await bystander.signin();
  const got = record(onB.pusher.user, 'notify');
  const res = await call(sdkFor(c.A, APP1).sendToUser(id, 'notify', { n: 1 }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await got.take(() => true, { what: 'notify on B' })).data, { n: 1 });

  const sock = onB.socketId;
  const left = onB.states.take((s) => s.previous === 'connected', { timeout: 3000, what: 'leaving "connected"' });
  const term = await call(sdkFor(c.A, APP1).terminateUserConnections(id));
  assert.equal(term.status, 200, term.text);
  await left;
  await sleep(QUIET_MS);
  assert.ok(onB.state !== 'connected' || onB.socketId !== sock, 'user@B is still on its old socket');
  assert.equal(bystander.state, 'connected');
  assert.equal(bystander.states.filter((s) => s.previous === 'connected').length, 0);
});

test('cluster: kill -9 of a node removes its presence members and counts on the others within the TTL', async () => {
  const C = await c.startNode('C');
  const room = uniq('presence-doomed');
  const pub = uniq('doomed');
  const watcher = await connectPusher(c.A, { user: { user_id: 'watcher' }, label: 'watcher@A' });
  await watcher.subscribe(room);
  const removed = watcher.record(room, 'pusher:member_removed');
  const added = watcher.record(room, 'pusher:member_added');
  const watcherB = await connectPusher(c.B, { user: { user_id: 'watcher-b' }, label: 'watcher@B' });
  await watcherB.subscribe(room);
  const removedAtB = watcherB.record(room, 'pusher:member_removed');
  assert.equal((await added.take()).data.id, 'watcher-b');

  // Two users on C, one of them over two connections, and a raw socket too.
  const d1 = await connectPusher(C, { user: { user_id: 'dave' }, label: 'dave@C' });
  const d2 = await connectPusher(C, { user: { user_id: 'dave' }, label: 'dave2@C' });
  const e1 = await connectPusher(C, { user: { user_id: 'erin' }, label: 'erin@C' });
  for (const cl of [d1, d2, e1]) {
    await cl.subscribe(room);
    await cl.subscribe(pub);
  }
  const raw = await rawConnect(C, { key: APP1.key, label: 'raw@C' });
  await raw.subscribe(pub);
  const joined = [
    (await added.take(() => true, { what: 'member_added #1 from C' })).data.id,
    (await added.take(() => true, { what: 'member_added #2 from C' })).data.id,
  ].sort();
  assert.deepEqual(joined, ['dave', 'erin']);
  const before = await signedRequest(c.A, { app: APP1, path: `/channels/${pub}`, params: { info: 'subscription_count' } });
  assert.equal(before.json.subscription_count, 4, `A counts C's subscribers: ${before.text}`);

  // Kill C without any chance to clean up; only once it is dead, stop its
  // pusher-js clients from retrying (their sockets are already gone).
  const killedAt = Date.now();
  process.kill(C.child.pid, 'SIGKILL');
  await waitUntil(() => C.exited, { timeout: 2000, what: 'node C to die' });
  assert.equal(C.exited.signal, 'SIGKILL');
  for (const cl of [d1, d2, e1]) cl.close();

  const limit = c.presenceTtlMs + DEAD_NODE_MARGIN_MS;
  const gone = [];
  for (let i = 0; i < 2; i++) {
    const left = limit - (Date.now() - killedAt);
    const ev = await removed.take(() => true, { timeout: Math.max(left, 1), what: `member_removed #${i + 1} for C's users on A` });
    gone.push(ev.data.id);
  }
  const elapsedA = Date.now() - killedAt;
  assert.deepEqual(gone.sort(), ['dave', 'erin']);
  const goneB = [];
  for (let i = 0; i < 2; i++) {
    const left = limit - (Date.now() - killedAt);
    goneB.push((await removedAtB.take(() => true, { timeout: Math.max(left, 1), what: `member_removed #${i + 1} on B` })).data.id);
  }
  assert.deepEqual(goneB.sort(), ['dave', 'erin']);
  process.stderr.write(`# kill -9: member_removed on A after ${elapsedA} ms (TTL ${c.presenceTtlMs} ms)\n`);

  for (const node of [c.A, c.B]) {
    const users = await signedRequest(node, { app: APP1, path: `/channels/${room}/users` });
    assert.deepEqual(userIds(users), ['watcher', 'watcher-b'], `${node.label}: ${users.text}`);
    await waitUntil(
      async () => {
        const info = await signedRequest(node, { app: APP1, path: `/channels/${pub}` });
        return info.json && info.json.occupied === false && info;
      },
      { timeout: Math.max(limit - (Date.now() - killedAt), 1), what: `${node.label} to stop counting C's subscribers of ${pub}` },
    );
  }
  assert.ok(Date.now() - killedAt <= limit + 500, 'dead node state removed within TTL + margin');
  await sleep(QUIET_MS);
  assert.equal(removed.all.length, 2, `one member_removed per user of C: ${JSON.stringify(removed.all)}`);
  assert.equal(watcher.state, 'connected');
});
