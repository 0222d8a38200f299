// 11. Channel policies with stock pusher-js: a policy denies a signed
//     subscription, a policy change ends a live subscription with a
//     pusher:subscription_error pusher-js hands to the channel, and
//     policy-authorized private channels subscribe without any channel
//     authorization call to the tenant's backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useHerald } from '../lib/herald.mjs';
import { uniq } from '../lib/apps.mjs';
import { connectPusher, sdkFor, call, record } from '../lib/clients.mjs';

const TOKEN = 'e2e-operator-token';
const POLICY = [
  '# deny wins over allow',
  'allow * * *',
  'deny role:banned private-* subscribe',
  'allow role:staff private-staff-* subscribe',
].join('\n');

const APP = {
  id: 'policyapp',
  key: 'key-policy',
  secret: 'secret-policy',
  name: 'Policy app',
  settings: { features: { policy_authorized_private: true } },
  policy: POLICY,
};
const h = useHerald({ apps: [APP], env: { HERALD_ADMIN_TOKEN: TOKEN } });

async function putPolicy(doc) {
  const res = await fetch(`${h.httpBase}/v1/apps/${APP.id}/policy`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ policy: doc }),
  });
  assert.equal(res.status, 200, await res.text());
}

test('policy: a signed subscription of a banned role is refused with 403', async () => {
  const client = await connectPusher(h, { userData: { id: uniq('u'), user_info: { roles: ['banned'] } } });
  await client.signin();
  const err = await client.subscribeExpectingError(uniq('private-room'));
  assert.equal(err.status, 403, JSON.stringify(err));
  assert.match(err.error, /policy/);
  assert.equal(client.state, 'connected');
});

test('policy: policy-authorized private channels need no channel authorization call', async () => {
  let authorizeCalls = 0;
  const client = await connectPusher(h, {
    userData: { id: uniq('staff'), user_info: { roles: ['staff'] } },
    // pusher-js always asks its authorizer for a private channel; answering
    // with an empty token (no backend round trip) leaves it to the policy.
    authorize: () => {
      authorizeCalls += 1;
      return { auth: '' };
    },
  });
  await client.signin();
  const name = uniq('private-staff-room');
  await client.subscribe(name);
  const got = client.record(name, 'memo');
  const res = await call(sdkFor(h, APP).trigger(name, 'memo', { n: 1 }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await got.take()).data, { n: 1 });
  assert.equal(authorizeCalls, 1);

  // Without the role, the same empty token is refused.
  const other = await connectPusher(h, { userData: { id: uniq('guest') }, authorize: () => ({ auth: '' }) });
  await other.signin();
  const err = await other.subscribeExpectingError(uniq('private-staff-room'));
  assert.equal(err.status, 401, JSON.stringify(err));
});

test('policy: a policy change ends a live subscription with pusher:subscription_error', async (t) => {
  t.after(() => putPolicy(POLICY));
  const client = await connectPusher(h, { userData: { id: uniq('u'), user_info: { roles: ['reader'] } } });
  await client.signin();
  const name = uniq('private-news');
  const { channel } = await client.subscribe(name);
  const errors = record(channel, 'pusher:subscription_error');

  await putPolicy(`${POLICY}\ndeny role:reader private-news-* subscribe`);
  const err = (await errors.take()).data;
  assert.equal(err.status, 403, JSON.stringify(err));
  assert.ok(err.error.includes(name), err.error);
  const res = await call(sdkFor(h, APP).get({ path: `/channels/${name}`, params: { info: 'subscription_count' } }));
  assert.equal(res.status, 200, res.text);
  assert.equal(JSON.parse(res.text).subscription_count ?? 0, 0, res.text);
});
