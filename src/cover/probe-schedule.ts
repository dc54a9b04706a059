/**
 * When cover domains are probed: at start and then every `refreshMs`, each cover domain of the listeners
 * whose `tls_cert_size` is "auto", once per fronting target. What a probe learns goes to the profiles.
 */
import type { Config } from '../config/types.ts';
import type { Logger } from '../log.ts';
import { probeCoverDomain, probeTargetFor } from './cert-probe.ts';
import { rememberCoverProfile } from './profiles.ts';

export interface CertProbeHandle {
  /** Re-probe every cover domain now. */
  refresh(): Promise<void>;
  stop(): void;
}

/**
 * Probe every cover domain of the listeners whose `tls_cert_size` is "auto", now and then every
 * `refreshMs`. Failures keep the previous answer (or the drawn size).
 */
export function startCertProbes(
  getConfig: () => Config,
  log: Logger,
  opts: { refreshMs?: number; timeoutMs?: number } = {},
): CertProbeHandle {
  const refreshMs = opts.refreshMs ?? 6 * 3600_000;
  let stopped = false;
  const refresh = async (): Promise<void> => {
    const config = getConfig();
    const timeoutMs = opts.timeoutMs ?? Math.min(config.timeouts.frontingMs || 5000, 5000);
    const jobs: Promise<void>[] = [];
    const seen = new Set<string>();
    for (const listener of config.listeners) {
      if (listener.tlsCertSize !== 'auto' || !listener.allowedProtocols.includes('tls')) continue;
      for (const domain of listener.tlsDomains) {
        const target = probeTargetFor(listener, domain);
        if (!target) continue;
        const id = `${target.host}:${target.port}/${domain}`;
        if (seen.has(id)) continue;
        seen.add(id);
        jobs.push(
          probeCoverDomain(target, domain, timeoutMs).then((profile) => {
            if (stopped) return;
            if (profile) {
              rememberCoverProfile(domain, profile);
              log.info(
                { domain, certRecordSize: profile.certRecordSize, pq: profile.selectsPq },
                'cover domain probed',
              );
            } else {
              log.warn({ domain }, 'cover domain unreachable, using a random certificate size');
            }
          }),
        );
      }
    }
    await Promise.all(jobs);
  };
  const timer = setInterval(() => void refresh(), refreshMs);
  timer.unref();
  void refresh();
  return {
    refresh,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
