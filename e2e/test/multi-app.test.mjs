// 11. Two apps side by side: identical channel names never mix, and one app's
//     credentials are worthless for the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, APP2 } from '../lib/apps.mjs';
import { connectPusher, sdkFor, call, signedRequest, QUIET_MS, sleep } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1, APP2] });

test('two apps: the same public channel name never mixes events', async () => {
  const c1 = await connectPusher(h, { app: APP1, label: 'app1' });
  const c2 = await connectPusher(h, { app: APP2, label: 'app2' });
  await c1.subscribe('shared');
  await c2.subscribe('shared');
  const got1 = c1.record('shared', 'news');
  const got2 = c2.record('shared', 'news');

  await call(sdkFor(h, APP1).trigger('shared', 'news', { from: 'app1' }));
  await call(sdkFor(h, APP2).trigger('shared', 'news', { from: 'app2' }));

  assert.deepEqual((await got1.take()).data, { from: 'app1' });
  assert.deepEqual((await got2.take()).data, { from: 'app2' });
  await sleep(QUIET_MS);
  assert.deepEqual(got1.all.map((e) => e.data.from), ['app1']);
  assert.deepEqual(got2.all.map((e) => e.data.from), ['app2']);
});

test('two apps: presence-room members and client events stay within their app', async () => {
  const a1 = await connectPusher(h, { app: APP1, user: { user_id: 'alice' }, label: 'app1-alice' });
  const b2 = await connectPusher(h, { app: APP2, user: { user_id: 'bob' }, label: 'app2-bob' });
  const { data: m1 } = await a1.subscribe('presence-room');
  const added1 = a1.record('presence-room', 'pusher:member_added');
  const { data: m2 } = await b2.subscribe('presence-room');
  assert.equal(m1.count, 1);
  assert.equal(m2.count, 1, 'app2 must not see app1\'s member');
  assert.equal(m2.get('alice'), null);

  // A second app1 member: app1 sees it, app2 does not.
  const added2 = b2.record('presence-room', 'pusher:member_added');
  const c1 = await connectPusher(h, { app: APP1, user: { user_id: 'carol' }, label: 'app1-carol' });
  await c1.subscribe('presence-room');
  assert.equal((await added1.take()).data.id, 'carol');

  // Client event in app1 does not cross into app2.
  const whisper2 = b2.record('presence-room', 'client-whisper');
  const whisper1 = a1.record('presence-room', 'client-whisper');
  c1.pusher.channel('presence-room').trigger('client-whisper', { s: 1 });
  await whisper1.take();

  // Control in app2, then check nothing from app1 arrived there.
  const ctl = b2.record('presence-room', 'control');
  await call(sdkFor(h, APP2).trigger('presence-room', 'control', {}));
  await ctl.take();
  await sleep(QUIET_MS);
  assert.equal(added2.all.length, 0, 'app2 must not get app1 member_added');
  assert.equal(whisper2.all.length, 0, 'app2 must not get app1 client events');

  const users1 = await call(sdkFor(h, APP1).get({ path: '/channels/presence-room/users' }));
  const users2 = await call(sdkFor(h, APP2).get({ path: '/channels/presence-room/users' }));
  assert.deepEqual(users1.json.users.map((u) => u.id).sort(), ['alice', 'carol']);
  assert.deepEqual(users2.json.users.map((u) => u.id), ['bob']);
});

test('two apps: app2\'s secret cannot sign REST requests for app1', async () => {
  const body = { name: 'e', data: '{}', channels: ['shared'] };
  // app2's key+secret against app1's path.
  const r1 = await signedRequest(h, { app: APP2, appId: APP1.id, method: 'POST', path: '/events', body });
  assert.equal(r1.status, 401, r1.text);
  // app1's key, signed with app2's secret.
  const r2 = await signedRequest(h, { app: APP1, secret: APP2.secret, method: 'POST', path: '/events', body });
  assert.equal(r2.status, 401, r2.text);
  // Same through the SDK.
  const r3 = await call(sdkFor(h, { ...APP1, secret: APP2.secret }).trigger('shared', 'e', {}));
  assert.equal(r3.status, 401, r3.text);
});

test('two apps: app2\'s credentials cannot authorise private channels on app1 connections', async () => {
  const viaApp2Sdk = await connectPusher(h, {
    app: APP1,
    authorize: ({ socketId, channelName }) => sdkFor(h, APP2).authorizeChannel(socketId, channelName),
  });
  const e1 = await viaApp2Sdk.subscribeExpectingError('private-shared');
  assert.equal(e1.status, 401);

  const app1KeyApp2Secret = await connectPusher(h, {
    app: APP1,
    authorize: ({ socketId, channelName }) =>
      sdkFor(h, { ...APP1, secret: APP2.secret }).authorizeChannel(socketId, channelName),
  });
  const e2 = await app1KeyApp2Secret.subscribeExpectingError('private-shared');
  assert.equal(e2.status, 401);
  assert.equal(app1KeyApp2Secret.state, 'connected');
});

test('two apps: app2\'s credentials cannot read app1\'s channels, channel info or users', async () => {
  const a = await connectPusher(h, { app: APP1, user: { user_id: 'secret-user-1' } });
  await a.subscribe('presence-app1-only');
  const intruder = sdkFor(h, { ...APP2, id: APP1.id }); // app1's path, app2's key+secret
  for (const [path, params] of [
    ['/channels', {}],
    ['/channels', { filter_by_prefix: 'presence-', info: 'user_count' }],
    ['/channels/presence-app1-only', { info: 'user_count' }],
    ['/channels/presence-app1-only/users', {}],
  ]) {
    const res = await call(intruder.get({ path, params }));
    assert.ok([401, 404].includes(res.status), `GET ${path}: expected 401/404, got ${res.status} ${res.text}`);
    assert.ok(!String(res.text).includes('secret-user-1'), `GET ${path} leaked data: ${res.text}`);
  }
  // app2's own view does not contain app1's channel.
  const own = await call(sdkFor(h, APP2).get({ path: '/channels' }));
  assert.equal(own.status, 200, own.text);
  assert.equal(own.json.channels['presence-app1-only'], undefined);
});
