// The form that creates a user or changes one; the admin API's field errors show under their fields.
import { useState } from 'preact/hooks';
import { ApiError, api, html } from './lib.js';

const PERIODS = ['total', 'daily', 'weekly', 'monthly'];

/** 20000000 → "20MB": sizes as the config writes them, when they are round. */
function sizeText(n) {
  if (!n) return '';
  for (const [unit, f] of [
    ['TB', 1e12],
    ['GB', 1e9],
    ['MB', 1e6],
    ['KB', 1e3],
  ]) {
    if (n % f === 0) return `${n / f}${unit}`;
  }
  return String(n);
}

function initial(user) {
  return {
    name: user?.name ?? '',
    quota: sizeText(user?.quota),
    quota_period: user?.quota_period ?? 'monthly',
    quota_reset_day: String(user?.quota_reset_day ?? 1),
    max_connections: String(user?.max_connections ?? 0),
    max_ips: String(user?.max_ips ?? 0),
    rate: sizeText(user?.rate),
    expires: user?.expires ? user.expires.slice(0, 10) : '',
    note: user?.note ?? '',
  };
}

function toBody(v, creating) {
  const size = (s) => (s.trim() === '' ? 0 : /^\d+$/.test(s.trim()) ? Number(s.trim()) : s.trim());
  const body = {
    quota: size(v.quota),
    quota_period: v.quota_period,
    quota_reset_day: Number(v.quota_reset_day),
    max_connections: Number(v.max_connections),
    max_ips: Number(v.max_ips),
    rate: size(v.rate),
    expires: v.expires ? new Date(`${v.expires}T00:00:00Z`).toISOString() : null,
    note: v.note,
  };
  if (creating) body.name = v.name.trim();
  return body;
}

export function UserForm({ user, creating = false, disabled = false, onSaved }) {
  const [v, setV] = useState(() => initial(user));
  const [errors, setErrors] = useState({});
  const [error, setError] = useState(null);
  const [saving, setSaving] = useState(false);
  const set = (k) => (e) => setV({ ...v, [k]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setSaving(true);
    setErrors({});
    setError(null);
    try {
      const saved = creating
        ? await api('POST', '/users', toBody(v, true))
        : await api('PATCH', `/users/${encodeURIComponent(user.name)}`, toBody(v, false));
      onSaved?.(saved);
    } catch (err) {
      if (err instanceof ApiError) {
        setErrors(err.errors);
        setError(err.message);
      } else setError(String(err));
    } finally {
      setSaving(false);
    }
  };
  const field = (key, label, input, hint) => {
    const id = `${creating ? 'new' : 'edit'}-${key}`;
    return html`<div>
      <label for=${id}>${label}</label>
      ${input(id)}
      ${errors[key] ? html`<div class="error" id=${`${id}-error`}>${errors[key]}</div>` : hint && html`<div class="hint">${hint}</div>`}
    </div>`;
  };
  const text =
    (key, attrs = {}) =>
    (id) =>
      html`<input id=${id} name=${key} value=${v[key]} onInput=${set(key)} disabled=${disabled}
      aria-invalid=${errors[key] ? 'true' : undefined} aria-describedby=${errors[key] ? `${id}-error` : undefined} ...${attrs} />`;
  return html`<form onSubmit=${submit} novalidate>
    <div class="form-grid">
      ${creating && field('name', 'Name', text('name', { required: true, autocomplete: 'off' }), 'letters, digits, _ - . @')}
      ${field('quota', 'Quota', text('quota', { placeholder: 'e.g. 50GB' }), 'empty: no quota')}
      ${field('quota_period', 'Quota period', (id) => html`<select id=${id} value=${v.quota_period} onChange=${set('quota_period')} disabled=${disabled}>${PERIODS.map((p) => html`<option value=${p}>${p}</option>`)}</select>`)}
      ${field('quota_reset_day', 'Reset day', text('quota_reset_day', { type: 'number', min: 1, max: 31 }))}
      ${field('max_connections', 'Max connections', text('max_connections', { type: 'number', min: 0 }), '0: no limit')}
      ${field('max_ips', 'Max IPs', text('max_ips', { type: 'number', min: 0 }), '0: no limit')}
      ${field('rate', 'Rate (per second)', text('rate', { placeholder: 'e.g. 2MB' }), 'empty: no limit')}
      ${field('expires', 'Expires', text('expires', { type: 'date' }), 'empty: never')}
      ${field('note', 'Note', text('note'))}
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <button type="submit" disabled=${saving || disabled}>${creating ? 'Create user' : 'Save changes'}</button>
  </form>`;
}
