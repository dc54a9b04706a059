import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isValidTableName, PolicyTables, retryWhileLocked } from '../../src/policy/tables.ts';

const dir = mkdtempSync(join(tmpdir(), 'mtproxy-tables-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('add / remove / list in memory', () => {
  const t = new PolicyTables(null);
  assert.equal(t.add('blocked', '1.2.3.4'), true);
  assert.equal(t.add('blocked', '1.2.3.4'), false);
  assert.equal(t.add('blocked', '1.2.3.3'), true);
  assert.equal(t.has('blocked', '1.2.3.4'), true);
  assert.equal(t.has('other', '1.2.3.4'), false);
  assert.deepEqual(t.list('blocked'), ['1.2.3.3', '1.2.3.4']);
  assert.deepEqual(t.summaries(), [{ name: 'blocked', size: 2 }]);
  assert.equal(t.remove('blocked', '1.2.3.4'), true);
  assert.equal(t.remove('blocked', '1.2.3.4'), false);
  assert.equal(t.remove('missing', 'x'), false);
  assert.deepEqual(t.list('missing'), []);
  t.close();
});

test('tables persist across a reopen of the state folder', () => {
  const state = join(dir, 'state', 'nested');
  const first = new PolicyTables(state);
  first.add('blocked', '203.0.113.1');
  first.add('blocked', '203.0.113.2');
  first.add('customers', 'a.example');
  first.remove('blocked', '203.0.113.2');
  first.close();

  const second = new PolicyTables(state);
  assert.equal(second.has('blocked', '203.0.113.1'), true);
  assert.equal(second.has('blocked', '203.0.113.2'), false);
  assert.deepEqual(second.summaries(), [
    { name: 'blocked', size: 1 },
    { name: 'customers', size: 1 },
  ]);
  second.close();
});

test('refresh picks up edits made through another handle', () => {
  const state = join(dir, 'shared');
  const a = new PolicyTables(state);
  const b = new PolicyTables(state);
  a.add('t', 'x.example');
  assert.equal(b.has('t', 'x.example'), false);
  b.refresh();
  assert.equal(b.has('t', 'x.example'), true);
  a.close();
  b.close();
});

test('table names are restricted', () => {
  assert.equal(isValidTableName('ip_blacklist-2.v4'), true);
  for (const bad of ['', 'a b', 'a/b', 'x'.repeat(65), '../x'])
    assert.equal(isValidTableName(bad), false, bad);
  const t = new PolicyTables(null);
  assert.throws(() => t.add('a b', 'x'), RangeError);
  t.close();
});

test('set-up steps are retried while the database is locked, other errors are not', () => {
  let calls = 0;
  const value = retryWhileLocked(() => {
    if (++calls < 3) throw new Error('database is locked');
    return 'ready';
  });
  assert.equal(value, 'ready');
  assert.equal(calls, 3);
  calls = 0;
  assert.throws(
    () =>
      retryWhileLocked(() => {
        calls++;
        throw new Error('no such table: x');
      }),
    /no such table/,
  );
  assert.equal(calls, 1);
  assert.throws(
    () =>
      retryWhileLocked(() => {
        throw new Error('database is locked');
      }, 50),
    /locked/,
  );
});

test('several processes creating the same tables database at once all open it', async () => {
  const state = join(dir, 'race');
  const tablesModule = new URL('../../src/policy/tables.ts', import.meta.url).href;
  const script = `import { PolicyTables } from ${JSON.stringify(tablesModule)};
const t = new PolicyTables(process.argv[1]); t.add('race', String(process.pid)); t.close();`;
  const runs = Array.from(
    { length: 6 },
    () =>
      new Promise<number>((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, state], {
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        child.on('exit', (code) => resolve(code ?? 1));
      }),
  );
  assert.deepEqual(await Promise.all(runs), [0, 0, 0, 0, 0, 0]);
  const t = new PolicyTables(state);
  assert.equal(t.list('race').length, 6);
  t.close();
});
