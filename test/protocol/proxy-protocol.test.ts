import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeProxyHeader, encodeProxyV1, encodeProxyV2 } from '../../src/protocol/proxy-protocol.ts';

const SIG = '0d0a0d0a000d0a515549540a';

test('v1: TCP4, TCP6, mapped IPv4, unknown', () => {
  const v4 = {
    sourceAddress: '192.0.2.1',
    sourcePort: 56324,
    destinationAddress: '198.51.100.7',
    destinationPort: 443,
  };
  assert.equal(encodeProxyV1(v4).toString(), 'PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n');
  assert.equal(
    encodeProxyV1({
      ...v4,
      sourceAddress: '::ffff:192.0.2.1',
      destinationAddress: '::ffff:198.51.100.7',
    }).toString(),
    'PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n',
  );
  assert.equal(
    encodeProxyV1({ ...v4, sourceAddress: '2001:db8::1', destinationAddress: '2001:db8::2' }).toString(),
    'PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n',
  );
  assert.equal(
    encodeProxyV1({ ...v4, sourceAddress: '2001:db8::1' }).toString(),
    'PROXY TCP6 2001:db8::1 ::ffff:198.51.100.7 56324 443\r\n',
  );
  assert.equal(encodeProxyV1(null).toString(), 'PROXY UNKNOWN\r\n');
  assert.equal(encodeProxyV1({ ...v4, sourceAddress: 'garbage' }).toString(), 'PROXY UNKNOWN\r\n');
});

test('v2: IPv4 and IPv6 binary headers, LOCAL when unknown', () => {
  const v4 = encodeProxyV2({
    sourceAddress: '127.0.0.1',
    sourcePort: 1,
    destinationAddress: '10.0.0.2',
    destinationPort: 443,
  });
  assert.equal(v4.toString('hex'), `${SIG}2111000c7f0000010a000002000101bb`);
  const v6 = encodeProxyV2({
    sourceAddress: '2001:db8::1',
    sourcePort: 0x1234,
    destinationAddress: '::1',
    destinationPort: 443,
  });
  assert.equal(
    v6.toString('hex'),
    `${SIG}21210024` + '20010db8000000000000000000000001' + '00000000000000000000000000000001' + '123401bb',
  );
  assert.equal(encodeProxyV2(null).toString('hex'), `${SIG}20000000`);
  assert.deepEqual(encodeProxyHeader('v1', null), encodeProxyV1(null));
});
