/**
 * GramJS (the `telegram` package) through our proxy with a plain secret over its MTProxy abridged
 * connection, to the fake DC. The proxy's DC table points every DC id at the fake DC on loopback, and GramJS
 * only ever dials the proxy, so nothing leaves the machine.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { CTOR_REQ_DH_PARAMS, CTOR_REQ_PQ_MULTI, FakeDc, plainConstructor } from '../helpers/fake-dc.ts';
import { basicToml, startTestProxy, TEST_SECRET_HEX, type TestProxy } from '../helpers/proxy.ts';

const require = createRequire(import.meta.url);
const { TelegramClient } = require('telegram') as typeof import('telegram');
const { StringSession } =
  require('telegram/sessions/index.js') as typeof import('telegram/sessions/index.js');
const { ConnectionTCPMTProxyAbridged } =
  require('telegram/network/connection/TCPMTProxy.js') as typeof import('telegram/network/connection/TCPMTProxy.js');
const { Logger, LogLevel } =
  require('telegram/extensions/Logger.js') as typeof import('telegram/extensions/Logger.js');

describe('GramJS interop (abridged, plain secret)', () => {
  let dc: FakeDc;
  let proxy: TestProxy;

  before(async () => {
    dc = await FakeDc.start();
    proxy = await startTestProxy(
      basicToml(dc.port, { listener: 'allowed_protocols = ["classic", "secure"]' }),
    );
  });
  after(async () => {
    await proxy.stop();
    await dc.stop();
  });

  it('gets a resPQ for its req_pq_multi and sends req_DH_params next', async () => {
    // Pin the session to DC 2 at a loopback address; in MTProxy mode GramJS dials the proxy anyway.
    const session = new StringSession('');
    session.setDC(2, '127.0.0.1', dc.port);
    const client = new TelegramClient(session, 12345, '0123456789abcdef0123456789abcdef', {
      connection: ConnectionTCPMTProxyAbridged,
      proxy: { ip: '127.0.0.1', port: proxy.port(), secret: TEST_SECRET_HEX, MTProxy: true },
      connectionRetries: 1,
      autoReconnect: false,
      baseLogger: new Logger(process.env.GRAMJS_DEBUG ? LogLevel.DEBUG : LogLevel.NONE),
    });
    const firstRequest = dc.waitForFrame((_c, p) => plainConstructor(p) === CTOR_REQ_PQ_MULTI, 15_000);
    const nextRequest = dc.waitForFrame((_c, p) => plainConstructor(p) === CTOR_REQ_DH_PARAMS, 15_000);
    const connecting = client.connect().catch(() => {});
    try {
      const conn = await firstRequest;
      assert.equal(conn.transport, 'abridged');
      assert.equal(conn.dcId, 2);
      // req_DH_params arriving proves GramJS decoded our resPQ: the relay works in both directions.
      const same = await nextRequest;
      assert.equal(same, conn);
      assert.deepEqual(conn.plainRequests.slice(0, 2), [CTOR_REQ_PQ_MULTI, CTOR_REQ_DH_PARAMS]);
    } finally {
      await client.destroy().catch(() => {});
      await Promise.race([connecting, new Promise((r) => setTimeout(r, 1000))]);
    }
  });
});
