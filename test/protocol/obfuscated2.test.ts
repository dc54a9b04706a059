import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isProtocolError } from '../../src/protocol/errors.ts';
import {
  createInitiatorHeader,
  deriveKeys,
  parseClientHeader,
  type TransportTag,
} from '../../src/protocol/obfuscated2.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const seq = (n: number, start = 0): Buffer =>
  Buffer.from(Array.from({ length: n }, (_, i) => (start + i) & 0xff));

describe('obfuscated2 client leg (reference vector A)', () => {
  const secret = hex('d0d6e111bada5511fcce9584deadbeef');
  // seed 00..39: header = seed[0,56) ‖ tag ‖ dc ‖ seed[56,58)
  const seed = seq(58);
  const random = Buffer.concat([seed.subarray(0, 56), Buffer.alloc(6), seed.subarray(56, 58)]);
  const expectedHeader = hex(
    '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f' +
      '202122232425262728292a2b2c2d2e2f3031323334353637a982cfef0babaf0e',
  );

  it('builds the padded, DC 2 header', () => {
    const hs = createInitiatorHeader('padded', 2, secret, random);
    assert.deepEqual(hs.header, expectedHeader);
  });

  it('derives the reference keys', () => {
    const k = deriveKeys(expectedHeader, secret);
    assert.equal(
      k.readKey.toString('hex'),
      'd50c1015be6bab8b96b04a84fa0b7dbf46a11af59ce330164e1d5b3ce51189f3',
    );
    assert.equal(k.readIv.toString('hex'), '28292a2b2c2d2e2f3031323334353637');
    assert.equal(
      k.writeKey.toString('hex'),
      '8621a0d4e044134cf109d2e854aca4e3ff7480312661bbf2183a2134378adab5',
    );
    assert.equal(k.writeIv.toString('hex'), '17161514131211100f0e0d0c0b0a0908');
  });

  it('parses the header and continues both streams as the reference does', () => {
    const server = parseClientHeader(expectedHeader, secret);
    assert.equal(server.transport, 'padded');
    assert.equal(server.dcId, 2);
    assert.deepEqual(server.replayKey, expectedHeader.subarray(8, 56));
    const plain = hex('080000000102030405060708');
    const client = createInitiatorHeader('padded', 2, secret, random);
    const fromClient = client.encrypt.update(plain);
    assert.equal(fromClient.toString('hex'), '2340908ecab9007c8b2ac5bc');
    assert.deepEqual(server.decrypt.update(fromClient), plain);
    const fromServer = server.encrypt.update(plain);
    assert.equal(fromServer.toString('hex'), '8ab4bb2a61a9b4e29fb94266');
    assert.deepEqual(client.decrypt.update(fromServer), plain);
  });

  it('matches the abridged DC -2 and intermediate DC 4 headers', () => {
    const a = createInitiatorHeader('abridged', -2, secret, random);
    assert.equal(a.header.subarray(56).toString('hex'), '9bb0fdddf754af0e');
    const pa = parseClientHeader(a.header, secret);
    assert.equal(pa.transport, 'abridged');
    assert.equal(pa.dcId, -2);
    const i = createInitiatorHeader('intermediate', 4, secret, random);
    assert.equal(i.header.subarray(56).toString('hex'), '9ab1fcdc0dabaf0e');
    const pi = parseClientHeader(i.header, secret);
    assert.equal(pi.transport, 'intermediate');
    assert.equal(pi.dcId, 4);
  });

  it('rejects the header under a different secret', () => {
    assert.throws(
      () => parseClientHeader(expectedHeader, hex('00112233445566778899aabbccddeeff')),
      (e: unknown) => isProtocolError(e) && e.code === 'MTP_ERR_UNKNOWN_TRANSPORT',
    );
  });
});

describe('obfuscated2 DC leg, no secret (direct-mode vectors)', () => {
  it('vector A: padded DC 2 and abridged DC -2', () => {
    const h = seq(64);
    const hs = createInitiatorHeader('padded', 2, null, h);
    assert.deepEqual(hs.header.subarray(0, 56), h.subarray(0, 56));
    assert.equal(hs.header.subarray(56).toString('hex'), '752b166d1c00fd5d');
    assert.equal(hs.encrypt.update(Buffer.alloc(16)).toString('hex'), '32a9c12838f1654122b190bd1da2b20b');
    assert.equal(hs.decrypt.update(Buffer.alloc(16)).toString('hex'), '2f9de370decc064095d931e30a267b69');
    const k = deriveKeys(hs.header, null);
    assert.equal(
      k.readKey.toString('hex'),
      '08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627',
    );
    assert.equal(
      k.writeKey.toString('hex'),
      '37363534333231302f2e2d2c2b2a292827262524232221201f1e1d1c1b1a1918',
    );
    assert.equal(k.writeIv.toString('hex'), '17161514131211100f0e0d0c0b0a0908');
    const media = createInitiatorHeader('abridged', -2, null, h);
    assert.equal(media.header.subarray(56).toString('hex'), '4719245fe0fffd5d');
  });

  it('vector B: the 128-bit counter carries', () => {
    const h = seq(64, 0xa0);
    hex('0011223344556677fffffffffffffffe').copy(h, 40);
    const hs = createInitiatorHeader('intermediate', 4, null, h);
    assert.equal(hs.header.subarray(56).toString('hex'), '89aaf9bc4c53cf73');
    assert.equal(hs.encrypt.update(Buffer.alloc(16)).toString('hex'), '9b90f4aa830fdbde0ba2815ce047bfd8');
    assert.equal(hs.decrypt.update(Buffer.alloc(16)).toString('hex'), '9e33a6c85d5b3f3bb444341001f5e5c9');
  });

  it('vector F: a client wire header parses to padded DC 2 with the reference keys', () => {
    const wire = hex(
      '404346494c4f5255585b5e6164676a6d707376797c7f8285888b8e9194979a9d' +
        'a0a3a6a9acafb2b5b8bbbec1c4c7cacdd0d3d6d9dcdfe2e50c8064b532f22cd4',
    );
    const s = hex('00112233445566778899aabbccddeeff');
    const p = parseClientHeader(wire, s);
    assert.equal(p.transport, 'padded');
    assert.equal(p.dcId, 2);
    const k = deriveKeys(wire, s);
    assert.equal(
      k.readKey.toString('hex'),
      '5e1976a1465542360aac67589c2b5e108c193296c7f2a7d482f98844adb0dc12',
    );
    assert.equal(
      k.writeKey.toString('hex'),
      'ceb1930110f3122ea6183eb0b1869cf60cc907c31a964f11d0d8b89f8d21d2d8',
    );
    assert.equal(k.writeIv.toString('hex'), '85827f7c797673706d6a6764615e5b58');
  });
});

const transports: TransportTag[] = ['abridged', 'intermediate', 'padded'];

describe('obfuscated2 properties', () => {
  it('initiator and receiver agree on transport, DC id and both streams', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...transports),
        fc.integer({ min: -32768, max: 32767 }),
        fc.option(fc.uint8Array({ minLength: 16, maxLength: 16 }), { nil: null }),
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        (transport, dcId, secretBytes, data) => {
          const secret = secretBytes ? Buffer.from(secretBytes) : null;
          const client = createInitiatorHeader(transport, dcId, secret);
          const payload = Buffer.from(data);
          if (secret) {
            const server = parseClientHeader(client.header, secret);
            assert.equal(server.transport, transport);
            assert.equal(server.dcId, dcId);
            assert.deepEqual(server.decrypt.update(client.encrypt.update(payload)), payload);
            assert.deepEqual(client.decrypt.update(server.encrypt.update(payload)), payload);
          } else {
            // A DC derives the raw keys from the header and decrypts all 64 bytes first.
            const k = deriveKeys(client.header, null);
            const dec = createCipheriv('aes-256-ctr', k.readKey, k.readIv);
            const plain = dec.update(client.header);
            assert.equal(plain.readInt16LE(60), dcId);
            assert.deepEqual(dec.update(client.encrypt.update(payload)), payload);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('random headers never start like another protocol', () => {
    for (let i = 0; i < 2000; i++) {
      const h = createInitiatorHeader('abridged', 2, null).header;
      assert.notEqual(h[0], 0xef);
      assert.notEqual(h.readUInt32LE(4), 0);
      const first = h.subarray(0, 4).toString('latin1');
      assert.ok(!['HEAD', 'POST', 'GET ', 'OPTI'].includes(first));
      assert.ok(![0xeeeeeeee, 0xdddddddd, 0x02010316].includes(h.readUInt32LE(0)));
    }
  });

  it('garbage headers fail only with ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 80 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (g, s) => {
          try {
            parseClientHeader(Buffer.from(g), Buffer.from(s));
          } catch (e) {
            assert.ok(isProtocolError(e), String(e));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('streams and keys agree with deriveKeys for any header and secret, each call with its own copies', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        fc.option(fc.uint8Array({ minLength: 16, maxLength: 16 }), { nil: null }),
        (random, s) => {
          const secret = s === null ? null : Buffer.from(s);
          const hs = createInitiatorHeader('padded', 3, secret, Buffer.from(random));
          const k = deriveKeys(hs.header, secret);
          const before = Object.values(k).map((b) => Buffer.from(b));
          // Another derivation in between must not change what the first one returned.
          deriveKeys(Buffer.from(random).reverse(), secret);
          assert.deepEqual(Object.values(k), before);
          const data = Buffer.from('sixteen bytes!!!');
          const sent = hs.encrypt.update(data);
          const read = createCipheriv('aes-256-ctr', k.readKey, k.readIv);
          read.update(Buffer.alloc(64));
          assert.deepEqual(read.update(data), sent);
          const back = createCipheriv('aes-256-ctr', k.writeKey, k.writeIv).update(data);
          assert.deepEqual(hs.decrypt.update(back), data);
        },
      ),
      { numRuns: 200 },
    );
  });
});
