import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../src/config/load.ts';
import { prettyLine } from '../src/log.ts';

test('prettyLine: time, level, message, then the other fields', () => {
  const time = new Date(2026, 0, 2, 3, 4, 5).toISOString();
  const line = JSON.stringify({
    level: 'warn',
    time,
    pid: 7,
    msg: 'upstream connect failed',
    dc: 2,
    err: 'ECONNREFUSED 1.2.3.4',
    n: [1],
  });
  assert.equal(
    prettyLine(line),
    '03:04:05 WARN  upstream connect failed dc=2 err="ECONNREFUSED 1.2.3.4" n=[1]\n',
  );
  assert.equal(prettyLine('not json\n'), 'not json\n', 'anything else passes unchanged');
});

test('log.format: json by default, pretty on request, nothing else', () => {
  const base = '[[listeners]]\nsecret = "0123456789abcdef0123456789abcdef"\n';
  assert.equal(parseConfig(base).log.format, 'json');
  assert.equal(parseConfig(`${base}[log]\nformat = "pretty"\n`).log.format, 'pretty');
  assert.throws(() => parseConfig(`${base}[log]\nformat = "xml"\n`), /log\.format/);
});
