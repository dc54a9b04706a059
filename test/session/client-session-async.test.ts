// Sessions whose replay check and admission answer later (as in worker processes, which ask the primary).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { createInitiatorHeader } from '../../src/protocol/obfuscated2.ts';
import type { PolicyDecision, PolicyGate, ReplayGuard } from '../../src/session/types.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { basicToml, startTestProxy, TEST_SECRET, TEST_SECRET_HEX } from '../helpers/proxy.ts';

/** Answers are held until `answerAll()` (or answered on the next macrotask with `auto`). */
class LateAnswers {
  auto = true;
  readonly #held: Array<() => void> = [];

  later<T>(value: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const answer = () => Promise.resolve().then(value).then(resolve, reject);
      if (this.auto) setImmediate(answer);
      else this.#held.push(answer);
    });
  }

  get waiting(): number {
    return this.#held.length;
  }

  answerAll(): void {
    for (const answer of this.#held.splice(0)) answer();
  }
}

function lateReplayGuard(late: LateAnswers): ReplayGuard & { checks: number } {
  const keys = new Set<string>();
  const guard = {
    checks: 0,
    seen(key: Buffer): Promise<boolean> {
      guard.checks++;
      const hex = key.toString('hex');
      return late.later(() => {
        const seen = keys.has(hex);
        keys.add(hex);
        return seen;
      });
    },
  };
  return guard;
}

interface GateCounts {
  admits: number;
  granted: number;
  releases: number;
  refuse: boolean;
  fail: boolean;
}

function lateGate(late: LateAnswers): { gate: PolicyGate; counts: GateCounts } {
  const counts: GateCounts = { admits: 0, granted: 0, releases: 0, refuse: false, fail: false };
  const gate: PolicyGate = {
    admit: () =>
      late.later<PolicyDecision>(() => {
        if (counts.fail) throw new Error('the primary is gone');
        counts.admits++;
        if (counts.refuse) return { ok: false, rule: 'late-rule' };
        counts.granted++;
        return { ok: true, ticket: { release: () => void counts.releases++ } };
      }),
    allowFronting: () => true,
  };
  return { gate, counts };
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

describe('client session with late answers (worker processes)', () => {
  let dc: FakeDc;
  const late = new LateAnswers();
  const replay = lateReplayGuard(late);
  const policy = lateGate(late);
  const stats = new Stats();
  let proxy: Awaited<ReturnType<typeof startTestProxy>>;

  before(async () => {
    dc = await FakeDc.start();
    proxy = await startTestProxy(
      basicToml(dc.port, { listener: 'tls_domain = "example.com"\nfronting = "off"' }),
      { replay, policy: policy.gate, stats },
    );
  });
  after(async () => {
    await proxy.stop();
    await dc.stop();
  });

  it('relays after both answers, with bytes that came along with the header', async () => {
    late.auto = true;
    const hs = createInitiatorHeader('intermediate', 2, TEST_SECRET);
    const payload = randomBytes(16);
    const frame = Buffer.alloc(4 + payload.length);
    frame.writeUInt32LE(payload.length, 0);
    payload.copy(frame, 4);
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port() });
    socket.on('error', () => {});
    // Header and first frame in one write: the frame arrives while the checks are pending.
    socket.write(Buffer.concat([hs.header, hs.encrypt.update(frame)]));
    const got: Buffer[] = [];
    socket.on('data', (c) => got.push(hs.decrypt.update(c)));
    await until('the echo', () => Buffer.concat(got).length >= frame.length);
    assert.deepEqual(Buffer.concat(got).subarray(0, frame.length), frame);
    socket.destroy();
    await until('the ticket released', () => policy.counts.releases === policy.counts.granted);
  });

  it('relays fake-TLS and dd clients after late answers', async () => {
    late.auto = true;
    const domainHex = Buffer.from('example.com').toString('hex');
    for (const secret of [`ee${TEST_SECRET_HEX}${domainHex}`, `dd${TEST_SECRET_HEX}`]) {
      const c = await connectObfuscated({ host: '127.0.0.1', port: proxy.port(), secret });
      c.sendFrame(Buffer.alloc(24, 5));
      assert.deepEqual((await c.nextFrame()).payload, Buffer.alloc(24, 5), secret.slice(0, 2));
      c.close();
    }
    assert.ok(stats.listener('main').sessionsTotal.tls >= 1);
  });

  it('refuses a replayed header once the late answer says so', async () => {
    late.auto = true;
    const random = randomBytes(64);
    const first = await connectObfuscated({
      host: '127.0.0.1',
      port: proxy.port(),
      secret: TEST_SECRET,
      headerRandom: random,
    });
    first.sendFrame(Buffer.alloc(8, 1));
    await first.nextFrame();
    first.close();
    const replaysBefore = stats.listener('main').replays;
    const dcBefore = dc.connections.length;
    const again = net.connect({ host: '127.0.0.1', port: proxy.port() });
    again.on('error', () => {});
    const received: Buffer[] = [];
    again.on('data', (c) => received.push(c));
    again.write(createInitiatorHeader('intermediate', 2, TEST_SECRET, random).header);
    await closed(again);
    assert.equal(Buffer.concat(received).length, 0);
    assert.equal(stats.listener('main').replays, replaysBefore + 1);
    assert.equal(dc.connections.length, dcBefore);
  });

  it('a client gone while its admission is pending gets its slot back, and no upstream', async () => {
    late.auto = false;
    const dcBefore = dc.connections.length;
    const admitsBefore = policy.counts.admits;
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port() });
    socket.on('error', () => {});
    socket.write(createInitiatorHeader('intermediate', 2, TEST_SECRET).header);
    await until('the replay check asked', () => late.waiting === 1);
    late.answerAll();
    await until('the admission asked', () => late.waiting === 1);
    socket.destroy();
    await until('the session ended', () => stats.listener('main').connectionsActive === 0);
    late.answerAll();
    await until('the late admission arrived', () => policy.counts.admits === admitsBefore + 1);
    await until('its ticket released', () => policy.counts.releases === policy.counts.granted);
    assert.equal(dc.connections.length, dcBefore);
    late.auto = true;
  });

  it('a late refusal and a failed answer close the client silently', async () => {
    late.auto = true;
    const failures = stats.listener('main').handshakeFailures;
    const policyBefore = failures.get('MTP_ERR_POLICY') ?? 0;
    const internalBefore = failures.get('MTP_ERR_INTERNAL') ?? 0;
    for (const mode of ['refuse', 'fail'] as const) {
      policy.counts.refuse = mode === 'refuse';
      policy.counts.fail = mode === 'fail';
      const socket = net.connect({ host: '127.0.0.1', port: proxy.port() });
      socket.on('error', () => {});
      const received: Buffer[] = [];
      socket.on('data', (c) => received.push(c));
      socket.write(createInitiatorHeader('intermediate', 2, TEST_SECRET).header);
      await closed(socket);
      assert.equal(Buffer.concat(received).length, 0, mode);
    }
    policy.counts.refuse = false;
    policy.counts.fail = false;
    assert.equal(failures.get('MTP_ERR_POLICY'), policyBefore + 1);
    assert.equal(failures.get('MTP_ERR_INTERNAL'), internalBefore + 1);
    assert.equal(policy.counts.releases, policy.counts.granted);
  });
});
