/**
 * The README's "Running several servers": a diagram, both halves (shared state, front and backs), the
 * failure behaviour in plain words, and only settings, commands and files that exist.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const start = readme.indexOf('\n## Running several servers\n');
const text = readme.slice(start, readme.indexOf('\n## ', start + 1));
const flat = text.replace(/\s+/g, ' ');

describe('README: Running several servers', () => {
  it('exists, with a diagram and its three parts', () => {
    assert.ok(start > 0);
    assert.match(text, /```text\n[\s\S]*Redis[\s\S]*role="front"[\s\S]*role="back"[\s\S]*```/);
    for (const h of ['### Shared state on Redis', '### When Redis is away', '### A front and its backs'])
      assert.ok(text.includes(`\n${h}\n`), h);
  });

  it('says what happens while Redis is away and when it is back', () => {
    for (const words of [
      /never stops because of it/,
      /nothing is queued while the connection is down/,
      /replays are refused from the node's own cache only/,
      /limits are counted per node/,
      /quotas keep counting/,
      /`mtproxy_cluster_redis_up` is 0/,
      /nothing counted is lost/,
      /cluster: state reconciled with Redis/,
      /silent for `node_timeout`/,
      /new sessions go to the other backs/,
    ])
      assert.match(flat, words);
  });

  it('quotes the log lines the code writes', () => {
    const sources = ['src/cluster/shared-state/client.ts', 'src/cluster/shared-state/index.ts']
      .map((f) => readFileSync(join(repo, f), 'utf8'))
      .join('\n');
    for (const m of text.matchAll(/`(cluster: [^`]+)`/g)) assert.ok(sources.includes(m[1]), m[1]);
  });

  it('every [cluster] example is a valid config', () => {
    const blocks = [...text.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.equal(blocks.length, 3);
    const listener = '[[listeners]]\nsecret = "0123456789abcdef0123456789abcdef"\n';
    for (const b of blocks) assert.doesNotThrow(() => parseConfig(`${listener}${b}`), b);
  });

  it('names the compose file, the benches and the commands', () => {
    for (const f of ['deploy/cluster/compose.yaml', 'bench/cluster-session-rate.ts', 'bench/front-back.ts'])
      assert.ok(text.includes(f) && existsSync(join(repo, f)), f);
    for (const c of ['mtproxy status --cluster', 'mtproxy cluster certs']) assert.ok(text.includes(c), c);
  });
});
