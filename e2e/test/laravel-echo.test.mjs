// 12. Laravel Echo (pusher broadcaster) on top of pusher-js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Echo from 'laravel-echo';
import { useHerald } from '../lib/herald.mjs';
import { APP1, uniq } from '../lib/apps.mjs';
import { connectPusher, sdkFor, call, Inbox } from '../lib/clients.mjs';

const h = useHerald({ apps: [APP1] });

test('Laravel Echo: public .listen(".shipped") and private .listen("OrderShipped") receive SDK triggers', async () => {
  const client = await connectPusher(h, { label: 'echo-pusher-js' });
  const echo = new Echo({ broadcaster: 'pusher', key: APP1.key, client: client.pusher });
  try {
    const publicName = uniq('orders');
    const privateName = uniq('account');
    const shipped = new Inbox('echo public .shipped');
    const privShipped = new Inbox('echo private OrderShipped');
    const subscribed = new Inbox('echo subscribed');

    echo.channel(publicName).subscribed(() => subscribed.push('public')).listen('.shipped', (e) => shipped.push(e));
    echo
      .private(privateName)
      .subscribed(() => subscribed.push('private'))
      .error((e) => subscribed.push({ error: e }))
      .listen('OrderShipped', (e) => privShipped.push(e)); // Laravel namespace: App\Events\OrderShipped

    await subscribed.take((x) => x === 'public', { what: 'public subscribed' });
    await subscribed.take((x) => x === 'private', { what: 'private subscribed' });

    const sdk = sdkFor(h, APP1);
    const r1 = await call(sdk.trigger(publicName, 'shipped', { order: 1 }));
    assert.equal(r1.status, 200, r1.text);
    const r2 = await call(sdk.trigger(`private-${privateName}`, 'App\\Events\\OrderShipped', { order: 2 }));
    assert.equal(r2.status, 200, r2.text);

    assert.deepEqual(await shipped.take(), { order: 1 });
    assert.deepEqual(await privShipped.take(), { order: 2 });
    assert.equal(echo.socketId(), client.socketId);
  } finally {
    echo.disconnect();
  }
});
