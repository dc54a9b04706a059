/**
 * mtcute (@mtcute/core 0.30) through our proxy with a `dd` secret, to the fake DC. Only the platform-neutral
 * core is installed, so this file supplies what a platform package would: a Node TCP connection for its
 * MTProxy transport, a crypto provider on node:crypto and a quiet platform. The client's DC table points at
 * loopback, and it only ever dials the proxy; the proxy's DC table points at the fake DC.
 */
import assert from 'node:assert/strict';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  pbkdf2 as pbkdf2Cb,
  randomFillSync,
} from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ConnectionClosedError, type ITcpConnection, type TcpEndpoint } from '@fuman/net';
import { BaseMtProxyTransport, MemoryStorage, MtClient } from '@mtcute/core';
import {
  BaseCryptoProvider,
  type IAesCtr,
  type ICryptoProvider,
  type IEncryptionScheme,
} from '@mtcute/core/utils.js';
import { CTOR_REQ_DH_PARAMS, CTOR_REQ_PQ_MULTI, FakeDc, plainConstructor } from '../helpers/fake-dc.ts';
import { basicToml, startTestProxy, TEST_SECRET_HEX, type TestProxy } from '../helpers/proxy.ts';

/** A node:net socket as the pull-style connection @fuman/net expects. */
class NodeTcpConnection implements ITcpConnection {
  readonly localAddress: TcpEndpoint | null;
  readonly remoteAddress: TcpEndpoint | null;
  private readonly socket: net.Socket;
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.localAddress = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    this.remoteAddress = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', (e) => {
      this.failure = e;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async read(into: Uint8Array): Promise<number> {
    while (this.chunks.length === 0 && !this.ended && !this.failure) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
    const head = this.chunks[0];
    if (!head) {
      if (this.failure) throw this.failure;
      // mtcute's read loop expects a closed connection to throw (a 0-byte read would make it spin).
      throw new ConnectionClosedError();
    }
    const n = Math.min(head.length, into.length);
    into.set(head.subarray(0, n));
    if (n === head.length) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    return n;
  }

  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    this.socket.destroy();
  }

  setNoDelay(noDelay: boolean): void {
    this.socket.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    this.socket.setKeepAlive(keepAlive);
  }
}

class NodeMtProxyTransport extends BaseMtProxyTransport {
  readonly dialed: TcpEndpoint[] = [];

  _connectTcp(endpoint: TcpEndpoint): Promise<ITcpConnection> {
    this.dialed.push(endpoint);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: endpoint.address, port: endpoint.port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new NodeTcpConnection(socket));
      });
    });
  }
}

/** AES-256-IGE on top of ECB (MTProto's mode; node:crypto has no IGE). */
function aesIge(key: Uint8Array, iv: Uint8Array): IEncryptionScheme {
  const run = (data: Uint8Array, encrypt: boolean): Uint8Array => {
    const cipher = encrypt
      ? createCipheriv('aes-256-ecb', key, null).setAutoPadding(false)
      : createDecipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    const out = Buffer.alloc(data.length);
    // Encrypt: prevX = previous ciphertext, prevY = previous plaintext; decrypt swaps their roles.
    let prevX = Buffer.from(iv.subarray(0, 16));
    let prevY = Buffer.from(iv.subarray(16, 32));
    const block = Buffer.alloc(16);
    for (let off = 0; off < data.length; off += 16) {
      const input = Buffer.from(data.subarray(off, off + 16));
      const [xorIn, xorOut] = encrypt ? [prevX, prevY] : [prevY, prevX];
      for (let i = 0; i < 16; i++) block[i] = input[i] ^ xorIn[i];
      const mid = cipher.update(block);
      for (let i = 0; i < 16; i++) out[off + i] = mid[i] ^ xorOut[i];
      const result = out.subarray(off, off + 16);
      if (encrypt) {
        prevX = Buffer.from(result);
        prevY = input;
      } else {
        prevY = Buffer.from(result);
        prevX = input;
      }
    }
    return out;
  };
  return { encrypt: (d) => run(d, true), decrypt: (d) => run(d, false) };
}

class NodeCrypto extends BaseCryptoProvider implements ICryptoProvider {
  randomFill(buf: Uint8Array): void {
    randomFillSync(buf);
  }
  sha1(data: Uint8Array): Uint8Array {
    return createHash('sha1').update(data).digest();
  }
  sha256(data: Uint8Array): Uint8Array {
    return createHash('sha256').update(data).digest();
  }
  pbkdf2(
    password: Uint8Array,
    salt: Uint8Array,
    iterations: number,
    keylen = 64,
    algo = 'sha512',
  ): Promise<Uint8Array> {
    return new Promise((resolve, reject) =>
      pbkdf2Cb(password, salt, iterations, keylen, algo, (err, key) => (err ? reject(err) : resolve(key))),
    );
  }
  hmacSha256(data: Uint8Array, key: Uint8Array): Uint8Array {
    return createHmac('sha256', key).update(data).digest();
  }
  createAesCtr(key: Uint8Array, iv: Uint8Array, encrypt: boolean): IAesCtr {
    const c = encrypt ? createCipheriv('aes-256-ctr', key, iv) : createDecipheriv('aes-256-ctr', key, iv);
    return { process: (data) => c.update(data) };
  }
  createAesIge(key: Uint8Array, iv: Uint8Array): IEncryptionScheme {
    return aesIge(key, iv);
  }
  gzip(data: Uint8Array, maxSize: number): Uint8Array | null {
    const out = gzipSync(data);
    return out.length > maxSize ? null : out;
  }
  gunzip(data: Uint8Array): Uint8Array {
    return gunzipSync(data);
  }
}

const quietPlatform = {
  beforeExit: () => () => {},
  log: () => {},
  getDefaultLogLevel: () => 0,
  getDeviceModel: () => 'mtproxy-test',
};

describe('mtcute interop (dd secret)', () => {
  let dc: FakeDc;
  let proxy: TestProxy;

  before(async () => {
    dc = await FakeDc.start();
    proxy = await startTestProxy(basicToml(dc.port, { listener: 'allowed_protocols = ["secure"]' }));
  });
  after(async () => {
    await proxy.stop();
    await dc.stop();
  });

  it('gets a resPQ for its req_pq_multi and sends req_DH_params next', async () => {
    const transport = new NodeMtProxyTransport({
      host: '127.0.0.1',
      port: proxy.port(),
      secret: `dd${TEST_SECRET_HEX}`,
    });
    const loopbackDc = { id: 2, ipAddress: '127.0.0.1', port: dc.port };
    const client = new MtClient({
      apiId: 12345,
      apiHash: '0123456789abcdef0123456789abcdef',
      storage: new MemoryStorage(),
      crypto: new NodeCrypto(),
      platform: quietPlatform,
      transport,
      defaultDcs: { main: loopbackDc, media: { ...loopbackDc, mediaOnly: true } },
      logLevel: 0,
      onError: () => {},
    });
    const firstRequest = dc.waitForFrame((_c, p) => plainConstructor(p) === CTOR_REQ_PQ_MULTI, 15_000);
    const nextRequest = dc.waitForFrame((_c, p) => plainConstructor(p) === CTOR_REQ_DH_PARAMS, 15_000);
    const connecting = client.connect().catch(() => {});
    try {
      const conn = await firstRequest;
      assert.equal(conn.transport, 'padded', 'a dd secret means padded intermediate');
      assert.equal(conn.dcId, 2);
      // req_DH_params arriving proves mtcute decoded our resPQ: the relay works in both directions.
      const same = await nextRequest;
      assert.equal(same, conn);
      assert.deepEqual(conn.plainRequests.slice(0, 2), [CTOR_REQ_PQ_MULTI, CTOR_REQ_DH_PARAMS]);
      assert.ok(transport.dialed.every((e) => e.address === '127.0.0.1' && e.port === proxy.port()));
    } finally {
      // Bounded: the client is mid-handshake with a DC that will never finish it.
      const settle = (p: Promise<unknown>) =>
        Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
      await settle(client.disconnect());
      await settle(client.destroy());
      await settle(connecting);
    }
  });
});
