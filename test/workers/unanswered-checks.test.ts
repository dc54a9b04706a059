// A worker process's session whose replay check or admission is never answered (a primary that is stuck):
// the handshake deadline still ends it, and an admission that arrives after that is given straight back.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { Stats } from '../../src/metrics/stats.ts';
import { createInitiatorHeader } from '../../src/protocol/obfuscated2.ts';
import type { PolicyDecision, PolicyGate, ReplayGuard } from '../../src/session/types.ts';
import { FakeDc } from '../helpers/fake-dc.ts';
import { basicToml, startTestProxy, TEST_SECRET } from '../helpers/proxy.ts';

let answerReplay: boolean | null = null;
const heldAdmissions: Array<(d: PolicyDecision) => void> = [];
let releases = 0;

const replay: ReplayGuard = {
  // null: never answered.
  seen: () => new Promise<boolean>((resolve) => answerReplay !== null && setImmediate(resolve, answerReplay)),
};
const policy: PolicyGate = {
  admit: () => new Promise<PolicyDecision>((resolve) => heldAdmissions.push(resolve)),
  allowFronting: () => true,
};

const stats = new Stats();
let dc: FakeDc;
let proxy: Awaited<ReturnType<typeof startTestProxy>>;

before(async () => {
  dc = await FakeDc.start();
  const top = '[timeouts]\nhandshake = "300ms"\n';
  proxy = await startTestProxy(basicToml(dc.port, { top }), { replay, policy, stats });
});
after(async () => {
  await proxy.stop();
  await dc.stop();
});

function connectWithHeader(): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port() });
    socket.on('error', () => {});
    let received = 0;
    socket.on('data', (c) => {
      received += c.length;
    });
    socket.on('close', () => resolve(received));
    socket.write(createInitiatorHeader('intermediate', 2, TEST_SECRET).header);
  });
}

const timeouts = () => stats.listener('main').handshakeFailures.get('MTP_ERR_HANDSHAKE_TIMEOUT') ?? 0;

it('a replay check never answered: the handshake deadline closes the client', async () => {
  answerReplay = null;
  assert.equal(await connectWithHeader(), 0);
  assert.equal(timeouts(), 1);
  assert.equal(stats.listener('main').connectionsActive, 0);
});

it('an admission answered after the deadline is released, and no upstream is opened', async () => {
  answerReplay = false;
  assert.equal(await connectWithHeader(), 0);
  assert.equal(timeouts(), 2);
  assert.equal(heldAdmissions.length, 1);
  heldAdmissions[0]({ ok: true, ticket: { release: () => void releases++ } });
  await new Promise((r) => setImmediate(r));
  assert.equal(releases, 1);
  assert.equal(dc.connections.length, 0);
});
