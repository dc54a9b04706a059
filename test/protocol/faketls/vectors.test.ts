import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildClientHello, signClientHello } from '../../../src/client/tls-hello.ts';
import {
  assembleClientHello,
  parseClientHello,
  selectKeyShare,
  verifyHelloDigest,
  zeroedHello,
} from '../../../src/protocol/faketls/client-hello.ts';
import { ALERT_DECODE_ERROR, ALERT_UNRECOGNIZED_NAME } from '../../../src/protocol/faketls/records.ts';
import { buildServerHello, verifyServerHelloDigest } from '../../../src/protocol/faketls/server-hello.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const secret = hex('d0d6e111bada5511fcce9584deadbeef');
const sessionId = Buffer.from([...Array(32).keys()]);

// Reference vector G: the deterministic legacy 517-byte ClientHello.
const VECTOR_G = hex(`
1603010200010001fc03036b2c5f97564215e4ced7cbf07a35cd81fab5fd4550fee803350885c65e408ef0
20000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
0022eaea130113021303c02bc02fc02cc030cca9cca8c013c014009c009d002f0035000a 0100
0191 0033002b00295a5a000100001d0020a4146c3e8573565bb5f5c877a88a98dcbbd46a9b3ca1ab3df7217cc33b4b6d2c
     002b000b0a1a1a0304030303020301
     00000010000e00000b6578616d706c652e636f6d
     0015013b ${'00'.repeat(315)}`);

const VECTOR_G_SERVER =
  hex(`160303007a 02000076 0303 404551cbab59e4464219bb680de751163ad40821351dcf8a31c99e887799bf4f
           20 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
           c02f 00 002e 0033 0024 001d 0020 1111111111111111111111111111111111111111111111111111111111111111
           002b 0002 0304
           140303000101
           1703030010 22222222222222222222222222222222`);

test('vector G: the legacy generator reproduces the reference hello byte for byte', () => {
  const hello = buildClientHello({
    shape: 'legacy',
    secret,
    domain: 'example.com',
    unixTime: 1700000000,
    sessionId,
    x25519Key: hex('a4146c3e8573565bb5f5c877a88a98dcbbd46a9b3ca1ab3df7217cc33b4b6d2c'),
    legacyGrease: [0xea, 0x5a, 0x1a],
  });
  assert.equal(VECTOR_G.length, 517);
  assert.equal(hello.toString('hex'), VECTOR_G.toString('hex'));
});

test('vector G: parse, digest, timestamp and key share selection', () => {
  const a = assembleClientHello(VECTOR_G);
  assert.equal(a.kind, 'complete');
  assert.ok(a.kind === 'complete');
  assert.equal(a.consumed, 517);
  const hello = parseClientHello(a.record);
  assert.equal(hello.sni, 'example.com');
  assert.deepEqual(hello.sessionId, sessionId);
  const zeroed = zeroedHello(a.record);
  assert.equal(verifyHelloDigest(zeroed, hello.random, secret), 1700000000);
  assert.equal(verifyHelloDigest(zeroed, hello.random, hex('00'.repeat(16))), null);
  const share = selectKeyShare(hello.keyShares ?? [], true);
  assert.equal(share?.group, 0x001d);
  assert.equal(share?.key.length, 32);
});

test('vector G: deterministic ServerHello with the server digest', () => {
  const hello = parseClientHello(VECTOR_G);
  const flight = buildServerHello({
    secret,
    clientRandom: hello.random,
    sessionId: hello.sessionId,
    cipherSuite: 0xc02f,
    keyShareGroup: 0x001d,
    keyShare: Buffer.alloc(32, 0x11),
    appData: Buffer.alloc(16, 0x22),
  });
  assert.equal(flight.length, 154);
  assert.equal(flight.toString('hex'), VECTOR_G_SERVER.toString('hex'));
  assert.ok(verifyServerHelloDigest(flight, hello.random, secret));
  assert.ok(!verifyServerHelloDigest(flight, hello.random, hex('11'.repeat(16))));
});

test('vector H: alerts', () => {
  assert.equal(ALERT_DECODE_ERROR.toString('hex'), '15030300020232');
  assert.equal(ALERT_UNRECOGNIZED_NAME.toString('hex'), '15030300020270');
});

test('signClientHello puts HMAC xor time into the random', () => {
  const hello = Buffer.from(VECTOR_G);
  signClientHello(hello, secret, 1700000000);
  assert.deepEqual(hello, VECTOR_G);
});
