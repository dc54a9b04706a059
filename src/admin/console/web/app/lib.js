// Shared pieces of the console's pages: the template tag, the API client, the live store, formatting.
import htm from 'htm';
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export const html = htm.bind(h);

let csrf = '';

export function setCsrf(token) {
  csrf = token;
}

/** Thrown for an answer other than 2xx: `status`, the API's `error` and its per-field `errors`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `HTTP ${status}`);
    this.status = status;
    this.errors = body?.errors ?? {};
  }
}

/** Call the admin API through the console (`path` as the admin API spells it: "/users/alice"). */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/console/api${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (res.status === 401) {
    location.assign('/console/sign-in');
    throw new ApiError(401, { error: 'signed out' });
  }
  const type = res.headers.get('content-type') ?? '';
  const data = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new ApiError(res.status, typeof data === 'object' ? data : { error: data });
  return data;
}

export async function signOut() {
  await fetch('/console/sign-out', {
    method: 'POST',
    headers: { 'x-csrf-token': csrf, accept: 'application/json' },
    credentials: 'same-origin',
  });
  location.assign('/console/sign-in');
}

// The live store: what /console/api/events pushes.
const live = { status: null, users: null, hour: [], day: [], intervalMs: 2000, connected: false };
const listeners = new Set();
const notify = () => {
  for (const fn of listeners) fn({ ...live });
};

let current = null;

/** (Re)open the live stream; `users`: the page shows users, so the list comes too. */
export function connectLive(users = false) {
  if (current && current.users === users) return;
  current?.source.close();
  const source = new EventSource(`/console/api/events${users ? '?users=1' : ''}`);
  current = { source, users };
  source.addEventListener('open', () => {
    live.connected = true;
    notify();
  });
  source.addEventListener('error', () => {
    live.connected = false;
    notify();
  });
  source.addEventListener('history', (e) => {
    const d = JSON.parse(e.data);
    live.hour = d.hour;
    live.day = d.day;
    live.intervalMs = d.intervalMs;
    notify();
  });
  source.addEventListener('sample', (e) => {
    const s = JSON.parse(e.data);
    live.hour = [...live.hour, s].filter((x) => x.t >= s.t - 3_600_000);
    if (s.day) live.day = [...live.day, s].slice(-1440);
    notify();
  });
  source.addEventListener('status', (e) => {
    live.status = JSON.parse(e.data);
    notify();
  });
  source.addEventListener('users', (e) => {
    live.users = JSON.parse(e.data).users;
    notify();
  });
}

export function useLive() {
  const [state, setState] = useState({ ...live });
  useEffect(() => {
    listeners.add(setState);
    return () => listeners.delete(setState);
  }, []);
  return state;
}

/** Load once (and again when `deps` change); `reload` loads again. */
export function useLoad(fn, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [n, setN] = useState(0);
  // The caller names what the load depends on.
  useEffect(() => {
    let gone = false;
    fn().then(
      (data) => !gone && setState({ data, error: null, loading: false }),
      (error) => !gone && setState({ data: null, error, loading: false }),
    );
    return () => {
      gone = true;
    };
  }, [...deps, n]);
  return { ...state, reload: () => setN((x) => x + 1) };
}

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${UNITS[i]}`;
}

export function rate(n) {
  return `${bytes(Math.round(n))}/s`;
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

export function date(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(0, 16).replace('T', ' ');
}

/** Traffic rates from successive byte totals. */
export function rates(samples) {
  const t = [];
  const up = [];
  const down = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    t.push(b.t / 1000);
    up.push(Math.max(0, b.up - a.up) / dt);
    down.push(Math.max(0, b.down - a.down) / dt);
  }
  return [t, up, down];
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="notice bad" role="alert">${error.message}</p>`;
}
