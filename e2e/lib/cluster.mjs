// Multi-node helpers: several Herald nodes on one Redis + PostgreSQL.
//
//   const c = useCluster({ tag: 'cluster', apps: [APP1] });   // nodes A and B
//   test('...', async () => { c.A; c.B; await c.startNode('C'); await c.admin(c.A, 'POST', '/v1/tenants', {...}) });
//
// The backends come from HERALD_TEST_REDIS_URL and HERALD_TEST_DATABASE_URL,
// which scripts/test exports (from `scripts/backends up`). Without them the
// file fails at once with a message saying so: these tests are never skipped.
//
// Each test file gets its own PostgreSQL database (created with psql, migrated
// with `herald migrate`, dropped afterwards) and its own Redis key prefix, so
// files running in parallel do not see each other.

import { execFile, execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, after, beforeEach, afterEach } from 'node:test';
import { startHerald, heraldBin, freePort } from './herald.mjs';
import { closeAllClients, sleep, tryParse } from './clients.mjs';

/** {redisUrl, databaseUrl} of the shared test backends, or throws saying how to get them. */
export function requireBackends() {
  const redisUrl = process.env.HERALD_TEST_REDIS_URL;
  const databaseUrl = process.env.HERALD_TEST_DATABASE_URL;
  if (!redisUrl || !databaseUrl) {
    throw new Error(
      'The multi-node end-to-end tests need a Redis and a PostgreSQL server: HERALD_TEST_REDIS_URL and ' +
        'HERALD_TEST_DATABASE_URL are not set. Run them through scripts/test, which starts throwaway servers ' +
        '(or run `eval "$(scripts/backends up)"` in the project root first, then `cd e2e && node --test`).',
    );
  }
  return { redisUrl, databaseUrl };
}

/** A random identifier safe in database names and Redis prefixes. */
export function randomTag(prefix) {
  return `${prefix}_${crypto.randomBytes(5).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

/** Runs one SQL statement with psql against `url`; returns its unaligned output. */
export function psql(url, sql) {
  const r = spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-Atqc', sql], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`psql failed to run (${r.error.message}); is PostgreSQL's psql installed?`);
  if (r.status !== 0) throw new Error(`psql ${JSON.stringify(sql)} exited with ${r.status}: ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

/** The URL of database `name` on the server of `url` (same credentials and options). */
export function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Creates a fresh database; returns {name, url, drop()}. */
export function createDatabase(adminUrl, name) {
  psql(adminUrl, `CREATE DATABASE ${name}`);
  return {
    name,
    url: withDatabase(adminUrl, name),
    drop() {
      try {
        psql(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch (err) {
        process.stderr.write(`warning: could not drop test database ${name}: ${err.message}\n`);
      }
    },
  };
}

/** Runs `herald migrate` against databaseUrl; resolves with its output, rejects with it on failure. */
export function runMigrate(databaseUrl) {
  return new Promise((resolve, reject) => {
    execFile(
      heraldBin(),
      ['migrate'],
      { env: { ...process.env, HERALD_DATABASE_URL: databaseUrl }, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`herald migrate failed (${err.message}):\n${stdout}${stderr}`));
        else resolve(stdout + stderr);
      },
    );
  });
}

/** Polls fn() every `interval` ms until it returns a truthy value (returned), or throws after `timeout`. */
export async function waitUntil(fn, { timeout = 3000, interval = 50, what = 'a condition' } = {}) {
  const start = Date.now();
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() - start > timeout) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`Timed out after ${timeout} ms waiting for ${what}; last result: ${detail}`);
    }
    await sleep(interval);
  }
}

/** GET path on a node: {status, text, json}. */
export async function httpGet(node, p) {
  const res = await fetch(`${node.httpBase}${p}`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { status: res.status, text, json: tryParse(text) };
}

/** Calls the management API /v1 of a node with a bearer token: {status, text, json}. */
export async function adminRequest(node, token, method, p, body) {
  const headers = {};
  if (token !== undefined && token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${node.httpBase}${p}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, text, json: tryParse(text) };
}

/**
 * Registers node:test hooks that create a database, migrate it, and start the
 * named nodes (default A and B) on it and on one Redis, all sharing
 * HERALD_APPS, master key, cluster key and admin token. Returns a live object:
 *
 *   c.A, c.B            the nodes (startHerald servers: port, httpBase, wsBase, apps, child, output, stop())
 *   c.nodes             every node started so far, including startNode() ones
 *   c.startNode(label)  starts one more node of the same cluster
 *   c.killNode(node)    kill -9, waits for the exit
 *   c.restartNode(node) a new process for that node, on the same port (c[label] is replaced)
 *   c.admin(node, method, path, body)   management API call with the admin token
 *   c.env               the environment the nodes get
 *
 * Options: tag (names the database, Redis prefix and node ids), apps, env
 * (extra variables), presenceTtl (default 3s), redisUrl (a string or a
 * function called in `before`, for a test file's own Redis), migrateWith
 * ('command': `herald migrate` before the nodes start; 'nodes': no migration
 * beforehand, every node starts at once with HERALD_MIGRATE=true on the empty
 * database, so their migrations race under the advisory lock).
 */
export function useCluster({
  tag = 'cluster',
  apps = [],
  nodes = ['A', 'B'],
  env = {},
  presenceTtl = '3s',
  redisUrl,
  migrateWith = 'command',
} = {}) {
  const backends = requireBackends();
  const id = randomTag(`herald_e2e_${tag}`);
  const c = {
    tag,
    id,
    apps,
    nodes: [],
    adminToken: crypto.randomBytes(18).toString('base64url'),
    masterKey: crypto.randomBytes(32).toString('base64'),
    clusterKey: crypto.randomBytes(24).toString('base64url'),
    presenceTtlMs: parseDuration(presenceTtl),
    env: null,
    db: null,
    async startNode(label, extraEnv = {}, { port } = {}) {
      const node = await startHerald({
        apps,
        label,
        port,
        readyTimeoutMs: 20_000,
        env: { ...c.env, HERALD_NODE_ID: `${id}-${label}`, ...extraEnv },
      });
      c.nodes.push(node);
      marks.set(node, 0);
      c[label] = node;
      return node;
    },
    /** kill -9 of a node; resolves once it has exited. */
    async killNode(node) {
      process.kill(node.child.pid, 'SIGKILL');
      await waitUntil(() => node.exited, { timeout: 5000, what: `node ${node.label} to die` });
      return node.exited;
    },
    /** Starts a node again as a new process with the same label, id and port; c[label] becomes it. */
    restartNode(node, extraEnv = {}) {
      return c.startNode(node.label, extraEnv, { port: node.port });
    },
    admin(node, method, p, body) {
      return adminRequest(node, c.adminToken, method, p, body);
    },
  };
  const marks = new Map();

  before(async () => {
    c.db = createDatabase(backends.databaseUrl, id);
    if (migrateWith === 'command') await runMigrate(c.db.url);
    else if (migrateWith !== 'nodes') throw new Error(`migrateWith: want 'command' or 'nodes', got ${migrateWith}`);
    const redis = typeof redisUrl === 'function' ? redisUrl() : redisUrl || backends.redisUrl;
    c.redisUrl = redis;
    c.env = {
      HERALD_DATABASE_URL: c.db.url,
      HERALD_MASTER_KEY: c.masterKey,
      HERALD_REDIS_URL: redis,
      HERALD_REDIS_PREFIX: id,
      HERALD_CLUSTER_KEY: c.clusterKey,
      HERALD_PRESENCE_TTL: presenceTtl,
      HERALD_ADMIN_TOKEN: c.adminToken,
      HERALD_LOG_LEVEL: 'debug',
      ...(migrateWith === 'nodes' ? { HERALD_MIGRATE: 'true' } : {}),
      ...env,
    };
    // Both nodes start at once: HERALD_APPS is upserted by each, concurrently.
    await Promise.all(nodes.map((label) => c.startNode(label)));
  });
  beforeEach(() => {
    for (const n of c.nodes) marks.set(n, n.output.length);
  });
  afterEach(async (t) => {
    await closeAllClients();
    if (!t.passed) {
      for (const n of c.nodes) {
        const out = n.output.slice(marks.get(n) || 0).trimEnd();
        const status = n.exited ? ` (exited: ${JSON.stringify(n.exited)})` : '';
        process.stderr.write(
          `\n----- node ${n.label} output during failed test "${t.name}"${status} -----\n` +
            (out || '(no output)') +
            `\n----- end of node ${n.label} output -----\n`,
        );
      }
    }
  });
  after(async () => {
    await closeAllClients();
    await Promise.all(c.nodes.map((n) => n.stop()));
    if (c.db) c.db.drop();
    // See useHerald: pusher-js's close timers must not keep the process alive.
    setTimeout(() => process.exit(), 1000).unref();
  });
  return c;
}

function parseDuration(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(String(s));
  if (!m) throw new Error(`unsupported duration ${s}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2]];
}

/**
 * A private redis-server on a free loopback port that a test can stop and
 * start again on the same port (no persistence: a restart loses every key).
 */
export class OwnRedis {
  constructor() {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'herald-e2e-redis-'));
    this.pidfile = path.join(this.dir, 'redis.pid');
    this.port = null;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  cli(...args) {
    return spawnSync('redis-cli', ['-p', String(this.port), ...args], { encoding: 'utf8', timeout: 5000 });
  }

  async start() {
    if (this.port === null) this.port = await freePort();
    rmSync(this.pidfile, { force: true });
    try {
      execFileSync(
        'redis-server',
        [
          '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
          '--daemonize', 'yes', '--pidfile', this.pidfile, '--logfile', path.join(this.dir, 'redis.log'),
          '--dir', this.dir,
        ],
        { stdio: 'pipe', timeout: 10_000 },
      );
    } catch (err) {
      throw new Error(`redis-server failed to start on port ${this.port}: ${err.stderr || err.message}`);
    }
    await waitUntil(() => this.cli('ping').stdout.trim() === 'PONG', {
      timeout: 5000,
      what: `redis-server on port ${this.port} to answer PING`,
    });
  }

  get pid() {
    if (!existsSync(this.pidfile)) return null;
    const n = Number(readFileSync(this.pidfile, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  }

  async stop() {
    if (this.port === null) return;
    const pid = this.pid;
    this.cli('shutdown', 'nosave');
    await waitUntil(() => this.cli('ping').status !== 0 || this.cli('ping').stdout.trim() !== 'PONG', {
      timeout: 5000,
      what: `redis-server on port ${this.port} to stop`,
    }).catch((err) => {
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      } else {
        throw err;
      }
    });
  }

  async destroy() {
    try {
      await this.stop();
    } catch {
      // best effort
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
