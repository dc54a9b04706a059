/**
 * Interop: mtcute's own MTProxy transport with an `ee` secret (its fake-TLS hello, its ServerHello check,
 * its TLS record codec around obfuscated2 + padded intermediate) through our proxy to the fake DC.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createHash, createHmac, randomBytes, randomFillSync } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { Bytes } from '@fuman/io';
import type { ITcpConnection, TcpEndpoint } from '@fuman/net';
import { BaseMtProxyTransport } from '@mtcute/core';
import type { ICryptoProvider, Logger } from '@mtcute/core/utils.js';
import { FakeDc } from '../helpers/fake-dc.ts';
import { basicToml, startTestProxy, TEST_SECRET, type TestProxy } from '../helpers/proxy.ts';

const DOMAIN = 'example.com';

/** A net.Socket as the pull-style connection mtcute reads from. */
class SocketConnection implements ITcpConnection {
  readonly socket: net.Socket;
  private readonly chunks: Buffer[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  get localAddress(): TcpEndpoint | null {
    return { address: this.socket.localAddress ?? '', port: this.socket.localPort ?? 0 };
  }

  get remoteAddress(): TcpEndpoint | null {
    return { address: this.socket.remoteAddress ?? '', port: this.socket.remotePort ?? 0 };
  }

  async read(into: Uint8Array): Promise<number> {
    while (this.chunks.length === 0) {
      if (this.ended) return 0;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    const head = this.chunks[0];
    const n = Math.min(head.length, into.length);
    into.set(head.subarray(0, n));
    if (n === head.length) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    return n;
  }

  async write(bytes: Uint8Array): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.socket.write(bytes, (e) => (e ? reject(e) : resolve())),
    );
  }

  close(): void {
    this.socket.destroy();
  }

  setNoDelay(v: boolean): void {
    this.socket.setNoDelay(v);
  }

  setKeepAlive(v: boolean): void {
    this.socket.setKeepAlive(v);
  }
}

class NodeMtProxyTransport extends BaseMtProxyTransport {
  async _connectTcp(endpoint: TcpEndpoint): Promise<ITcpConnection> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: endpoint.address, port: endpoint.port }, () => resolve(s));
      s.once('error', reject);
    });
    return new SocketConnection(socket);
  }
}

/** The parts of a crypto provider the proxy transport and its codecs use. */
const crypto = {
  sha1: (d: Uint8Array) => createHash('sha1').update(d).digest(),
  sha256: (d: Uint8Array) => createHash('sha256').update(d).digest(),
  hmacSha256: (d: Uint8Array, k: Uint8Array) => createHmac('sha256', k).update(d).digest(),
  createAesCtr: (key: Uint8Array, iv: Uint8Array) => {
    const c = createCipheriv(`aes-${key.length * 8}-ctr`, key, iv);
    return { process: (d: Uint8Array) => c.update(d) };
  },
  randomFill: (b: Uint8Array) => randomFillSync(b),
  randomBytes: (n: number) => randomBytes(n),
} as unknown as ICryptoProvider;

const quietLog: Logger = new Proxy({} as Logger, {
  get: (_t, name) => (name === 'create' ? () => quietLog : () => {}),
});

let dc: FakeDc;
let proxy: TestProxy;

before(async () => {
  dc = await FakeDc.start();
  proxy = await startTestProxy(
    basicToml(dc.port, {
      listener: `allowed_protocols = ["tls"]\ntls_domain = "${DOMAIN}"\ntls_cert_size = 3100`,
    }),
  );
});

after(async () => {
  await proxy?.stop();
  await dc?.stop();
});

test('mtcute MTProxy transport with an ee secret reaches the fake DC and gets the echo', async () => {
  const secret = `ee${TEST_SECRET.toString('hex')}${Buffer.from(DOMAIN).toString('hex')}`;
  const transport = new NodeMtProxyTransport({ host: '127.0.0.1', port: proxy.port(), secret });
  transport.setup(crypto, quietLog);
  const dcOption = { id: 2, ipAddress: '127.0.0.1', port: 443 };
  const conn = await transport.connect();
  const codec = transport.packetCodec(dcOption);
  codec.setup?.(crypto, quietLog);
  try {
    const payload = randomBytes(96);
    const out = Bytes.alloc();
    await conn.write(await codec.tag());
    // mtcute's fake-TLS codec encodes and decodes asynchronously.
    await codec.encode(payload, out);
    await conn.write(out.result());

    const inbox = Bytes.alloc();
    const buf = new Uint8Array(65536);
    let frame: Uint8Array | null = null;
    while (frame === null) {
      const n = await conn.read(buf);
      assert.ok(n > 0, 'proxy closed the connection');
      inbox.writeSync(n).set(buf.subarray(0, n));
      frame = (await codec.decode(inbox, false)) as Uint8Array | null;
    }
    // Padded intermediate: mtcute hands the frame over with the server's random padding (0..15 bytes).
    assert.deepEqual(Buffer.from(frame.subarray(0, payload.length)), payload);
    assert.ok(frame.length - payload.length < 16);
    assert.equal(proxy.stats.listener('main').sessionsTotal.tls, 1);
  } finally {
    conn.close();
  }
});
