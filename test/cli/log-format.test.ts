/** `log.format` in a running proxy, with worker threads (each worker has its own logger). */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { suiteTempDir } from '../helpers/temp-dir.ts';
import { SECRET, start, waitForOutput } from './spawn-cli.ts';

describe('log.format', () => {
  const dir = suiteTempDir('mtproxy-logfmt-');

  for (const format of ['json', 'pretty'] as const) {
    test(`${format}: the start-up log lines`, async () => {
      const cwd = await mkdtemp(path.join(dir(), `${format}-`));
      const file = path.join(cwd, 'mtproxy.toml');
      await writeFile(
        file,
        `workers = 2\nworker_mode = "threads"\n[[listeners]]\nhost = "127.0.0.1"\nport = 0\nsecret = "${SECRET}"\n` +
          `allowed_protocols = ["secure"]\n[log]\nformat = "${format}"\n`,
      );
      const child = start(['run', '--config', file], cwd);
      try {
        const out = await waitForOutput(
          child,
          /Proxy links for listener "main"[\s\S]*https:\/\/t\.me\/proxy/,
        );
        const logLines = out.split('\n').filter((l) => /listening/.test(l));
        assert.ok(logLines.length > 0, out);
        for (const line of logLines) {
          if (format === 'json') assert.equal((JSON.parse(line) as { level: string }).level, 'info');
          else assert.match(line, /^\d\d:\d\d:\d\d INFO  \S/);
        }
      } finally {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    });
  }
});
