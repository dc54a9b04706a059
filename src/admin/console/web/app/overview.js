// Overview: uptime, version, sessions by listener and protocol, live traffic, DCs, handshake failures,
// and the fleet when the node is part of one.
import { useState } from 'preact/hooks';
import { Chart } from './chart.js';
import { Fleet, inFleet } from './fleet.js';
import { ApiError, api, bytes, duration, html, rate, rates } from './lib.js';

function Tile({ label, value, title }) {
  return html`<div class="tile" title=${title}><div class="label">${label}</div><div class="value">${value}</div></div>`;
}

function telegramConfigAge(status) {
  const middle = status.upstream?.middle;
  const updatedAt = middle?.telegramConfig?.updatedAt;
  if (!middle) return 'not used';
  if (!updatedAt) return 'not yet';
  return `${duration((Date.now() - updatedAt) / 1000)} ago`;
}

function Sessions({ status }) {
  const protocols = ['abridged', 'intermediate', 'padded', 'tls'];
  return html`<section class="card" aria-labelledby="sessions-h">
    <h2 id="sessions-h">Sessions by listener and protocol</h2>
    <div class="table-wrap"><table>
      <thead><tr><th>Listener</th><th class="hide-phone">Address</th>${protocols.map((p) => html`<th class="num">${p}</th>`)}<th class="num">Connections</th></tr></thead>
      <tbody>${status.listeners.map(
        (l) => html`<tr>
          <td>${l.name}</td><td class="hide-phone mono">${l.host}:${l.port}</td>
          ${protocols.map((p) => html`<td class="num" title=${`${l.sessions[p].total} in all`}>${l.sessions[p].active}</td>`)}
          <td class="num">${l.connectionsActive}</td>
        </tr>`,
      )}</tbody>
    </table></div>
  </section>`;
}

function Dcs({ status }) {
  const pools = status.upstream?.middle?.dcs ?? {};
  return html`<section class="card" aria-labelledby="dcs-h">
    <h2 id="dcs-h">Upstream health per DC <span class="muted">(${status.upstream?.mode})</span></h2>
    ${
      status.dcs.length === 0
        ? html`<p class="muted">No connection to Telegram yet.</p>`
        : html`<div class="table-wrap"><table>
      <thead><tr><th>DC</th><th>Health</th><th class="num">Open</th><th class="num">Connects</th><th class="num">Errors</th><th class="num hide-phone">Middle links</th><th class="num hide-phone">Fallbacks</th></tr></thead>
      <tbody>${status.dcs.map((d) => {
        const ratio = d.connects > 0 ? d.connectErrors / d.connects : 0;
        const health =
          d.connects === 0
            ? ['muted', 'idle']
            : ratio > 0.2
              ? ['bad', 'failing']
              : ratio > 0
                ? ['warn', 'errors']
                : ['ok', 'ok'];
        const pool = pools[String(d.dc)];
        return html`<tr data-dc=${d.dc}>
          <td>${d.dc}</td><td><span class=${`pill ${health[0]}`}>${health[1]}</span></td>
          <td class="num">${d.connectionsActive}</td><td class="num">${d.connects}</td><td class="num">${d.connectErrors}</td>
          <td class="num hide-phone">${pool ? `${pool.ready} ready / ${pool.pending} pending` : '–'}</td>
          <td class="num hide-phone">${d.middle ? d.middle.fallbacks : 0}</td>
        </tr>`;
      })}</tbody>
    </table></div>`
    }
  </section>`;
}

function Failures({ status }) {
  const rows = status.listeners.flatMap((l) =>
    Object.entries(l.handshakeStages ?? {}).map(([stage, n]) => ({ listener: l.name, stage, n })),
  );
  return html`<section class="card" aria-labelledby="fail-h">
    <h2 id="fail-h">Handshake failures by stage</h2>
    ${
      rows.length === 0
        ? html`<p class="muted">None.</p>`
        : html`<div class="table-wrap"><table>
      <thead><tr><th>Listener</th><th>Stage</th><th class="num">Count</th></tr></thead>
      <tbody>${rows.sort((a, b) => b.n - a.n).map((r) => html`<tr><td>${r.listener}</td><td>${r.stage}</td><td class="num">${r.n}</td></tr>`)}</tbody>
    </table></div>`
    }
  </section>`;
}

function Traffic({ live }) {
  const [span, setSpan] = useState('hour');
  const data = rates(span === 'hour' ? live.hour : live.day);
  const last = data[0].length > 0 ? [data[1].at(-1), data[2].at(-1)] : [0, 0];
  return html`<section class="card" aria-labelledby="traffic-h">
    <div class="toolbar" style="justify-content: space-between">
      <h2 id="traffic-h">Traffic <span class="muted">now ${rate(last[0])} from clients, ${rate(last[1])} to clients</span></h2>
      <div class="actions" role="group" aria-label="Time span">
        ${['hour', 'day'].map(
          (s) =>
            html`<button type="button" class=${`small${span === s ? '' : ' secondary'}`} aria-pressed=${span === s} onClick=${() => setSpan(s)}>Last ${s}</button>`,
        )}
      </div>
    </div>
    <${Chart} data=${data} series=${['from clients', 'to clients']} format=${rate} label=${`Traffic over the last ${span}`} />
  </section>`;
}

function Reload() {
  const [note, setNote] = useState(null);
  const reload = async () => {
    setNote(['muted', 'Reloading…']);
    try {
      await api('POST', '/reload');
      setNote(['ok', 'Config reloaded.']);
    } catch (e) {
      setNote([
        'bad',
        e instanceof ApiError && e.status === 422 ? `Config refused: ${e.message}` : String(e.message),
      ]);
    }
  };
  return html`<div class="actions">
    ${note && html`<span class=${note[0]} role="status">${note[1]}</span>`}
    <button type="button" class="secondary" onClick=${reload}>Reload config</button>
  </div>`;
}

export function Overview({ live }) {
  const s = live.status;
  if (!s) return html`<h1 tabindex="-1">Overview</h1><p class="loading">Waiting for the first snapshot…</p>`;
  const up = s.listeners.reduce((n, l) => n + (l.bytesFromClient ?? 0), 0);
  const down = s.listeners.reduce((n, l) => n + (l.bytesToClient ?? 0), 0);
  return html`
    <div class="toolbar" style="justify-content: space-between; align-items: center">
      <h1 tabindex="-1">Overview</h1>
      <${Reload} />
    </div>
    ${
      s.reloads.total > 0 &&
      html`<p class=${s.reloads.lastOk ? 'muted' : 'bad'}>Last reload ${s.reloads.lastOk ? 'applied' : 'refused'} at ${s.reloads.lastAt}; ${s.reloads.total} in all, ${s.reloads.failures} refused.</p>`
    }
    <div class="tiles">
      <${Tile} label="Uptime" value=${duration(s.uptimeSeconds)} title=${`since ${s.startedAt}`} />
      <${Tile} label="Version" value=${s.version} title=${`node ${s.node}, pid ${s.pid}`} />
      <${Tile} label="Sessions now" value=${s.sessions.active} />
      <${Tile} label="Sessions in all" value=${s.sessions.total} />
      <${Tile} label="Relayed" value=${bytes(up + down)} title=${`${bytes(up)} from clients, ${bytes(down)} to clients`} />
      <${Tile} label="Telegram config" value=${telegramConfigAge(s)} />
    </div>
    <${Traffic} live=${live} />
    ${inFleet(s) && html`<${Fleet} status=${s} />`}
    <${Sessions} status=${s} />
    <div class="grid">
      <${Dcs} status=${s} />
      <${Failures} status=${s} />
    </div>
  `;
}
