// Multi-node control plane: apps and keys made through the management API
// (/v1) of one node take effect on every node within 1 s (the change is
// announced over Redis). Key rotation end-to-end; app disable and tenant
// suspension close the app's connections with 4003 on both nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, waitUntil, adminRequest } from '../lib/cluster.mjs';
import { uniq } from '../lib/apps.mjs';
import {
  connectPusher,
  rawConnect,
  sdkFor,
  call,
  signedRequest,
  pusherErrorCode,
  QUIET_MS,
  sleep,
} from '../lib/clients.mjs';

// No `herald migrate` here: both nodes start at once on an empty database
// with HERALD_MIGRATE=true (cluster.test.mjs uses `herald migrate`).
const c = useCluster({ tag: 'keys', apps: [], migrateWith: 'nodes' });

/** How long a change made through one node may take to apply on every node. */
const PROPAGATION_MS = 1000;

async function createTenant(node = c.A) {
  const res = await c.admin(node, 'POST', '/v1/tenants', { name: uniq('tenant') });
  assert.equal(res.status, 201, `POST /v1/tenants: ${res.text}`);
  assert.ok(res.json && res.json.id, `POST /v1/tenants: ${res.text}`);
  return res.json;
}

/** Creates a tenant and an app through `node`; returns the app fixture {id, key, secret, tenantId}. */
async function createApp(node = c.A, body = {}) {
  const tenant = await createTenant(node);
  const res = await c.admin(node, 'POST', '/v1/apps', {
    tenant_id: tenant.id,
    name: uniq('app'),
    settings: { features: { client_events: true } },
    ...body,
  });
  assert.equal(res.status, 201, `POST /v1/apps: ${res.text}`);
  const { app, key } = res.json;
  assert.ok(app && app.id && key && key.key && key.secret, `POST /v1/apps: ${res.text}`);
  return { id: app.id, key: key.key, secret: key.secret, name: app.name, tenantId: tenant.id };
}

const publish = (node, app, channel, event = 'ping', data = {}) =>
  signedRequest(node, { app, method: 'POST', path: '/events', body: { name: event, channels: [channel], data: JSON.stringify(data) } });

/** Waits until a raw client is closed; asserts the code and that it happened by `deadline`. */
async function expectClosed(raw, code, since, deadlineMs = PROPAGATION_MS) {
  const left = Math.max(deadlineMs - (Date.now() - since), 1);
  const info = await raw.waitClose(left).catch((err) => {
    throw new Error(`${err.message} (expected close ${code} within ${deadlineMs} ms of the change)`);
  });
  assert.equal(info.code, code, `${raw.label}: closed with ${info.code} "${info.reason}", expected ${code}`);
  assert.ok(info.at - since <= deadlineMs, `${raw.label}: closed ${info.at - since} ms after the change`);
  return info;
}

/** Asserts that connecting with `key` to `node` is refused with `code` (pusher:error frame, then close). */
async function expectRefused(node, key, code) {
  const raw = await rawConnect(node, { key, label: `late(${key})@${node.label}` });
  assert.equal(raw.first.event, 'pusher:error', `${raw.label}: first frame ${raw.first.raw}`);
  assert.equal(raw.first.payload.code, code, `${raw.label}: first frame ${raw.first.raw}`);
  const closed = await raw.waitClose(2000);
  assert.equal(closed.code, code, `${raw.label}: close code ${closed.code}`);
}

test('management API: refuses a missing or wrong operator token on every node', async () => {
  for (const node of [c.A, c.B]) {
    const none = await adminRequest(node, null, 'GET', '/v1/apps');
    assert.equal(none.status, 401, `${node.label} without token: ${none.text}`);
    const wrong = await adminRequest(node, `${c.adminToken}x`, 'GET', '/v1/apps');
    assert.equal(wrong.status, 401, `${node.label} wrong token: ${wrong.text}`);
    const ok = await c.admin(node, 'GET', '/v1/apps');
    assert.equal(ok.status, 200, `${node.label}: ${ok.text}`);
  }
});

test('an app created through A works on B at once, even after B was asked for it before it existed', async () => {
  const tenant = await createTenant(c.A);
  const appId = `early${Math.random().toString(36).slice(2, 12).replace(/[^0-9a-z]/g, '')}`; // [0-9a-z]{1,32}
  const ghost = { id: appId, key: 'unknown-key', secret: 'unknown-secret' };
  const miss = await publish(c.B, ghost, 'ch');
  assert.equal(miss.status, 404, `B before the app exists: ${miss.text}`);

  const res = await c.admin(c.A, 'POST', '/v1/apps', { tenant_id: tenant.id, id: appId, name: 'Early' });
  assert.equal(res.status, 201, res.text);
  const app = { id: appId, key: res.json.key.key, secret: res.json.key.secret };
  const createdAt = Date.now();

  const ch = uniq('fresh');
  await waitUntil(async () => (await publish(c.B, app, ch)).status === 200, {
    timeout: PROPAGATION_MS,
    what: 'B to accept REST requests for the app created through A',
  });
  const onB = await connectPusher(c.B, { app, label: 'new-app@B' });
  await onB.subscribe(ch);
  const got = onB.record(ch, 'hello');
  const pub = await publish(c.A, app, ch, 'hello', { from: 'A' });
  assert.equal(pub.status, 200, pub.text);
  assert.deepEqual((await got.take()).data, { from: 'A' });
  process.stderr.write(`# new app usable on B ${Date.now() - createdAt} ms after creation\n`);
});

test('key rotation: both keys work on both nodes; revoking the old one stops it on both nodes within 1 s', async () => {
  const oldApp = await createApp(c.A);
  const ch = uniq('private-rot');
  const pubCh = uniq('rot');

  // Connections made with the old key, on both nodes (raw and pusher-js).
  const rawOld = [await rawConnect(c.A, { key: oldApp.key, label: 'old-raw@A' }), await rawConnect(c.B, { key: oldApp.key, label: 'old-raw@B' })];
  for (const r of rawOld) assert.equal(r.first.event, 'pusher:connection_established', `${r.label}: ${r.first.raw}`);
  const pjOld = [
    await connectPusher(c.A, { app: oldApp, label: 'old-pusher-js@A' }),
    await connectPusher(c.B, { app: oldApp, label: 'old-pusher-js@B' }),
  ];
  for (const p of pjOld) await p.subscribe(ch);

  // Rotate through B.
  const rot = await c.admin(c.B, 'POST', `/v1/apps/${oldApp.id}/keys`);
  assert.equal(rot.status, 201, `POST /v1/apps/${oldApp.id}/keys: ${rot.text}`);
  assert.ok(rot.json.key && rot.json.secret, rot.text);
  assert.notEqual(rot.json.key, oldApp.key);
  const newApp = { id: oldApp.id, key: rot.json.key, secret: rot.json.secret };
  const rotatedAt = Date.now();

  // The new key works on both nodes within 1 s; the old one still does.
  for (const node of [c.A, c.B]) {
    await waitUntil(async () => (await publish(node, newApp, pubCh)).status === 200, {
      timeout: Math.max(PROPAGATION_MS - (Date.now() - rotatedAt), 1),
      what: `${node.label} to accept REST requests signed with the new key`,
    });
    const old = await publish(node, oldApp, pubCh);
    assert.equal(old.status, 200, `${node.label}, old key before revocation: ${old.text}`);
  }
  const pjNew = [
    await connectPusher(c.A, { app: newApp, label: 'new-pusher-js@A' }),
    await connectPusher(c.B, { app: newApp, label: 'new-pusher-js@B' }),
  ];
  for (const p of pjNew) await p.subscribe(ch); // private: authorized with the new secret
  const rawNew = [await rawConnect(c.A, { key: newApp.key, label: 'new-raw@A' }), await rawConnect(c.B, { key: newApp.key, label: 'new-raw@B' })];
  for (const r of rawNew) {
    assert.equal(r.first.event, 'pusher:connection_established', `${r.label}: ${r.first.raw}`);
    await r.subscribe(pubCh);
  }

  // Either key publishes to connections made with either key, across nodes.
  for (const [via, signer] of [[c.A, oldApp], [c.B, newApp]]) {
    const tag = Math.random().toString(36).slice(2);
    const inboxes = [...pjOld, ...pjNew].map((p) => p.record(ch, 'rot'));
    const res = await call(sdkFor(via, signer).trigger(ch, 'rot', { tag }));
    assert.equal(res.status, 200, res.text);
    for (const inbox of inboxes) await inbox.take((e) => e.data.tag === tag, { what: `rot ${tag}` });
  }

  const keys = await c.admin(c.A, 'GET', `/v1/apps/${oldApp.id}/keys`);
  assert.equal(keys.status, 200, keys.text);
  assert.deepEqual(keys.json.keys.map((k) => k.key).sort(), [oldApp.key, newApp.key].sort(), keys.text);
  assert.ok(!keys.text.includes(oldApp.secret) && !keys.text.includes(newApp.secret), 'key list must not show secrets');

  // Revoke the old key through A.
  const pjErrors = pjOld.map((p) => p.errors.take((e) => pusherErrorCode(e) === 4001, { timeout: 5000, what: 'a 4001 error after revocation' }));
  const rev = await c.admin(c.A, 'DELETE', `/v1/apps/${oldApp.id}/keys/${oldApp.key}`);
  assert.equal(rev.status, 200, `DELETE key: ${rev.text}`);
  const revokedAt = Date.now();

  // Old-key connections on both nodes are asked to reconnect (4200) within 1 s...
  await Promise.all(rawOld.map((r) => expectClosed(r, 4200, revokedAt)));
  // ...and REST requests signed with the old key fail on both nodes within 1 s.
  for (const node of [c.A, c.B]) {
    const res = await waitUntil(
      async () => {
        const r = await publish(node, oldApp, pubCh);
        return r.status !== 200 && r;
      },
      { timeout: Math.max(PROPAGATION_MS - (Date.now() - revokedAt), 1), what: `${node.label} to refuse the revoked key` },
    );
    assert.equal(res.status, 401, `${node.label}, revoked key: ${res.text}`);
  }
  // pusher-js reconnects after 4200 and is refused with 4001; so is any new connection.
  await Promise.all(pjErrors);
  for (const p of pjOld) {
    await waitUntil(() => p.state !== 'connected' && p.state !== 'connecting', {
      timeout: 3000,
      what: `${p.label} to stop (state ${p.state})`,
    });
  }
  for (const node of [c.A, c.B]) await expectRefused(node, oldApp.key, 4001);

  // New-key connections were not touched and still receive, through either node.
  await sleep(QUIET_MS);
  for (const p of pjNew) {
    assert.equal(p.state, 'connected', `${p.label}`);
    assert.equal(p.states.filter((s) => s.previous === 'connected').length, 0, `${p.label} was disconnected`);
  }
  for (const r of rawNew) assert.ok(r.isOpen, `${r.label} was closed: ${JSON.stringify(r.closeInfo)}`);
  for (const via of [c.A, c.B]) {
    const tag = Math.random().toString(36).slice(2);
    const inboxes = pjNew.map((p) => p.record(ch, 'after'));
    const res = await call(sdkFor(via, newApp).trigger(ch, 'after', { tag }));
    assert.equal(res.status, 200, res.text);
    for (const inbox of inboxes) await inbox.take((e) => e.data.tag === tag);
    const onlyRaw = await publish(via, newApp, pubCh, 'after', { tag });
    assert.equal(onlyRaw.status, 200, onlyRaw.text);
    for (const r of rawNew) await r.next('after', { channel: pubCh, filter: (f) => f.payload && f.payload.tag === tag });
  }
  const again = await c.admin(c.B, 'GET', `/v1/apps/${oldApp.id}/keys`);
  assert.deepEqual(again.json.keys.filter((k) => !k.revoked_at).map((k) => k.key), [newApp.key], again.text);
});

/** Connections of `app` on both nodes: {raws, pjs}. */
async function connectEverywhere(app, ch) {
  const raws = [];
  const pjs = [];
  for (const node of [c.A, c.B]) {
    const r = await rawConnect(node, { key: app.key, label: `raw(${app.id})@${node.label}` });
    assert.equal(r.first.event, 'pusher:connection_established', `${r.label}: ${r.first.raw}`);
    await r.subscribe(ch);
    raws.push(r);
    const p = await connectPusher(node, { app, label: `pusher-js(${app.id})@${node.label}` });
    await p.subscribe(ch);
    pjs.push(p);
  }
  return { raws, pjs };
}

/** Asserts every connection got pusher:error 4003 and a 4003 close within 1 s of `since`, and stays closed. */
async function expectDisabled({ raws, pjs }, since) {
  await Promise.all(
    raws.map(async (r) => {
      await expectClosed(r, 4003, since);
      const err = r.seen('pusher:error').find((f) => f.payload && f.payload.code === 4003);
      assert.ok(err, `${r.label}: no pusher:error 4003 frame before the close; frames: ${r.frames.all.map((f) => f.raw).join(' | ')}`);
    }),
  );
  await Promise.all(
    pjs.map((p) =>
      p.errors.take((e) => pusherErrorCode(e) === 4003, {
        timeout: Math.max(PROPAGATION_MS - (Date.now() - since), 1),
        what: 'a 4003 error',
      }),
    ),
  );
  await sleep(QUIET_MS);
  for (const p of pjs) assert.notEqual(p.state, 'connected', `${p.label} reconnected to a disabled app`);
}

test('app disabled through B: its connections are closed with 4003 on both nodes within 1 s; re-enabled through A', async () => {
  const app = await createApp(c.A);
  const other = await createApp(c.A);
  const ch = uniq('doomed');
  const conns = await connectEverywhere(app, ch);
  const bystanders = await connectEverywhere(other, ch);

  const res = await c.admin(c.B, 'PATCH', `/v1/apps/${app.id}`, { enabled: false });
  assert.equal(res.status, 200, `PATCH enabled:false: ${res.text}`);
  assert.equal(res.json.enabled, false, res.text);
  const disabledAt = Date.now();
  await expectDisabled(conns, disabledAt);

  for (const node of [c.A, c.B]) {
    await expectRefused(node, app.key, 4003);
    const rest = await publish(node, app, ch);
    assert.equal(rest.status, 403, `${node.label}, REST for a disabled app: ${rest.text}`);
  }
  // The other app on the same nodes is untouched.
  for (const r of bystanders.raws) assert.ok(r.isOpen, `${r.label} closed: ${JSON.stringify(r.closeInfo)}`);
  for (const p of bystanders.pjs) assert.equal(p.state, 'connected', p.label);
  const ok = await publish(c.B, other, ch, 'still', { ok: 1 });
  assert.equal(ok.status, 200, ok.text);
  for (const r of bystanders.raws) await r.next('still', { channel: ch });

  // Enabled again through A: both nodes accept it again within 1 s.
  const en = await c.admin(c.A, 'PATCH', `/v1/apps/${app.id}`, { enabled: true });
  assert.equal(en.status, 200, `PATCH enabled:true: ${en.text}`);
  const enabledAt = Date.now();
  for (const node of [c.A, c.B]) {
    await waitUntil(async () => (await publish(node, app, ch)).status === 200, {
      timeout: Math.max(PROPAGATION_MS - (Date.now() - enabledAt), 1),
      what: `${node.label} to accept the re-enabled app`,
    });
    const p = await connectPusher(node, { app, label: `re-enabled@${node.label}` });
    await p.subscribe(ch);
  }
});

test('POST /v1/apps/:id/disable through A closes the app\'s connections with 4003 on both nodes within 1 s', async () => {
  const app = await createApp(c.B);
  const ch = uniq('disable');
  const conns = await connectEverywhere(app, ch);
  const res = await c.admin(c.A, 'POST', `/v1/apps/${app.id}/disable`);
  assert.equal(res.status, 200, `POST disable: ${res.text}`);
  await expectDisabled(conns, Date.now());
  for (const node of [c.A, c.B]) await expectRefused(node, app.key, 4003);
});

test('tenant suspended: its apps\' connections are closed with 4003 on both nodes within 1 s; activate restores', async () => {
  const app = await createApp(c.A);
  const ch = uniq('suspend');
  const conns = await connectEverywhere(app, ch);
  const res = await c.admin(c.B, 'POST', `/v1/tenants/${app.tenantId}/suspend`);
  assert.equal(res.status, 200, `suspend: ${res.text}`);
  await expectDisabled(conns, Date.now());
  for (const node of [c.A, c.B]) await expectRefused(node, app.key, 4003);

  const act = await c.admin(c.A, 'POST', `/v1/tenants/${app.tenantId}/activate`);
  assert.equal(act.status, 200, `activate: ${act.text}`);
  const activatedAt = Date.now();
  for (const node of [c.A, c.B]) {
    await waitUntil(async () => (await publish(node, app, ch)).status === 200, {
      timeout: Math.max(PROPAGATION_MS - (Date.now() - activatedAt), 1),
      what: `${node.label} to accept the app of the re-activated tenant`,
    });
  }
});
