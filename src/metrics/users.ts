/**
 * Per-user series for /metrics: bytes each way, sessions open, refusals by reason, labelled `user`. With
 * many users the label is capped (`metrics.user_labels`): the users with the most traffic keep their own
 * series, the others are added up under `user="_other"`; 0 turns the per-user series off.
 */
import type { Counter, Gauge } from 'prom-client';
import type { Stats } from './stats.ts';

type Fill<M> = (name: string, help: string, labelNames: string[], fill: (metric: M) => void) => unknown;

export const OTHER_USERS = '_other';

function sum(sources: readonly Stats[], pick: (s: Stats) => Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of sources) for (const [k, n] of pick(s)) out.set(k, (out.get(k) ?? 0) + n);
  return out;
}

/** Which user names keep a label of their own: the `limit` with the most bytes. */
function labelled(sources: readonly Stats[], limit: number): Set<string> {
  const up = sum(sources, (s) => s.userBytesUp);
  const down = sum(sources, (s) => s.userBytesDown);
  const names = new Set([...up.keys(), ...down.keys(), ...sum(sources, (s) => s.userSessionsActive).keys()]);
  const ranked = [...names].sort(
    (a, b) => (up.get(b) ?? 0) + (down.get(b) ?? 0) - (up.get(a) ?? 0) - (down.get(a) ?? 0),
  );
  return new Set(ranked.slice(0, limit));
}

export function registerUserMetrics(
  counter: Fill<Counter<string>>,
  gauge: Fill<Gauge<string>>,
  sources: () => readonly Stats[],
  limit: () => number,
): void {
  const each = (
    metric: Counter<string> | Gauge<string>,
    pick: (s: Stats) => Map<string, number>,
    extra?: (key: string) => [user: string, labels: Record<string, string>],
  ) => {
    const max = limit();
    if (max <= 0) return;
    const all = sources();
    const keep = labelled(all, max);
    for (const [key, n] of sum(all, pick)) {
      const [user, labels] = extra ? extra(key) : [key, {}];
      metric.inc({ user: keep.has(user) ? user : OTHER_USERS, ...labels }, n);
    }
  };
  counter(
    'mtproxy_user_received_bytes_total',
    "Bytes from a user's clients (towards Telegram).",
    ['user'],
    (c) => each(c, (s) => s.userBytesUp),
  );
  counter('mtproxy_user_sent_bytes_total', "Bytes to a user's clients (from Telegram).", ['user'], (c) =>
    each(c, (s) => s.userBytesDown),
  );
  gauge('mtproxy_user_sessions_active', 'Sessions of a user open now.', ['user'], (g) =>
    each(g, (s) => s.userSessionsActive),
  );
  counter('mtproxy_user_refusals_total', 'Sessions of a user refused, by reason.', ['user', 'reason'], (c) =>
    each(
      c,
      (s) => s.userRefusals,
      (key) => {
        const tab = key.indexOf('\t');
        return [key.slice(0, tab), { reason: key.slice(tab + 1) }];
      },
    ),
  );
}
