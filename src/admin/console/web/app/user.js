// One user: state and actions, the edit form, its links with QR codes, its usage history as a chart.
import { useState } from 'preact/hooks';
import { Chart } from './chart.js';
import { ApiError, api, bytes, date, ErrorNote, html, useLoad } from './lib.js';
import { LinkCards } from './links.js';
import { UserForm } from './user-form.js';
import { UsageBar, userState } from './users.js';

function History({ name, bump }) {
  const usage = useLoad(() => api('GET', `/users/${encodeURIComponent(name)}/usage`), [name, bump]);
  if (usage.error) return html`<${ErrorNote} error=${usage.error} />`;
  if (!usage.data) return html`<p class="loading">Loading…</p>`;
  const periods = [...usage.data.periods].reverse().slice(-12);
  if (periods.length === 0) return html`<p class="muted">No usage recorded yet.</p>`;
  const labels = periods.map((p) => p.period);
  // Both directions count against the quota: the bars show their sum, the table each.
  const data = [periods.map((_p, i) => i), periods.map((p) => p.bytes_up + p.bytes_down)];
  return html`
    <${Chart} data=${data} series=${['bytes']} time=${false} bars=${true} labels=${labels}
      label=${`Usage of ${name} by period`} />
    <div class="table-wrap"><table>
      <thead><tr><th>Period</th><th class="num">From the user</th><th class="num">To the user</th><th class="num">Sessions</th><th class="num hide-phone">IPs</th></tr></thead>
      <tbody>${[...periods].reverse().map(
        (
          p,
        ) => html`<tr><td>${p.period}</td><td class="num">${bytes(p.bytes_up)}</td><td class="num">${bytes(p.bytes_down)}</td>
          <td class="num">${p.sessions}</td><td class="num hide-phone">${p.distinct_ips}</td></tr>`,
      )}</tbody>
    </table></div>`;
}

export function User({ name, live }) {
  const [bump, setBump] = useState(0);
  const [message, setMessage] = useState(null);
  const user = useLoad(() => api('GET', `/users/${encodeURIComponent(name)}`), [name, bump]);
  const links = useLoad(() => api('GET', `/users/${encodeURIComponent(name)}/links`), [name, bump]);
  if (user.error) {
    return html`<h1 tabindex="-1">${name}</h1><${ErrorNote} error=${user.error} /><p><a href="#/users">All users</a></p>`;
  }
  if (!user.data) return html`<h1 tabindex="-1">${name}</h1><p class="loading">Loading…</p>`;
  const u = user.data;
  // The live list has fresher usage than the first load.
  const fresh = live.users?.find((x) => x.name === name);
  const usage = fresh?.usage ?? u.usage;
  const [cls, label] = userState({ ...u, usage });
  const fromFile = u.source === 'file';
  const act = async (what) => {
    setMessage(null);
    try {
      if (what === 'delete') {
        if (!confirm(`Delete user ${name}? Its links stop working at once.`)) return;
        await api('DELETE', `/users/${encodeURIComponent(name)}`);
        location.hash = '#/users';
        return;
      }
      await api('POST', `/users/${encodeURIComponent(name)}/${what}`);
      setMessage(['ok', what === 'reset' ? 'Usage of this period reset.' : `User ${what}d.`]);
      setBump((n) => n + 1);
    } catch (e) {
      setMessage(['bad', e instanceof ApiError ? e.message : String(e)]);
    }
  };
  return html`
    <p><a href="#/users">← All users</a></p>
    <div class="toolbar" style="justify-content: space-between">
      <h1 tabindex="-1">${name} <span class=${`pill ${cls}`}>${label}</span></h1>
      <div class="actions">
        ${!fromFile && html`<button type="button" class="secondary" onClick=${() => act(u.enabled ? 'disable' : 'enable')}>${u.enabled ? 'Disable' : 'Enable'}</button>`}
        <button type="button" class="secondary" onClick=${() => act('reset')}>Reset usage</button>
        ${!fromFile && html`<button type="button" class="danger" onClick=${() => act('delete')}>Delete</button>`}
      </div>
    </div>
    ${message && html`<p class=${`notice${message[0] === 'bad' ? ' bad' : ''}`} role="status">${message[1]}</p>`}
    <div class="grid">
      <section class="card" aria-labelledby="usage-h">
        <h2 id="usage-h">This period <span class="muted">(${usage.period})</span></h2>
        <${UsageBar} name=${name} used=${usage.bytes} quota=${u.quota} />
        <dl class="tiles" style="margin-top: 0.8rem">
          <div><dt class="muted">Sessions now</dt><dd>${usage.sessions_active}</dd></div>
          <div><dt class="muted">Sessions</dt><dd>${usage.sessions}</dd></div>
          <div><dt class="muted">Distinct IPs</dt><dd>${usage.distinct_ips}</dd></div>
          <div><dt class="muted">Last seen</dt><dd>${date(usage.last_seen)}</dd></div>
          <div><dt class="muted">Period ends</dt><dd>${date(usage.period_end)}</dd></div>
          <div><dt class="muted">Expires</dt><dd>${date(u.expires)}</dd></div>
        </dl>
      </section>
      <section class="card" aria-labelledby="edit-h">
        <h2 id="edit-h">Settings</h2>
        ${fromFile && html`<p class="notice">Defined in the config file: change it there and reload.</p>`}
        <${UserForm} key=${`${name}-${bump}`} user=${u} disabled=${fromFile} onSaved=${() => {
          setMessage(['ok', 'Saved.']);
          setBump((n) => n + 1);
        }} />
      </section>
    </div>
    <section class="card" aria-labelledby="links-h">
      <h2 id="links-h">Links</h2>
      ${links.error ? html`<${ErrorNote} error=${links.error} />` : links.data ? html`<${LinkCards} links=${links.data.links} qr=${(i) => `/console/api/users/${encodeURIComponent(name)}/qr.svg?link=${i}`} />` : html`<p class="loading">Loading…</p>`}
    </section>
    <section class="card" aria-labelledby="history-h">
      <h2 id="history-h">Usage history</h2>
      <${History} name=${name} bump=${bump} />
    </section>
  `;
}
