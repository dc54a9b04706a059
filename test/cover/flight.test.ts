import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { measureFlight, parseServerHello } from '../../src/cover/flight.ts';
import { GROUP_X25519, GROUP_X25519_MLKEM768 } from '../../src/protocol/faketls/client-hello.ts';
import { ALERT_DECODE_ERROR, MAX_RECORD_PAYLOAD } from '../../src/protocol/faketls/records.ts';
import { buildServerHello } from '../../src/protocol/faketls/server-hello.ts';

/** A server's first flight: ServerHello, CCS and one application-data record of `appData` bytes. */
function flight(opts: {
  group?: number;
  cipherSuite?: number;
  versionsFirst?: boolean;
  appData?: number;
}): Buffer {
  return buildServerHello({
    secret: randomBytes(16),
    clientRandom: randomBytes(32),
    sessionId: randomBytes(32),
    cipherSuite: opts.cipherSuite ?? 0x1301,
    keyShareGroup: opts.group ?? GROUP_X25519,
    keyShare: opts.group === GROUP_X25519_MLKEM768 ? 1120 : 32,
    appData: opts.appData ?? 3000,
    versionsFirst: opts.versionsFirst,
  });
}

function record(type: number, length: number): Buffer {
  const out = Buffer.alloc(5 + length);
  out[0] = type;
  out[1] = 3;
  out[2] = 3;
  out.writeUInt16BE(length, 3);
  return out;
}

/** The ServerHello handshake body (from its type byte) of a flight. */
function helloBody(f: Buffer): Buffer {
  return f.subarray(5, 5 + f.readUInt16BE(3));
}

test('the certificate size is the sum of the records after the ServerHello, CCS excluded', () => {
  const f = flight({ appData: 3000 });
  assert.deepEqual(measureFlight(f, true), {
    certRecordSize: 3000,
    selectsPq: false,
    cipherSuite: 0x1301,
    versionsFirst: false,
    source: 'probe',
  });
  const more = Buffer.concat([f, record(0x17, 1200), record(0x16, 40), record(0x14, 1)]);
  assert.equal(measureFlight(more, true)?.certRecordSize, 3000 + 1200 + 40);
});

test('the size is capped at one record payload', () => {
  const f = Buffer.concat([flight({ appData: 16000 }), record(0x17, 9000)]);
  assert.equal(measureFlight(f, true)?.certRecordSize, MAX_RECORD_PAYLOAD);
});

test('the ServerHello choices: post-quantum group, cipher suite, extension order', () => {
  const pq = measureFlight(
    flight({ group: GROUP_X25519_MLKEM768, cipherSuite: 0x1302, versionsFirst: true }),
    true,
  );
  assert.equal(pq?.selectsPq, true);
  assert.equal(pq?.cipherSuite, 0x1302);
  assert.equal(pq?.versionsFirst, true);
  assert.deepEqual(parseServerHello(helloBody(flight({ versionsFirst: false }))), {
    cipherSuite: 0x1301,
    group: GROUP_X25519,
    versionsFirst: false,
  });
});

test('no profile from a flight that is not a complete TLS 1.3-looking answer', () => {
  const f = flight({});
  const helloLength = 5 + f.readUInt16BE(3);
  assert.equal(measureFlight(f, false), null, 'not final');
  assert.equal(measureFlight(Buffer.alloc(0), true), null, 'empty');
  assert.equal(measureFlight(f.subarray(0, 4), true), null, 'shorter than a record header');
  assert.equal(measureFlight(f.subarray(0, helloLength), true), null, 'nothing after the ServerHello');
  assert.equal(measureFlight(f.subarray(0, helloLength - 1), true), null, 'the ServerHello cut short');
  assert.equal(measureFlight(Buffer.concat([f, ALERT_DECODE_ERROR]), true), null, 'an alert');
  assert.equal(measureFlight(Buffer.concat([ALERT_DECODE_ERROR, f]), true), null, 'an alert first');
  assert.equal(measureFlight(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'), true), null, 'not TLS');
  const notHello = Buffer.from(f);
  notHello[5] = 0x01;
  assert.equal(measureFlight(notHello, true), null, 'a handshake record that is not a ServerHello');
});

test('a record cut short at the end is not counted', () => {
  const f = Buffer.concat([flight({ appData: 3000 }), record(0x17, 500)]);
  assert.equal(measureFlight(f.subarray(0, f.length - 1), true)?.certRecordSize, 3000);
});

test('a truncated ServerHello body parses as nothing', () => {
  const body = helloBody(flight({}));
  assert.equal(parseServerHello(body.subarray(0, 30)), null);
  assert.equal(parseServerHello(Buffer.alloc(0)), null);
});

test('any bytes, any cut: the parser returns a profile or null and never throws', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, final) => {
      const input = Buffer.from(bytes);
      const p = measureFlight(input, final);
      assert.ok(p === null || (p.certRecordSize > 0 && p.certRecordSize <= MAX_RECORD_PAYLOAD));
      parseServerHello(input);
    }),
  );
  const f = Buffer.concat([flight({}), record(0x17, 100)]);
  fc.assert(
    fc.property(fc.nat({ max: f.length }), (cut) => {
      const p = measureFlight(f.subarray(0, cut), true);
      assert.ok(p === null || p.certRecordSize <= 3100);
    }),
  );
});
