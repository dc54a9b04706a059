/**
 * Fake-TLS with many users: a hello naming a user's own cover domain is tried with that domain's owners
 * first (no scan over every user, bench/users-handshake.ts measures it); any other hello still finds its
 * user among all of them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildClientHello } from '../../src/client/tls-hello.ts';
import { parseConfig } from '../../src/config/load.ts';
import { fakeTlsHandshake } from '../../src/session/handshake.ts';
import { UserRegistry } from '../../src/users/registry.ts';

const LISTENER = '0123456789abcdef0123456789abcdef';
const secretOf = (i: number) => i.toString(16).padStart(2, '0').repeat(16);

test("a hello naming a user's own domain finds that user; other hellos fall back to every user", () => {
  const lines = ['[[listeners]]', 'port = 0', `secret = "${LISTENER}"`, 'tls_domains = ["example.com"]'];
  for (let i = 1; i <= 50; i++) {
    lines.push('[[users]]', `name = "u${i}"`, `secret = "${secretOf(i)}"`);
    // Every other user has a cover domain of its own (two share one).
    if (i % 2 === 0) lines.push(`tls_domains = ["U${Math.min(i, 40)}.Example.com"]`);
  }
  const config = parseConfig(lines.join('\n'));
  const users = new UserRegistry();
  users.applyConfig(config);
  const listener = config.listeners[0];
  const owners = users.ownDomains(listener);
  assert.equal(owners.size, 20);
  assert.equal(owners.get('u40.example.com')!.secrets.length, 6, 'u40 to u50, even ones');
  assert.equal(users.ownDomains(listener), owners, 'kept until users change');

  const now = Date.now();
  const open = (i: number, domain: string, remoteAddress = '') => {
    const hello = buildClientHello({
      shape: 'modern',
      secret: Buffer.from(secretOf(i), 'hex'),
      domain,
      unixTime: Math.floor(now / 1000),
    });
    // '' is a new address each time: no hint.
    const r = fakeTlsHandshake(hello, listener, users, { remoteAddress }, now);
    assert.equal(r.kind, 'ok', `u${i} via ${domain}`);
    if (r.kind === 'ok') assert.equal(users.bySecret(r.base)?.name, `u${i}`, `u${i} via ${domain}`);
  };
  for (const i of [2, 10, 40, 44, 50]) open(i, `u${Math.min(i, 40)}.example.com`);
  // The listener's own domain, another user's domain, a user without one: found among all users.
  open(2, 'example.com');
  open(2, 'u10.example.com');
  open(7, 'example.com');
  // A returning address: its last user first, over the listener's domains and that user's own.
  const address = '198.51.100.7';
  for (const [i, domain] of [
    [10, 'u10.example.com'],
    [10, 'u10.example.com'],
    [10, 'example.com'],
    [7, 'example.com'],
    [12, 'u12.example.com'],
    [10, 'u12.example.com'],
  ] as const)
    open(i, domain, address);
  assert.equal(users.hintUserFor(address, listener)?.name, 'u10');
});
