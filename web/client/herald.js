// Herald client: ordered, exactly-once catch-up on Herald's durable channels,
// as a plugin over a pusher-js (v8) instance; a plain ES module for browsers
// and Node. Durable frames carry a top-level "seq" that pusher-js's decoder
// drops, so we also read the transport's raw frames (ws and xhr alike) and
// deliver this plugin's events from there. Each channel keeps a cursor
// (epoch, seq): the last event delivered. On each connection we send
// herald:resume for the channels that have one from 'state_change', which
// pusher-js emits before the 'connected' event that resubscribes them, so the
// resume precedes the pusher:subscribe. While a resume is outstanding, events
// above a hole wait and are released in order; a hole still open after
// gapWait is a gap. Outside a resume a jump in seq is normal: the publisher
// excluded this socket_id.

const GLOBAL = Symbol('global');
// Subscription refusals worth retrying: over a rate limit, or unavailable.
const RETRYABLE = new Set([429, 503]);
const GAP = Symbol('gap');

export class Herald {
  constructor(pusher, options = {}) {
    if (!pusher || !pusher.connection) throw new TypeError('Herald: expected a pusher-js instance');
    this.pusher = pusher;
    this._storage = options.storage || null;
    this._onGap = options.onGap || null;
    this._gapWait = options.gapWait ?? 2000;
    this._retryMin = options.retryMin ?? 500;
    this._retryMax = options.retryMax ?? 30000;
    this._random = options.random || Math.random;
    // Wrapped so that browser timers are never called with a foreign `this`.
    this._setTimeout = options.setTimeout || ((fn, ms) => setTimeout(fn, ms));
    this._clearTimeout = options.clearTimeout || ((t) => clearTimeout(t));
    this._channels = new Map();
    this._transport = null; // whose raw frames we read; null: plain pusher-js delivery
    this._warned = false;
    this._onRaw = (messageEvent) => this._handleRaw(messageEvent);
    pusher.connection.bind('state_change', (change) => this._handleState(change.current));
    if (pusher.connection.state === 'connected') this._attach();
  }

  // Subscribes through pusher.subscribe and returns the channel to bind on.
  // It starts from options.cursor, else the stored cursor, else live.
  subscribe(name, options = {}) {
    if (this._channels.has(name)) return this._channels.get(name);
    let start = options.cursor;
    if (start != null && !isCursor(start)) throw new TypeError('Herald: cursor must be {epoch, seq}');
    if (start == null && this._storage) start = this._storage.get(name);
    if (!isCursor(start)) start = null; // none, or a corrupt stored one: live from now on
    const ch = new HeraldChannel(this, name);
    if (start) ch._setCursor(start.epoch, start.seq);
    // Sent ahead of pusher:subscribe, so the server applies it to this subscription.
    if (this._transport) ch._sendResume();
    ch.pusherChannel = this.pusher.subscribe(name);
    ch.pusherChannel.bind_global(ch._onPusher);
    this._channels.set(name, ch);
    return ch;
  }

  // Unsubscribes and forgets the channel. A stored cursor is kept, so a later
  // subscribe (or a page reload) resumes from it.
  unsubscribe(name) {
    const ch = this._channels.get(name);
    if (!ch) return;
    ch._reset();
    ch.pusherChannel.unbind_global(ch._onPusher);
    this._channels.delete(name);
    this.pusher.unsubscribe(name);
  }

  channel(name) { return this._channels.get(name); }

  // A storage adapter over localStorage, so that a page reload resumes too.
  // Best effort: without localStorage, or over quota, it stores nothing.
  static localStorage(prefix = 'herald:') {
    return {
      get: (name) => attempt(() => JSON.parse(globalThis.localStorage.getItem(prefix + name)), null),
      set: (name, cursor) => attempt(() => globalThis.localStorage.setItem(prefix + name, JSON.stringify(cursor))),
    };
  }

  _handleState(state) {
    if (this._transport) this._transport.unbind('message', this._onRaw);
    this._transport = null;
    // What a channel was waiting for belonged to the old connection; the
    // resume below asks again from its cursor.
    this._channels.forEach((ch) => ch._reset());
    if (state === 'connected' && this._attach()) this._channels.forEach((ch) => ch._sendResume());
  }

  _attach() {
    const conn = this.pusher.connection.connection;
    const transport = conn && conn.transport;
    if (!transport || typeof transport.bind !== 'function') {
      if (!this._warned) console.warn('Herald: no pusher.connection.connection.transport (pusher-js changed?); ' +
        'channels fall back to plain pusher-js delivery, without resume');
      this._warned = true;
      return false;
    }
    transport.bind('message', this._onRaw);
    this._transport = transport;
    return true;
  }

  _handleRaw(messageEvent) {
    const frame = decode(messageEvent && messageEvent.data); // unparsable: pusher-js reports it
    if (!frame || typeof frame.channel !== 'string' || typeof frame.event !== 'string') return;
    const ch = this._channels.get(frame.channel);
    if (ch && !ch._encrypted) ch._handleFrame(frame);
  }
}

export class HeraldChannel {
  constructor(herald, name) {
    this.name = name;
    this.pusherChannel = null;
    this._herald = herald;
    // pusher-js decrypts these inside its channel; raw frames hold ciphertext.
    this._encrypted = name.startsWith('private-encrypted-');
    this._hasCursor = false;
    this._epoch = '';
    this._seq = 0; // the last seq delivered; meaningful once _hasCursor
    this._resuming = false; // a herald:resume is outstanding
    this._target = Infinity; // ...until _seq reaches this
    this._failReason = null; // "unavailable" while retrying
    this._attempt = 0;
    this._buffer = new Map(); // seq -> event held behind a hole
    this._gapTimer = this._retryTimer = this._subTimer = null;
    this._subAttempt = 0;
    this._handlers = new Map(); // event name, GLOBAL or GAP -> functions
    this._onPusher = (event, data) => this._handlePusherEvent(event, data);
  }

  bind(event, fn) { return this._add(event, fn); }
  bind_global(fn) { return this._add(GLOBAL, fn); }
  unbind_global(fn) { return this._remove(GLOBAL, fn); }
  unbind_all() { return this.unbind().unbind_global(); }

  unbind(event, fn) {
    const events = event == null ? [...this._handlers.keys()].filter((k) => typeof k === 'string') : [event];
    for (const key of events) this._remove(key, fn);
    return this;
  }

  // The channel's own events: only 'gap'.
  on(event, fn) {
    if (event !== 'gap') throw new TypeError(`Herald: unknown channel event "${event}"`);
    return this._add(GAP, fn);
  }

  off(event, fn) { return this._remove(GAP, fn); }

  // The position of the last event delivered; null until there is one.
  cursor() { return this._hasCursor ? { epoch: this._epoch, seq: this._seq } : null; }

  _setCursor(epoch, seq) { [this._hasCursor, this._epoch, this._seq] = [true, epoch, seq]; }

  // Handler lists are replaced, never mutated, so that a handler may unbind
  // while an event is being emitted.
  _handlersOf(key) { return this._handlers.get(key) || []; }
  _add(key, fn) {
    this._handlers.set(key, [...this._handlersOf(key), fn]);
    return this;
  }
  _remove(key, fn) {
    const left = fn == null ? [] : this._handlersOf(key).filter((f) => f !== fn);
    if (left.length) this._handlers.set(key, left);
    else this._handlers.delete(key);
    return this;
  }

  _sendResume() {
    if (!this._hasCursor || this._encrypted) return;
    this._resuming = true;
    this._herald.pusher.send_event('herald:resume', { channel: this.name, epoch: this._epoch, seq: this._seq });
  }

  _reset() {
    this._finishResume();
    this._buffer.clear(); // above the cursor: the next resume brings them again
    this._stop('_gapTimer');
    this._stop('_subTimer');
  }

  _finishResume() {
    [this._resuming, this._target, this._failReason, this._attempt] = [false, Infinity, null, 0];
    this._stop('_retryTimer');
  }

  _stop(timer) {
    if (this[timer] !== null) this._herald._clearTimeout(this[timer]);
    this[timer] = null;
  }

  // pusher-js's own decoded events. Subscription results always come from
  // here (presence channels turn the data into Members); other events only
  // when raw frames are unavailable (no transport, encrypted channels).
  _handlePusherEvent(event, data) {
    const result = event === 'pusher:subscription_succeeded' || event === 'pusher:subscription_error';
    const plain = (!this._herald._transport || this._encrypted) && !isInternal(event);
    if (result || plain) this._emit(event, data, {});
    if (event === 'pusher:subscription_succeeded') this._subAttempt = 0;
    // pusher-js never retries a refused subscription. A refusal that says
    // "try again" (the server's backends are briefly down, or a rate limit)
    // is retried here, with backoff and jitter, resuming from the cursor.
    if (event === 'pusher:subscription_error' && data && RETRYABLE.has(data.status)) this._retrySubscribe();
  }

  _retrySubscribe() {
    const h = this._herald;
    const delay = h._random() * Math.min(h._retryMax, h._retryMin * 2 ** this._subAttempt++);
    this._stop('_subTimer');
    this._subTimer = h._setTimeout(() => {
      this._subTimer = null;
      if (h._channels.get(this.name) !== this || !h._transport) return; // gone, or a reconnect resubscribes
      this._sendResume();
      // The channel's own subscribe: after a refusal from the server
      // pusher-js still counts it pending, so pusher.subscribe would not
      // send anything.
      this.pusherChannel.subscribe();
    }, delay);
  }

  _handleFrame(frame) {
    if (frame.event === 'pusher_internal:subscription_succeeded') return this._subscribed(frame);
    if (frame.event === 'herald:resume_failed') return this._resumeFailed(decode(frame.data));
    if (isInternal(frame.event)) return;
    const meta = frame.user_id ? { user_id: frame.user_id } : {};
    const ev = { event: frame.event, data: decode(frame.data), meta, seq: frame.seq };
    if (typeof ev.seq !== 'number') return this._emit(ev.event, ev.data, meta); // not durable
    if (!this._hasCursor) {
      // A seq proves the channel durable although we never got its epoch (it
      // had no history yet, or pusher-js subscribed before us): "" = current.
      this._setCursor('', ev.seq);
      return this._deliver(ev);
    }
    if (ev.seq <= this._seq) return; // already delivered
    if (this._resuming && ev.seq > this._seq + 1) {
      this._buffer.set(ev.seq, ev);
      if (this._gapTimer === null) this._armGapTimer();
      return;
    }
    this._deliver(ev);
    this._drain();
  }

  _subscribed(frame) {
    if (typeof frame.epoch !== 'string' || typeof frame.seq !== 'number') {
      this._hasCursor = this._resuming = false; // not durable: plain pass-through
      return;
    }
    if (!this._resuming) {
      this._setCursor(frame.epoch, frame.seq); // live from here on
    } else {
      if (this._epoch === '') this._epoch = frame.epoch;
      // Events up to frame.seq are the replay, later ones live. In another
      // epoch, resume_failed (epoch_changed) comes next instead.
      this._target = this._epoch === frame.epoch ? frame.seq : Infinity;
    }
    this._save();
    this._drain();
  }

  _resumeFailed(info) {
    if (!info || typeof info.epoch !== 'string' || typeof info.seq !== 'number' || !this._hasCursor) return;
    if (this._epoch === '') this._epoch = info.epoch;
    if (info.reason === 'unavailable' && info.epoch === this._epoch) {
      // History is down for now: keep the cursor and ask again later. Live
      // events wait behind the hole meanwhile, gapWait at most.
      if (this._target === Infinity) this._target = info.seq;
      if (this._seq >= this._target) return this._drain(); // nothing was missed
      this._resuming = true;
      this._failReason = info.reason;
      return this._scheduleRetry();
    }
    const from = this.cursor();
    // Never move back within an epoch, which would deliver events twice,
    // unless the server says the cursor is beyond its log: then the cursor
    // was wrong (a hand-made one, or from a log that was reset).
    if (info.epoch !== this._epoch || info.seq > this._seq || info.reason === 'unknown_position') {
      this._setCursor(info.epoch, info.seq);
    }
    this._finishResume();
    this._save();
    this._gap({ reason: info.reason, from, to: this.cursor() });
    this._drain();
  }

  _scheduleRetry() {
    const h = this._herald;
    // Full jitter: uniform up to the doubling step, so that the clients of a
    // recovering backend do not all come back at once.
    const delay = h._random() * Math.min(h._retryMax, h._retryMin * 2 ** this._attempt++);
    this._stop('_retryTimer');
    this._retryTimer = h._setTimeout(() => {
      this._retryTimer = null;
      if (this._resuming && h._transport) this._sendResume();
    }, delay);
  }

  // Releases held events that are now in order, and ends the resume once the
  // replay has reached its target.
  _drain() {
    if (this._resuming && this._seq >= this._target) this._finishResume();
    // While resuming only the next seq can release anything: skip the sort.
    const keys = this._resuming && !this._buffer.has(this._seq + 1) ? [] : [...this._buffer.keys()];
    for (const seq of keys.sort((a, b) => a - b)) {
      if (this._resuming && seq > this._seq + 1) break;
      const ev = this._buffer.get(seq);
      this._buffer.delete(seq);
      if (seq <= this._seq) continue;
      this._deliver(ev);
      if (this._resuming && this._seq >= this._target) this._finishResume();
    }
    // Progress restarts the wait: a long replay is not a gap.
    this._stop('_gapTimer');
    if (this._buffer.size > 0) this._armGapTimer();
  }

  _armGapTimer() {
    this._gapTimer = this._herald._setTimeout(() => {
      this._gapTimer = null;
      if (this._buffer.size === 0) return;
      const from = this.cursor();
      // Skip the hole. Above the target, holes are socket_id exclusions.
      const first = [...this._buffer.keys()].reduce((a, b) => Math.min(a, b));
      this._seq = Math.min(first - 1, this._target);
      const reason = this._failReason || 'timeout';
      this._finishResume();
      this._save();
      this._gap({ reason, from, to: this.cursor() });
      this._drain();
    }, this._herald._gapWait);
  }

  _deliver(ev) {
    this._seq = ev.seq;
    this._emit(ev.event, ev.data, { ...ev.meta, seq: ev.seq, epoch: this._epoch });
    this._save(); // after the handlers: a reload mid-handler redelivers rather than loses
  }

  _save() {
    const storage = this._herald._storage;
    if (storage && this._hasCursor) guard(() => storage.set(this.name, this.cursor()));
  }

  _gap(info) {
    for (const fn of this._handlersOf(GAP)) guard(() => fn(info));
    if (this._herald._onGap) guard(() => this._herald._onGap(this.name, info));
  }

  _emit(event, data, meta) {
    for (const fn of this._handlersOf(GLOBAL)) guard(() => fn(event, data, meta));
    for (const fn of this._handlersOf(event)) guard(() => fn(data, meta));
  }
}

// Runs app code so that a throwing handler neither stops the events behind
// it nor leaves a cursor half-updated; the error still surfaces, uncaught.
function guard(fn) {
  try { fn(); } catch (err) { queueMicrotask(() => { throw err; }); }
}

function attempt(fn, fallback) {
  try { return fn(); } catch { return fallback; }
}

// Decodes event data the way pusher-js does: JSON when it parses as JSON.
function decode(data) {
  return typeof data === 'string' ? attempt(() => JSON.parse(data), data) : data;
}

function isInternal(event) {
  return /^(pusher:|pusher_internal:|herald:)/.test(event);
}

function isCursor(c) {
  return c != null && typeof c.epoch === 'string' && Number.isSafeInteger(c.seq) && c.seq >= 0;
}
