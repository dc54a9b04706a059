/**
 * Figure: proxy CPU per new session with 1, 100, 1,000 and 10,000 users, obfuscated2 and fake-TLS. The
 * protocols carry no key id, so the proxy must find which user's secret opened a handshake. Measured in
 * one process on the code the session runs (the handshake functions and the user registry), per session:
 *
 *   scan        the old way: every secret tried in turn until one fits (obfuscated2: a full header parse
 *               that throws for each wrong secret; fake-TLS: one HMAC per secret); the client's secret is
 *               the last one (the worst case)
 *   probe       obfuscated2, an unknown address: the cheap per-secret probe, still every secret
 *   own-domain  fake-TLS, an unknown address, the user has a cover domain of its own (its link names it):
 *               the session's handshake finds the user by the hello's SNI
 *   hint        a returning address: its last user's secret first (how clients reconnect), through the
 *               session's own handshake function for fake-TLS
 */
import { randomBytes } from 'node:crypto';
import { buildClientHello } from '../src/client/tls-hello.ts';
import { parseConfig } from '../src/config/load.ts';
import { createInitiatorHeader, parseClientHeader } from '../src/protocol/obfuscated2.ts';
import { tryFakeTlsHandshake } from '../src/session/fake-tls-handshake.ts';
import { fakeTlsHandshake } from '../src/session/handshake.ts';
import { findHeaderSecret } from '../src/users/match.ts';
import { UserRegistry } from '../src/users/registry.ts';

export interface HandshakeFigure {
  users: number;
  protocol: 'obfuscated2' | 'fake-tls';
  way: 'scan' | 'probe' | 'own-domain' | 'hint';
  cpuUsPerSession: number;
}

function cpuUs(run: () => void, iterations: number): number {
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / iterations;
}

function registryWith(n: number): { users: UserRegistry; config: ReturnType<typeof parseConfig> } {
  const lines = [
    '[[listeners]]',
    'port = 0',
    `secret = "${randomBytes(16).toString('hex')}"`,
    'tls_domains = ["example.com"]',
  ];
  for (let i = 0; i < n; i++)
    lines.push(
      '[[users]]',
      `name = "u${i}"`,
      `secret = "${randomBytes(16).toString('hex')}"`,
      `tls_domains = ["u${i}.example.com"]`,
    );
  const config = parseConfig(lines.join('\n'));
  const users = new UserRegistry();
  users.applyConfig(config);
  return { users, config };
}

export function measureUserHandshakes(counts: number[], budget = 20_000): HandshakeFigure[] {
  const out: HandshakeFigure[] = [];
  for (const n of counts) {
    const { users, config } = registryWith(n);
    const l = config.listeners[0];
    const secrets = users.secretsFor(l);
    const last = secrets[secrets.length - 1];
    const user = users.bySecret(last)!;
    // Enough repetitions for a stable figure, fewer for the big scans; the constant-time ways always many.
    const iterations = Math.max(3, Math.min(2000, Math.floor(budget / n)));
    const many = Math.max(3, Math.min(2000, budget));
    const headers = Array.from({ length: 64 }, () => createInitiatorHeader('padded', 2, last).header);
    let k = 0;
    const o2 = (way: HandshakeFigure['way'], run: () => void, times = iterations) =>
      out.push({ users: n, protocol: 'obfuscated2', way, cpuUsPerSession: cpuUs(run, times) });
    o2('scan', () => {
      const h = headers[k++ & 63];
      for (const s of secrets) {
        try {
          parseClientHeader(h, s);
          break;
        } catch {
          // next
        }
      }
    });
    o2('probe', () => {
      const h = headers[k++ & 63];
      parseClientHeader(h, findHeaderSecret(h, secrets, null)!);
    });
    users.noteMatch('192.0.2.1', user);
    o2(
      'hint',
      () => {
        const h = headers[k++ & 63];
        parseClientHeader(h, findHeaderSecret(h, secrets, users.hintFor('192.0.2.1', l))!);
      },
      many,
    );

    const now = Date.now();
    const helloFor = (domain: string) =>
      Array.from({ length: 16 }, () =>
        buildClientHello({ shape: 'modern', secret: last, domain, unixTime: Math.floor(now / 1000) }),
      );
    const shared = helloFor('example.com');
    const own = helloFor(`u${n - 1}.example.com`);
    const tls = (way: HandshakeFigure['way'], run: () => void, times = iterations) =>
      out.push({ users: n, protocol: 'fake-tls', way, cpuUsPerSession: cpuUs(run, times) });
    const check = (r: ReturnType<typeof tryFakeTlsHandshake>, what: string) => {
      if (r.kind !== 'ok') throw new Error(`fake-TLS ${what} failed: ${r.kind}`);
    };
    tls('scan', () => check(tryFakeTlsHandshake(shared[k++ & 15], l, now, secrets), 'scan'));
    // A new address each time (no hint): the session's handshake, SNI naming the user's own domain.
    tls(
      'own-domain',
      () => check(fakeTlsHandshake(own[k++ & 15], l, users, { remoteAddress: '' }, now), 'own domain'),
      many,
    );
    tls(
      'hint',
      () => check(fakeTlsHandshake(shared[k++ & 15], l, users, { remoteAddress: '192.0.2.1' }, now), 'hint'),
      many,
    );
  }
  return out;
}

if (import.meta.main) {
  const counts = (process.env.BENCH_USERS ?? '1,100,1000,10000').split(',').map(Number);
  const rows = measureUserHandshakes(counts, Number(process.env.BENCH_USERS_BUDGET ?? 200_000));
  console.log('| users | protocol | way | proxy CPU per session (µs) |');
  console.log('|---:|---|---|---:|');
  for (const r of rows)
    console.log(`| ${r.users} | ${r.protocol} | ${r.way} | ${r.cpuUsPerSession.toFixed(1)} |`);
}
