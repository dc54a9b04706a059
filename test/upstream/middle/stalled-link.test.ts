/**
 * A middle-proxy link that stops answering (no bytes, not even a pong) is found within the stall timeout and
 * closed with its clients, so the apps reconnect instead of hanging; a healthy idle link is pinged and kept.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encryptedPayload, until, withMiddleSetup } from '../../helpers/middle-harness.ts';

const STALL = { minConnections: 1, upstream: 'stall_timeout = "400ms"' };

test('an idle link is pinged, answers with a pong, and is kept', () =>
  withMiddleSetup(STALL, async (setup) => {
    const c = await setup.connect('intermediate', 2);
    const p = encryptedPayload(1);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    await until(() => setup.fake.pingsFromProxy >= 2, 'two pings from the proxy');
    assert.equal(setup.stats.dc(2).stalledLinks, 0);
    assert.equal(setup.fake.handshakes, 1, 'the same link all along');
    const q = encryptedPayload(2);
    c.sendFrame(q);
    assert.deepEqual((await c.nextFrame()).payload, q);
    c.close();
    assert.deepEqual(setup.fake.violations, []);
  }));

test('a link that stops answering is closed with its clients; the reconnecting client is served on a new link', () =>
  withMiddleSetup(STALL, async (setup) => {
    const c = await setup.connect('intermediate', 2);
    const p = encryptedPayload(1);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    setup.fake.stall();
    c.sendFrame(encryptedPayload(2));
    // Without the check the client would wait for its answer until the app's own timeout (minutes).
    await c.closed;
    assert.ok(setup.stats.dc(2).stalledLinks >= 1);
    assert.ok((setup.stats.dc(2).errors.get('MTP_ERR_LINK_STALLED') ?? 0) >= 1);
    const again = await setup.connect('intermediate', 2);
    const q = encryptedPayload(3);
    again.sendFrame(q);
    assert.deepEqual((await again.nextFrame()).payload, q);
    assert.ok(setup.fake.handshakes >= 2, 'served on a fresh link');
    again.close();
    assert.deepEqual(setup.fake.violations, []);
  }));

test('with every link stalling right after its handshake, clients are still closed, never left hanging', () =>
  withMiddleSetup(STALL, async (setup) => {
    const c = await setup.connect('intermediate', 2);
    const p = encryptedPayload(1);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    setup.fake.stall({ newLinks: true });
    await c.closed;
    const again = await setup.connect('intermediate', 2);
    again.sendFrame(encryptedPayload(2));
    await again.closed;
    assert.ok(setup.stats.dc(2).stalledLinks >= 2);
  }));

test('stall_timeout turned on by a reload applies to the links already open', () =>
  withMiddleSetup({ minConnections: 1, upstream: 'stall_timeout = "off"' }, async (setup) => {
    const c = await setup.connect('intermediate', 2);
    const p = encryptedPayload(1);
    c.sendFrame(p);
    assert.deepEqual((await c.nextFrame()).payload, p);
    setup.fake.stall();
    // What a reload does for the upstream: the settings it reads change.
    setup.config.upstream.stallTimeoutMs = 400;
    await c.closed;
    assert.ok(setup.stats.dc(2).stalledLinks >= 1);
  }));
