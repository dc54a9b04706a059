/**
 * .ci/run starts from a clean machine: whatever it installs must not stop at a question.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../.ci/run', import.meta.url));
const text = readFileSync(script, 'utf8');

describe('.ci/run', () => {
  it('passes bash -n', () => {
    const r = spawnSync('bash', ['-n', script]);
    assert.equal(r.status, 0, String(r.stderr));
  });

  it('runs apt-get non-interactively and quietly', () => {
    const calls = [...text.matchAll(/\bapt-get\s+((?:update|install|upgrade)\b[^&|;\n]*)/g)].map((m) => m[1]);
    assert.ok(calls.length > 0);
    assert.match(text, /^\s*(export\s+)?DEBIAN_FRONTEND=noninteractive\b/m);
    for (const args of calls) {
      assert.match(args, /(^|\s)-q\b/, `apt-get ${args}`);
      if (/\binstall\b/.test(args)) assert.match(args, /(^|\s)-y\b/, `apt-get ${args}`);
    }
  });
});
