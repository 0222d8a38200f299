// Helpers for durable channels: the history REST API (signed, and the
// frontend endpoint), stream tokens, pusher-js subscribers through the Herald
// client plugin (web/client/herald.js), and SSE subscribers through the
// `eventsource` package. Every subscriber registers with trackClient, so
// useHerald/useCluster close it after each test.

import { EventSource } from 'eventsource';
import Pusher from 'pusher-js';
import { Herald } from '../../web/client/herald.js';
import { createPusher, signedRequest, hmac, tryParse, trackClient, untrackClient } from './clients.mjs';
import { waitUntil } from './cluster.mjs';

/** waitUntil with this file's defaults: 5 s, polling every 20 ms. */
export const waitFor = (fn, opts = {}) => waitUntil(fn, { timeout: 5000, interval: 20, ...opts });

// ---------------------------------------------------------------------------
// History API.
// ---------------------------------------------------------------------------

/** Signed GET /apps/{id}/channels/{channel}/events with query params; signing overrides as signedRequest. */
export function historyRequest(h, app, channel, params = {}, overrides = {}) {
  return signedRequest(h, { app, path: `/channels/${channel}/events`, params, ...overrides });
}

/** Every event the log still holds for channel (paging with limit 1000): {epoch, head, oldest, events}. */
export async function readLog(h, app, channel) {
  const events = [];
  let after = 0;
  let page;
  for (;;) {
    const res = await historyRequest(h, app, channel, { after_seq: String(after), limit: '1000' });
    if (res.status === 410 && res.json && res.json.reason === 'expired' && after === 0 && res.json.oldest_seq > 1) {
      after = res.json.oldest_seq - 1; // retention: start at the oldest event kept
      continue;
    }
    if (res.status !== 200) throw new Error(`history of ${channel} after ${after}: ${res.status} ${res.text}`);
    page = res.json;
    events.push(...page.events);
    if (!page.has_more) break;
    after = page.next_after_seq;
  }
  return { epoch: page.epoch, head: page.head, oldest: page.oldest_seq, events };
}

/** Unsigned GET of a frontend URL path (e.g. /app/{key}/channels/..): {status, headers, text, json}. */
export async function frontendGet(h, path) {
  const res = await fetch(`${h.httpBase}${path}`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: tryParse(text) };
}

// ---------------------------------------------------------------------------
// Stream tokens (SSE and the frontend history endpoint).
// ---------------------------------------------------------------------------

/**
 * The stream token an app's backend gives a frontend: query parameters
 * {auth, user_id, expires} for exactly `channels`, signed with `secret`
 * (default: the app's).
 */
export function streamToken(app, channels, { userId = '', expires = Math.floor(Date.now() / 1000) + 600, secret = app.secret, key = app.key } = {}) {
  const sorted = [...new Set(channels)].sort();
  const message = `herald-stream\n${key}\n${sorted.map((c) => `${c}\n`).join('')}${userId}\n${expires}`;
  return { auth: `${key}:${hmac(secret, message)}`, user_id: userId, expires: String(expires) };
}

/** The query string of an SSE or history request: channels plus extra params. */
export function query(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%2C/g, ',')}`)
    .join('&');
}

// ---------------------------------------------------------------------------
// pusher-js + Herald client plugin.
// ---------------------------------------------------------------------------

/**
 * A pusher-js client on node h with the Herald plugin, subscribed to
 * `channel` through herald.subscribe. Records every event the plugin
 * delivers ({event, data, seq, epoch}), every gap, and connection changes.
 */
export class PluginSubscriber {
  constructor(h, { app = h.apps[0], channel, label, cursor, pusherOptions = {}, heraldOptions = {} } = {}) {
    this.label = label || `plugin(${channel})`;
    this.channelName = channel;
    this.client = createPusher(h, { app, label: this.label, options: pusherOptions });
    this.pusher = this.client.pusher;
    this.events = []; // delivered by the plugin, in delivery order
    this.gaps = []; // {reason, from, to} from ch.on('gap')
    this.onGapCalls = []; // the same, from the Herald onGap option
    this.subscribed = 0; // pusher:subscription_succeeded count
    this.connects = 0; // transitions to "connected"
    this.drops = 0; // connections lost without pusher.disconnect() (which goes straight to "disconnected")
    this.pusher.connection.bind('state_change', (s) => {
      if (s.current === 'connected') this.connects += 1;
      if (s.previous === 'connected' && s.current !== 'disconnected') this.drops += 1;
    });
    this.herald = new Herald(this.pusher, {
      ...heraldOptions,
      onGap: (name, info) => this.onGapCalls.push({ channel: name, ...info }),
    });
    this.channel = this.herald.subscribe(channel, cursor ? { cursor } : {});
    this.channel.bind_global((event, data, meta) => {
      if (event === 'pusher:subscription_succeeded') {
        this.subscribed += 1;
        return;
      }
      if (event.startsWith('pusher:')) return;
      this.events.push({ event, data, seq: meta.seq, epoch: meta.epoch, at: Date.now() });
    });
    this.channel.on('gap', (info) => this.gaps.push(info));
  }

  get reconnects() {
    return Math.max(0, this.connects - 1);
  }

  /** Waits for the first subscription_succeeded. */
  ready(timeout = 5000) {
    return waitFor(() => this.subscribed > 0, { timeout, what: `${this.label} to be subscribed to ${this.channelName}` });
  }

  /** Waits until `pred(events)` holds. */
  waitEvents(pred, { timeout = 5000, what = 'events' } = {}) {
    return waitFor(() => pred(this.events), {
      timeout,
      what: `${what} on ${this.label} (have ${this.events.length}: seqs ${summarize(this.events.map((e) => e.seq))}; gaps ${JSON.stringify(this.gaps)})`,
    });
  }

  /** Forces a disconnection (pusher.disconnect) and waits for state "disconnected". */
  async disconnect() {
    this.pusher.disconnect();
    await this.waitState('disconnected', 5000);
  }

  async connect(timeout = 10_000) {
    this.pusher.connect();
    await this.waitState('connected', timeout);
  }

  /** Polls the connection state (PusherClient.waitForState may take a stale queued state change). */
  waitState(state, timeout = 10_000) {
    return waitFor(() => this.pusher.connection.state === state, { timeout, what: `${this.label} to be ${state} (is ${this.pusher.connection.state})` });
  }

  close() {
    return this.client.close();
  }
}

/**
 * Tells every pusher-js client that the network is back ('online'), as a
 * browser does: clients that are connecting or unavailable retry at once.
 * In Node a refused connection is only noticed by pusher-js's 15 s connect
 * timeout, so a client whose node was down would otherwise wait that long.
 */
export function networkOnline() {
  Pusher.Runtime.getNetwork().emit('online');
}

/** "1..5,7,9..12" for a list of numbers (diagnostics). */
export function summarize(nums) {
  const out = [];
  for (let i = 0; i < nums.length; i++) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j] + 1) j++;
    out.push(j > i ? `${nums[i]}..${nums[j]}` : String(nums[i]));
    i = j;
  }
  const s = out.join(',');
  return s.length > 400 ? `${s.slice(0, 200)}…${s.slice(-200)}` : s;
}

// ---------------------------------------------------------------------------
// SSE through the `eventsource` package (a WhatWG EventSource over fetch).
// ---------------------------------------------------------------------------

/**
 * An EventSource on `url` recording every message's frame (parsed data) and
 * id. `reopen()` closes it and opens a new one from the last id seen, as a
 * page would, sending Last-Event-ID (header, default) or ?last_event_id=.
 * If the server refuses a reconnection (a non-200: the package then gives
 * up), it reopens by itself when `keepAlive` is set.
 */
export class SseSubscriber {
  constructor(url, { label = 'sse', lastEventId, via = 'header', keepAlive = false } = {}) {
    this.url = url;
    this.label = label;
    this.keepAlive = keepAlive;
    this.frames = []; // {frame, id, at} in arrival order
    this.lastId = lastEventId || '';
    this.opens = 0;
    this.reopens = 0;
    this.retries = 0; // reconnections the EventSource scheduled by itself
    this.errors = [];
    this.responses = []; // {status, headers} of each request the EventSource made
    this.requests = []; // {url, lastEventId} of each request
    this.closed = false;
    trackClient(this);
    this.#open(lastEventId, via);
  }

  #open(lastEventId, via) {
    let url = this.url;
    const extraHeaders = {};
    if (lastEventId && via === 'query') url += `${url.includes('?') ? '&' : '?'}last_event_id=${encodeURIComponent(lastEventId)}`;
    if (lastEventId && via === 'header') extraHeaders['Last-Event-ID'] = lastEventId;
    const es = new EventSource(url, {
      fetch: async (input, init) => {
        const headers = { ...extraHeaders, ...init.headers };
        this.requests.push({ url: String(input), lastEventId: headers['Last-Event-ID'] || null });
        const res = await fetch(input, { ...init, headers });
        this.responses.push({ status: res.status, headers: res.headers });
        return res;
      },
    });
    es.onopen = () => {
      this.opens += 1;
    };
    es.onmessage = (ev) => {
      if (ev.lastEventId) this.lastId = ev.lastEventId;
      this.frames.push({ frame: tryParse(ev.data) ?? ev.data, id: ev.lastEventId, at: Date.now() });
    };
    es.onerror = (err) => {
      this.errors.push({ code: err.code, message: err.message, at: Date.now() });
      if (es.readyState === 0) this.retries += 1; // the EventSource reconnects by itself
      if (es.readyState === 2 && this.keepAlive && !this.closed && es === this.es) {
        setTimeout(() => {
          if (!this.closed && es === this.es) this.reopen();
        }, 500);
      }
    };
    this.es = es;
  }

  /** Closes the EventSource and opens a new one from the last id seen. */
  reopen(via = 'header') {
    this.es.close();
    this.reopens += 1;
    this.#open(this.lastId, via);
  }

  /** Frames with this event (and channel). */
  seen(event, channel) {
    return this.frames.filter((f) => f.frame && f.frame.event === event && (channel === undefined || f.frame.channel === channel));
  }

  /** The durable events (frames with a seq) of channel, in arrival order. */
  durable(channel) {
    return this.frames.filter((f) => f.frame && f.frame.channel === channel && typeof f.frame.seq === 'number' && !f.frame.event.startsWith('pusher'));
  }

  waitFrames(pred, { timeout = 5000, what = 'frames' } = {}) {
    return waitFor(() => pred(this.frames), {
      timeout,
      what: `${what} on ${this.label} (${this.frames.length} frames, last: ${JSON.stringify(this.frames.slice(-3).map((f) => f.frame))}; errors ${JSON.stringify(this.errors.slice(-3))})`,
    });
  }

  get reconnects() {
    return Math.max(0, this.opens - 1);
  }

  async close() {
    this.closed = true;
    untrackClient(this);
    this.es.close();
  }
}
