// The Fleet panel of the overview: the nodes sharing this node's Redis, with their sessions, leases and
// health, this node's Redis link, and a front's backs (or a back's fronts). The data is GET /cluster of the
// admin API, fetched again with every snapshot of the live stream.
import { useEffect, useState } from 'preact/hooks';
import { api, duration, html } from './lib.js';

/** Is this node part of a fleet? (The status snapshot carries `cluster` only then.) */
export function inFleet(status) {
  return Boolean(status?.cluster);
}

function heartbeatAge(seenAt) {
  if (!seenAt) return '–';
  return `${duration(Math.max(0, (Date.now() - seenAt) / 1000))} ago`;
}

function RedisLink({ node }) {
  if (!node) return html`<p class="muted">No shared state ([cluster] redis unset).</p>`;
  const errors = Object.entries(node.errors ?? {});
  const owed = node.pendingUsage + node.pendingTableEdits;
  return html`<p data-redis=${node.redis}>
    Redis link: <span class=${`pill ${node.redis === 'up' ? 'ok' : 'bad'}`}>${node.redis === 'up' ? 'up' : 'down'}</span>
    ${node.redis !== 'up' && html` <span class="bad">since ${node.downSince ?? '?'}, serving from local state</span>`}
    ${owed > 0 && html` <span class="warn">${owed} changes waiting for Redis</span>`}
    ${errors.length > 0 && html` <span class="muted">errors: ${errors.map(([k, v]) => `${k} ${v}`).join(', ')}</span>`}
  </p>`;
}

function Nodes({ doc }) {
  if (!doc.node) return null;
  if (!doc.nodes)
    return html`<p class="muted">Nodes unknown (${doc.nodesError ?? 'Redis cannot be asked'}).</p>`;
  const self = doc.node.id;
  return html`<div class="table-wrap"><table aria-label="Nodes">
    <thead><tr><th>Node</th><th>Role</th><th>Health</th><th class="num">Sessions</th><th class="num">Leases</th><th class="hide-phone">Last heartbeat</th><th class="hide-phone">Version</th></tr></thead>
    <tbody>${doc.nodes.map(
      (n) => html`<tr data-node=${n.name} data-alive=${n.alive ? 'up' : 'down'}>
        <td>${n.name}${n.id === self ? html` <span class="muted">(this node)</span>` : ''}</td>
        <td>${n.role ?? (n.id === self ? doc.role : '–')}</td>
        <td><span class=${`pill ${n.alive ? 'ok' : 'bad'}`}>${n.alive ? 'up' : 'down'}</span></td>
        <td class="num">${n.sessions}</td>
        <td class="num">${n.leases}</td>
        <td class="hide-phone">${heartbeatAge(n.seenAt)}</td>
        <td class="hide-phone">${n.version}</td>
      </tr>`,
    )}</tbody>
  </table></div>`;
}

function Links({ doc }) {
  if (doc.backs)
    return html`<h3>Backs</h3>${
      doc.backs.length === 0
        ? html`<p class="muted">None configured.</p>`
        : html`<div class="table-wrap"><table aria-label="Backs">
      <thead><tr><th>Back</th><th>Link</th><th class="hide-phone">Peer</th><th class="num">Sessions</th></tr></thead>
      <tbody>${doc.backs.map(
        (b) => html`<tr data-back=${b.back}>
          <td class="mono">${b.back}</td><td><span class=${`pill ${b.up ? 'ok' : 'bad'}`}>${b.up ? 'up' : 'down'}</span></td>
          <td class="hide-phone">${b.peer ?? '–'}</td><td class="num">${b.streams}</td>
        </tr>`,
      )}</tbody>
    </table></div>`
    }`;
  if (doc.fronts)
    return html`<h3>Fronts linked</h3>${
      doc.fronts.length === 0
        ? html`<p class="muted">None.</p>`
        : html`<div class="table-wrap"><table aria-label="Fronts">
      <thead><tr><th>Front</th><th class="num">Sessions</th></tr></thead>
      <tbody>${doc.fronts.map((f) => html`<tr data-front=${f.name}><td>${f.name}</td><td class="num">${f.streams}</td></tr>`)}</tbody>
    </table></div>`
    }`;
  return null;
}

/** `status`: the live snapshot; each new one fetches /cluster again. */
export function Fleet({ status }) {
  const [doc, setDoc] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let gone = false;
    api('GET', '/cluster').then(
      (d) => {
        if (gone) return;
        setDoc(d);
        setError(null);
      },
      (e) => {
        if (!gone) setError(String(e.message));
      },
    );
    return () => {
      gone = true;
    };
  }, [status]);
  return html`<section class="card" aria-labelledby="fleet-h">
    <h2 id="fleet-h">Fleet${doc && html` <span class="muted">(this node: ${doc.node?.node ?? 'no shared state'}, role ${doc.role})</span>`}</h2>
    ${error && html`<p class="bad" role="status">Cannot read the fleet: ${error}</p>`}
    ${
      doc
        ? html`<${RedisLink} node=${doc.node} /><${Nodes} doc=${doc} /><${Links} doc=${doc} />`
        : !error && html`<p class="loading">Asking the fleet…</p>`
    }
  </section>`;
}
