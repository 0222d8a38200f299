// 3. Presence channels: member lists, per-user (not per-socket) member_added /
//    member_removed, tamper-proof channel_data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, rawConnect, sdkFor, call, signedRequest, QUIET_MS, sleep } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1] });

const alice = { user_id: 'u1', user_info: { name: 'Alice' } };
const bob = { user_id: 'u2', user_info: { name: 'Bob' } };
const carol = { user_id: 'u3', user_info: { name: 'Carol' } };

function memberIds(members) {
  const ids = [];
  members.each((m) => ids.push(m.id));
  return ids.sort();
}

/** Sends a control event through the channel and waits for it, so earlier frames must have arrived. */
async function control(client, channel) {
  const tag = Math.random().toString(36).slice(2);
  const got = client.record(channel, 'control');
  await call(sdkFor(h, APP1).trigger(channel, 'control', { tag }));
  const ev = await got.take((e) => e.data.tag === tag);
  return ev;
}

test('presence: members on subscription_succeeded include self and others (count, each, me)', async () => {
  const room = uniq('presence-lobby');
  const a = await connectPusher(h, { user: alice });
  const { data: membersA } = await a.subscribe(room);
  assert.equal(membersA.count, 1);
  assert.equal(membersA.me.id, 'u1');
  assert.deepEqual(membersA.me.info, { name: 'Alice' });
  assert.deepEqual(memberIds(membersA), ['u1']);

  const b = await connectPusher(h, { user: bob });
  const { data: membersB } = await b.subscribe(room);
  assert.equal(membersB.count, 2);
  assert.equal(membersB.me.id, 'u2');
  assert.deepEqual(memberIds(membersB), ['u1', 'u2']);
  assert.deepEqual(membersB.get('u1').info, { name: 'Alice' });
  assert.deepEqual(membersB.get('u2').info, { name: 'Bob' });
});

test('presence: member_added and member_removed fire per user, not per connection', async () => {
  const room = uniq('presence-room');
  const observer = await connectPusher(h, { user: carol, label: 'observer(u3)' });
  await observer.subscribe(room);
  const added = observer.record(room, 'pusher:member_added');
  const removed = observer.record(room, 'pusher:member_removed');

  // u1, first connection → member_added u1 with info.
  const u1a = await connectPusher(h, { user: alice, label: 'u1-first' });
  const { data: m1 } = await u1a.subscribe(room);
  assert.equal(m1.count, 2);
  const add1 = await added.take();
  assert.equal(add1.data.id, 'u1');
  assert.deepEqual(add1.data.info, { name: 'Alice' });

  // u1, second connection → no member_added; member count stays per user.
  const u1b = await connectPusher(h, { user: alice, label: 'u1-second' });
  const { data: m2 } = await u1b.subscribe(room);
  assert.equal(m2.count, 2, 'u1 with two connections is one member');
  assert.deepEqual(memberIds(m2), ['u1', 'u3']);
  await control(observer, room);
  await sleep(QUIET_MS);
  assert.equal(added.all.length, 1, `second connection of u1 must not fire member_added: ${JSON.stringify(added.all)}`);
  assert.equal(observer.pusher.channel(room).members.count, 2);

  // u2 joins → member_added u2.
  const u2 = await connectPusher(h, { user: bob, label: 'u2' });
  const { data: m3 } = await u2.subscribe(room);
  assert.equal(m3.count, 3);
  assert.deepEqual(memberIds(m3), ['u1', 'u2', 'u3']);
  const add2 = await added.take();
  assert.equal(add2.data.id, 'u2');

  // REST view agrees: distinct users.
  const users = await signedRequest(h, { app: APP1, path: `/channels/${room}/users` });
  assert.equal(users.status, 200, users.text);
  assert.deepEqual(users.json.users.map((u) => u.id).sort(), ['u1', 'u2', 'u3']);

  // Drop one of u1's two connections → no member_removed.
  await u1b.disconnect();
  await sleep(500); // let the server notice the close
  await control(observer, room);
  await sleep(QUIET_MS);
  assert.equal(removed.all.length, 0, `closing one of u1's connections must not fire member_removed: ${JSON.stringify(removed.all)}`);
  const still = await signedRequest(h, { app: APP1, path: `/channels/${room}/users` });
  assert.deepEqual(still.json.users.map((u) => u.id).sort(), ['u1', 'u2', 'u3']);

  // Drop u1's last connection → member_removed u1.
  await u1a.disconnect();
  const rem = await removed.take();
  assert.equal(rem.data.id, 'u1');
  assert.equal(observer.pusher.channel(room).members.count, 2);

  // Unsubscribe (without disconnecting) also removes the member.
  u2.pusher.unsubscribe(room);
  const rem2 = await removed.take();
  assert.equal(rem2.data.id, 'u2');
  await sleep(QUIET_MS);
  assert.equal(removed.all.length, 2);
  assert.equal(observer.pusher.channel(room).members.count, 1);
});

test('presence: channel_data changed by one byte after signing is rejected', async () => {
  const room = uniq('presence-secure');
  const client = await connectPusher(h, {
    user: alice,
    authorize: ({ sdk, socketId, channelName, user }) => {
      const signed = sdk.authorizeChannel(socketId, channelName, user);
      const tampered = signed.channel_data.replace('Alice', 'Alicf');
      assert.notEqual(tampered, signed.channel_data);
      return { ...signed, channel_data: tampered };
    },
  });
  const err = await client.subscribeExpectingError(room);
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 401);
  assert.equal(client.state, 'connected');

  // Nobody joined: the REST member list is empty / channel unoccupied.
  const users = await signedRequest(h, { app: APP1, path: `/channels/${room}/users` });
  assert.equal(users.status, 200, users.text);
  assert.deepEqual(users.json.users, []);
});

test('presence: numeric user_id in channel_data is exposed as a member id', async () => {
  const room = uniq('presence-numeric');
  const client = await connectPusher(h, { user: { user_id: 10, user_info: { name: 'Mr. Pusher' } } });
  const { data: members } = await client.subscribe(room);
  assert.equal(members.count, 1);
  assert.equal(String(members.me.id), '10');
  const users = await signedRequest(h, { app: APP1, path: `/channels/${room}/users` });
  assert.equal(users.status, 200, users.text);
  assert.deepEqual(users.json.users.map((u) => String(u.id)), ['10']);
});

test('presence: a connection that drops without a close frame still fires member_removed', async () => {
  const room = uniq('presence-drop');
  const observer = await connectPusher(h, { user: carol, label: 'observer(u3)' });
  await observer.subscribe(room);
  const added = observer.record(room, 'pusher:member_added');
  const removed = observer.record(room, 'pusher:member_removed');

  const raw = await rawConnect(h, { key: APP1.key, label: 'raw-u9' });
  await raw.next('pusher:connection_established');
  await raw.subscribe(room, sdkFor(h, APP1).authorizeChannel(raw.socketId, room, { user_id: 'u9' }));
  assert.equal((await added.take()).data.id, 'u9');

  raw.ws.terminate(); // TCP teardown, no WebSocket close handshake
  const rem = await removed.take((e) => e.data.id === 'u9', { timeout: 5000, what: 'member_removed u9' });
  assert.equal(rem.data.id, 'u9');
});

test('presence: concurrent joins and leaves keep an exact member list', async () => {
  const room = uniq('presence-crowd');
  const sdk = sdkFor(h, APP1);
  const USERS = 8;
  const PER_USER = 3;
  // 24 raw connections (8 users × 3) join at the same time.
  const conns = await Promise.all(
    Array.from({ length: USERS * PER_USER }, (_, i) => rawConnect(h, { key: APP1.key, label: `crowd-${i}` })),
  );
  const results = await Promise.all(
    conns.map((c, i) => {
      const user = { user_id: `crowd-u${i % USERS}`, user_info: { i: i % USERS } };
      return c.subscribe(room, sdk.authorizeChannel(c.socketId, room, user));
    }),
  );
  for (const r of results) assert.ok(r.payload.presence.count >= 1 && r.payload.presence.count <= USERS);

  const expected = Array.from({ length: USERS }, (_, u) => `crowd-u${u}`).sort();
  const users = await signedRequest(h, { app: APP1, path: `/channels/${room}/users` });
  assert.deepEqual(users.json.users.map((u) => u.id).sort(), expected);
  const info = await signedRequest(h, { app: APP1, path: `/channels/${room}`, params: { info: 'user_count' } });
  assert.equal(info.json.user_count, USERS, info.text);

  // A late joiner sees everyone exactly once.
  const late = await connectPusher(h, { user: { user_id: 'late' } });
  const { data: members } = await late.subscribe(room);
  assert.equal(members.count, USERS + 1);
  const removed = late.record(room, 'pusher:member_removed');

  // All but one connection of user 0 leave at once (half close cleanly, half drop).
  const leaving = conns.filter((_, i) => i !== 0);
  await Promise.all(leaving.map((c, i) => (i % 2 ? c.close() : (c.ws.terminate(), c.closed))));
  for (let k = 0; k < USERS - 1; k++) {
    await removed.take(() => true, { timeout: 5000, what: `member_removed #${k + 1} of ${USERS - 1}` });
  }
  const ids = removed.all.map((e) => e.data.id).sort();
  assert.deepEqual(ids, expected.filter((id) => id !== 'crowd-u0'));
  await sleep(QUIET_MS);
  assert.equal(removed.all.length, USERS - 1, 'exactly one member_removed per departed user');
  const after = await signedRequest(h, { app: APP1, path: `/channels/${room}/users` });
  assert.deepEqual(after.json.users.map((u) => u.id).sort(), ['crowd-u0', 'late']);

  // Last ones leave → channel becomes unoccupied.
  await conns[0].close();
  await late.disconnect();
  const deadline = Date.now() + 3000;
  let occ;
  do {
    await sleep(100);
    occ = await signedRequest(h, { app: APP1, path: `/channels/${room}` });
  } while (occ.json && occ.json.occupied && Date.now() < deadline);
  assert.equal(occ.json.occupied, false, `channel still occupied: ${occ.text}`);
});
