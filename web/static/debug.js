// The console's debug stream: a WebSocket to this Herald node speaking the
// Pusher protocol, subscribed to the app's #herald-debug channel with a
// token the console signs for this very connection. Entries are added with
// textContent only: nothing from the stream is ever parsed as HTML.
(() => {
  const root = document.getElementById('debug');
  const rows = document.getElementById('debug-rows');
  const status = document.getElementById('debug-status');
  const { key, tokenUrl, csrf } = root.dataset;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const maxRows = 500;

  const setStatus = (text) => {
    status.textContent = text;
  };

  const add = (entry) => {
    const tr = document.createElement('tr');
    for (const value of [entry.time, entry.type, entry.channel, entry.event, entry.socket_id, entry.user_id, entry.data || entry.message]) {
      const td = document.createElement('td');
      td.textContent = value || '';
      tr.appendChild(td);
    }
    rows.prepend(tr);
    while (rows.children.length > maxRows) rows.lastElementChild.remove();
  };

  const send = (ws, event, data) => ws.send(JSON.stringify({ event, data }));

  const openStream = async (ws, socketId) => {
    const body = new URLSearchParams({ csrf, socket_id: socketId });
    const res = await fetch(tokenUrl, { method: 'POST', body, credentials: 'same-origin' });
    if (!res.ok) {
      setStatus(`Could not open the debug stream (${res.status}). Reload the page.`);
      ws.close();
      return;
    }
    const { auth } = await res.json();
    send(ws, 'pusher:subscribe', { channel: '#herald-debug', auth });
  };

  const connect = () => {
    const ws = new WebSocket(`${scheme}//${location.host}/app/${encodeURIComponent(key)}?protocol=7&client=herald-console`);
    ws.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      switch (frame.event) {
        case 'pusher:connection_established':
          openStream(ws, JSON.parse(frame.data).socket_id);
          break;
        case 'pusher_internal:subscription_succeeded':
          setStatus('Live. New events appear at the top.');
          break;
        case 'pusher:subscription_error':
          setStatus(`The debug stream was refused: ${JSON.parse(frame.data).error}`);
          break;
        case 'pusher:ping':
          send(ws, 'pusher:pong', {});
          break;
        case 'herald:debug':
          add(JSON.parse(frame.data));
          break;
        default:
      }
    };
    ws.onclose = () => {
      setStatus('Disconnected from the debug stream; reconnecting…');
      setTimeout(connect, 2000);
    };
  };
  connect();
})();
