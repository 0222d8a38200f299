// Headless Chromium for the console tests, through playwright-core and the
// Debian `chromium` package (never a downloaded browser). scripts/test
// installs it and exports HERALD_CHROMIUM.
//
// Screenshots go to e2e/artifacts/console/ (ignored by git), one per page
// visited, so a person can look at what the console really showed.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const artifactsDir = path.resolve(here, '..', 'artifacts', 'console');

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Chromium; fails with a clear message when it is missing. */
export async function launchBrowser() {
  const executablePath = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new Error(
      `Chromium not found at ${executablePath}: run the tests through scripts/test, which installs the Debian ` +
        'chromium package, or set HERALD_CHROMIUM.',
    );
  }
  fs.mkdirSync(artifactsDir, { recursive: true });
  return chromium.launch({ executablePath, args: ARGS });
}

/** Saves a full-page screenshot of page as artifacts/console/<name>.png. */
export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(artifactsDir, `${name}.png`), fullPage: true });
}

/**
 * The console's origin for a node. Browsers keep `Secure` cookies (the
 * session's) on http only for localhost, so the console is visited there.
 */
export function consoleBase(node) {
  return `http://localhost:${node.port}`;
}

/** Signs in through the form and waits for the tenants page. */
export async function signIn(page, node, email, password) {
  await page.goto(`${consoleBase(node)}/console/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
