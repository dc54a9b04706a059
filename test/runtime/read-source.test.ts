import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { isUrl, readSource } from '../../src/runtime/read-source.ts';
import { suiteTempDir } from '../helpers/temp-dir.ts';

const dir = suiteTempDir('mtproxy-read-source-');

test('isUrl: http and https only, any case', () => {
  assert.equal(isUrl('https://core.telegram.org/getProxySecret'), true);
  assert.equal(isUrl('HTTP://127.0.0.1/x'), true);
  assert.equal(isUrl('ftp://127.0.0.1/x'), false);
  assert.equal(isUrl('proxy-secret.bin'), false);
});

test('a file source is read relative to the config file, and a document over 1 MiB is refused', async () => {
  await mkdir(path.join(dir(), 'etc'), { recursive: true });
  await writeFile(path.join(dir(), 'etc', 'secret.bin'), 'abc');
  await writeFile(path.join(dir(), 'etc', 'big.bin'), Buffer.alloc(1024 * 1024 + 1));
  const options = { configFile: path.join(dir(), 'etc', 'mtproxy.toml'), timeoutMs: 2000 };
  assert.equal((await readSource('secret.bin', options)).toString(), 'abc');
  await assert.rejects(readSource('big.bin', options), /document too large/);
  const absolute = { configFile: null, timeoutMs: 2000 };
  assert.equal((await readSource(path.join(dir(), 'etc', 'secret.bin'), absolute)).toString(), 'abc');
});

test('a URL source is fetched; only HTTP 200 is a document', async () => {
  const server = http.createServer((req, res) => {
    if (req.url === '/ok') res.end('203.0.113.7\n');
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const options = { configFile: null, timeoutMs: 2000 };
    assert.equal((await readSource(`${base}/ok`, options)).toString(), '203.0.113.7\n');
    await assert.rejects(readSource(`${base}/missing`, options), /HTTP 404/);
  } finally {
    server.close();
  }
});
