/**
 * A front and two backs on loopback, direct mode: clients in every protocol reach the fake DC through the
 * front and a back; sessions are spread; a back that dies ends its sessions and new ones go to the other.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated, type ObfuscatedConnection } from '../../../src/client/obfuscated-client.ts';
import type { TransportTag } from '../../../src/protocol/obfuscated2.ts';
import { FakeDc } from '../../helpers/fake-dc.ts';
import {
  type ClusterCerts,
  clusterCerts,
  linkAddress,
  startBack,
  startFront,
  waitFor,
} from '../../helpers/front-back.ts';
import { basicToml, TEST_SECRET_HEX, type TestProxy } from '../../helpers/proxy.ts';

const DOMAIN = 'example.com';

describe('front and backs, direct mode', () => {
  let dc: FakeDc;
  let certs: ClusterCerts;
  let backA: TestProxy;
  let backB: TestProxy;
  let front: TestProxy;

  before(async () => {
    dc = await FakeDc.start({ keepFrames: 50 });
    certs = await clusterCerts(['front', 'a', 'b']);
    backA = await startBack(basicToml(dc.port), certs, 'a');
    backB = await startBack(basicToml(dc.port), certs, 'b');
    // The front has no route to the DC: everything it relays goes through a back.
    front = await startFront(
      basicToml(1, {
        listener: `allowed_protocols = ["classic", "secure", "tls"]\ntls_domain = "${DOMAIN}"`,
      }),
      certs,
      'front',
      [linkAddress(backA), linkAddress(backB)],
    );
    await waitFor(() => front.proxy.cluster.front?.readyCount() === 2, 'both links');
  });

  after(async () => {
    await front?.stop();
    await backA?.stop();
    await backB?.stop();
    await dc?.stop();
    await certs?.remove();
  });

  /** Sessions of earlier tests have ended on the front (each client closed its socket). */
  const idle = () =>
    waitFor(
      () =>
        (front.proxy.cluster.front!.status().backs as { streams: number }[]).every((b) => b.streams === 0),
      'earlier sessions to end',
    );

  const connect = (transport: TransportTag, secret: string, dcId = 2): Promise<ObfuscatedConnection> =>
    connectObfuscated({ host: '127.0.0.1', port: front.port(), secret, transport, dcId });

  const clients: [string, TransportTag, string][] = [
    ['abridged', 'abridged', TEST_SECRET_HEX],
    ['intermediate', 'intermediate', TEST_SECRET_HEX],
    ['padded (dd)', 'padded', `dd${TEST_SECRET_HEX}`],
    ['fake-TLS (ee)', 'padded', `ee${TEST_SECRET_HEX}${Buffer.from(DOMAIN).toString('hex')}`],
  ];

  for (const [name, transport, secret] of clients) {
    it(`${name}: frames go through a back to the DC and back`, async () => {
      const c = await connect(transport, secret, 4);
      try {
        for (const n of [8, 64, 4096, 200_000]) {
          const p = randomBytes(n);
          c.sendFrame(p);
          assert.deepEqual((await c.nextFrame()).payload, p);
        }
      } finally {
        c.close();
      }
      assert.ok(dc.connections.some((d) => d.transport === transport && d.dcId === 4));
    });
  }

  it('sessions are spread over both backs', async () => {
    await idle();
    const cs = await Promise.all([1, 2, 3, 4].map(() => connect('intermediate', TEST_SECRET_HEX)));
    try {
      for (const c of cs) {
        const p = randomBytes(32);
        c.sendFrame(p);
        assert.deepEqual((await c.nextFrame()).payload, p);
      }
      const backs = front.proxy.cluster.front!.status().backs as { streams: number }[];
      assert.deepEqual(
        backs.map((b) => b.streams),
        [2, 2],
      );
    } finally {
      for (const c of cs) c.close();
    }
  });

  it('a back that dies ends its sessions; new sessions go to the other back', async () => {
    await idle();
    const cs = await Promise.all([1, 2].map(() => connect('intermediate', TEST_SECRET_HEX)));
    for (const c of cs) {
      c.sendFrame(randomBytes(16));
      await c.nextFrame();
    }
    const linkA = backA.proxy.cluster.back!;
    assert.deepEqual(
      [...linkA.links].map((l) => l.streams.size),
      [1],
      'one session on back a',
    );
    const gone = cs.map(() => false);
    for (const [i, c] of cs.entries()) {
      void c.closed.then(() => {
        gone[i] = true;
      });
    }
    // As a crash would: the link's TCP connection goes away without a word.
    for (const l of linkA.links) l.socket.destroy();
    await backA.stop();
    await waitFor(() => gone.filter(Boolean).length === 1, 'the session of back a to end');
    await waitFor(() => front.proxy.cluster.front?.readyCount() === 1, 'one link left');
    // The other session is still served.
    const survivor = cs[gone.indexOf(false)];
    const q = randomBytes(48);
    survivor.sendFrame(q);
    assert.deepEqual((await survivor.nextFrame()).payload, q);
    for (let i = 0; i < 3; i++) {
      const c = await connect('padded', `dd${TEST_SECRET_HEX}`);
      const p = randomBytes(100);
      c.sendFrame(p);
      assert.deepEqual((await c.nextFrame()).payload, p);
      c.close();
    }
    for (const c of cs) c.close();
  });
});
