/**
 * Random filler for handshake fields that go out on the wire (fake certificate, server key share, the DC
 * leg's obfuscated2 header), drawn from a pooled block: one randomFillSync per 64 KiB instead of one call
 * per field, each of which costs more in call overhead than in bytes. Every pooled byte is handed out once.
 */
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 64 * 1024;
const pool = Buffer.allocUnsafeSlow(POOL_SIZE);
let used = POOL_SIZE;

/** Overwrite target[start, end) with random bytes. */
export function fillRandom(target: Uint8Array, start = 0, end = target.length): void {
  let pos = start;
  while (pos < end) {
    if (used === POOL_SIZE) {
      randomFillSync(pool);
      used = 0;
    }
    const n = Math.min(end - pos, POOL_SIZE - used);
    target.set(pool.subarray(used, used + n), pos);
    used += n;
    pos += n;
  }
}
