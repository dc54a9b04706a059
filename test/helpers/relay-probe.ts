/** Probing whether a running proxy relays for a secret, for the reload tests. */
import { connectObfuscated, type ObfuscatedConnection } from '../../src/client/obfuscated-client.ts';

/**
 * A session to DC 2 through the proxy on 127.0.0.1:`port` that has already had one frame echoed by the fake
 * DC; rejects when the proxy closes the connection instead.
 */
export async function echoedSession(
  port: number,
  secret: string,
  headerRandom?: Buffer,
): Promise<ObfuscatedConnection> {
  const c = await connectObfuscated({ host: '127.0.0.1', port, secret, dcId: 2, headerRandom });
  c.sendFrame(Buffer.alloc(40, 3));
  await c.nextFrame(5000);
  return c;
}

/** True when the proxy relays for this secret; false when it closes the connection instead. */
export async function relays(port: number, secret: string, headerRandom?: Buffer): Promise<boolean> {
  try {
    (await echoedSession(port, secret, headerRandom)).close();
    return true;
  } catch {
    return false;
  }
}

/** One frame echoed by the fake DC: true, or false when the proxy closed the session instead. */
export async function roundTrip(c: ObfuscatedConnection, size = 32): Promise<boolean> {
  try {
    c.sendFrame(Buffer.alloc(size, 7));
    await c.nextFrame(3000);
    return true;
  } catch {
    return false;
  }
}
