import type { Channel } from 'pusher-js';

/** The part of a pusher-js 8 `Pusher` instance that Herald uses; pass the instance itself. */
export interface PusherLike {
  connection: { state: string; bind(event: string, callback: (...args: any[]) => void): unknown };
  subscribe(channel: string): Channel;
  unsubscribe(channel: string): void;
  send_event(event: string, data: any, channel?: string): boolean;
}

/** A position in a durable channel: the last event delivered. Epoch "" with seq 0 means "from the start". */
export interface Cursor {
  epoch: string;
  seq: number;
}

/**
 * Why events were skipped. The first four come from the server (herald:resume_failed);
 * "timeout": a hole in the replay stayed open for gapWait.
 */
export type GapReason = 'expired' | 'epoch_changed' | 'too_far_behind' | 'unavailable' | 'timeout';

/** Events after `from` up to and including `to` were not delivered and will not be. */
export interface GapInfo {
  reason: GapReason;
  from: Cursor;
  to: Cursor;
}

/** The second argument of bind handlers (third of bind_global). seq and epoch are set on durable channels only. */
export interface EventMeta {
  seq?: number;
  epoch?: string;
  /** The sender of a client event on a presence channel, as in pusher-js. */
  user_id?: string;
}

/** Persists one cursor per channel; called synchronously. */
export interface CursorStorage {
  get(channel: string): Cursor | null | undefined;
  set(channel: string, cursor: Cursor): void;
}

export interface HeraldOptions {
  /** Where cursors are kept between page loads, e.g. Herald.localStorage(). */
  storage?: CursorStorage;
  /** Called on every gap of every channel, after the channel's own 'gap' listeners. */
  onGap?: (channel: string, info: GapInfo) => void;
  /** How long a hole in a replay may stay open before it is reported as a gap, in ms. Default 2000. */
  gapWait?: number;
  /** First retry step after resume_failed "unavailable", in ms; doubles per attempt. Default 500. */
  retryMin?: number;
  /** Largest retry step, in ms. Default 30000. */
  retryMax?: number;
  /** For tests: the random source of the retry jitter. Default Math.random. */
  random?: () => number;
  /** For tests: timer functions. Default the global ones. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: any) => void;
}

export interface SubscribeOptions {
  /** Start after this position (e.g. one your app saved); overrides the stored cursor. */
  cursor?: Cursor;
}

/** A channel subscribed through Herald.subscribe; not constructed directly. */
export declare class HeraldChannel {
  private constructor();
  readonly name: string;
  /** The pusher-js channel underneath, e.g. for trigger() or presence members. */
  readonly pusherChannel: Channel;
  /** Binds to an event. On durable channels handlers run in seq order, each event once. */
  bind(event: string, callback: (data: any, meta: EventMeta) => void): this;
  unbind(event?: string, callback?: (data: any, meta: EventMeta) => void): this;
  bind_global(callback: (event: string, data: any, meta: EventMeta) => void): this;
  unbind_global(callback?: (event: string, data: any, meta: EventMeta) => void): this;
  unbind_all(): this;
  on(event: 'gap', callback: (info: GapInfo) => void): this;
  off(event: 'gap', callback?: (info: GapInfo) => void): this;
  /** The last position delivered; null until the server has given the channel one (or if not durable). */
  cursor(): Cursor | null;
}

export declare class Herald {
  constructor(pusher: PusherLike, options?: HeraldOptions);
  readonly pusher: PusherLike;
  /** Subscribes through pusher.subscribe. Subscribing twice returns the same channel. */
  subscribe(channel: string, options?: SubscribeOptions): HeraldChannel;
  /** Unsubscribes through pusher.unsubscribe; a stored cursor is kept. */
  unsubscribe(channel: string): void;
  channel(channel: string): HeraldChannel | undefined;
  /** A CursorStorage over window.localStorage; keys are prefix + channel name. Default prefix "herald:". */
  static localStorage(prefix?: string): CursorStorage;
}
