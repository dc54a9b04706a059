// Policy tables: every table with its key and size; values listed, added and removed.
import { useState } from 'preact/hooks';
import { ApiError, api, ErrorNote, html, useLoad } from './lib.js';

function Table({ t, onChanged }) {
  const [open, setOpen] = useState(false);
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const values = useLoad(
    () => (open ? api('GET', `/tables/${encodeURIComponent(t.name)}`) : Promise.resolve(null)),
    [open, t.size],
  );
  const add = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await api('POST', `/tables/${encodeURIComponent(t.name)}`, { value: value.trim() });
      setValue('');
      onChanged();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const remove = async (v) => {
    setError(null);
    try {
      await api('DELETE', `/tables/${encodeURIComponent(t.name)}`, { value: v });
      onChanged();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const id = `table-${t.name}`;
  return html`<section class="card" data-table=${t.name} aria-labelledby=${`${id}-h`}>
    <div class="toolbar" style="justify-content: space-between">
      <h2 id=${`${id}-h`}>${t.name} <span class="muted">${t.key ? `key ${t.key}` : 'not used by a rule'} · ${t.size} value${t.size === 1 ? '' : 's'}</span></h2>
      <button type="button" class="small secondary" aria-expanded=${open} aria-controls=${`${id}-body`} onClick=${() => setOpen(!open)}>${open ? 'Hide values' : 'Show values'}</button>
    </div>
    <form class="toolbar" onSubmit=${add}>
      <div style="flex: 1 1 14rem"><label for=${`${id}-value`}>Add a value to ${t.name}</label>
        <input id=${`${id}-value`} value=${value} onInput=${(e) => setValue(e.target.value)} placeholder=${t.key ?? 'value'} required /></div>
      <button type="submit">Add</button>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${
      open &&
      html`<div id=${`${id}-body`}>
      ${values.error && html`<${ErrorNote} error=${values.error} />`}
      ${
        values.data &&
        (values.data.values.length === 0
          ? html`<p class="muted">Empty.</p>`
          : html`<ul class="values">
        ${values.data.values.map(
          (v) => html`<li class="toolbar" data-value=${v}><code>${v}</code>
          <button type="button" class="small danger" onClick=${() => remove(v)}>Remove<span class="sr-only"> ${v}</span></button></li>`,
        )}
      </ul>`)
      }
    </div>`
    }
  </section>`;
}

export function Tables() {
  const tables = useLoad(() => api('GET', '/tables'));
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await api('POST', `/tables/${encodeURIComponent(name.trim())}`, { value: value.trim() });
      setName('');
      setValue('');
      tables.reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return html`
    <h1 tabindex="-1">Policy tables</h1>
    <p class="muted">Tables are the sets <code>in_table</code> and <code>not_in_table</code> rules look up; changes apply to the next connection.</p>
    ${tables.error && html`<${ErrorNote} error=${tables.error} />`}
    ${tables.data && tables.data.tables.length === 0 && html`<p class="muted">No tables yet.</p>`}
    ${tables.data?.tables.map((t) => html`<${Table} key=${t.name} t=${t} onChanged=${tables.reload} />`)}
    <section class="card" aria-labelledby="new-table-h">
      <h2 id="new-table-h">New table</h2>
      <form class="form-grid" onSubmit=${create}>
        <div><label for="new-table-name">Table</label><input id="new-table-name" value=${name} onInput=${(e) => setName(e.target.value)} required /></div>
        <div><label for="new-table-value">First value</label><input id="new-table-value" value=${value} onInput=${(e) => setValue(e.target.value)} required /></div>
        <div><button type="submit">Create</button></div>
      </form>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </section>
  `;
}
