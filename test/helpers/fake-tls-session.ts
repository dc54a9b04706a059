/**
 * One fake-TLS session from a hello fixture against a running proxy: the hello's segments written one after
 * the other, the server flight read and checked, then an obfuscated2 header and one frame echoed by the
 * fake DC. Returns the server flight as received.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { FakeTlsFraming } from '../../src/client/fake-tls-client.ts';
import { readServerFlight } from '../../src/client/tls-hello.ts';
import { createFrameCodec } from '../../src/protocol/framing/codec.ts';
import { createInitiatorHeader } from '../../src/protocol/obfuscated2.ts';
import type { HelloFixture } from './hello-shapes.ts';

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

export async function fixtureRoundTrip(port: number, f: HelloFixture, secret: Buffer): Promise<Buffer> {
  const socket = await connect(port);
  socket.setNoDelay(true);
  try {
    let answer = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      answer = Buffer.concat([answer, c]);
    };
    socket.on('data', onData);
    for (const segment of f.segments) {
      socket.write(segment);
      // Separate segments, as a phone's two-packet hello arrives.
      await new Promise((r) => setTimeout(r, 2));
    }
    for (let i = 0; i < 300 && readServerFlight(answer, f.random, secret).kind === 'need-more'; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const flight = readServerFlight(answer, f.random, secret);
    assert.equal(flight.kind, 'proxy', `${f.shape}: ${flight.kind}`);
    socket.off('data', onData);
    const framing = new FakeTlsFraming();
    const init = createInitiatorHeader('padded', 2, secret);
    const codec = createFrameCodec('padded', { fromServer: true });
    const payload = randomBytes(200);
    const echoed = new Promise<Buffer>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) =>
        framing.unwrap(chunk, (bytes) => codec.decode(init.decrypt.update(bytes), (frame) => resolve(frame))),
      );
      socket.once('close', () => reject(new Error(`${f.shape}: closed before the echo`)));
    });
    socket.write(framing.wrap(Buffer.concat([init.header, init.encrypt.update(codec.encode(payload))])));
    assert.deepEqual(await echoed, payload);
    return answer.subarray(0, flight.kind === 'proxy' ? flight.length : 0);
  } finally {
    socket.destroy();
  }
}
