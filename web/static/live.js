// The live view: reads the app's live figures every two seconds and
// updates the page in place, with textContent only.
(() => {
  const root = document.getElementById('live');
  const { dataUrl } = root.dataset;
  const status = document.getElementById('live-status');

  const fill = (tbodyId, rows, empty) => {
    const tbody = document.getElementById(tbodyId);
    tbody.replaceChildren();
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = 3;
      td.className = 'empty';
      td.textContent = empty;
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    for (const cells of rows) {
      const tr = document.createElement('tr');
      for (const value of cells) {
        const td = document.createElement('td');
        td.textContent = String(value);
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
  };

  const refresh = async () => {
    try {
      const res = await fetch(dataUrl, { credentials: 'same-origin' });
      if (!res.ok) throw new Error(`status ${res.status}`);
      const live = await res.json();
      document.getElementById('live-connections').textContent = String(live.connections);
      fill('live-nodes', live.nodes.map((n) => [n.node, n.connections]), 'No connections.');
      fill('live-channels', live.channels.map((c) => [c.name, c.subscriptions, c.users ?? '']), 'No occupied channels.');
      fill('live-members', live.members.map((m) => [m.channel, m.user_id]), 'No presence members.');
      status.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    } catch (err) {
      status.textContent = `Could not refresh (${err.message}); retrying.`;
    }
  };
  refresh();
  setInterval(refresh, 2000);
})();
