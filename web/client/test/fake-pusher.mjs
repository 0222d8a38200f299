// A small fake of the pusher-js v8 surface Herald uses, modelled on its
// source (src/core/pusher.ts, connection/connection_manager.ts,
// connection/connection.ts, channels/channel.ts, events/dispatcher.ts):
//
//   - ConnectionManager.updateState emits 'state_change' and then the state
//     itself ('connected'), and Pusher resubscribes every channel on
//     'connected' (subscribeAll).
//   - The Connection binds the transport's 'message' before anyone else can,
//     decodes the frame (dropping unknown top-level fields such as "seq") and
//     dispatches it to the channel.
//   - Channels emit to global callbacks (event, data) and to bound ones.

export class Dispatcher {
  constructor() {
    this.callbacks = new Map();
    this.globals = [];
  }

  bind(name, fn) {
    this.callbacks.set(name, [...(this.callbacks.get(name) || []), fn]);
    return this;
  }

  unbind(name, fn) {
    this.callbacks.set(name, (this.callbacks.get(name) || []).filter((f) => f !== fn));
    return this;
  }

  bind_global(fn) {
    this.globals.push(fn);
    return this;
  }

  unbind_global(fn) {
    this.globals = this.globals.filter((f) => f !== fn);
    return this;
  }

  emit(name, data, meta) {
    for (const fn of this.globals) fn(name, data);
    for (const fn of this.callbacks.get(name) || []) fn(data, meta);
  }

  listeners(name) {
    return (this.callbacks.get(name) || []).length;
  }
}

// The raw transport: emits {data: string} message events like
// TransportConnection does for ws, xhr_streaming and xhr_polling.
export class FakeTransport extends Dispatcher {
  receive(frame) {
    this.emit('message', { data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }
}

// pusher-js's Protocol.decodeMessage: only event, channel, data, user_id.
function decodeMessage(messageEvent) {
  const m = JSON.parse(messageEvent.data);
  let data = m.data;
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data);
    } catch {}
  }
  const ev = { event: m.event, channel: m.channel, data };
  if (m.user_id) ev.user_id = m.user_id;
  return ev;
}

class FakeConnectionManager extends Dispatcher {
  constructor(pusher) {
    super();
    this.pusher = pusher;
    this.state = 'initialized';
    this.connection = null;
    this.socket_id = null;
    this.count = 0;
  }

  // Opens a new connection, as after a successful handshake.
  open({ withTransport = true } = {}) {
    const transport = new FakeTransport();
    transport.bind('message', (m) => {
      let decoded;
      try {
        decoded = decodeMessage(m);
      } catch {
        return this.emit('error', { type: 'MessageParseError' }); // as pusher-js's Connection does
      }
      this.emit('message', decoded);
    });
    this.connection = withTransport ? { id: `1.${++this.count}`, transport } : { id: `1.${++this.count}` };
    this.transport = transport;
    this.socket_id = this.connection.id;
    this.updateState('connected', { socket_id: this.socket_id });
  }

  // Loses the connection; pusher-js then goes to 'connecting' and retries.
  drop() {
    this.connection = null;
    this.updateState('connecting');
  }

  disconnect() {
    this.connection = null;
    this.updateState('disconnected');
  }

  send_event(event, data, channel) {
    if (!this.connection) return false;
    const frame = { event, data };
    if (channel) frame.channel = channel;
    this.pusher.sent.push(frame);
    return true;
  }

  updateState(state, data) {
    const previous = this.state;
    this.state = state;
    if (previous !== state) {
      this.emit('state_change', { previous, current: state });
      this.emit(state, data);
    }
  }
}

class FakeChannel extends Dispatcher {
  constructor(name, pusher) {
    super();
    this.name = name;
    this.pusher = pusher;
    this.subscribed = false;
    this.subscriptionPending = false;
  }

  handleEvent(event) {
    if (event.event === 'pusher_internal:subscription_succeeded') {
      this.subscriptionPending = false;
      this.subscribed = true;
      this.emit('pusher:subscription_succeeded', event.data);
    } else if (!event.event.startsWith('pusher_internal:')) {
      this.emit(event.event, event.data, event.user_id ? { user_id: event.user_id } : {});
    }
  }

  subscribe() {
    if (this.subscribed) return;
    this.subscriptionPending = true;
    this.pusher.send_event('pusher:subscribe', { auth: '', channel: this.name });
  }

  unsubscribe() {
    this.subscribed = false;
    this.pusher.send_event('pusher:unsubscribe', { channel: this.name });
  }

  disconnect() {
    this.subscribed = false;
    this.subscriptionPending = false;
  }

  trigger(event, data) {
    return this.pusher.send_event(event, data, this.name);
  }
}

export class FakePusher {
  constructor() {
    this.sent = []; // every frame sent, in order
    this.channels = new Map();
    this.connection = new FakeConnectionManager(this);
    this.connection.bind('connected', () => this.subscribeAll());
    this.connection.bind('message', (event) => {
      if (event.channel && this.channels.has(event.channel)) this.channels.get(event.channel).handleEvent(event);
    });
    this.connection.bind('connecting', () => this.channels.forEach((c) => c.disconnect()));
    this.connection.bind('disconnected', () => this.channels.forEach((c) => c.disconnect()));
  }

  channel(name) {
    return this.channels.get(name);
  }

  subscribeAll() {
    for (const name of this.channels.keys()) this.subscribe(name);
  }

  subscribe(name) {
    if (!this.channels.has(name)) this.channels.set(name, new FakeChannel(name, this));
    const channel = this.channels.get(name);
    if (!channel.subscriptionPending && this.connection.state === 'connected') channel.subscribe();
    return channel;
  }

  unsubscribe(name) {
    const channel = this.channels.get(name);
    this.channels.delete(name);
    if (channel && channel.subscribed) channel.unsubscribe();
  }

  send_event(event, data, channel) {
    return this.connection.send_event(event, data, channel);
  }

  // Test helpers: a frame from the server on the current connection, and
  // the events sent so far (optionally only some names).
  receive(frame) {
    this.connection.transport.receive(frame);
  }

  sentEvents(...names) {
    return this.sent.filter((f) => names.length === 0 || names.includes(f.event));
  }
}

// Deterministic timers: advance(ms) runs what is due, in due order.
export class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.next = 1;
    this.delays = []; // every delay asked for, in order
    this.setTimeout = (fn, ms) => {
      const id = this.next++;
      this.delays.push(ms);
      this.timers.set(id, { fn, at: this.now + ms });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let due = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (due === null || t.at < due[1].at)) due = [id, t];
      }
      if (due === null) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = end;
  }

  pending() {
    return this.timers.size;
  }
}

// Server frames.
export const subscribed = (channel, epoch, seq) =>
  epoch === undefined
    ? { event: 'pusher_internal:subscription_succeeded', channel, data: '{}' }
    : { event: 'pusher_internal:subscription_succeeded', channel, data: '{}', epoch, seq };

export const event = (channel, seq, data = { n: seq }, name = 'e') => {
  const frame = { event: name, channel, data: JSON.stringify(data) };
  if (seq !== undefined && seq !== null) frame.seq = seq;
  return frame;
};

export const resumeFailed = (channel, reason, epoch, seq) => ({
  event: 'herald:resume_failed',
  channel,
  data: JSON.stringify({ reason, epoch, seq }),
});

// A Herald over a fake pusher and a fake clock; random() is 1 unless given.
export async function setup(options = {}) {
  const { Herald } = await import('../herald.js');
  const pusher = new FakePusher();
  const clock = new FakeClock();
  const herald = new Herald(pusher, {
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 1,
    ...options,
  });
  return { pusher, clock, herald };
}

// Records what a channel delivers: [event, data, meta] per event, and gaps.
export function record(ch) {
  const got = { events: [], gaps: [] };
  ch.bind_global((name, data, meta) => {
    if (!name.startsWith('pusher:')) got.events.push([name, data, meta]);
  });
  ch.on('gap', (info) => got.gaps.push(info));
  got.seqs = () => got.events.map(([, , meta]) => meta.seq);
  return got;
}
