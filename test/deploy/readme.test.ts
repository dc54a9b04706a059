/**
 * The manual must describe what is in the repository: the generated config reference is current, every TOML
 * example is a valid config, and the commands, metrics and files it names exist.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BEGIN_MARKER,
  missingExamples,
  renderConfigReference,
  updateReadme,
} from '../../scripts/gen-config-docs.ts';
import { replaceMarkedBlock } from '../../scripts/readme-block.ts';
import { parseConfig } from '../../src/config/load.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('README', () => {
  it('the generators replace only what lies between their markers (one shared function)', () => {
    const text = 'intro\n<!-- B -->\nold\nlines\n<!-- E -->\noutro\n';
    assert.equal(
      replaceMarkedBlock(text, '<!-- B -->', '<!-- E -->', 'new'),
      'intro\n<!-- B -->\nnew\n<!-- E -->\noutro\n',
    );
    assert.throws(() => replaceMarkedBlock('no markers', '<!-- B -->', '<!-- E -->', 'x'), /markers/);
  });

  it('has a current config reference (run: node scripts/gen-config-docs.ts)', () => {
    assert.ok(readme.includes(BEGIN_MARKER));
    assert.equal(updateReadme(readme), readme);
  });

  it('documents every option, each with an example', () => {
    assert.deepEqual(missingExamples(), []);
    const reference = renderConfigReference();
    for (const key of ['`secret`', '`tls_domain`', '`fronting`', '`mode`', '`listen`', '`max_age`']) {
      assert.ok(reference.includes(key), key);
    }
  });

  it('every TOML example is a valid config', () => {
    const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.ok(blocks.length >= 2);
    const listener = '[[listeners]]\nsecret = "0123456789abcdef0123456789abcdef"\n';
    for (const block of blocks) {
      const text = block.includes('[[listeners]]') ? block : `${listener}${block}`;
      assert.doesNotThrow(() => parseConfig(text), block);
    }
  });

  it('names only commands that exist, and every command', () => {
    const table = section('Command line');
    const documented = new Set([...table.matchAll(/^\| `mtproxy ([a-z]+)/gm)].map((m) => m[1]));
    const dir = join(repo, 'src/cli/commands');
    const implemented = new Set(
      readdirSync(dir)
        .filter((f) => f.endsWith('.ts'))
        .map((f) => f.slice(0, -3)),
    );
    assert.deepEqual(
      [...documented].filter((c) => !implemented.has(c)),
      [],
      'documented but missing',
    );
    assert.deepEqual(
      [...implemented].filter((c) => !documented.has(c)),
      [],
      'implemented but undocumented',
    );
    for (const m of readme.matchAll(/`mtproxy ([a-z]+)/g))
      assert.ok(implemented.has(m[1]), `mtproxy ${m[1]}`);
  });

  it('lists exactly the metrics the registry exports', () => {
    // The registry defines most series; other modules may add gauges to it (the policy engine does).
    const registry = readdirSync(join(repo, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => readFileSync(join(repo, 'src', f), 'utf8'))
      .join('\n');
    const exported = new Set([...registry.matchAll(/['\s](mtproxy_[a-z0-9_]+)['\s:]/g)].map((m) => m[1]));
    const documented = new Set([...section('Metrics').matchAll(/`(mtproxy_[a-z0-9_]+)`/g)].map((m) => m[1]));
    assert.deepEqual(
      [...documented].filter((m) => !exported.has(m)),
      [],
      'documented but not exported',
    );
    assert.deepEqual(
      [...exported].filter((m) => !documented.has(m)),
      [],
      'exported but undocumented',
    );
  });

  it('names only admin API paths the server routes', () => {
    const server = readFileSync(join(repo, 'src/admin/server.ts'), 'utf8');
    const requests = [...section('Admin API').matchAll(/`(GET|POST|DELETE) \/([a-z]+)/g)];
    assert.ok(requests.length >= 6);
    for (const [, method, head] of requests) {
      assert.ok(server.includes(`head === '${head}'`), `/${head} is routed`);
      assert.ok(server.includes(`'${method}'`), `${method} is handled`);
    }
  });

  it('refers only to files that exist', () => {
    const paths = [
      ...readme.matchAll(/`((?:deploy|scripts|src|test|bench)\/[\w./-]+|compose\.yaml|Dockerfile)`/g),
    ].map((m) => m[1]);
    const linked = [...readme.matchAll(/\]\(([\w./-]+\.md)\)/g)].map((m) => m[1]);
    for (const p of [...paths, ...linked]) assert.ok(existsSync(join(repo, p)), p);
  });

  it('names only environment variables and flags the code reads', () => {
    const sources = [
      ...readdirSync(join(repo, 'src'), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .map((f) => readFileSync(join(repo, 'src', f), 'utf8')),
      readFileSync(join(repo, 'Dockerfile'), 'utf8'),
      readFileSync(join(repo, 'deploy/docker/entrypoint.sh'), 'utf8'),
    ].join('\n');
    for (const m of readme.matchAll(/\b(MTP_[A-Z_]+)\b/g)) assert.ok(sources.includes(m[1]), m[1]);
    for (const m of section('Command line').matchAll(/`(--[a-z-]+)/g)) {
      assert.ok(sources.includes(`'${m[1].slice(2)}'`) || sources.includes(` ${m[1].slice(2)}:`), m[1]);
    }
  });

  it('documents the installer options it has', () => {
    const installer = readFileSync(join(repo, 'scripts/install.sh'), 'utf8');
    const text = section('systemd and the installer');
    for (const m of text.matchAll(/`(--[a-z-]+)/g)) assert.ok(installer.includes(`${m[1]})`), m[1]);
  });
});
