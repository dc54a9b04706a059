import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { discoverPublicAddress, isPublicIp, publicAddressNotes } from '../../src/config/public-address.ts';
import type { InterfaceAddress } from '../../src/runtime/interfaces.ts';

const SECRET = '0123456789abcdef0123456789abcdef';
const TAG = 'fedcba9876543210fedcba9876543210';

function config(extra = '', listener = '') {
  return parseConfig(`[[listeners]]\nsecret = "${SECRET}"\n${listener}\n${extra}`, { baseDir: tmpdir() });
}

const iface = (address: string, family: 'IPv4' | 'IPv6', internal = false): InterfaceAddress => ({
  name: internal ? 'lo' : 'eth0',
  address,
  family,
  internal,
});
const LO = [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)];
/** The benchmarking range: looks public, is not. */
const BENCHMARK_V4 = '198.18.0.1';
const noLookup = () => Promise.reject(new Error('no lookup expected'));

describe('public address for links', () => {
  test('classifies addresses', () => {
    for (const a of ['8.8.8.8', '2a00:1450:4001:82a::200e', '::ffff:8.8.4.4']) assert.ok(isPublicIp(a), a);
    for (const a of [
      '10.0.0.5',
      '192.168.1.2',
      '172.16.0.1',
      '100.64.0.1',
      '127.0.0.1',
      '::1',
      'fe80::1',
      'fd00::5',
      '169.254.1.1',
      BENCHMARK_V4,
      'nope',
    ])
      assert.ok(!isPublicIp(a), a);
  });

  test('a public IPv4 on an interface wins; a public IPv6 is reported beside it; no lookup', async () => {
    const found = await discoverPublicAddress(config(), {
      interfaces: () => [
        ...LO,
        iface('10.0.0.5', 'IPv4'),
        iface('8.8.8.8', 'IPv4'),
        iface('2a00:1450::1', 'IPv6'),
      ],
      lookup: noLookup,
    });
    assert.deepEqual(found, { host: '8.8.8.8', ipv6: '2a00:1450::1', source: 'interface' });
    const notes = publicAddressNotes(config(), found);
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, /also has the public IPv6 2a00:1450::1/);
  });

  test('behind NAT in middle mode: the IPv4 ip_lookup_url reports (a file here, the reader the middle mode uses)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mtproxy-ip-'));
    const file = path.join(dir, 'ip.txt');
    await writeFile(file, '8.8.4.4\n');
    const c = config(`[telegram]\nip_lookup_url = "${file}"\n`, `ad_tag = "${TAG}"`);
    const found = await discoverPublicAddress(c, { interfaces: () => [...LO, iface('10.0.0.5', 'IPv4')] });
    assert.deepEqual(found, { host: '8.8.4.4', ipv6: null, source: 'lookup' });
    assert.match(
      publicAddressNotes(c, found)[0]!,
      /use 8\.8\.4\.4, this server's public IPv4 as telegram\.ip_lookup_url reports/,
    );
  });

  test('direct mode never looks up; a private address is a guess, and said so', async () => {
    let asked = false;
    const c = config();
    const found = await discoverPublicAddress(c, {
      interfaces: () => [...LO, iface('10.0.0.5', 'IPv4')],
      lookup: async () => {
        asked = true;
        return '8.8.4.4';
      },
    });
    assert.equal(asked, false);
    assert.deepEqual(found, { host: '10.0.0.5', ipv6: null, source: 'guess' });
    const notes = publicAddressNotes(c, found);
    assert.match(notes[0]!, /^Warning: the links of "main" use 10\.0\.0\.5, only a guess: .*set public_host/);
  });

  test('a failed or nonsense lookup falls back to a public IPv6, then to a guess', async () => {
    const c = config('', `ad_tag = "${TAG}"`);
    const v6 = await discoverPublicAddress(c, {
      interfaces: () => [...LO, iface('10.0.0.5', 'IPv4'), iface('2a00:1450::1', 'IPv6')],
      lookup: async () => '<html>',
    });
    assert.deepEqual(v6, { host: '2a00:1450::1', ipv6: null, source: 'interface' });
    const none = await discoverPublicAddress(c, { interfaces: () => LO, lookup: noLookup });
    assert.deepEqual(none, { host: null, ipv6: null, source: 'guess' });
    assert.match(publicAddressNotes(c, none)[0]!, /use 127\.0\.0\.1, only a guess/);
  });

  test('nothing to say when every listener has public_host or a concrete address', async () => {
    const found = { host: '10.0.0.5', ipv6: null, source: 'guess' as const };
    assert.deepEqual(publicAddressNotes(config('', 'public_host = "proxy.example.net"'), found), []);
    assert.deepEqual(publicAddressNotes(config('', 'host = "127.0.0.1"'), found), []);
  });

  test('a public IPv6: the notes say the IPv6 links are printed on "::", and how to get them on 0.0.0.0', () => {
    const found = { host: '8.8.8.8', ipv6: '2a00:1450::1', source: 'interface' as const };
    assert.deepEqual(publicAddressNotes(config('', 'host = "::"'), found), [
      'This server also has the public IPv6 2a00:1450::1: the links marked IPv6 use it, for users on IPv6-only networks.',
    ]);
    assert.match(
      publicAddressNotes(config('', 'host = "0.0.0.0"'), found)[0]!,
      /listen on host = "::" for IPv6 links/,
    );
  });
});
