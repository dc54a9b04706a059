import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  formatSecret,
  formatSecretBase64url,
  generateSecret,
  parseClientSecret,
  parseHexSecret,
} from '../../src/config/secrets.ts';

// Shared vectors, erlang-reference §12 H.
const BASE = Buffer.from('d0d6e111bada5511fcce9584deadbeef', 'hex');

describe('secrets', () => {
  test('ee forms match the shared vectors', () => {
    assert.equal(
      formatSecret('ee', BASE, 's3.amazonaws.com'),
      'eed0d6e111bada5511fcce9584deadbeef73332e616d617a6f6e6177732e636f6d',
    );
    assert.equal(
      formatSecretBase64url(BASE, 's3.amazonaws.com'),
      '7tDW4RG62lUR_M6VhN6tvu9zMy5hbWF6b25hd3MuY29t',
    );
    assert.equal(formatSecretBase64url(BASE, 'example.com'), '7tDW4RG62lUR_M6VhN6tvu9leGFtcGxlLmNvbQ');
  });

  test('plain and dd forms', () => {
    assert.equal(formatSecret('plain', BASE), 'd0d6e111bada5511fcce9584deadbeef');
    assert.equal(formatSecret('dd', BASE), 'ddd0d6e111bada5511fcce9584deadbeef');
    assert.throws(() => formatSecret('ee', BASE));
  });

  test('parses every link form', () => {
    assert.deepEqual(parseClientSecret('d0d6e111bada5511fcce9584deadbeef'), {
      kind: 'plain',
      secret: BASE,
      domain: null,
    });
    assert.deepEqual(parseClientSecret('DDD0D6E111BADA5511FCCE9584DEADBEEF'), {
      kind: 'dd',
      secret: BASE,
      domain: null,
    });
    assert.deepEqual(
      parseClientSecret('eed0d6e111bada5511fcce9584deadbeef73332e616d617a6f6e6177732e636f6d'),
      {
        kind: 'ee',
        secret: BASE,
        domain: 's3.amazonaws.com',
      },
    );
    assert.deepEqual(parseClientSecret('7tDW4RG62lUR_M6VhN6tvu9leGFtcGxlLmNvbQ'), {
      kind: 'ee',
      secret: BASE,
      domain: 'example.com',
    });
    // The README ping example, in standard base64 with padding.
    assert.deepEqual(parseClientSecret('7mwPwRXygwfjUQBB__yu87xncHRydS5wcm8='), {
      kind: 'ee',
      secret: Buffer.from('6c0fc115f28307e3510041fffcaef3bc', 'hex'),
      domain: 'gptru.pro',
    });
    assert.deepEqual(parseClientSecret(BASE.toString('base64')), {
      kind: 'plain',
      secret: BASE,
      domain: null,
    });
  });

  test('rejects what is not a secret', () => {
    for (const bad of [
      '',
      'xyz',
      'd0d6e111bada5511fcce9584deadbe',
      'ab'.repeat(17),
      'ee' + 'ab'.repeat(16),
      '7tDW4RG62lUR_M6VhN6tvu8=',
    ]) {
      assert.equal(parseClientSecret(bad), null, bad);
    }
    assert.equal(parseHexSecret('d0d6e111bada5511fcce9584deadbeeg'), null);
    assert.deepEqual(parseHexSecret('D0D6E111BADA5511FCCE9584DEADBEEF'), BASE);
  });

  test('generated secrets are 16 random bytes', () => {
    const a = generateSecret();
    assert.equal(a.length, 16);
    assert.notDeepEqual(a, generateSecret());
  });

  test('property: every form round-trips', () => {
    const domain = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,10}){1,3}$/);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), domain, (bytes, d) => {
        const secret = Buffer.from(bytes);
        assert.deepEqual(parseClientSecret(formatSecret('plain', secret))?.secret, secret);
        assert.deepEqual(parseClientSecret(formatSecret('dd', secret)), { kind: 'dd', secret, domain: null });
        assert.deepEqual(parseClientSecret(formatSecret('ee', secret, d)), { kind: 'ee', secret, domain: d });
        assert.deepEqual(parseClientSecret(formatSecretBase64url(secret, d)), {
          kind: 'ee',
          secret,
          domain: d,
        });
      }),
    );
  });

  test('property: garbage never throws', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        parseClientSecret(s);
      }),
    );
  });
});
