/**
 * Progress notes for slow steps: nothing for quick ones, one line (or an in-place line on a terminal) for
 * slow ones, erased before results.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Progress } from '../../src/tools/progress.ts';

/** Waits for the first note (a timer on a busy machine may fire late: no fixed sleep decides the outcome). */
async function firstNote(written: string[]): Promise<void> {
  for (let i = 0; i < 1000 && written.length === 0; i++) await sleep(10);
}

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
    await firstNote(written);
    await sleep(100); // more ticks of the 10 ms check: a second announcement would show up
    p.end('cover domain example.com');
    p.stop();
    assert.deepEqual(written, ['… still waiting for cover domain example.com\n']);
  });

  it('rewrites one line on a terminal and erases it', async () => {
    const written: string[] = [];
    const p = new Progress({ write: (t) => written.push(t), isTty: true, delayMs: 10 });
    p.start('DC 2');
    await firstNote(written);
    assert.ok(written.length >= 1);
    assert.match(written[0], /^\r\x1b\[K… DC 2 \(\d+\.\d s\)$/);
    p.clear();
    assert.equal(written[written.length - 1], '\r\x1b[K');
    p.end('DC 2');
    p.stop();
  });
});
