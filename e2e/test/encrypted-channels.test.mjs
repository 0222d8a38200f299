// 4. Private-encrypted channels: Herald only relays the ciphertext; pusher-js decrypts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, sdkFor, call, tryParse } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1] });

test('private-encrypted channel: SDK publishes encrypted, pusher-js receives decrypted data', async () => {
  const client = await connectPusher(h);
  const name = uniq('private-encrypted-dm');
  await client.subscribe(name);
  const got = client.record(name, 'secret-message');

  const payload = { text: 'meet at noon', n: 7 };
  const res = await call(sdkFor(h, APP1).trigger(name, 'secret-message', payload));
  assert.equal(res.status, 200, res.text);

  assert.deepEqual((await got.take()).data, payload);

  // On the wire the data was the SDK's ciphertext envelope, never the plaintext.
  const frame = client.messages.all.find((m) => m.event === 'secret-message');
  assert.ok(frame, 'frame seen on the connection');
  const wire = typeof frame.data === 'string' ? tryParse(frame.data) : frame.data;
  assert.equal(typeof wire.nonce, 'string');
  assert.equal(typeof wire.ciphertext, 'string');
  assert.ok(!JSON.stringify(frame).includes('meet at noon'), 'plaintext must not be on the wire');
});

test('private-encrypted channel: subscription without a valid signature is rejected', async () => {
  const client = await connectPusher(h, {
    authorize: ({ sdk, socketId, channelName }) => {
      const good = sdk.authorizeChannel(socketId, channelName);
      const bad = sdkFor(h, { ...APP1, secret: 'wrong' }).authorizeChannel(socketId, channelName);
      return { auth: bad.auth, shared_secret: good.shared_secret };
    },
  });
  const err = await client.subscribeExpectingError(uniq('private-encrypted-x'));
  assert.equal(err.status, 401);
  assert.equal(client.state, 'connected');
});
