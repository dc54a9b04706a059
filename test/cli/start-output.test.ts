/** The facts `run` prints once it is up, as a person reads them and as a log line. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startLogFields, startSummaryLines } from '../../src/cli/start-output.ts';

const base = { configFile: null, created: false, stateDir: 'state', admin: null, metrics: null };

test('no config file: says so and how to get one; doctor without --config', () => {
  const text = startSummaryLines(base).join('\n');
  assert.match(text, /config {3}none: from flags and environment only \(mtproxy init writes a file\)/);
  assert.match(text, /admin {4}off: .*need \[admin\]/);
  assert.match(text, /- mtproxy doctor {3}checks/);
  assert.doesNotMatch(text, /metrics/);
});

test('a file written now, the admin API and metrics', () => {
  const facts = {
    ...base,
    configFile: '/etc/mtproxy/mtproxy.toml',
    created: true,
    admin: 'http://127.0.0.1:9101',
    metrics: 'http://127.0.0.1:9100/metrics',
  };
  const text = startSummaryLines(facts).join('\n');
  assert.match(text, /config {3}\/etc\/mtproxy\/mtproxy\.toml \(written now, with a new random secret\)/);
  assert.match(text, /admin {4}http:\/\/127\.0\.0\.1:9101 \(mtproxy status/);
  assert.match(text, /metrics {2}http:\/\/127\.0\.0\.1:9100\/metrics/);
  assert.match(text, /mtproxy doctor --config \/etc\/mtproxy\/mtproxy\.toml/);
  assert.deepEqual(startLogFields(facts), {
    config: '/etc/mtproxy/mtproxy.toml',
    created: true,
    stateDir: 'state',
    admin: 'http://127.0.0.1:9101',
    metrics: 'http://127.0.0.1:9100/metrics',
  });
  assert.equal('created' in startLogFields(base), false);
});
