import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createCbcDecryptor,
  createCbcEncryptor,
  deriveMiddleKey,
} from '../../../src/protocol/middle/crypto.ts';
import { encodeFullFrame, FullDecoder, FullEncoder } from '../../../src/protocol/middle/full.ts';
import {
  CRYPTO_SCHEMA_AES,
  decodeHandshake,
  decodeServerMessage,
  encodeCloseConn,
  encodeHandshake,
  encodeIpPort,
  encodeNonce,
  encodePong,
  encodeProxyReq,
  proxyReqFlags,
} from '../../../src/protocol/middle/rpc.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const SECRET_B = hex(`c4f9faca9678e6bb48ad6c7e2ce5c0d24430645d554addeb55419e034da62721
  d046eaab6e52ab14a95a443ecfb3463e79a05a66612adf9caeda8be9a80da698
  6fb0a6ff387af84d88ef3a6413713e5c3377f6e1a3d47d99f5e0c56eece8f05c
  54c490b079e31bef82ff0ee8f2b0a32756d249c5f21269816cb7061b265db212`);

test('B: middle key derivation, both purposes', () => {
  const input = {
    serverNonce: hex('f728d238410c65aad89b0efdfaeedbe2'),
    clientNonce: hex('1831356fc60aebb4e6705c4e01c96a69'),
    clientTimestamp: 1528396015,
    serverIp: '149.154.162.38',
    serverPort: 80,
    clientIp: '80.211.29.34',
    clientPort: 54208,
    secret: SECRET_B,
  };
  const c = deriveMiddleKey(input, 'CLIENT');
  assert.equal(c.key.toString('hex'), 'a59e7f3129e8bb45261da3e2b7921c43e1e086bfcf98ffa69842a9c4368732bc');
  assert.equal(c.iv.toString('hex'), '216e7dddb779a07482b49cf9346f25b2');
  const s = deriveMiddleKey(input, 'SERVER');
  assert.equal(s.key.toString('hex'), '5fc7a56a00cb18fb0c133453441c0d8cef56ffcbbf986fb4a7d4201fce64fa51');
  assert.equal(s.iv.toString('hex'), '4b295add3b3f5cf280e08876e8d29fbc');
  // A v4-mapped peer address derives the same keys.
  const mapped = deriveMiddleKey({ ...input, serverIp: '::ffff:149.154.162.38' }, 'CLIENT');
  assert.deepEqual(mapped.key, c.key);
});

test('B: RPC_NONCE and RPC_HANDSHAKE bodies and frames', () => {
  const nonce = encodeNonce({
    keySelector: SECRET_B.subarray(0, 4),
    schema: CRYPTO_SCHEMA_AES,
    timestamp: 1528396015,
    nonce: hex('1831356fc60aebb4e6705c4e01c96a69'),
  });
  assert.equal(nonce.toString('hex'), 'aa87cb7ac4f9faca01000000ef78195b1831356fc60aebb4e6705c4e01c96a69');
  const nf = encodeFullFrame(nonce, -2);
  assert.equal(nf.length, 48);
  assert.equal(nf.toString('hex'), `2c000000feffffff${nonce.toString('hex')}e36670f504000000`);

  const pid = Buffer.from('IPIPPRPDTIME', 'latin1');
  const hs = encodeHandshake({ flags: 0, senderPid: pid, peerPid: pid });
  assert.equal(hs.toString('hex'), 'f5ee827600000000495049505052504454494d45495049505052504454494d45');
  const hf = encodeFullFrame(hs, -1);
  assert.equal(hf.toString('hex'), `2c000000ffffffff${hs.toString('hex')}02761d8104000000`);
  assert.deepEqual(decodeHandshake(hs).peerPid, pid);
});

test('C: full codec exact frames and sequence numbers', () => {
  assert.equal(encodeFullFrame(hex('01010101'), 0).toString('hex'), '10000000000000000101010116' + '27afa0');
  assert.equal(
    encodeFullFrame(hex('0101010101010101'), 0).toString('hex'),
    '14000000000000000101010101010101f6c42e95040000000400000004000000',
  );
  const enc = new FullEncoder(0);
  const a = enc.encode(Buffer.alloc(8, 9));
  const b = enc.encode(Buffer.alloc(8, 8));
  assert.equal(a.toString('hex'), '140000000000000009090909090909' + '09e523a2a4' + '04000000'.repeat(3));
  assert.equal(b.toString('hex'), '140000000100000008080808080808' + '0830928474' + '04000000'.repeat(3));
  const dec = new FullDecoder(0);
  const got: string[] = [];
  dec.decode(Buffer.concat([a, b]), (body, seq) => got.push(`${seq}:${body.toString('hex')}`));
  assert.deepEqual(got, ['0:0909090909090909', '1:0808080808080808']);
});

test('D: AES-256-CBC streaming with continuing state', () => {
  const dec = createCbcDecryptor({
    key: hex('15d3bf7f8fdeb898e8d519adf3a3f3e08583c70dce9c928d43ac5572becbb0d7'),
    iv: hex('099caff725a1db9b34735d4c7ac39ec2'),
  });
  assert.equal(
    dec.update(hex('24aa935f351b2cfffc6946085a284de2')).toString('hex'),
    '2c000000fffffffff5ee827600000000',
  );
  // Split mid-block: the cipher keeps the partial block for the next call.
  const ct = hex('89bb50ee6e8e3482778cd28a0d48a9903fa7ac13a10de7a9ed22cbf00887431d');
  const pt = Buffer.concat([dec.update(ct.subarray(0, 7)), dec.update(ct.subarray(7))]);
  assert.equal(pt.toString('hex'), '8699420a5f098631dd85155b495049505052504454494d4585fa4c5404000000');

  const enc = createCbcEncryptor({
    key: hex('595448f7ac38cc0b0af28ff06f3521a2dd8d94f36415a7a084633dbd80498a59'),
    iv: hex('f8c32a35eb684ee154abb67d12c0fb4d'),
  });
  const out = enc.update(
    hex('2c000000fffffffff5ee827600000000495049505052504454494d45495049505052504454494d4502761d8104000000'),
  );
  assert.equal(
    out.toString('hex'),
    'a1cec6bfaff030a2f5c0ead268c3a1d63793919dae21f3c654bc1dc97480b99549f1957af4c13b7099bc8d865a184bd8',
  );
});

test('E: RPC_PROXY_REQ, flags per transport, CLOSE_CONN, PONG, addresses', () => {
  const payload = hex('0000000000000000000000003d02185b140000007897466099c58eeef58b55d0a0f144596a0776a7');
  const tag = hex('dcbe8f1493fa4cd9ab300891c0b5b326');
  const header = {
    connId: 1,
    clientAddress: encodeIpPort('109.238.131.159', 1128),
    proxyAddress: encodeIpPort('80.211.29.34', 53634),
    adTag: tag,
  };
  const out = encodeProxyReq({ ...header, flags: proxyReqFlags('abridged', true, payload, false) }, payload);
  assert.equal(
    out.toString('hex'),
    'eef1ce360a1002400100000000000000' +
      '00000000000000000000ffff6dee839f68040000' +
      '00000000000000000000ffff50d31d2282d10000' +
      '18000000ae261edb10dcbe8f1493fa4cd9ab300891c0b5b326000000' +
      payload.toString('hex'),
  );
  assert.equal(out.length, 124);
  assert.equal(proxyReqFlags('intermediate', true, payload, false), 0x2002100a);
  assert.equal(proxyReqFlags('padded', true, payload, false), 0x2802100a);
  const encrypted = Buffer.alloc(64, 1);
  assert.equal(proxyReqFlags('abridged', true, encrypted, false), 0x40021008);
  assert.equal(proxyReqFlags('abridged', true, encrypted, true) >>> 0, 0xc0021008);
  assert.equal(proxyReqFlags('abridged', false, encrypted, false), 0x40021000);
  // Without a tag the extra block is left out entirely.
  const untagged = encodeProxyReq({ ...header, adTag: null, flags: 0x40021000 }, payload);
  assert.equal(untagged.length, 56 + payload.length);

  assert.equal(encodeCloseConn(1).toString('hex'), '5d42cf1f0100000000000000');
  assert.equal(encodePong(hex('0102030405060708')).toString('hex'), 'a7ea30840102030405060708');
  assert.equal(
    encodeIpPort('80.211.29.34', 53634).toString('hex'),
    '00000000000000000000ffff50d31d2282d10000',
  );
  assert.equal(encodeIpPort('2001:db8::1', 443).toString('hex'), '20010db8000000000000000000000001bb010000');
});

test('F: RPC_PROXY_ANS', () => {
  const tail = hex('000000000000000001343eee3c02185b400000006324160599c58eee');
  const body = Buffer.concat([hex('0dda0344000000000100000000000000'), tail]);
  const msg = decodeServerMessage(body);
  assert.equal(msg.kind, 'answer');
  if (msg.kind !== 'answer') return;
  assert.equal(msg.connId, 1);
  assert.deepEqual(msg.payload, tail);
});
