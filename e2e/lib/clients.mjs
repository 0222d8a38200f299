// Client helpers: official pusher-js clients, raw `ws` clients, the official
// `pusher` server SDK, hand-signed REST requests, and an Inbox for awaiting
// events with a timeout.

import crypto from 'node:crypto';
import Pusher from 'pusher-js';
import PusherSDK from 'pusher';
import WebSocket from 'ws';
import { MASTER_KEY_BASE64 } from './apps.mjs';

export const DEFAULT_TIMEOUT_MS = 3000;
/** How long to wait to prove that something does NOT happen (after a positive control). */
export const QUIET_MS = 300;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function brief(value, max = 300) {
  let s;
  try {
    s = typeof value === 'string' ? value : JSON.stringify(value);
  } catch {
    s = String(value);
  }
  if (s === undefined) s = String(value);
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

/** Parses JSON text; returns undefined if it is not JSON. */
export function tryParse(text) {
  if (typeof text !== 'string') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Inbox: a queue of received items that can be awaited with a filter+timeout.
// ---------------------------------------------------------------------------

export class Inbox {
  constructor(label) {
    this.label = label;
    this.all = []; // every item ever received (for absence checks / diagnostics)
    this.pending = []; // not yet taken
    this.waiters = new Set();
  }

  push(item) {
    this.all.push(item);
    for (const w of this.waiters) {
      if (w.filter(item)) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(item);
        return;
      }
    }
    this.pending.push(item);
  }

  /** Resolves with (and removes) the first item matching `filter`, waiting up to `timeout` ms. */
  take(filter = () => true, { timeout = DEFAULT_TIMEOUT_MS, what = 'an item' } = {}) {
    const idx = this.pending.findIndex(filter);
    if (idx >= 0) return Promise.resolve(this.pending.splice(idx, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { filter, resolve };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        const seen = this.all.slice(-8).map((x) => brief(x, 200));
        reject(
          new Error(
            `Timed out after ${timeout} ms waiting for ${what} on ${this.label}; ` +
              `received (${this.all.length}, last 8): ${seen.length ? seen.join(' | ') : 'nothing'}`,
          ),
        );
      }, timeout);
      this.waiters.add(w);
    });
  }

  /** Items (ever received) matching filter. */
  filter(filter) {
    return this.all.filter(filter);
  }

  cancelWaiters() {
    for (const w of this.waiters) clearTimeout(w.timer);
    this.waiters.clear();
  }
}

/**
 * The Pusher error code carried by a pusher-js connection `error` event, whether
 * it is {type:'PusherError', data:{code}} or {type:'WebSocketError', error:<PusherError>}.
 * Returns undefined for other errors.
 */
export function pusherErrorCode(e) {
  if (e && e.type === 'PusherError' && e.data) return e.data.code;
  if (e && e.type === 'WebSocketError' && e.error && e.error.type === 'PusherError') return e.error.data.code;
  return undefined;
}

/** Records every emission of `event` on a pusher-js Dispatcher (channel, connection, user). */
export function record(target, event, label = event) {
  const inbox = new Inbox(label);
  target.bind(event, (data, metadata) => inbox.push({ data, metadata }));
  return inbox;
}

// ---------------------------------------------------------------------------
// Registry of open clients, closed after every test by useHerald().
// ---------------------------------------------------------------------------

const openClients = new Set();

/** Registers any client with a close() method, so that useHerald/useCluster close it after each test. */
export function trackClient(client) {
  openClients.add(client);
  return client;
}

/** Forgets a client registered with trackClient (call it from its close()). */
export function untrackClient(client) {
  openClients.delete(client);
}

export async function closeAllClients() {
  const all = [...openClients];
  openClients.clear();
  await Promise.all(all.map((c) => c.close().catch(() => {})));
}

// ---------------------------------------------------------------------------
// Official server SDK.
// ---------------------------------------------------------------------------

/** The official `pusher` SDK pointed at the Herald under test. Overrides allow forging. */
export function sdkFor(h, app, overrides = {}) {
  return new PusherSDK({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    port: String(h.port),
    useTLS: false,
    timeout: 5000,
    encryptionMasterKeyBase64: MASTER_KEY_BASE64,
    ...overrides,
  });
}

/**
 * Awaits an SDK call and returns {status, text, json} for success and for
 * RequestError (status >= 400) alike.
 */
export async function call(promiseOrFn) {
  try {
    const res = typeof promiseOrFn === 'function' ? await promiseOrFn() : await promiseOrFn;
    const text = await res.text();
    return { status: res.status, text, json: tryParse(text) };
  } catch (e) {
    if (e && typeof e.status === 'number') {
      return { status: e.status, text: e.body, json: tryParse(e.body) };
    }
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Hand-signed REST requests (reference §8.1), for cases the SDK refuses to send.
// ---------------------------------------------------------------------------

export const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');
export const hmac = (secret, s) => crypto.createHmac('sha256', secret).update(s).digest('hex');

/**
 * Sends a signed REST request. `path` is relative to /apps/{appId}.
 * Any signing input can be overridden: key, secret, appId, timestamp, bodyMd5.
 */
export async function signedRequest(
  h,
  { app, method = 'GET', path, params = {}, body, key, secret, appId, timestamp, bodyMd5 },
) {
  const bodyText = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const query = {
    auth_key: key ?? app.key,
    auth_timestamp: String(timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    ...params,
  };
  if (bodyText) query.body_md5 = bodyMd5 ?? md5(bodyText);
  const fullPath = `/apps/${appId ?? app.id}${path}`;
  const keys = Object.keys(query).sort();
  const toSign = [method.toUpperCase(), fullPath, keys.map((k) => `${k}=${query[k]}`).join('&')].join('\n');
  const signature = hmac(secret ?? app.secret, toSign);
  const qs =
    keys.map((k) => `${k}=${encodeURIComponent(query[k]).replace(/%2C/g, ',')}`).join('&') +
    `&auth_signature=${signature}`;
  const res = await fetch(`${h.httpBase}${fullPath}?${qs}`, {
    method,
    body: bodyText,
    headers: bodyText ? { 'content-type': 'application/json' } : {},
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, text, json: tryParse(text) };
}

// ---------------------------------------------------------------------------
// pusher-js (official client, unmodified).
// ---------------------------------------------------------------------------

export function isPresence(name) {
  return name.startsWith('presence-');
}

/** Connects an official pusher-js client and waits for state `connected` (see createPusher). */
export async function connectPusher(h, opts = {}) {
  const client = createPusher(h, opts);
  await client.waitForState('connected', 5000);
  return client;
}

/**
 * Creates an official pusher-js client (it starts connecting at once).
 *
 * Options:
 *   app       — app fixture (default: first app of the server)
 *   user      — presence data {user_id, user_info} used for presence channels
 *   userData  — sign-in data {id, user_info?} used by pusher.signin()
 *   authorize — ({sdk, socketId, channelName, user}) => authData; overrides the
 *               default SDK-signed channel authorization (used to forge tokens)
 *   authenticate — ({sdk, socketId, userData}) => authData; overrides sign-in auth
 */
export function createPusher(
  h,
  { app = h.apps[0], user, userData, authorize, authenticate, label, options = {} } = {},
) {
  const sdk = sdkFor(h, app);
  const name = label || `pusher-js(${app.key}${user ? `,${user.user_id}` : ''}${userData ? `,${userData.id}` : ''})`;
  const pusher = new Pusher(app.key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: h.port,
    wssPort: h.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const data = authorize
            ? authorize({ sdk, socketId, channelName, user })
            : sdk.authorizeChannel(socketId, channelName, isPresence(channelName) ? user : undefined);
          callback(null, data);
        } catch (err) {
          callback(err, null);
        }
      },
    },
    userAuthentication: {
      customHandler: ({ socketId }, callback) => {
        try {
          const data = authenticate
            ? authenticate({ sdk, socketId, userData })
            : sdk.authenticateUser(socketId, userData);
          callback(null, data);
        } catch (err) {
          callback(err, null);
        }
      },
    },
    ...options,
  });

  const client = new PusherClient(pusher, sdk, app, name);
  openClients.add(client);
  return client;
}

export class PusherClient {
  constructor(pusher, sdk, app, label) {
    this.pusher = pusher;
    this.sdk = sdk;
    this.app = app;
    this.label = label;
    this.messages = new Inbox(`${label} messages`); // every frame pusher-js received (parsed)
    this.errors = new Inbox(`${label} connection errors`);
    this.states = new Inbox(`${label} state changes`);
    pusher.connection.bind('message', (m) => this.messages.push(m));
    pusher.connection.bind('error', (e) => this.errors.push(e));
    pusher.connection.bind('state_change', (s) => this.states.push(s));
  }

  get socketId() {
    return this.pusher.connection.socket_id;
  }

  get state() {
    return this.pusher.connection.state;
  }

  waitForState(state, timeout = DEFAULT_TIMEOUT_MS) {
    if (this.state === state) return Promise.resolve();
    return this.states
      .take((s) => s.current === state, { timeout, what: `state "${state}"` })
      .catch((err) => {
        const errs = this.errors.all.map((e) => brief(e, 200)).join(' | ');
        throw new Error(`${err.message}; current state "${this.state}"; connection errors: ${errs || 'none'}`);
      });
  }

  /** Subscribes and resolves with {channel, data} on pusher:subscription_succeeded; rejects on subscription_error. */
  subscribe(name, timeout = DEFAULT_TIMEOUT_MS) {
    return this.#subscription(name, true, timeout);
  }

  /** Subscribes expecting rejection; resolves with the subscription_error data, rejects on success. */
  subscribeExpectingError(name, timeout = DEFAULT_TIMEOUT_MS) {
    return this.#subscription(name, false, timeout);
  }

  /** Subscribes and settles on the first of subscription_succeeded / subscription_error, as `expectSuccess` says. */
  #subscription(name, expectSuccess, timeout) {
    const channel = this.pusher.subscribe(name);
    const wanted = expectSuccess ? 'pusher:subscription_succeeded' : 'pusher:subscription_error';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.label}: no ${wanted} for "${name}" within ${timeout} ms`));
      }, timeout);
      const ok = (data) => {
        cleanup();
        if (expectSuccess) resolve({ channel, data });
        else reject(new Error(`${this.label}: subscription to "${name}" unexpectedly succeeded`));
      };
      const fail = (data) => {
        cleanup();
        if (expectSuccess) reject(new Error(`${this.label}: pusher:subscription_error for "${name}": ${brief(data)}`));
        else resolve(data);
      };
      const cleanup = () => {
        clearTimeout(timer);
        channel.unbind('pusher:subscription_succeeded', ok);
        channel.unbind('pusher:subscription_error', fail);
      };
      channel.bind('pusher:subscription_succeeded', ok);
      channel.bind('pusher:subscription_error', fail);
    });
  }

  /** Records `event` on channel `name` (must already be subscribed via pusher.subscribe). */
  record(name, event) {
    const channel = this.pusher.channel(name);
    if (!channel) throw new Error(`${this.label} is not subscribed to ${name}`);
    return record(channel, event, `${this.label} ${name}:${event}`);
  }

  /** Signs in and waits until the #server-to-user-{id} channel is subscribed. */
  async signin(timeout = DEFAULT_TIMEOUT_MS) {
    const waitSuccess = this.messages.take((m) => m.event === 'pusher:signin_success', {
      timeout,
      what: 'pusher:signin_success',
    });
    this.pusher.signin();
    await waitSuccess;
    const id = this.pusher.user.user_data && this.pusher.user.user_data.id;
    if (!id) throw new Error(`${this.label}: signin_success but pusher.user.user_data has no id`);
    await this.messages.take(
      (m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === `#server-to-user-${id}`,
      { timeout, what: `subscription to #server-to-user-${id}` },
    );
    return id;
  }

  async disconnect() {
    this.pusher.disconnect();
    await this.waitForState('disconnected', DEFAULT_TIMEOUT_MS).catch(() => {});
  }

  async close() {
    openClients.delete(this);
    this.messages.cancelWaiters();
    this.errors.cancelWaiters();
    this.states.cancelWaiters();
    try {
      this.pusher.disconnect();
    } catch {
      // already gone
    }
  }
}

// ---------------------------------------------------------------------------
// Raw WebSocket client (`ws`), for protocol cases pusher-js cannot express.
// ---------------------------------------------------------------------------

function parseFrame(raw) {
  const text = raw.toString();
  const msg = tryParse(text);
  if (!msg || typeof msg !== 'object') return { event: undefined, raw: text };
  const payload = typeof msg.data === 'string' ? (tryParse(msg.data) ?? msg.data) : msg.data;
  return { ...msg, payload, raw: text };
}

export function isValidFirstFrame(f) {
  if (!f) return false;
  if (f.event === 'pusher:connection_established') return true;
  if (f.event === 'pusher:error') {
    const code = f.payload && f.payload.code;
    return Number.isInteger(code) && code >= 4000 && code <= 4999;
  }
  return false;
}

/**
 * Opens a raw WebSocket to /app/{key}?{query} and waits for the first frame
 * (or the close). Throws unless the first frame is pusher:connection_established
 * or pusher:error with a 4xxx code — every test thereby checks that rule.
 */
export async function rawConnect(h, { key, query = 'protocol=7&client=js&version=8.6.0&flash=false', label } = {}) {
  const url = `${h.wsBase}/app/${key}${query === null ? '' : `?${query}`}`;
  const client = new RawClient(new WebSocket(url), label || `raw(${key}?${query ?? ''})`);
  openClients.add(client);
  const first = await Promise.race([
    client.frames.take(() => true, { timeout: 5000, what: 'the first frame' }).then((f) => {
      client.frames.pending.unshift(f); // keep it available to next()
      return f;
    }),
    client.closed.then((c) => {
      if (client.frames.all.length) return client.frames.all[0];
      throw new Error(
        `${client.label}: socket closed (code ${c.code} "${c.reason}") before any frame` +
          (client.error ? `; error: ${client.error.message}` : ''),
      );
    }),
  ]);
  if (!isValidFirstFrame(first)) {
    throw new Error(
      `${client.label}: first frame must be pusher:connection_established or pusher:error with a 4xxx code, got ${first.raw}`,
    );
  }
  if (first.event === 'pusher:connection_established') {
    client.socketId = first.payload && first.payload.socket_id;
    client.activityTimeout = first.payload && first.payload.activity_timeout;
  }
  client.first = first;
  return client;
}

export class RawClient {
  constructor(ws, label) {
    this.ws = ws;
    this.label = label;
    this.frames = new Inbox(`${label} frames`);
    this.error = null;
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      const f = parseFrame(data);
      f.at = Date.now();
      f.binary = isBinary;
      this.frames.push(f);
    });
    ws.on('error', (err) => {
      this.error = err;
    });
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  sendText(text) {
    this.ws.send(text);
  }

  /** Next unread frame with the given event name (and channel, if given). */
  next(event, { channel, timeout = DEFAULT_TIMEOUT_MS, filter = () => true } = {}) {
    return this.frames.take(
      (f) => (event === undefined || f.event === event) && (channel === undefined || f.channel === channel) && filter(f),
      { timeout, what: `${event ?? 'a frame'}${channel ? ` on ${channel}` : ''}` },
    );
  }

  /** Frames received so far with the given event (and channel). */
  seen(event, channel) {
    return this.frames.filter((f) => f.event === event && (channel === undefined || f.channel === channel));
  }

  /** Resolves with {code, reason} when closed; rejects after timeout. */
  async waitClose(timeout = DEFAULT_TIMEOUT_MS) {
    let timer;
    const t = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.label}: socket not closed within ${timeout} ms`)),
        timeout,
      );
    });
    try {
      return await Promise.race([this.closed, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends pusher:ping and waits for pusher:pong. */
  async ping(timeout = DEFAULT_TIMEOUT_MS) {
    this.send({ event: 'pusher:ping', data: {} });
    return this.next('pusher:pong', { timeout });
  }

  async subscribe(channel, { auth = '', channel_data, timeout = DEFAULT_TIMEOUT_MS } = {}) {
    const data = { auth, channel };
    if (channel_data !== undefined) data.channel_data = channel_data;
    this.send({ event: 'pusher:subscribe', data });
    return this.next('pusher_internal:subscription_succeeded', { channel, timeout });
  }

  async close() {
    openClients.delete(this);
    this.frames.cancelWaiters();
    if (this.ws.readyState === WebSocket.CLOSED) return;
    try {
      this.ws.close(1000);
    } catch {
      this.ws.terminate();
      return;
    }
    const done = await Promise.race([this.closed.then(() => true), sleep(1000).then(() => false)]);
    if (!done) this.ws.terminate();
  }
}
