// Worker processes (node:cluster): the fallback where SO_REUSEPORT is missing, chosen here by "auto" with a
// probe that says it is missing, so the suite runs the same way on every OS.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseWorkerKind } from '../../src/workers/supervisor.ts';
import { processExecArgv } from '../../src/workers/transport.ts';
import { describeSupervisor } from './supervisor-suite.ts';

const noReusePort = async () => false;

describe('worker kind', () => {
  it('auto picks processes where SO_REUSEPORT is missing, threads where it works', () => {
    assert.deepEqual(chooseWorkerKind('auto', 2, false), { kind: 'processes', workers: 2 });
    assert.deepEqual(chooseWorkerKind('auto', 2, true), { kind: 'threads', workers: 2 });
    assert.deepEqual(chooseWorkerKind('processes', 2, true), { kind: 'processes', workers: 2 });
    // Threads asked for explicitly cannot share a port without SO_REUSEPORT: one thread.
    assert.deepEqual(chooseWorkerKind('threads', 4, false), { kind: 'threads', workers: 1 });
  });

  it('worker processes get the young-generation cap and none of the test runner flags', () => {
    const args = processExecArgv(['--test-isolation=process', '--stack-trace-limit=10', '--watch-path=x']);
    assert.ok(args.includes('--stack-trace-limit=10'));
    assert.ok(!args.some((a) => a.startsWith('--test') || a.startsWith('--watch')));
    assert.ok(args.includes('--max-semi-space-size=8') || /semi.space/.test(process.env.NODE_OPTIONS ?? ''));
  });
});

describeSupervisor({
  title: 'worker supervisor (2 worker processes, connections handed out by the primary)',
  workerMode: 'auto',
  expectKind: 'processes',
  supervisorOptions: { reusePortSupported: noReusePort },
});
