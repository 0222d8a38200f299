// Starts and stops a Herald server process for one test file.
//
//   const h = useHerald({ apps: [APP1] });      // registers before/after hooks
//   test('...', async () => { h.port; h.apps; ... });
//
// The binary comes from $HERALD_BIN (default: ../bin/herald relative to e2e/).
// The child's stdout+stderr are buffered; when a test fails, the server output
// produced during that test is printed to help debugging.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after, beforeEach, afterEach } from 'node:test';
import { closeAllClients } from './clients.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

export function heraldBin() {
  const bin = process.env.HERALD_BIN || path.resolve(here, '..', '..', 'bin', 'herald');
  if (!existsSync(bin)) {
    throw new Error(`Herald binary not found at ${bin} (set HERALD_BIN)`);
  }
  return bin;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawns `herald serve --addr 127.0.0.1:PORT` with HERALD_APPS and optional
 * extra environment, and waits until GET /healthz answers 200. `label` names
 * the node in diagnostics (lib/cluster.mjs runs several); `port` reuses a port
 * (default: a free one).
 */
export async function startHerald({ apps, env = {}, readyTimeoutMs = 10_000, label = 'herald', port: fixedPort } = {}) {
  const bin = heraldBin();
  // A fixed port restarts a node where its clients expect it (e.g. after kill -9).
  const port = fixedPort ?? (await freePort());
  const child = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`], {
    env: { ...process.env, HERALD_APPS: JSON.stringify(apps), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const append = (chunk) => {
    output += chunk.toString();
    if (output.length > 2_000_000) output = output.slice(-1_000_000);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  child.on('error', (err) => append(`\n[spawn error] ${err.stack || err}\n`));

  const server = {
    label,
    port,
    apps,
    httpBase: `http://127.0.0.1:${port}`,
    wsBase: `ws://127.0.0.1:${port}`,
    child,
    get output() {
      return output;
    },
    get exited() {
      return exited;
    },
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      let timer;
      const res = await Promise.race([
        exitPromise,
        new Promise((r) => {
          timer = setTimeout(() => r(null), 5000);
        }),
      ]);
      clearTimeout(timer);
      if (res) return res;
      child.kill('SIGKILL');
      return exitPromise;
    },
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exited) {
      throw new Error(
        `Herald exited before becoming healthy (${JSON.stringify(exited)}). Output:\n${output}`,
      );
    }
    try {
      const res = await fetch(`${server.httpBase}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`Herald did not answer GET /healthz with 200 within ${readyTimeoutMs} ms. Output:\n${output}`);
    }
    await sleep(100);
  }
  return server;
}

/**
 * Registers node:test hooks that start one Herald for the current file,
 * close every client a test opened, and dump the server output of failed tests.
 * Returns a live object: its fields are filled in once `before` has run.
 */
export function useHerald({ apps, env = {} } = {}) {
  const ctx = { server: null };
  let mark = 0;
  before(async () => {
    ctx.server = await startHerald({ apps, env });
    Object.assign(ctx, {
      port: ctx.server.port,
      httpBase: ctx.server.httpBase,
      wsBase: ctx.server.wsBase,
      apps,
    });
  });
  beforeEach(() => {
    mark = ctx.server ? ctx.server.output.length : 0;
  });
  afterEach(async (t) => {
    await closeAllClients();
    if (!t.passed && ctx.server) {
      const out = ctx.server.output.slice(mark).trimEnd();
      const status = ctx.server.exited ? ` (server exited: ${JSON.stringify(ctx.server.exited)})` : '';
      process.stderr.write(
        `\n----- herald output during failed test "${t.name}"${status} -----\n` +
          (out || '(no output)') +
          `\n----- end of herald output -----\n`,
      );
    }
  });
  after(async () => {
    await closeAllClients();
    if (ctx.server) await ctx.server.stop();
    // pusher-js's bundled faye-websocket arms a 30 s close timer when it closes a
    // socket the server already closed; don't let such timers keep this file's
    // process alive once every test has finished (exit code is preserved).
    setTimeout(() => process.exit(), 1000).unref();
  });
  return ctx;
}
