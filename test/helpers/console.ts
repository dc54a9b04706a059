/**
 * A real proxy with its admin API and web console on loopback, a fake DC behind it, a state folder for
 * users, and the raw HTTP the console tests need (every header under the test's control).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { logger } from '../../src/log.ts';
import { Stats } from '../../src/metrics/stats.ts';
import { ProxyServer } from '../../src/server/proxy.ts';
import { FakeDc } from './fake-dc.ts';
import { TEST_SECRET_HEX } from './proxy.ts';
import { raw } from './raw-http.ts';

export { type RawAnswer, raw } from './raw-http.ts';

export const CONSOLE_TOKEN = 'console-admin-token-5f2c9a71d3e8';
/** The secret of a user defined in the config file. */
export const FILED_SECRET = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';

export interface ConsoleProxy {
  proxy: ProxyServer;
  dc: FakeDc;
  /** http://127.0.0.1:PORT of the admin server */
  base: string;
  /** The proxy listener's port. */
  port: number;
  /** The config it runs, as TOML. */
  toml: string;
  stop(): Promise<void>;
}

export async function startConsoleProxy(stateDir: string, extra = ''): Promise<ConsoleProxy> {
  const dc = await FakeDc.start({ keepFrames: 10 });
  const toml = `state_dir = "${stateDir}"
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${TEST_SECRET_HEX}"
tls_domain = "example.com"

[[users]]
name = "filed"
secret = "${FILED_SECRET}"
quota = "1GB"

[[policies]]
rule = "not_in_table"
key = "client_ipv4"
table = "blocked"

[upstream]
mode = "direct"
[upstream.dc]
${[1, 2, 3, 4, 5].map((id) => `${id} = ["127.0.0.1:${dc.port}"]`).join('\n')}

[admin]
listen = "127.0.0.1:0"
token = "${CONSOLE_TOKEN}"
${extra}

[log]
level = "silent"
`;
  const log = logger.child({ test: true });
  log.level = process.env.MTP_TEST_LOG ?? 'silent';
  // On disk too, so that a reload (POST /reload) has a file to read.
  const file = join(stateDir, 'mtproxy.toml');
  writeFileSync(file, toml);
  const proxy = new ProxyServer(parseConfig(toml, { file }), {
    log,
    stats: new Stats(),
  });
  await proxy.start();
  return {
    proxy,
    dc,
    base: `http://127.0.0.1:${proxy.operations!.adminAddress()!.port}`,
    port: proxy.address('main').port,
    toml,
    stop: async () => {
      await proxy.stop(0);
      await dc.stop();
    },
  };
}

/** Headers a browser sends on a same-origin fetch from the console's page. */
export function sameOrigin(base: string): Record<string, string> {
  return { origin: base, 'sec-fetch-site': 'same-origin' };
}

export interface SignedIn {
  cookie: string;
  csrf: string;
  setCookie: string;
}

/** Sign in with the form the sign-in page posts; returns the cookie and the page's CSRF token. */
export async function signIn(base: string, token = CONSOLE_TOKEN): Promise<SignedIn> {
  const res = await raw(
    base,
    'POST',
    '/console/sign-in',
    { ...sameOrigin(base), 'content-type': 'application/x-www-form-urlencoded' },
    new URLSearchParams({ token }).toString(),
  );
  if (res.status !== 303) throw new Error(`sign-in answered ${res.status}: ${res.body}`);
  const setCookie = String(res.headers['set-cookie']?.[0] ?? '');
  const cookie = setCookie.split(';')[0];
  const session = await raw(base, 'GET', '/console/api/session', { cookie, ...sameOrigin(base) });
  return { cookie, csrf: JSON.parse(session.body).csrf, setCookie };
}
