/**
 * A front and its backs on loopback, in this process: certificates from `generateClusterCerts`, backs with
 * a link listener on port 0, a front linked to all of them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateClusterCerts } from '../../src/cluster/front-back/certs.ts';
import { startTestProxy, type TestProxy } from './proxy.ts';

export interface ClusterCerts {
  dir: string;
  /** `[cluster]` cert/key/ca lines for node `name`. */
  tomlFor(name: string): string;
  remove(): Promise<void>;
}

export async function clusterCerts(nodes: string[]): Promise<ClusterCerts> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-certs-'));
  await generateClusterCerts(dir, nodes);
  return {
    dir,
    tomlFor: (name) =>
      [
        `cert = ${JSON.stringify(path.join(dir, `${name}.crt`))}`,
        `key = ${JSON.stringify(path.join(dir, `${name}.key`))}`,
        `ca = ${JSON.stringify(path.join(dir, 'ca.crt'))}`,
      ].join('\n'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** `toml` (a whole config without [cluster]) as a back listening for links on 127.0.0.1:0. */
export async function startBack(toml: string, certs: ClusterCerts, name: string): Promise<TestProxy> {
  return startTestProxy(
    `${toml}\n[cluster]\nrole = "back"\nlink_listen = "127.0.0.1:0"\n${certs.tomlFor(name)}\n`,
  );
}

export function linkAddress(back: TestProxy): string {
  const server = back.proxy.cluster.back;
  if (server === null) throw new Error('not a back');
  return `127.0.0.1:${server.address().port}`;
}

/** `toml` as a front of `backs`. */
export async function startFront(
  toml: string,
  certs: ClusterCerts,
  name: string,
  backs: string[],
): Promise<TestProxy> {
  return startTestProxy(
    `${toml}\n[cluster]\nrole = "front"\nbacks = ${JSON.stringify(backs)}\n${certs.tomlFor(name)}\n`,
  );
}

export async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
