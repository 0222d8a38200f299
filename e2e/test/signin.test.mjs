// 6. User sign-in: pusher.signin() with SDK-signed user auth, sendToUser,
//    terminateUserConnections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, rawConnect, sdkFor, call, record, QUIET_MS, sleep } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1] });

test('sign-in: pusher.signin() with SDK-signed user auth populates pusher.user', async () => {
  const id = uniq('user');
  const client = await connectPusher(h, { userData: { id, user_info: { name: 'Alice' } } });
  const signedInAs = await client.signin();
  assert.equal(signedInAs, id);
  assert.equal(client.pusher.user.user_data.id, id);
  assert.deepEqual(client.pusher.user.user_data.user_info, { name: 'Alice' });
  assert.equal(client.errors.all.length, 0, JSON.stringify(client.errors.all));
});

test('sign-in: user data signed with the wrong secret is refused with pusher:error', async () => {
  const id = uniq('user');
  const badSdk = sdkFor(h, { ...APP1, secret: 'wrong' });
  const client = await connectPusher(h, {
    userData: { id },
    authenticate: ({ socketId, userData }) => badSdk.authenticateUser(socketId, userData),
  });
  client.pusher.signin();
  const err = await client.errors.take((e) => e.type === 'PusherError');
  assert.equal(err.data.code, null);
  await sleep(QUIET_MS);
  assert.equal(client.messages.filter((m) => m.event === 'pusher:signin_success').length, 0);
  assert.equal(client.state, 'connected');
});

test('sign-in: sendToUser reaches pusher.user.bind on every connection of that user only', async () => {
  const id = uniq('user');
  const otherId = uniq('user');
  const c1 = await connectPusher(h, { userData: { id }, label: 'user-conn-1' });
  const c2 = await connectPusher(h, { userData: { id }, label: 'user-conn-2' });
  const other = await connectPusher(h, { userData: { id: otherId }, label: 'other-user' });
  await c1.signin();
  await c2.signin();
  await other.signin();
  const got1 = record(c1.pusher.user, 'notify');
  const got2 = record(c2.pusher.user, 'notify');
  const gotOther = record(other.pusher.user, 'notify');

  const res = await call(sdkFor(h, APP1).sendToUser(id, 'notify', { n: 1 }));
  assert.equal(res.status, 200, res.text);

  assert.deepEqual((await got1.take()).data, { n: 1 });
  assert.deepEqual((await got2.take()).data, { n: 1 });
  // Control for the other user, then make sure the first event did not reach it.
  await call(sdkFor(h, APP1).sendToUser(otherId, 'notify', { n: 2 }));
  assert.deepEqual((await gotOther.take()).data, { n: 2 });
  await sleep(QUIET_MS);
  assert.equal(gotOther.all.length, 1);
  assert.equal(got1.all.length, 1);
});

test('sign-in: a connection cannot subscribe to another user\'s #server-to-user channel', async () => {
  const victim = uniq('user');
  const attacker = await connectPusher(h, { userData: { id: uniq('user') }, label: 'attacker' });
  await attacker.signin();
  const victimClient = await connectPusher(h, { userData: { id: victim }, label: 'victim' });
  await victimClient.signin();
  attacker.pusher.send_event('pusher:subscribe', { auth: '', channel: `#server-to-user-${victim}` });
  const gotVictim = record(victimClient.pusher.user, 'private-note');
  await call(sdkFor(h, APP1).sendToUser(victim, 'private-note', { s: 1 }));
  await gotVictim.take();
  await sleep(QUIET_MS);
  const leaked = attacker.messages.filter((m) => m.event === 'private-note');
  assert.equal(leaked.length, 0, 'another user\'s server-to-user events must not leak');
  assert.equal(
    attacker.messages.filter(
      (m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === `#server-to-user-${victim}`,
    ).length,
    0,
  );
});

test('sign-in: terminateUserConnections closes all of that user\'s connections and no others', async () => {
  const id = uniq('user');
  const otherId = uniq('user');
  const c1 = await connectPusher(h, { userData: { id }, label: 'target-1' });
  const c2 = await connectPusher(h, { userData: { id }, label: 'target-2' });
  const other = await connectPusher(h, { userData: { id: otherId }, label: 'bystander' });
  const anon = await connectPusher(h, { label: 'anonymous' });
  await c1.signin();
  await c2.signin();
  await other.signin();
  const sock1 = c1.socketId;
  const sock2 = c2.socketId;
  const left = (c) => c.states.take((s) => s.previous === 'connected', { timeout: 4000, what: 'leaving "connected"' });
  const left1 = left(c1);
  const left2 = left(c2);

  const res = await call(sdkFor(h, APP1).terminateUserConnections(id));
  assert.equal(res.status, 200, res.text);

  await left1;
  await left2;
  // pusher-js may reconnect (depending on the close code); the old sockets must be gone.
  await sleep(QUIET_MS);
  assert.ok(c1.state !== 'connected' || c1.socketId !== sock1, 'target-1 still on its old socket');
  assert.ok(c2.state !== 'connected' || c2.socketId !== sock2, 'target-2 still on its old socket');

  // The other user and the anonymous connection are untouched and still receive events.
  assert.equal(other.state, 'connected');
  assert.equal(anon.state, 'connected');
  assert.equal(other.states.filter((s) => s.previous === 'connected').length, 0);
  assert.equal(anon.states.filter((s) => s.previous === 'connected').length, 0);
  const gotOther = record(other.pusher.user, 'still-here');
  await call(sdkFor(h, APP1).sendToUser(otherId, 'still-here', { ok: true }));
  assert.deepEqual((await gotOther.take()).data, { ok: true });
});

test('sign-in: presence auth without channel_data uses the signed-in user as the member', async () => {
  const room = uniq('presence-signed');
  const id = uniq('user');
  const onlyToken = ({ sdk, socketId, channelName }) => sdk.authorizeChannel(socketId, channelName); // no channel_data
  const observer = await connectPusher(h, { user: { user_id: 'observer' }, label: 'observer' });
  await observer.subscribe(room);
  const added = observer.record(room, 'pusher:member_added');

  const client = await connectPusher(h, {
    userData: { id, user_info: { name: 'Signed' } },
    authorize: onlyToken,
    label: 'signed-in-member',
  });
  await client.signin();
  const { data: members } = await client.subscribe(room);
  assert.equal(members.me.id, id);
  assert.equal(members.count, 2);
  const add = await added.take();
  assert.equal(add.data.id, id);
  assert.deepEqual(add.data.info, { name: 'Signed' });
});

test('sign-in: presence auth without channel_data on a connection that is not signed in is rejected', async () => {
  const room = uniq('presence-anon');
  const c = await rawConnect(h, { key: APP1.key });
  await c.next('pusher:connection_established');
  c.send({ event: 'pusher:subscribe', data: { ...sdkFor(h, APP1).authorizeChannel(c.socketId, room), channel: room } });
  await c.next('pusher:subscription_error', { channel: room });
  await c.ping();
  assert.equal(c.seen('pusher_internal:subscription_succeeded', room).length, 0);
});
