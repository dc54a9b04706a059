/**
 * Test-side access to the Telegram-shaped ClientHello generator (it lives in src/client so that `ping`,
 * `doctor` and the benchmarks share it), plus ways to deliver a hello the way networks mangle it.
 */
import { randomInt } from 'node:crypto';

export {
  buildClientHello,
  type ClientHelloOptions,
  type HelloShape,
  helloRandom,
  readServerFlight,
  signClientHello,
  splitHelloRecords,
} from '../../src/client/tls-hello.ts';

/** Cut bytes into TCP-segment-like pieces of random sizes (1..max). */
export function randomSegments(bytes: Buffer, max = 64): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0; pos < bytes.length; ) {
    const n = Math.min(bytes.length - pos, 1 + randomInt(max));
    out.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}
