// The engine over a counter store in another process: acquiring answers with a Promise.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicyKey } from '../../src/config/policy-keys.ts';
import type { PolicyRule } from '../../src/config/types.ts';
import { LocalCounterStore, type RemoteCounterStore } from '../../src/policy/counters.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import { PolicyTables } from '../../src/policy/tables.ts';

function maxConn(keys: string[], limit: number): PolicyRule {
  return { rule: 'max_connections', keys: keys.map(parsePolicyKey), limit, raw: '' };
}

/** A local store answered on a later tick, like one asked over IPC. */
class LateStore implements RemoteCounterStore {
  readonly local = new LocalCounterStore();
  fail = false;
  tryAcquire(key: string, limit: number): Promise<boolean> {
    return new Promise((resolve, reject) =>
      setImmediate(() =>
        this.fail ? reject(new Error('gone')) : resolve(this.local.tryAcquire(key, limit)),
      ),
    );
  }
  release(key: string): void {
    this.local.release(key);
  }
  get(key: string): number {
    return this.local.get(key);
  }
}

const subject = (remoteAddress: string) => ({ listener: 'main', remoteAddress, tlsDomain: null });

test('rules after a late counter run once it answers; a refusal gives back what was taken', async () => {
  const counters = new LateStore();
  const rules = [maxConn(['listener'], 3), maxConn(['client_ipv4'], 1)];
  const engine = new PolicyEngine({ rules, tables: new PolicyTables(null), counters });
  const pending = engine.admit(subject('10.0.0.1'));
  assert.ok(pending instanceof Promise);
  const first = await pending;
  assert.ok(first.ok);
  assert.equal(counters.local.total(), 2);
  const second = await engine.admit(subject('10.0.0.1'));
  assert.deepEqual(second.ok, false);
  assert.equal(counters.local.total(), 2, 'the listener slot of the refused client was given back');
  first.ticket.release();
  assert.equal(counters.local.total(), 0);
  assert.equal(engine.outstanding, 0);
});

test('a failed answer rejects the admission and keeps nothing', async () => {
  const counters = new LateStore();
  const engine = new PolicyEngine({
    rules: [maxConn(['listener'], 3), maxConn(['client_ipv4'], 3)],
    tables: new PolicyTables(null),
    counters,
  });
  const first = engine.admit(subject('10.0.0.1'));
  setImmediate(() => (counters.fail = true));
  await assert.rejects(first as Promise<unknown>, /gone/);
  assert.equal(counters.local.total(), 0);
  assert.equal(engine.outstanding, 0);
});

test('with a synchronous store admit stays synchronous', () => {
  const engine = new PolicyEngine({ rules: [maxConn(['listener'], 1)], tables: new PolicyTables(null) });
  const d = engine.admit(subject('10.0.0.1'));
  assert.equal(d instanceof Promise, false);
  assert.ok(d.ok);
});
