/**
 * The socket side of learning what a cover domain's TLS 1.3 answer looks like: connect to the fronting
 * target, send a Telegram-shaped hello and collect the server's first flight until it goes quiet; the
 * bytes are read by flight.ts. When the probes run is probe-schedule.ts; what they learn is kept by
 * profiles.ts.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { buildClientHello } from '../client/tls-hello.ts';
import type { ListenerConfig } from '../config/types.ts';
import { type CoverProfile, measureFlight } from './flight.ts';

export interface ProbeTarget {
  host: string;
  port: number;
}

/** Collected flight bytes past this much are measured as they are. */
const MAX_FLIGHT_BYTES = 256 * 1024;
/** The flight is over when the server is quiet this long (it now waits for our Finished). */
const QUIET_MS = 250;

/**
 * Connect to `target`, send a modern Telegram-shaped hello for `sni` and measure the server's first flight.
 * Resolves null on any failure (refused, timeout, alert, not TLS 1.3-looking).
 */
export function probeCoverDomain(
  target: ProbeTarget,
  sni: string,
  timeoutMs: number,
): Promise<CoverProfile | null> {
  return new Promise((resolve) => {
    const hello = buildClientHello({
      shape: 'modern',
      secret: randomBytes(16),
      domain: sni,
      unixTime: Math.floor(Date.now() / 1000),
    });
    let buf = Buffer.alloc(0);
    let settled = false;
    let quietTimer: NodeJS.Timeout | null = null;
    const socket = net.connect({ host: target.host, port: target.port });
    const deadline = setTimeout(() => finish(measureFlight(buf, true)), timeoutMs);
    function finish(result: CoverProfile | null): void {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (quietTimer) clearTimeout(quietTimer);
      socket.destroy();
      resolve(result);
    }
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(hello));
    socket.on('error', () => finish(null));
    socket.on('close', () => finish(measureFlight(buf, true)));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > MAX_FLIGHT_BYTES) return finish(measureFlight(buf, true));
      if (quietTimer) clearTimeout(quietTimer);
      quietTimer = setTimeout(() => finish(measureFlight(buf, true)), QUIET_MS);
    });
  });
}

/** Where to probe a listener's cover domain: the fronting target (fixed host, or the domain itself). */
export function probeTargetFor(listener: ListenerConfig, domain: string): ProbeTarget | null {
  const f = listener.fronting;
  if (f.kind === 'fixed') return { host: f.host, port: f.port };
  if (f.kind === 'sni') return { host: domain, port: f.port };
  return null;
}
