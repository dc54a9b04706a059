/**
 * Progress notes for slow steps: nothing for quick ones, one line (or an in-place line on a terminal) for
 * slow ones, erased before results.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Progress } from '../../src/tools/progress.ts';

describe('Progress', () => {
  it('says nothing about steps that finish quickly', async () => {
    const written: string[] = [];
    const p = new Progress({ write: (t) => written.push(t), isTty: false, delayMs: 1000 });
    p.start('quick');
    await sleep(5);
    p.end('quick');
    await sleep(50);
    p.stop();
    assert.deepEqual(written, []);
  });

  it('announces a slow step once when not on a terminal', async () => {
    const written: string[] = [];
    const p = new Progress({ write: (t) => written.push(t), isTty: false, delayMs: 40 });
    p.start('cover domain example.com');
    await sleep(200);
    p.end('cover domain example.com');
    p.stop();
    assert.deepEqual(written, ['… still waiting for cover domain example.com\n']);
  });

  it('rewrites one line on a terminal and erases it', async () => {
    const written: string[] = [];
    const p = new Progress({ write: (t) => written.push(t), isTty: true, delayMs: 10 });
    p.start('DC 2');
    await sleep(400);
    assert.ok(written.length >= 1);
    assert.match(written[0], /^\r\x1b\[K… DC 2 \(\d+\.\d s\)$/);
    p.clear();
    assert.equal(written[written.length - 1], '\r\x1b[K');
    p.end('DC 2');
    p.stop();
  });
});
