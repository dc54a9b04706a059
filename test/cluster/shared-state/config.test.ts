/** `[cluster]` keys of the shared state: what the config accepts, and what it refuses with a stable code. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { redactedUrl, redisOptions } from '../../../src/cluster/shared-state/client.ts';
import { parseConfig } from '../../../src/config/load.ts';

const base = (cluster: string) =>
  `[[listeners]]\nport = 443\nsecret = "00112233445566778899aabbccddeeff"\n\n[cluster]\n${cluster}\n`;

describe('[cluster] shared-state settings', () => {
  it('defaults: no Redis, the "mtproxy:" prefix', () => {
    const c = parseConfig(base('')).cluster;
    assert.equal(c.redis, null);
    assert.equal(c.redisCa, null);
    assert.equal(c.prefix, 'mtproxy:');
  });

  it('takes a rediss:// URL with credentials, a CA file and a prefix', () => {
    const c = parseConfig(
      base('redis = "rediss://fleet:pw@10.0.0.5:6380"\nredis_ca = "/etc/ca.crt"\nprefix = "fleet-1:"'),
    ).cluster;
    assert.equal(c.redis, 'rediss://fleet:pw@10.0.0.5:6380');
    assert.equal(c.redisCa, '/etc/ca.crt');
    assert.equal(c.prefix, 'fleet-1:');
  });

  it('refuses redis_ca without TLS, a bad URL and a bad prefix', () => {
    for (const [text, key] of [
      ['redis = "redis://10.0.0.5:6379"\nredis_ca = "/etc/ca.crt"', 'cluster.redis_ca'],
      ['redis_ca = "/etc/ca.crt"', 'cluster.redis_ca'],
      ['redis = "http://10.0.0.5"', 'cluster.redis'],
      ['redis = "redis://10.0.0.5"\nprefix = "has space"', 'cluster.prefix'],
    ]) {
      assert.throws(
        () => parseConfig(base(text)),
        (e: Error & { code?: string; key?: string }) => e.code === 'MTP_ERR_CONFIG' && e.key === key,
        text,
      );
    }
  });

  it('an unreadable CA file is a config error, not a crash later', () => {
    const c = parseConfig(base('redis = "rediss://10.0.0.5:6380"\nredis_ca = "/nonexistent/ca.crt"')).cluster;
    assert.throws(
      () => redisOptions(c),
      (e: Error & { code?: string }) => e.code === 'MTP_ERR_CONFIG' && /cluster\.redis_ca/.test(e.message),
    );
  });

  it('a second error on one Redis socket is heard (the client itself listens for one only)', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const c = parseConfig(base(`redis = "redis://127.0.0.1:${port}"`)).cluster;
      const Connector = redisOptions(c).Connector!;
      const connector = new Connector({ host: '127.0.0.1', port } as never);
      const stream = await connector.connect(() => {});
      // What a TLS socket may do: the refusal of a certificate, then the peer's alert.
      stream.emit('error', new Error('first'));
      assert.doesNotThrow(() => stream.emit('error', new Error('second')));
      connector.disconnect();
    } finally {
      server.close();
    }
  });

  it('log lines name the Redis host, never its credentials', () => {
    assert.equal(redactedUrl('rediss://fleet:secret-pw@10.0.0.5:6380/2'), 'rediss://10.0.0.5:6380/2');
    assert.equal(redactedUrl('redis://:pw@host:6379'), 'redis://host:6379');
  });
});
