// App fixtures shared by the test files. Every field of `settings` is optional
// on the server side; tests that rely on a limit spell it out explicitly.

export const APP1 = {
  id: 'app1',
  key: 'key1',
  secret: 'secret1',
  name: 'App One',
  enabled: true,
  settings: {
    limits: {
      client_events_per_second: 10,
      max_connections: 0,
      max_payload_bytes: 10240,
      max_channels_per_connection: 100,
      max_presence_members: 100,
    },
    features: { client_events: true },
  },
};

export const APP2 = {
  id: 'app2',
  key: 'key2',
  secret: 'secret2',
  name: 'App Two',
};

// Any 32 bytes; only the app server (SDK) and pusher-js know it, never Herald.
export const MASTER_KEY_BASE64 = Buffer.from(
  Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff),
).toString('base64');

let counter = 0;
/** A channel (or user) name that no other test uses: `${prefix}-<n>-<random>`. */
export function uniq(prefix) {
  counter += 1;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}
