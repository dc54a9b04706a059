// The console's shell: the session's CSRF token, the live stream, the header and a hash router.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { connectLive, html, setCsrf, signOut, useLive } from './lib.js';
import { Listeners } from './listeners.js';
import { Overview } from './overview.js';
import { Tables } from './tables.js';
import { User } from './user.js';
import { Users } from './users.js';

const PAGES = [
  ['#/', 'Overview'],
  ['#/users', 'Users'],
  ['#/tables', 'Tables'],
  ['#/listeners', 'Listeners'],
];

function route(hash) {
  const path = hash.replace(/^#/, '') || '/';
  const user = /^\/users\/(.+)$/.exec(path);
  if (user) return { page: 'user', name: decodeURIComponent(user[1]), nav: '#/users' };
  if (path === '/users') return { page: 'users', nav: '#/users' };
  if (path === '/tables') return { page: 'tables', nav: '#/tables' };
  if (path === '/listeners') return { page: 'listeners', nav: '#/listeners' };
  return { page: 'overview', nav: '#/' };
}

function App({ session }) {
  const [hash, setHash] = useState(location.hash);
  const live = useLive();
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const r = route(hash);
  connectLive(r.page === 'users' || r.page === 'user');
  useEffect(() => {
    const title = r.page === 'user' ? r.name : PAGES.find(([h]) => h === r.nav)?.[1];
    document.title = `${title} · mtproxy console`;
    document.querySelector('main h1')?.focus();
  }, [hash]);
  let page;
  if (r.page === 'users') page = html`<${Users} live=${live} hasUsers=${session.users} />`;
  else if (r.page === 'user') page = html`<${User} name=${r.name} live=${live} />`;
  else if (r.page === 'tables') page = html`<${Tables} />`;
  else if (r.page === 'listeners') page = html`<${Listeners} live=${live} />`;
  else page = html`<${Overview} live=${live} />`;
  return html`
    <header class="top">
      <span class="brand">mtproxy</span>
      <nav aria-label="Pages">
        ${PAGES.map(([h, label]) => html`<a href=${h} aria-current=${r.nav === h ? 'page' : undefined}>${label}</a>`)}
      </nav>
      <span class=${`live${live.connected ? ' on' : ''}`} aria-live="polite">${live.connected ? 'live' : 'offline'}</span>
      <button type="button" onClick=${signOut}>Sign out</button>
    </header>
    <main class="page">${page}</main>
  `;
}

async function start() {
  const res = await fetch('/console/api/session', { headers: { accept: 'application/json' } });
  if (res.status === 401) {
    location.assign('/console/sign-in');
    return;
  }
  const session = await res.json();
  setCsrf(session.csrf);
  const root = document.getElementById('app');
  root.textContent = '';
  render(html`<${App} session=${session} />`, root);
}

start();
