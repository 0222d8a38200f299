// 12. The admin console in headless Chromium, on a two-node cluster sharing
//     PostgreSQL and Redis: sign in (and a failed sign-in that the audit
//     log records), create an app, rotate its key, edit and check a channel
//     policy, send an operator broadcast through node A that a pusher-js
//     client on node B receives, find the broadcast in the audit log and
//     verify the chain. Every page is saved as a screenshot in
//     e2e/artifacts/console/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster } from '../lib/cluster.mjs';
import { launchBrowser, screenshot, signIn, consoleBase } from '../lib/browser.mjs';
import { connectPusher, sdkFor, call } from '../lib/clients.mjs';

const ADMIN = { email: 'admin@herald.test', password: 'console e2e password' };
const c = useCluster({
  tag: 'console',
  env: { HERALD_ADMIN_EMAIL: ADMIN.email, HERALD_ADMIN_PASSWORD: ADMIN.password },
});

let browser;
let page;
before(async () => {
  browser = await launchBrowser();
  page = await browser.newPage();
});
after(async () => {
  await browser?.close();
});

test('console: a failed sign-in is refused with a clear message', async () => {
  await signIn(page, c.A, ADMIN.email, 'not the password');
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /Wrong email or password/);
  await screenshot(page, '01-sign-in-failed');
});

test('console: the platform admin signs in and sees every tenant', async () => {
  const created = await c.admin(c.A, 'POST', '/v1/tenants', { id: 'acme', name: 'Acme Inc', plan: 'pro' });
  assert.equal(created.status, 201, created.text);
  await signIn(page, c.A, ADMIN.email, ADMIN.password);
  await page.waitForURL(`${consoleBase(c.A)}/console/`);
  assert.ok(await page.getByRole('cell', { name: 'acme', exact: true }).isVisible());
  await screenshot(page, '02-tenants');
});

// What the flow below created, for the later steps.
const made = {};

test('console: create an app and rotate its key', async () => {
  const base = consoleBase(c.A);
  await page.goto(`${base}/console/tenants/acme`);
  await screenshot(page, '03-tenant');
  await page.getByLabel('Name').fill('Chat');
  await page.getByRole('button', { name: 'Create app' }).click();
  await page.getByRole('heading', { name: 'Copy the secret now: it will not be shown again' }).waitFor();
  // The answer is the new app's page, rendered from the POST (so its
  // secret can be shown once): read the app's id from its tabs.
  made.appId = (await page.getByRole('link', { name: 'Channel policy' }).getAttribute('href')).split('/')[3];
  await screenshot(page, '04-app-created');
  const oldKey = (await page.locator('section.secret dd code').nth(0).textContent()).trim();

  // Rotation: a new key (its secret shown once), then the old one revoked.
  await page.goto(`${base}/console/apps/${made.appId}`);
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.getByRole('heading', { name: 'Copy the secret now: it will not be shown again' }).waitFor();
  made.key = (await page.locator('section.secret dd code').nth(0).textContent()).trim();
  made.secret = (await page.locator('section.secret dd code').nth(1).textContent()).trim();
  assert.notEqual(made.key, oldKey);
  await screenshot(page, '05-key-created');
  await page.goto(`${base}/console/apps/${made.appId}`);
  assert.equal(await page.getByText(made.secret).count(), 0, 'the secret is shown again');
  await page.getByRole('button', { name: `Revoke key ${oldKey}` }).click();
  await page.getByRole('button', { name: `Revoke key ${oldKey}` }).waitFor({ state: 'detached' });
  await screenshot(page, '06-key-rotated');
});

test('console: edit and check the channel policy', async () => {
  const base = consoleBase(c.A);
  await page.goto(`${base}/console/apps/${made.appId}/policy`);
  await page.getByLabel('Policy document').fill('allow * * *\ndeny user:mallory private-* subscribe\nallow * * bogus');
  await page.getByRole('button', { name: 'Save as a new version' }).click();
  await page.getByText(/line 3/).first().waitFor();
  await screenshot(page, '07-policy-invalid');
  await page.getByLabel('Policy document').fill('allow * * *\ndeny user:mallory private-* subscribe\n');
  await page.getByRole('button', { name: 'Save as a new version' }).click();
  // Saved: the page now shows version 1, by the admin.
  await page.getByText(`user:${ADMIN.email}`).first().waitFor();
  await page.getByLabel('User id').fill('mallory');
  await page.getByLabel('Channel').fill('private-vault');
  await page.getByRole('button', { name: 'Check' }).click();
  const result = page.locator('.result');
  await result.waitFor();
  assert.match(await result.textContent(), /Deny[\s\S]*line 2/);
  await screenshot(page, '08-policy-checked');
});

test('console: an operator broadcast through node A reaches pusher-js on node B and is audited', async () => {
  const app = { id: made.appId, key: made.key, secret: made.secret };
  const client = await connectPusher({ ...c.B, apps: [app] }, { app });
  await client.subscribe('announcements');
  const got = client.record('announcements', 'maintenance');

  const base = consoleBase(c.A);
  await page.goto(`${base}/console/apps/${made.appId}/broadcast`);
  await page.getByLabel('Channels').fill('announcements');
  await page.getByLabel('Event name').fill('maintenance');
  await page.getByLabel('Payload (JSON)').fill('{"at": "22:00"}');
  await page.getByLabel('Reason').fill('planned maintenance window');
  await page.getByRole('button', { name: 'Preview' }).click();
  await screenshot(page, '09-broadcast-preview');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByText(/Sent "maintenance" to 1 subscription/).waitFor();
  await screenshot(page, '10-broadcast-sent');
  assert.deepEqual((await got.take()).data, { at: '22:00' });

  await page.goto(`${base}/console/audit?tenant=acme`);
  const row = page.getByRole('row', { name: /broadcast\.send/ });
  await row.waitFor();
  assert.match(await row.textContent(), /planned maintenance window/);
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByText(/Intact: \d+ entries/).waitFor();
  await screenshot(page, '11-audit-verified');
});

test('console: the failed sign-in is in the platform audit log', async () => {
  await page.goto(`${consoleBase(c.A)}/console/audit?tenant=platform`);
  await page.getByRole('row', { name: /login\.failed/ }).first().waitFor();
  await screenshot(page, '12-platform-audit');
});

test('console: live view and debug stream', async () => {
  const base = consoleBase(c.A);
  const app = { id: made.appId, key: made.key, secret: made.secret };
  const viewer = await connectPusher({ ...c.B, apps: [app] }, { app, user: { user_id: 'ada', user_info: { name: 'Ada' } } });
  await viewer.subscribe('presence-lobby');
  await page.goto(`${base}/console/apps/${made.appId}/live`);
  await page.getByRole('cell', { name: 'presence-lobby' }).first().waitFor();
  await page.getByRole('cell', { name: 'ada', exact: true }).waitFor();
  assert.equal(await page.locator('#live-connections').textContent(), '1');
  await screenshot(page, '13-live');
  await page.goto(`${base}/console/apps/${made.appId}/debug`);
  await page.getByText('Live. New events appear at the top.').waitFor();
  // Other nodes learn within a second that someone watches: publish through
  // node B until the stream shows it.
  const sdk = sdkFor({ ...c.B, apps: [] }, app);
  const shown = page.getByRole('cell', { name: 'api_message' }).first();
  for (let i = 0; i < 20 && !(await shown.isVisible()); i++) {
    const res = await call(sdk.trigger('news', 'hello', { n: i }));
    assert.equal(res.status, 200, res.text);
    await new Promise((r) => setTimeout(r, 250));
  }
  await shown.waitFor();
  await screenshot(page, '14-debug-stream');
});

test('console: signing out ends the session', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${consoleBase(c.A)}/console/login`);
  await page.goto(`${consoleBase(c.A)}/console/`);
  assert.equal(new URL(page.url()).pathname, '/console/login');
});
