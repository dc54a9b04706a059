// Link cards: the QR code (an SVG from the admin API), the link itself and a copy button.
import { useState } from 'preact/hooks';
import { html } from './lib.js';

function Copy({ text }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      prompt('Copy the link:', text);
    }
  };
  return html`<button type="button" class="small secondary" onClick=${copy}>${done ? 'Copied' : 'Copy link'}</button>`;
}

export function LinkCards({ links, qr }) {
  if (links.length === 0) return html`<p class="muted">No links.</p>`;
  return html`<div class="links">
    ${links.map((l, i) => {
      const label = `${l.listener} · ${l.protocol}${l.domain ? ` · ${l.domain}` : ''}${l.ipv6 ? ' · IPv6' : ''}`;
      return html`<div class="link-card" data-link=${i}>
        <h3>${label}</h3>
        <img src=${qr(l.i ?? i)} alt=${`QR code of the ${label} link`} width="232" height="232" loading="lazy" />
        <p class="mono"><a href=${l.https} rel="noreferrer">${l.https}</a></p>
        <div class="actions"><${Copy} text=${l.https} /><a class="button small secondary" href=${l.tg}>Open in Telegram</a></div>
      </div>`;
    })}
  </div>`;
}
