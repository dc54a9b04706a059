/**
 * The handshake's steps as values: the first bytes classified, the header opened by whichever accepted secret
 * fits (a wrong one is an outcome, not an exception), the transport checked against the listener.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.ts';
import type { ListenerConfig } from '../../src/config/types.ts';
import { createInitiatorHeader, type TransportTag } from '../../src/protocol/obfuscated2.ts';
import { classifyHello, identifyHeader, transportAllowed } from '../../src/session/handshake.ts';

const SECRET_HEX = 'd0d6e111bada5511fcce9584deadbeef';
const EXTRA_HEX = '00112233445566778899aabbccddeeff';
const noPeer = { remoteAddress: '127.0.0.1' };

function listener(extra: Record<string, unknown> = {}): ListenerConfig {
  return parseConfig({
    listeners: [
      {
        name: 'main',
        host: '127.0.0.1',
        port: 0,
        secret: SECRET_HEX,
        tls_domains: ['example.com'],
        ...extra,
      },
    ],
  }).listeners[0];
}

test('the first bytes: a TLS hello only where TLS is allowed, HTTP and TLS-only refused at once', () => {
  const all = listener({ allowed_protocols: ['tls', 'secure', 'classic'] });
  const tlsOnly = listener({ allowed_protocols: ['tls'] });
  const plain = listener({ allowed_protocols: ['secure', 'classic'] });
  const tlsStart = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]);
  assert.equal(classifyHello(tlsStart.subarray(0, 2), all), 'need-more');
  assert.equal(classifyHello(tlsStart, all), 'tls');
  assert.equal(classifyHello(tlsStart, tlsOnly), 'tls');
  assert.equal(classifyHello(tlsStart, plain), 'obfuscated2');
  assert.equal(classifyHello(Buffer.from('GET / HTTP/1.1\r\n'), all), 'http');
  assert.equal(classifyHello(Buffer.from('GET / HTTP/1.1\r\n'), tlsOnly), 'tls-expected');
  assert.equal(classifyHello(randomBytes(64).fill(0x11, 0, 1), plain), 'obfuscated2');
});

test('a header opens with the listener secret or an extra one; any other secret is an outcome', () => {
  const l = listener({ secrets: [EXTRA_HEX] });
  const transports: TransportTag[] = ['abridged', 'intermediate', 'padded'];
  fc.assert(
    fc.property(
      fc.constantFrom(...transports),
      fc.integer({ min: -5, max: 5 }),
      fc.constantFrom(SECRET_HEX, EXTRA_HEX, 'ffeeddccbbaa99887766554433221100'),
      (transport, dcId, secretHex) => {
        const header = createInitiatorHeader(transport, dcId, Buffer.from(secretHex, 'hex')).header;
        const out = identifyHeader(header, l, undefined, noPeer, null);
        if (secretHex === 'ffeeddccbbaa99887766554433221100') {
          // A wrong secret decrypts the tag to one of the three by chance once in 2^30 or so.
          if (out.kind === 'fail') assert.equal(out.code, 'MTP_ERR_UNKNOWN_TRANSPORT');
          return;
        }
        assert.equal(out.kind, 'ok');
        if (out.kind !== 'ok') return;
        assert.equal(out.hs.transport, transport);
        assert.equal(out.hs.dcId, dcId);
        assert.equal(out.user, null);
      },
    ),
  );
});

test('a secret settled by fake-TLS is the only one tried', () => {
  const l = listener({ secrets: [EXTRA_HEX] });
  const header = createInitiatorHeader('padded', 2, Buffer.from(SECRET_HEX, 'hex')).header;
  assert.equal(identifyHeader(header, l, undefined, noPeer, Buffer.from(SECRET_HEX, 'hex')).kind, 'ok');
  assert.equal(identifyHeader(header, l, undefined, noPeer, Buffer.from(EXTRA_HEX, 'hex')).kind, 'fail');
  assert.equal(identifyHeader(header.subarray(0, 63), l, undefined, noPeer, null).kind, 'fail');
});

test('transports: padded inside TLS always, classic inside TLS only where classic is allowed', () => {
  const secureOnly = listener({ allowed_protocols: ['tls', 'secure'] });
  const all = listener({ allowed_protocols: ['tls', 'secure', 'classic'] });
  assert.equal(transportAllowed('padded', secureOnly, true), true);
  assert.equal(transportAllowed('abridged', secureOnly, true), false);
  assert.equal(transportAllowed('intermediate', all, true), true);
  assert.equal(transportAllowed('padded', secureOnly, false), true);
  assert.equal(transportAllowed('intermediate', secureOnly, false), false);
  assert.equal(transportAllowed('abridged', all, false), true);
});
