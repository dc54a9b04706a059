import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import test from 'node:test';
import { closeAfterFlush, unmapIpv4 } from '../../src/runtime/sockets.ts';

test('unmapIpv4: a v4-mapped address becomes the IPv4 it is; anything else is unchanged', () => {
  assert.equal(unmapIpv4('::ffff:203.0.113.7'), '203.0.113.7');
  assert.equal(unmapIpv4('::FFFF:203.0.113.7'), '203.0.113.7');
  assert.equal(unmapIpv4('203.0.113.7'), '203.0.113.7');
  assert.equal(unmapIpv4('2001:db8::1'), '2001:db8::1');
  assert.equal(unmapIpv4('::ffff:999.1.1.1'), '::ffff:999.1.1.1');
  assert.equal(unmapIpv4('::ffff:'), '::ffff:');
  assert.equal(unmapIpv4(''), '');
});

test('closeAfterFlush: what was written still reaches the peer, then the socket closes', async () => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection');
  const client = net.connect(port, '127.0.0.1');
  const [peer] = (await accepted) as [net.Socket];
  const received: Buffer[] = [];
  client.on('data', (d: Buffer) => received.push(d));
  const payload = Buffer.alloc(4 * 1024 * 1024, 0x5a);
  peer.write(payload);
  closeAfterFlush(peer);
  await once(client, 'end');
  assert.equal(Buffer.concat(received).length, payload.length);
  client.destroy();
  server.close();
});
