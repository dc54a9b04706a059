/** Loopback ports for tests that need an address before anything listens on it. */
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Lowest port of the range we pick from when the kernel's ephemeral range leaves room below it. */
const LOW_PORT = 10_000;

/**
 * The first port of the range the kernel draws from for listen(0) and for the source port of outgoing
 * connections, or null when it cannot be read (not Linux).
 */
function ephemeralRangeStart(): number | null {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : null;
  } catch {
    return null;
  }
}

/** Binds `port` (0 = any) on 127.0.0.1 and releases it again; the port bound, or null when it was taken. */
async function bindAndRelease(port: number): Promise<number | null> {
  const s = net.createServer();
  const bound = await new Promise<boolean>((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (!bound) return null;
  const actual = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return actual;
}

/**
 * A port that was free on 127.0.0.1 a moment ago. Nothing listens on it afterwards, so it also serves as a
 * "connection refused" target.
 *
 * It is picked below the kernel's ephemeral range when there is room: a port from that range (what listen(0)
 * gives) can be handed out again, between our release and the test's own bind, to another test file's
 * listener or as the source port of one of the many connections the suite opens, and the test then fails
 * with EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  const rangeStart = ephemeralRangeStart();
  if (rangeStart !== null && rangeStart > LOW_PORT + 1000) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await bindAndRelease(LOW_PORT + Math.floor(Math.random() * (rangeStart - LOW_PORT)));
      if (port !== null) return port;
    }
  }
  const port = await bindAndRelease(0);
  if (port === null) throw new Error('no free port on 127.0.0.1');
  return port;
}
