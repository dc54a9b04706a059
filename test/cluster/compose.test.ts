/**
 * deploy/cluster/compose.yaml, the three-node fleet with Redis, read as Docker would read it (Docker does not
 * run here): every node runs the same image with the same config, a name and a state volume of its own, and
 * a port of its own; Redis is reachable only on the fleet's network, with the password the config uses; the
 * config is one `mtproxy run` accepts, clustered on that Redis.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.ts';
import { parseYamlSubset, type YamlValue } from '../helpers/yaml-subset.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dir = join(repo, 'deploy/cluster');

type Obj = { [key: string]: YamlValue };
const obj = (v: YamlValue | undefined, what: string): Obj => {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} is a mapping`);
  return v as Obj;
};
const list = (v: YamlValue | undefined, what: string): YamlValue[] => {
  assert.ok(Array.isArray(v), `${what} is a list`);
  return v;
};

describe('the YAML subset reader', () => {
  it('reads mappings, sequences, quoted and flow scalars, and refuses what it does not know', () => {
    assert.deepEqual(
      parseYamlSubset(
        'a: 1 # note\nb:\n  - "x # y"\n  - k: v\n    l: [p, "q"]\nc: {}\nd:\n- e\nf: \'it\'\'s\'\n',
      ),
      { a: 1, b: ['x # y', { k: 'v', l: ['p', 'q'] }], c: {}, d: ['e'], f: "it's" },
    );
    for (const bad of ['a: 1\na: 2\n', 'a:\n\t- b\n', 'a: &x 1\n', 'a: |\n  text\n', 'a: 1\n   b: 2\n']) {
      assert.throws(() => parseYamlSubset(bad), /line \d+/, bad);
    }
  });

  it('reads the single-node compose.yaml too', () => {
    const doc = obj(parseYamlSubset(readFileSync(join(repo, 'compose.yaml'), 'utf8')), 'compose.yaml');
    assert.ok(obj(doc.services, 'services').mtproxy);
  });
});

describe('deploy/cluster/compose.yaml', () => {
  const compose = obj(parseYamlSubset(readFileSync(join(dir, 'compose.yaml'), 'utf8')), 'the file');
  const services = obj(compose.services, 'services');
  const nodes = Object.keys(services).filter((n) => n !== 'redis');
  const redis = obj(services.redis, 'redis');
  const configText = readFileSync(join(dir, 'mtproxy.toml'), 'utf8');
  const config = parseConfig(configText);
  const command = list(redis.command, 'redis command').map(String);
  const password = command[command.indexOf('--requirepass') + 1];

  it('has Redis and three nodes of one image', () => {
    assert.deepEqual(nodes, ['node-1', 'node-2', 'node-3']);
    assert.match(String(redis.image), /^(redis|valkey\/valkey):/);
    for (const n of nodes) {
      const s = obj(services[n], n);
      assert.equal(s.image, 'mtproxy:latest');
      assert.equal(s.build, '../..');
      assert.deepEqual(s.depends_on, ['redis']);
      assert.equal(s.restart, 'unless-stopped');
      assert.match(String(obj(s.environment, `${n} environment`).MTP_SECRET), /\$\{MTP_SECRET:\?/);
    }
  });

  it('gives every node its own name, state volume and host port, and the same config', () => {
    const names = new Set<string>();
    const stateVolumes = new Set<string>();
    const hostPorts = new Set<string>();
    const listenPort = config.listeners[0].port;
    for (const n of nodes) {
      const s = obj(services[n], n);
      names.add(String(s.hostname));
      const volumes = list(s.volumes, `${n} volumes`).map(String);
      assert.ok(volumes.includes('./mtproxy.toml:/etc/mtproxy/mtproxy.toml:ro'), `${n} mounts the config`);
      const state = volumes.find((v) => v.endsWith(':/var/lib/mtproxy'));
      assert.ok(state, `${n} keeps its state in a volume`);
      stateVolumes.add(state.split(':')[0]);
      for (const p of list(s.ports, `${n} ports`).map(String)) {
        const [host, container] = p.split(':');
        assert.equal(Number(container), listenPort, `${n} publishes the listener port`);
        hostPorts.add(host);
      }
      assert.deepEqual(list(s.networks, `${n} networks`), ['fleet', 'outside']);
    }
    assert.equal(names.size, 3);
    assert.equal(stateVolumes.size, 3);
    assert.equal(hostPorts.size, 3);
    const declared = obj(compose.volumes, 'volumes');
    for (const v of [...stateVolumes, 'redis-data']) assert.ok(v in declared, `volume ${v} declared`);
  });

  it('keeps Redis on the internal network, persistent and password-protected', () => {
    assert.equal(redis.ports, undefined, 'Redis is not published');
    assert.deepEqual(redis.networks, ['fleet']);
    assert.equal(obj(obj(compose.networks, 'networks').fleet, 'fleet').internal, true);
    assert.ok(list(redis.volumes, 'redis volumes').includes('redis-data:/data'));
    assert.equal(command[command.indexOf('--appendonly') + 1], 'yes');
    assert.ok(password && password.length >= 12);
  });

  it('the config clusters every node on that Redis, named by its host name', () => {
    const url = new URL(config.cluster.redis ?? '');
    assert.equal(url.hostname, 'redis');
    assert.equal(url.port, '6379');
    assert.equal(decodeURIComponent(url.password), password);
    assert.equal(config.cluster.role, 'both');
    assert.doesNotMatch(configText, /^node_name/m);
    assert.ok(config.admin.listen !== null, 'status --cluster works inside a container');
  });
});
