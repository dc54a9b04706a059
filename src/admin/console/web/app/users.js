// Users: usage bars against quotas, search, sort; create, disable/enable, delete.
import { useState } from 'preact/hooks';
import { ApiError, api, bytes, date, html } from './lib.js';
import { UserForm } from './user-form.js';

export function UsageBar({ name, used, quota }) {
  const share = quota > 0 ? Math.min(1, used / quota) : 0;
  const level = share >= 1 ? ' full' : share >= 0.8 ? ' warn' : '';
  const text = quota > 0 ? `${bytes(used)} of ${bytes(quota)}` : `${bytes(used)} (no quota)`;
  return html`<div>
    <div class=${`bar${level}`} role="progressbar" aria-label=${`Usage of ${name}`} aria-valuemin="0"
      aria-valuemax=${quota > 0 ? quota : undefined} aria-valuenow=${used} aria-valuetext=${text} data-bytes=${used}>
      <span style=${`width: ${(quota > 0 ? share : used > 0 ? 1 : 0) * 100}%`}></span>
    </div>
    <div class="bar-label">${text}</div>
  </div>`;
}

export function userState(u) {
  if (!u.enabled) return ['bad', 'disabled'];
  if (u.expires && Date.parse(u.expires) <= Date.now()) return ['bad', 'expired'];
  if (u.quota > 0 && u.usage.bytes >= u.quota) return ['bad', 'over quota'];
  return ['ok', 'enabled'];
}

const SORTS = {
  name: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  usage: (a, b) => b.usage.bytes - a.usage.bytes,
  share: (a, b) =>
    (b.quota > 0 ? b.usage.bytes / b.quota : -1) - (a.quota > 0 ? a.usage.bytes / a.quota : -1),
  sessions: (a, b) => b.usage.sessions_active - a.usage.sessions_active,
  seen: (a, b) => (b.usage.last_seen ?? '').localeCompare(a.usage.last_seen ?? ''),
};

export function Users({ live, hasUsers }) {
  const [query, setQuery] = useState('');
  const [sort, setSort] = useState('name');
  const [creating, setCreating] = useState(false);
  const [message, setMessage] = useState(null);
  const [busy, setBusy] = useState(null);
  if (!hasUsers)
    return html`<h1 tabindex="-1">Users</h1><p class="notice">Users need a state database: set <code>state_dir</code>.</p>`;
  const all = live.users ?? [];
  const q = query.trim().toLowerCase();
  const shown = all
    .filter((u) => !q || u.name.toLowerCase().includes(q) || (u.note ?? '').toLowerCase().includes(q))
    .sort(SORTS[sort]);

  const act = async (u, what) => {
    setBusy(u.name);
    setMessage(null);
    try {
      if (what === 'delete') {
        if (!confirm(`Delete user ${u.name}? Its links stop working at once.`)) return;
        await api('DELETE', `/users/${encodeURIComponent(u.name)}`);
        setMessage(['ok', `User ${u.name} deleted.`]);
      } else {
        await api('POST', `/users/${encodeURIComponent(u.name)}/${what}`);
        setMessage(['ok', `User ${u.name} ${what}d.`]);
      }
    } catch (e) {
      setMessage(['bad', e instanceof ApiError ? e.message : String(e)]);
    } finally {
      setBusy(null);
    }
  };

  const header = (key, label, cls = '') =>
    html`<th class=${cls} aria-sort=${sort === key ? (key === 'name' ? 'ascending' : 'descending') : undefined}>
      <button type="button" class="sort" onClick=${() => setSort(key)}>${label}${sort === key ? ' ▾' : ''}</button></th>`;

  return html`
    <div class="toolbar" style="justify-content: space-between">
      <h1 tabindex="-1">Users <span class="muted">(${all.length})</span></h1>
      <button type="button" onClick=${() => setCreating(!creating)} aria-expanded=${creating}>${creating ? 'Close' : 'New user'}</button>
    </div>
    ${
      creating &&
      html`<section class="card" aria-labelledby="new-h"><h2 id="new-h">New user</h2>
      <${UserForm} creating=${true} onSaved=${(u) => {
        setCreating(false);
        setMessage(['ok', `User ${u.name} created.`]);
        location.hash = `#/users/${encodeURIComponent(u.name)}`;
      }} /></section>`
    }
    ${message && html`<p class=${`notice${message[0] === 'bad' ? ' bad' : ''}`} role="status">${message[1]}</p>`}
    <section class="card">
      <div class="toolbar">
        <div style="flex: 1 1 14rem"><label for="user-search">Search</label>
          <input id="user-search" type="search" placeholder="name or note" value=${query} onInput=${(e) => setQuery(e.target.value)} /></div>
        <div><label for="user-sort">Sort by</label>
          <select id="user-sort" value=${sort} onChange=${(e) => setSort(e.target.value)}>
            <option value="name">name</option><option value="usage">usage</option><option value="share">share of quota</option>
            <option value="sessions">sessions now</option><option value="seen">last seen</option>
          </select></div>
      </div>
      <div class="table-wrap"><table>
        <thead><tr>${header('name', 'Name')}<th>State</th>${header('usage', 'Usage this period')}${header('sessions', 'Sessions', 'num')}${header('seen', 'Last seen', 'hide-phone')}<th><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>
          ${shown.length === 0 && html`<tr><td colspan="6" class="muted">${all.length === 0 ? 'No users yet.' : 'No user matches.'}</td></tr>`}
          ${shown.map((u) => {
            const [cls, label] = userState(u);
            const fromFile = u.source === 'file';
            return html`<tr data-user=${u.name}>
              <td><a href=${`#/users/${encodeURIComponent(u.name)}`}>${u.name}</a>${u.note && html`<div class="muted">${u.note}</div>`}</td>
              <td><span class=${`pill ${cls}`}>${label}</span></td>
              <td style="min-width: 9rem"><${UsageBar} name=${u.name} used=${u.usage.bytes} quota=${u.quota} /></td>
              <td class="num">${u.usage.sessions_active}</td>
              <td class="hide-phone">${date(u.usage.last_seen)}</td>
              <td><div class="actions">
                ${
                  fromFile
                    ? html`<span class="muted" title="Defined in the config file">file</span>`
                    : html`
                  <button type="button" class="small secondary" disabled=${busy === u.name}
                    onClick=${() => act(u, u.enabled ? 'disable' : 'enable')}>${u.enabled ? 'Disable' : 'Enable'}<span class="sr-only"> ${u.name}</span></button>
                  <button type="button" class="small danger" disabled=${busy === u.name}
                    onClick=${() => act(u, 'delete')}>Delete<span class="sr-only"> ${u.name}</span></button>`
                }
              </div></td>
            </tr>`;
          })}
        </tbody>
      </table></div>
    </section>
  `;
}
