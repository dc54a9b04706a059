import assert from 'node:assert/strict';
import test from 'node:test';
import { SerialQueue } from '../../src/runtime/serial.ts';

test('tasks run one at a time in queue order; a failure reaches its caller only and the next task runs', async () => {
  const queue = new SerialQueue();
  const log: string[] = [];
  let running = 0;
  const task =
    (name: string, fail = false) =>
    async () => {
      running++;
      assert.equal(running, 1, 'tasks overlap');
      log.push(`start ${name}`);
      await new Promise<void>((resolve) => setImmediate(resolve));
      log.push(`end ${name}`);
      running--;
      if (fail) throw new Error(name);
      return name;
    };
  const a = queue.run(task('a'));
  const b = queue.run(task('b', true));
  const c = queue.run(task('c'));
  assert.equal(await a, 'a');
  await assert.rejects(b, /b/);
  assert.equal(await c, 'c');
  assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
});
