import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PolicyKeyError } from '../../src/config/policy-keys.ts';
import { ConfigError } from '../../src/config/schema.ts';
import { isProtocolError, ProtocolError } from '../../src/protocol/errors.ts';
import { errorCode, isMtpError, type MtpError } from '../../src/runtime/errors.ts';
import { UpstreamError } from '../../src/upstream/errors.ts';

test('every error class of the proxy is branded, names its layer and carries a stable code', () => {
  const cases: [MtpError, string, string][] = [
    [new ProtocolError('MTP_ERR_FRAME_TOO_LARGE', 'x'), 'protocol', 'MTP_ERR_FRAME_TOO_LARGE'],
    [new UpstreamError('MTP_ERR_NO_DC', 'x'), 'upstream', 'MTP_ERR_NO_DC'],
    [new ConfigError('a.b', 'expected c'), 'config', 'MTP_ERR_CONFIG'],
    [new PolicyKeyError('x'), 'policy', 'MTP_ERR_POLICY_KEY'],
  ];
  for (const [e, layer, code] of cases) {
    assert.ok(e instanceof Error);
    assert.ok(isMtpError(e));
    assert.equal(e.layer, layer);
    assert.equal(e.code, code);
    assert.equal(errorCode(e), code);
  }
  assert.ok(isProtocolError(cases[0][0]));
  assert.ok(!isProtocolError(cases[1][0]));
});

test('errorCode() reads system codes and falls back for anything else', () => {
  assert.equal(errorCode(Object.assign(new Error('x'), { code: 'EMFILE' })), 'EMFILE');
  assert.equal(errorCode(new Error('x')), 'MTP_ERR_INTERNAL');
  assert.equal(errorCode(null, 'fallback'), 'fallback');
  assert.equal(errorCode('text', 'fallback'), 'fallback');
  assert.equal(errorCode({ code: 42 }, 'fallback'), 'fallback');
  assert.ok(!isMtpError(Object.assign(new Error('x'), { code: 'MTP_ERR_NO_DC' })));
});
