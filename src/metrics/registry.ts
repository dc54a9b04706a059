/**
 * Prometheus registry. Every mtproxy_* series is computed inside a collect() callback from the plain counters
 * in stats.ts, so the connection path never touches prom-client; a scrape walks a few small maps.
 * Several Stats sources (one per worker thread) are summed.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import pkg from '../../package.json' with { type: 'json' };
import {
  type DcStats,
  FINGERPRINTS_SHOWN,
  type ListenerStats,
  SESSION_PROTOCOLS,
  type Stats,
  topFingerprints,
} from './stats.ts';

import { registerUserMetrics } from './users.ts';
export type StatsSource = () => readonly Stats[];

export interface MetricsRegistryOptions {
  /** Where the counters come from at scrape time; defaults to the given single Stats. */
  sources: StatsSource;
  /** Extra process-level gauges the proxy can offer (policy admissions outstanding, open listeners...). */
  gauges?: Record<string, { help: string; read: () => number }>;
  /** Users with a `user` label of their own in the per-user series (0 = no per-user series); default 100. */
  userLabels?: () => number;
  /** Include prom-client's standard process_* / nodejs_* series (default true). */
  defaultMetrics?: boolean;
}

/** Every listener's counters of every source (the same name appears once per source; the series add up). */
function perListener(sources: readonly Stats[], pick: (name: string, l: ListenerStats) => void): void {
  for (const stats of sources) for (const [name, l] of stats.listeners) pick(name, l);
}

interface CollectedConfig<M> {
  name: string;
  help: string;
  labelNames: string[];
  registers: Registry[];
  collect(this: M): void;
}

export interface MetricsRegistry {
  registry: Registry;
  /** Text exposition of every series. */
  scrape(): Promise<string>;
  contentType: string;
  close(): void;
}

export function createMetricsRegistry(opts: MetricsRegistryOptions): MetricsRegistry {
  const registry = new Registry();
  const sources = opts.sources;
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();

  /** A series recomputed at each scrape: cleared, then filled from the counters. */
  const collected =
    <M extends Counter<string> | Gauge<string>>(Metric: new (config: CollectedConfig<M>) => M) =>
    (name: string, help: string, labelNames: string[], fill: (metric: M) => void) =>
      new Metric({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset();
          fill(this);
        },
      });
  const counter = collected<Counter<string>>(Counter);
  const gauge = collected<Gauge<string>>(Gauge);
  registerUserMetrics(counter, gauge, sources, opts.userLabels ?? (() => 100));

  // Listener side.
  counter('mtproxy_connections_total', 'Client connections accepted.', ['listener'], (c) =>
    perListener(sources(), (name, l) => c.inc({ listener: name }, l.connectionsTotal)),
  );
  gauge('mtproxy_connections_active', 'Client connections open now.', ['listener'], (g) =>
    perListener(sources(), (name, l) => g.inc({ listener: name }, l.connectionsActive)),
  );
  counter(
    'mtproxy_sessions_total',
    'Client sessions established (handshake passed), by protocol.',
    ['listener', 'protocol'],
    (c) =>
      perListener(sources(), (name, l) => {
        for (const p of SESSION_PROTOCOLS) c.inc({ listener: name, protocol: p }, l.sessionsTotal[p]);
      }),
  );
  gauge(
    'mtproxy_sessions_active',
    'Client sessions relaying now, by protocol.',
    ['listener', 'protocol'],
    (g) =>
      perListener(sources(), (name, l) => {
        for (const p of SESSION_PROTOCOLS) g.inc({ listener: name, protocol: p }, l.sessionsActive[p]);
      }),
  );
  counter('mtproxy_client_received_bytes_total', 'Bytes read from clients.', ['listener'], (c) =>
    perListener(sources(), (name, l) => c.inc({ listener: name }, l.bytesFromClient)),
  );
  counter('mtproxy_client_sent_bytes_total', 'Bytes written to clients.', ['listener'], (c) =>
    perListener(sources(), (name, l) => c.inc({ listener: name }, l.bytesToClient)),
  );
  counter(
    'mtproxy_handshake_failures_total',
    'Client handshakes refused, by reason code.',
    ['listener', 'reason'],
    (c) =>
      perListener(sources(), (name, l) => {
        for (const [reason, n] of l.handshakeFailures) c.inc({ listener: name, reason }, n);
      }),
  );
  counter(
    'mtproxy_handshake_failure_stages_total',
    'Client handshakes failed, by stage: tcp, first_bytes, tls_record, digest, timestamp, replay, sni, obfuscated2, policy, upstream, other.',
    ['listener', 'stage'],
    (c) =>
      perListener(sources(), (name, l) => {
        for (const [stage, n] of l.handshakeStages) c.inc({ listener: name, stage }, n);
      }),
  );
  counter(
    'mtproxy_tls_client_hellos_total',
    `Fake-TLS client hellos by JA4 fingerprint, counted before the secret check (the ${FINGERPRINTS_SHOWN} most frequent, the rest as "other").`,
    ['listener', 'ja4'],
    (c) => {
      const byListener = new Map<string, Map<string, number>[]>();
      perListener(sources(), (name, l) => {
        const list = byListener.get(name) ?? [];
        list.push(l.helloFingerprints);
        byListener.set(name, list);
      });
      for (const [name, maps] of byListener)
        for (const [ja4, n] of topFingerprints(maps)) c.inc({ listener: name, ja4 }, n);
    },
  );
  counter('mtproxy_replays_total', 'Replayed handshakes detected.', ['listener'], (c) =>
    perListener(sources(), (name, l) => c.inc({ listener: name }, l.replays)),
  );
  counter('mtproxy_fronted_total', 'Connections handed to the fronting target.', ['listener'], (c) =>
    perListener(sources(), (name, l) => c.inc({ listener: name }, l.fronted)),
  );
  counter(
    'mtproxy_fronted_bytes_total',
    'Bytes relayed on fronted connections, by direction (from_client, to_client).',
    ['listener', 'direction'],
    (c) =>
      perListener(sources(), (name, l) => {
        c.inc({ listener: name, direction: 'from_client' }, l.frontedBytesFromClient);
        c.inc({ listener: name, direction: 'to_client' }, l.frontedBytesToClient);
      }),
  );
  counter(
    'mtproxy_fronting_cut_off_total',
    'Fronted connections closed at their time or byte bound.',
    ['listener'],
    (c) => perListener(sources(), (name, l) => c.inc({ listener: name }, l.frontingCutOff)),
  );
  counter(
    'mtproxy_policy_rejections_total',
    'Connections refused by a policy rule.',
    ['listener', 'rule'],
    (c) =>
      perListener(sources(), (name, l) => {
        for (const [rule, n] of l.policyRejections) c.inc({ listener: name, rule }, n);
      }),
  );

  // Telegram side.
  const perDc = (pick: (dc: string, d: DcStats) => void) => {
    for (const stats of sources()) for (const [id, d] of stats.dcs) pick(String(id), d);
  };
  counter('mtproxy_upstream_connects_total', 'Connections opened to Telegram, by DC.', ['dc'], (c) =>
    perDc((dc, d) => c.inc({ dc }, d.connects)),
  );
  counter('mtproxy_upstream_connect_errors_total', 'Failed connection attempts to Telegram.', ['dc'], (c) =>
    perDc((dc, d) => c.inc({ dc }, d.connectErrors)),
  );
  counter(
    'mtproxy_upstream_errors_total',
    'Errors on Telegram connections, by reason.',
    ['dc', 'reason'],
    (c) =>
      perDc((dc, d) => {
        for (const [reason, n] of d.errors) c.inc({ dc, reason }, n);
      }),
  );
  gauge('mtproxy_upstream_connections_active', 'Connections to Telegram open now.', ['dc'], (g) =>
    perDc((dc, d) => g.inc({ dc }, d.linksActive)),
  );
  counter('mtproxy_upstream_sent_bytes_total', 'Bytes written to Telegram.', ['dc'], (c) =>
    perDc((dc, d) => c.inc({ dc }, d.bytesToDc)),
  );
  counter('mtproxy_upstream_received_bytes_total', 'Bytes read from Telegram.', ['dc'], (c) =>
    perDc((dc, d) => c.inc({ dc }, d.bytesFromDc)),
  );
  counter(
    'mtproxy_middle_migrations_total',
    'Middle mode: clients moved to another link after Telegram closed theirs, by result.',
    ['dc', 'result'],
    (c) =>
      perDc((dc, d) => {
        c.inc({ dc, result: 'ok' }, d.migrations);
        c.inc({ dc, result: 'failed' }, d.migrationFailures);
      }),
  );
  counter(
    'mtproxy_middle_idle_links_closed_total',
    'Middle mode: links above the minimum closed after carrying no client for the idle timeout.',
    ['dc'],
    (c) => perDc((dc, d) => c.inc({ dc }, d.idleLinksClosed)),
  );
  counter(
    'mtproxy_middle_links_stalled_total',
    'Middle mode: links closed because nothing came from the middle proxy for upstream.stall_timeout.',
    ['dc'],
    (c) => perDc((dc, d) => c.inc({ dc }, d.stalledLinks)),
  );
  counter(
    'mtproxy_middle_fallbacks_total',
    'Clients of a middle-proxy listener served directly because no middle proxy of their DC answered.',
    ['dc'],
    (c) => perDc((dc, d) => c.inc({ dc }, d.middleFallbacks)),
  );
  counter(
    'mtproxy_telegram_config_fetches_total',
    'Fetches of the Telegram proxy secret / proxy config, by result.',
    ['what', 'result'],
    (c) => {
      for (const stats of sources()) {
        for (const [key, n] of stats.configFetches) {
          const colon = key.lastIndexOf(':');
          const what = colon >= 0 ? key.slice(0, colon) : key;
          const result = colon >= 0 ? key.slice(colon + 1) : 'unknown';
          c.inc({ what, result }, n);
        }
      }
    },
  );

  // Process.
  const primary = () => sources()[0];
  counter('mtproxy_reloads_total', 'Configuration reloads finished, applied or refused.', [], (c) =>
    c.inc(primary()?.reloadsTotal ?? 0),
  );
  counter(
    'mtproxy_reload_failures_total',
    'Configuration reloads refused (the old config stayed).',
    [],
    (c) => c.inc(primary()?.reloadFailures ?? 0),
  );
  gauge('mtproxy_last_reload_success', '1 when the last reload applied, 0 when it was refused.', [], (g) =>
    g.set(primary()?.lastReloadOk === false ? 0 : 1),
  );
  gauge('mtproxy_last_reload_timestamp_seconds', 'Unix time the last reload finished (0 = none).', [], (g) =>
    g.set((primary()?.lastReloadAt ?? 0) / 1000),
  );
  gauge('mtproxy_start_time_seconds', 'Unix time the proxy started.', [], (g) =>
    g.set((primary()?.startedAt ?? Date.now()) / 1000),
  );
  gauge('mtproxy_info', 'Build information.', ['version', 'node'], (g) =>
    g.set({ version: pkg.version, node: process.version }, 1),
  );
  gauge(
    'mtproxy_event_loop_lag_seconds',
    'Event-loop delay since the previous scrape.',
    ['quantile'],
    (g) => {
      if (loopDelay.count > 0) {
        g.set({ quantile: '0.5' }, loopDelay.percentile(50) / 1e9);
        g.set({ quantile: '0.99' }, loopDelay.percentile(99) / 1e9);
        g.set({ quantile: '1' }, loopDelay.max / 1e9);
      }
      loopDelay.reset();
    },
  );
  gauge('mtproxy_memory_bytes', 'Process memory by kind.', ['kind'], (g) => {
    const m = process.memoryUsage();
    g.set({ kind: 'rss' }, m.rss);
    g.set({ kind: 'heap_used' }, m.heapUsed);
    g.set({ kind: 'heap_total' }, m.heapTotal);
    g.set({ kind: 'external' }, m.external);
    g.set({ kind: 'array_buffers' }, m.arrayBuffers);
  });
  // Cluster (only when [cluster] redis is set).
  gauge('mtproxy_cluster_redis_up', '1 while the shared-state Redis is reachable, 0 while not.', [], (g) => {
    const up = primary()?.clusterRedisUp;
    if (up !== null && up !== undefined) g.set(up);
  });
  counter(
    'mtproxy_cluster_redis_errors_total',
    'Shared-state Redis commands that failed or timed out (the node decided locally), by kind.',
    ['kind'],
    (c) => {
      for (const [kind, n] of primary()?.clusterRedisErrors ?? []) c.inc({ kind }, n);
    },
  );
  for (const [name, { help, read }] of Object.entries(opts.gauges ?? {})) {
    gauge(name, help, [], (g) => g.set(read()));
  }

  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  return {
    registry,
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
    close() {
      loopDelay.disable();
      registry.clear();
    },
  };
}

/** Convenience for a single-process proxy. */
export function singleSource(stats: Stats): StatsSource {
  const list = [stats];
  return () => list;
}
