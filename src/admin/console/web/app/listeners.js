// Listeners and their client links, each with a QR code.
import { api, ErrorNote, html, useLoad } from './lib.js';
import { LinkCards } from './links.js';

export function Listeners({ live }) {
  const links = useLoad(() => api('GET', '/links'));
  const listeners = live.status?.listeners ?? [];
  const all = links.data?.links ?? [];
  return html`
    <h1 tabindex="-1">Listeners</h1>
    ${links.error && html`<${ErrorNote} error=${links.error} />`}
    ${listeners.map(
      (l) => html`<section class="card" data-listener=${l.name} aria-labelledby=${`listener-${l.name}-h`}>
        <h2 id=${`listener-${l.name}-h`}>${l.name} <span class="muted mono">${l.host}:${l.port}</span></h2>
        <p class="muted">Protocols ${l.protocols.join(', ')} · ${l.connectionsActive} connections now, ${l.connectionsTotal} in all</p>
        <${LinkCards} links=${all.map((x, i) => ({ ...x, i })).filter((x) => x.listener === l.name)} qr=${(i) => `/console/api/links/qr.svg?link=${i}`} />
      </section>`,
    )}
  `;
}
