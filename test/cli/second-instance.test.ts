/**
 * A second `mtproxy run` on a port the first one serves refuses to start with one line naming the first one's
 * pid, whatever the worker mode (worker threads bind with SO_REUSEPORT, which would otherwise let the second
 * bind beside the first); the first keeps serving and reloading.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { type Result, SECRET, start, waitForOutput } from './spawn-cli.ts';

function listener(name: string, port: number): string {
  return `[[listeners]]\nname = "${name}"\nhost = "127.0.0.1"\nport = ${port}\nsecret = "${SECRET}"\nallowed_protocols = ["classic"]\n`;
}

/** Runs the CLI to its end; one that keeps running (a second proxy that did start) is stopped after a while. */
async function runToEnd(args: string[], cwd: string, env: Record<string, string>): Promise<Result> {
  const child = start(args, cwd, env);
  const stray = setTimeout(() => child.kill('SIGKILL'), 20_000);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(stray);
  return { code, stdout, stderr };
}

const MODES: Array<{ workers: string; mode: string }> = [
  { workers: '1', mode: 'auto' },
  { workers: '2', mode: 'threads' },
  { workers: '2', mode: 'processes' },
];

describe('a second instance on the same port', () => {
  const dir = suiteTempDir('mtproxy-second-');

  for (const { workers, mode } of MODES) {
    test(`refuses to start with one line naming the first one's pid (${workers} worker(s), ${mode})`, async (t) => {
      const cwd = await mkdtemp(path.join(dir(), 'twice-'));
      const file = path.join(cwd, 'mtproxy.toml');
      const port = await freePort();
      await writeFile(file, `${listener('main', port)}[upstream]\nmode = "direct"\n`);
      const env = { MTP_WORKERS: workers, MTP_WORKER_MODE: mode };
      const first = start(['--config', file], cwd, env);
      t.after(() => first.kill('SIGKILL'));
      await waitForOutput(first, /tg:\/\/proxy\S*\n/);

      const second = await runToEnd(['--config', file], cwd, env);
      assert.equal(
        second.stderr,
        `mtproxy: listeners[0].port: 127.0.0.1:${port} is already in use by another mtproxy (pid ${first.pid})\n`,
      );
      assert.equal(second.code, 1);

      // The first one still accepts, and a reload that adds a listener still binds.
      const client = net.connect({ host: '127.0.0.1', port });
      client.on('error', () => {});
      await once(client, 'connect');
      client.destroy();
      const extra = await freePort();
      await writeFile(
        file,
        `${listener('main', port)}${listener('extra', extra)}[upstream]\nmode = "direct"\n`,
      );
      const reloaded = waitForOutput(first, new RegExp(`port=${extra}&`));
      first.kill('SIGHUP');
      await reloaded;
      const toExtra = net.connect({ host: '127.0.0.1', port: extra });
      toExtra.on('error', () => {});
      await once(toExtra, 'connect');
      toExtra.destroy();
      first.kill('SIGTERM');
      assert.equal((await once(first, 'exit'))[0], 0);
    });
  }

  test('with worker threads, a reload onto a port another instance serves is refused and changes nothing', async (t) => {
    const env = { MTP_WORKERS: '2', MTP_WORKER_MODE: 'threads' };
    const [portA, portB] = [await freePort(), await freePort()];
    const cwdA = await mkdtemp(path.join(dir(), 'reload-a-'));
    const cwdB = await mkdtemp(path.join(dir(), 'reload-b-'));
    const fileA = path.join(cwdA, 'mtproxy.toml');
    const fileB = path.join(cwdB, 'mtproxy.toml');
    await writeFile(fileA, `${listener('main', portA)}[upstream]\nmode = "direct"\n`);
    await writeFile(fileB, `${listener('main', portB)}[upstream]\nmode = "direct"\n`);
    const a = start(['--config', fileA], cwdA, env);
    t.after(() => a.kill('SIGKILL'));
    const b = start(['--config', fileB], cwdB, env);
    t.after(() => b.kill('SIGKILL'));
    await Promise.all([waitForOutput(a, /tg:\/\/proxy\S*\n/), waitForOutput(b, /tg:\/\/proxy\S*\n/)]);

    await writeFile(
      fileA,
      `${listener('main', portA)}${listener('extra', portB)}[upstream]\nmode = "direct"\n`,
    );
    // The answer to the reload: a line on stderr (refused), or the log saying it applied, or the exit.
    let logA = '';
    a.stdout!.on('data', (d) => (logA += d));
    const refused = new Promise<string>((resolve) => {
      let text = '';
      a.stderr!.on('data', (d) => {
        text += d;
        if (text.includes('\n')) resolve(text);
      });
      a.stdout!.on('data', () => {
        if (/configuration applied/.test(logA)) resolve(`applied: ${logA}`);
      });
      a.once('exit', (code, signal) => resolve(`exited (${code ?? signal}): ${text}${logA}`));
    });
    a.kill('SIGHUP');
    const stderrA = await refused;
    assert.equal(
      stderrA,
      `mtproxy: reload refused: listeners[1].port: 127.0.0.1:${portB} is already in use by another mtproxy (pid ${b.pid})\n`,
    );
    // Both keep serving their own port.
    for (const port of [portA, portB]) {
      const client = net.connect({ host: '127.0.0.1', port });
      client.on('error', () => {});
      await once(client, 'connect');
      client.destroy();
    }
    const exits = [once(a, 'exit'), once(b, 'exit')];
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    assert.deepEqual(
      (await Promise.all(exits)).map(([code]) => code),
      [0, 0],
    );
  });

  test('with worker threads, of two instances started at the same moment exactly one runs', async (t) => {
    const env = { MTP_WORKERS: '2', MTP_WORKER_MODE: 'threads' };
    const port = await freePort();
    const cwd = await mkdtemp(path.join(dir(), 'together-'));
    const file = path.join(cwd, 'mtproxy.toml');
    await writeFile(file, `${listener('main', port)}[upstream]\nmode = "direct"\n`);
    const children = [start(['--config', file], cwd, env), start(['--config', file], cwd, env)];
    for (const c of children) t.after(() => c.kill('SIGKILL'));
    // Each one either prints its links or ends with one line.
    const outcomes = await Promise.all(
      children.map(
        (c) =>
          new Promise<string>((resolve) => {
            let stdout = '';
            let stderr = '';
            c.stdout!.on('data', (d) => {
              stdout += d;
              if (/tg:\/\/proxy\S*\n/.test(stdout)) resolve('running');
            });
            c.stderr!.on('data', (d) => (stderr += d));
            c.once('exit', (code) => resolve(`exit ${code}: ${stderr}`));
          }),
      ),
    );
    const running = outcomes.filter((o) => o === 'running');
    const refused = outcomes.filter((o) => o !== 'running');
    assert.equal(running.length, 1, outcomes.join('\n'));
    assert.match(
      refused[0],
      new RegExp(
        `^exit 1: mtproxy: listeners\\[0\\]\\.port: 127\\.0\\.0\\.1:${port} is (already in use by another mtproxy \\(pid \\d+\\)|being taken by another mtproxy starting at the same time)\\n$`,
      ),
    );
  });
});
