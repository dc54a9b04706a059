/** Loopback ports for tests that need an address before anything listens on it. */
import net from 'node:net';

/**
 * A port that was free on 127.0.0.1 a moment ago: bound to port 0 and released again. Nothing listens on it
 * afterwards, so it also serves as a "connection refused" target.
 */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
