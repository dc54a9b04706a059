/**
 * The pool gives back links above the minimum that carried no client for upstream.idle_connection_timeout.
 * The sweep is called with a "now" past the timeout where the timer itself is not the point, so nothing here
 * sleeps through a grace period or asserts on timing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import type { UpstreamHandle } from '../../../src/upstream/types.ts';
import {
  encryptedPayload,
  type MiddleSetup,
  middleToml,
  recordingSink,
  until,
  upstreamClientInfo,
  withMiddleSetup,
} from '../../helpers/middle-harness.ts';

const HOUR_MS = 3_600_000;

interface TestClient {
  handle: UpstreamHandle;
  frames: Buffer[];
  closes: string[];
}

/**
 * A client straight on the upstream (no session). With a ready link and Telegram's config loaded, open()
 * places it synchronously, before the returned promise is even awaited.
 */
function openClient(setup: MiddleSetup, port: number): { opened: Promise<TestClient> } {
  const { sink, frames, closes } = recordingSink();
  const info = upstreamClientInfo(setup.config.listeners[0], { remotePort: port, localPort: 443 });
  return { opened: setup.upstream.open(info, sink).then((handle) => ({ handle, frames, closes })) };
}

async function echoes(c: TestClient, n: number): Promise<void> {
  const p = encryptedPayload(n);
  const before = c.frames.length;
  assert.equal(c.handle.writeFrame(p, false), true);
  await until(() => c.frames.length > before, `echo ${n}`);
  assert.deepEqual(c.frames.at(-1), p);
  assert.deepEqual(c.closes, []);
}

/** One client per link (clients_per_connection = 1): `n` clients make the pool grow to `n` links. */
async function grow(setup: MiddleSetup, n: number): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (let i = 0; i < n; i++) clients.push(await openClient(setup, 40_000 + i).opened);
  const pool = setup.upstream.pool(2)!;
  await until(() => pool.status().ready === n && pool.status().pending === 0, `${n} links`);
  return clients;
}

async function closeAll(setup: MiddleSetup, clients: TestClient[]): Promise<void> {
  const before = setup.fake.closedConns.length;
  for (const c of clients) c.handle.close();
  await until(() => setup.fake.closedConns.length === before + clients.length, 'RPC_CLOSE_CONN for each');
}

function options(timeout: string) {
  return {
    minConnections: 1,
    clientsPerConnection: 1,
    upstream: `idle_connection_timeout = ${JSON.stringify(timeout)}`,
  };
}

test('idle_connection_timeout: default 2m; a duration, 0 or "off"; anything else is refused', () => {
  const base = middleToml('/tmp/unused');
  assert.equal(parseConfig(base).upstream.idleConnectionTimeoutMs, 120_000);
  const withTimeout = (v: string) =>
    parseConfig(base.replace('[upstream]', `[upstream]\nidle_connection_timeout = ${v}`)).upstream
      .idleConnectionTimeoutMs;
  assert.equal(withTimeout('"90s"'), 90_000);
  assert.equal(withTimeout('30'), 30_000);
  assert.equal(withTimeout('0'), 0);
  assert.equal(withTimeout('"off"'), 0);
  assert.throws(() => withTimeout('"soon"'), /upstream\.idle_connection_timeout: expected a duration/);
  assert.throws(() => withTimeout('-1'), /upstream\.idle_connection_timeout/);
});

test('after a burst the pool grows, and once the clients left and the grace period passed it is back at the minimum', () =>
  withMiddleSetup(options('1h'), async (setup) => {
    const pool = setup.upstream.pool.bind(setup.upstream);
    const clients = await grow(setup, 4);
    for (const [i, c] of clients.entries()) await echoes(c, i);
    assert.equal(setup.fake.handshakes, 4);
    await closeAll(setup, clients);

    assert.equal(pool(2)!.closeIdleLinks(), 0, 'nothing closes before the grace period');
    assert.equal(pool(2)!.status().ready, 4);
    assert.equal(pool(2)!.closeIdleLinks(performance.now() + HOUR_MS), 3);
    assert.equal(pool(2)!.status().ready, 1, 'back at min_connections_per_dc');
    const dc = setup.stats.dc(2);
    assert.equal(dc.idleLinksClosed, 3);
    assert.equal(dc.linksActive, 1);
    // Closed gently: the fake sees the connections end, with no protocol violation.
    await until(() => setup.fake.readyLinks().length === 1, 'the fake to see three links closed');
    assert.equal(pool(2)!.closeIdleLinks(performance.now() + 2 * HOUR_MS), 0, 'never below the minimum');

    // The remaining link serves; no new link was needed.
    const next = await openClient(setup, 41_000).opened;
    await echoes(next, 99);
    assert.equal(setup.fake.handshakes, 4);
    next.handle.close();
    assert.deepEqual(setup.fake.violations, []);
  }));

test('a link that carries a client is kept; only the empty ones go', () =>
  withMiddleSetup(options('1h'), async (setup) => {
    const clients = await grow(setup, 3);
    const stays = clients[2]!;
    await closeAll(setup, clients.slice(0, 2));
    const pool = setup.upstream.pool(2)!;
    pool.closeIdleLinks(performance.now() + HOUR_MS);
    assert.deepEqual(pool.status().perLink, [1], 'only the link with the client is left');
    await echoes(stays, 7);
    assert.deepEqual(setup.fake.violations, []);
    stays.handle.close();
  }));

test('a client arriving right before or after the idle sweep is on a link that stays open', () =>
  withMiddleSetup(options('1h'), async (setup) => {
    await closeAll(setup, await grow(setup, 3));
    const pool = setup.upstream.pool(2)!;
    // Same tick: placed, then the sweep. Its link is no longer idle; the other two go.
    const before = openClient(setup, 42_000);
    assert.equal(pool.status().clients, 1, 'placed synchronously');
    assert.equal(pool.closeIdleLinks(performance.now() + HOUR_MS), 2);
    const first = await before.opened;
    await echoes(first, 1);
    first.handle.close();

    await closeAll(setup, await grow(setup, 3));
    // Same tick: the sweep, then a client. It lands on the link the sweep kept.
    assert.equal(pool.closeIdleLinks(performance.now() + HOUR_MS), 2);
    const after = await openClient(setup, 42_001).opened;
    assert.deepEqual(pool.status().perLink, [1]);
    await echoes(after, 2);
    after.handle.close();
    assert.deepEqual(setup.fake.violations, []);
  }));

// No minimum: every empty link may go, the one that just queued the close messages included.
test('what the last clients queued (RPC_CLOSE_CONN) still leaves a link retired in the same tick', () =>
  withMiddleSetup({ ...options('1h'), minConnections: 0 }, async (setup) => {
    const clients = await grow(setup, 2);
    const pool = setup.upstream.pool(2)!;
    const before = setup.fake.closedConns.length;
    for (const c of clients) c.handle.close();
    assert.equal(pool.closeIdleLinks(performance.now() + HOUR_MS), 2);
    assert.equal(pool.status().ready, 0);
    await until(() => setup.fake.closedConns.length === before + 2, 'both RPC_CLOSE_CONN');
    await until(() => setup.fake.readyLinks().length === 0, 'the retired links to end');
    // The next client gets a new link.
    const next = await openClient(setup, 44_000).opened;
    await echoes(next, 3);
    next.handle.close();
    assert.deepEqual(setup.fake.violations, []);
  }));

test('while links could be given back, a new client goes to a busy link with room rather than an empty one', () =>
  withMiddleSetup(options('1h'), async (setup) => {
    const clients = await grow(setup, 2);
    const pool = setup.upstream.pool(2)!;
    const loads = () => pool.status().perLink.toSorted((a, b) => a - b);
    // Both clients went to the first link while the second was opening (a full link forced the growth).
    assert.deepEqual(loads(), [0, 2]);
    // With room under a larger bound, the busy link is preferred over the empty one.
    setup.config.upstream.clientsPerConnection = 10;
    const extra = [await openClient(setup, 43_000).opened, await openClient(setup, 43_001).opened];
    assert.deepEqual(loads(), [0, 4], 'the empty link stayed empty');
    // Shrinking off: plain least-loaded placement again.
    setup.config.upstream.idleConnectionTimeoutMs = 0;
    await closeAll(setup, extra);
    extra.push(await openClient(setup, 43_002).opened);
    assert.deepEqual(loads(), [1, 2]);
    for (const c of [...clients, extra[2]!]) await echoes(c, 5);
    assert.deepEqual(setup.fake.violations, []);
  }));

test('idle_connection_timeout = "off" keeps every link open', () =>
  withMiddleSetup(options('off'), async (setup) => {
    const pool = setup.upstream.pool.bind(setup.upstream);
    await closeAll(setup, await grow(setup, 3));
    assert.equal(pool(2)!.closeIdleLinks(performance.now() + 1000 * HOUR_MS), 0);
    assert.equal(pool(2)!.status().ready, 3);
    assert.equal(setup.stats.dc(2).idleLinksClosed, 0);
  }));

test('a reload changes the timeout at once: the pool timer then closes the idle links by itself', () =>
  withMiddleSetup(options('1h'), async (setup) => {
    await closeAll(setup, await grow(setup, 3));
    const pool = setup.upstream.pool(2)!;
    // As a reload does: the new config is what getConfig() returns, then the upstream is told.
    const reloaded = parseConfig(setup.toml.replace('"1h"', '"20ms"'));
    setup.config.upstream = reloaded.upstream;
    setup.upstream.configChanged();
    await until(() => pool.status().ready === 1, 'the sweep to close two links');
    assert.equal(setup.stats.dc(2).idleLinksClosed, 2);

    // Off again by reload: growth stays.
    setup.config.upstream = { ...reloaded.upstream, idleConnectionTimeoutMs: 0 };
    setup.upstream.configChanged();
    await closeAll(setup, await grow(setup, 3));
    assert.equal(pool.closeIdleLinks(performance.now() + HOUR_MS), 0);
    assert.equal(pool.status().ready, 3);
    assert.deepEqual(setup.fake.violations, []);
  }));
