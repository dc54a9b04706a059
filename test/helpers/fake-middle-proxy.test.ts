import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { encodeFullFrame } from '../../src/protocol/middle/full.ts';
import { CRYPTO_SCHEMA_AES, encodeNonce } from '../../src/protocol/middle/rpc.ts';
import { FakeMiddleProxy } from './fake-middle-proxy.ts';

function nonceFrame(secret: Buffer): Buffer {
  return encodeFullFrame(
    encodeNonce({
      keySelector: secret.subarray(0, 4),
      schema: CRYPTO_SCHEMA_AES,
      timestamp: Math.floor(Date.now() / 1000),
      nonce: randomBytes(16),
    }),
    -2,
  );
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Telegram rotating a link while the proxy's nonce is on its way: the proxy closes its end on the FIN, and
// the fake reads the nonce only once the connection is gone (its peer address can no longer be asked for).
// That is a link closed by both sides, not a protocol violation.
test('a nonce read after a rotated link closed on both sides is no violation', async () => {
  const secret = randomBytes(128);
  const fake = await new FakeMiddleProxy({ secret }).start();
  try {
    const proxySide = net.connect(fake.port, '127.0.0.1');
    proxySide.on('error', () => {});
    proxySide.on('end', () => proxySide.end());
    await until('the link', () => fake.links.size === 1);
    const [link] = fake.links;
    link.socket.pause();
    proxySide.write(nonceFrame(secret));
    fake.rotate();
    await new Promise((r) => proxySide.once('close', r));
    // Let the last ACK land so that the connection is closed on the fake's side too.
    await new Promise((r) => setTimeout(r, 50));
    link.socket.resume();
    await until('the link to go', () => fake.links.size === 0);
    assert.deepEqual(fake.violations, []);
  } finally {
    await fake.stop();
  }
});

test('a malformed nonce is still a violation', async () => {
  const secret = randomBytes(128);
  const fake = await new FakeMiddleProxy({ secret }).start();
  try {
    const proxySide = net.connect(fake.port, '127.0.0.1');
    proxySide.on('error', () => {});
    const frame = nonceFrame(randomBytes(128));
    proxySide.write(frame);
    await new Promise((r) => proxySide.once('close', r));
    assert.deepEqual(fake.violations, ['link 1: Error: wrong key selector']);
  } finally {
    await fake.stop();
  }
});
