// 2. Private channels: SDK-signed auth works; forged tokens are rejected with
//    pusher:subscription_error (+ connection-level pusher:error code null) and
//    the connection stays usable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, sdkFor, call, QUIET_MS, sleep } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1] });

test('private channel: SDK-signed subscription succeeds and receives events', async () => {
  const client = await connectPusher(h);
  const name = uniq('private-account');
  await client.subscribe(name);
  const got = client.record(name, 'balance');
  const res = await call(sdkFor(h, APP1).trigger(name, 'balance', { cents: 1234 }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await got.take()).data, { cents: 1234 });
});

/** Subscribes with a forged token and checks every observable consequence. */
async function expectRejected(forge) {
  const client = await connectPusher(h, { authorize: forge });
  const name = uniq('private-vault');
  const err = await client.subscribeExpectingError(name);
  assert.equal(err.type, 'AuthError', `subscription_error data: ${JSON.stringify(err)}`);
  assert.equal(err.status, 401, `subscription_error data: ${JSON.stringify(err)}`);
  assert.equal(typeof err.error, 'string');
  assert.ok(err.error.length > 0, 'error message should not be empty');

  // The raw frame pusher-js received for the channel.
  const frame = client.messages.all.find((m) => m.event === 'pusher:subscription_error');
  assert.ok(frame, 'server sent a pusher:subscription_error frame');
  assert.equal(frame.channel, name);

  // Connection-level pusher:error with code null.
  const connErr = await client.errors.take((e) => e.type === 'PusherError', { what: 'PusherError' });
  assert.equal(connErr.data.code, null, `pusher:error: ${JSON.stringify(connErr)}`);
  assert.equal(typeof connErr.data.message, 'string');

  // The connection stays connected and usable.
  assert.equal(client.state, 'connected');
  assert.equal(client.pusher.channel(name).subscribed, false);
  const ok = uniq('after-error');
  await client.subscribe(ok);
  const got = client.record(ok, 'still-alive');
  await call(sdkFor(h, APP1).trigger(ok, 'still-alive', { y: 1 }));
  assert.deepEqual((await got.take()).data, { y: 1 });
  // Nothing from the rejected channel leaks through afterwards.
  const leaked = client.record(name, 'secret');
  await call(sdkFor(h, APP1).trigger(name, 'secret', { no: true }));
  await sleep(QUIET_MS);
  assert.equal(leaked.all.length, 0, 'rejected channel must not deliver events');
  assert.equal(client.state, 'connected');
}

test('private channel: token signed with the wrong secret is rejected, connection stays up', async () => {
  await expectRejected(({ socketId, channelName }) =>
    sdkFor(h, { ...APP1, secret: 'not-the-secret' }).authorizeChannel(socketId, channelName),
  );
});

test('private channel: token signed for another channel is rejected, connection stays up', async () => {
  await expectRejected(({ sdk, socketId }) => sdk.authorizeChannel(socketId, 'private-some-other-channel'));
});

test('private channel: token signed for another socket id is rejected, connection stays up', async () => {
  await expectRejected(({ sdk, channelName }) => sdk.authorizeChannel('1234.5678', channelName));
});

test('private channel: token with another app key prefix is rejected, connection stays up', async () => {
  await expectRejected(({ sdk, socketId, channelName }) => {
    const { auth } = sdk.authorizeChannel(socketId, channelName);
    return { auth: `otherkey:${auth.split(':')[1]}` };
  });
});

test('private channel: empty auth is rejected, connection stays up', async () => {
  await expectRejected(() => ({ auth: '' }));
});
