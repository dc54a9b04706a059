/**
 * The protocol error codes (src/protocol/errors.ts) against the sources: every code is raised somewhere (a
 * code nobody raises is dead and goes), and raised where a counter sees it: failures of the client-facing
 * layers end the handshake or the session through the session, which counts them by code in
 * mtproxy_handshake_failures_total{reason}; failures of the middle proxy's layers end a link, counted by
 * code in mtproxy_upstream_errors_total{reason}.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { createMetricsRegistry, singleSource } from '../../src/metrics/registry.ts';
import { Stats } from '../../src/metrics/stats.ts';

const ROOT = new URL('../../src/', import.meta.url);

function codesFile(): string[] {
  const text = readFileSync(new URL('protocol/errors.ts', ROOT), 'utf8');
  const union = /export type ProtocolErrorCode =([^;]+);/.exec(text);
  assert.ok(union, 'ProtocolErrorCode union not found');
  return [...union[1].matchAll(/'(MTP_ERR_[A-Z_0-9]+)'/g)].map((m) => m[1]);
}

/** Every source file but the codes file and metrics/ (which only name codes), comments stripped. */
function sources(): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of readdirSync(ROOT, { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.ts') || f === 'protocol/errors.ts' || f.startsWith('metrics/')) continue;
    const text = readFileSync(new URL(f, ROOT), 'utf8');
    out.set(f, text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, ''));
  }
  return out;
}

/** A code is raised when thrown as a ProtocolError, or given as the reason of a refusal or a failure outcome. */
function raises(text: string, code: string): boolean {
  return new RegExp(`(?:new ProtocolError\\(\\s*|\\b(?:reject|fail|front)\\(|\\bcode = )'${code}'`).test(
    text,
  );
}

type Counter = 'mtproxy_handshake_failures_total' | 'mtproxy_upstream_errors_total';

/** Where a failure raised in a folder is counted (by its code). */
const COUNTED_BY: [prefix: string, counter: Counter][] = [
  ['protocol/faketls/', 'mtproxy_handshake_failures_total'],
  ['protocol/framing/', 'mtproxy_handshake_failures_total'],
  ['protocol/obfuscated2.ts', 'mtproxy_handshake_failures_total'],
  ['session/', 'mtproxy_handshake_failures_total'],
  ['protocol/middle/', 'mtproxy_upstream_errors_total'],
  ['upstream/middle/', 'mtproxy_upstream_errors_total'],
];

function raisedAt(code: string, files: Map<string, string>): string[] {
  return [...files].filter(([, text]) => raises(text, code)).map(([f]) => f);
}

test('every code in protocol/errors.ts is raised somewhere in the sources', () => {
  const codes = codesFile();
  assert.ok(codes.length > 10);
  const files = sources();
  const dead = codes.filter((code) => raisedAt(code, files).length === 0);
  assert.deepEqual(dead, [], 'declared but never raised: delete them from protocol/errors.ts');
});

test('every protocol error code is raised where it is counted, and comes out as a metric label', async () => {
  const files = sources();
  const stats = new Stats();
  const expected: [Counter, string][] = [];
  for (const code of codesFile()) {
    const counters = new Set(
      raisedAt(code, files).flatMap((f) =>
        COUNTED_BY.filter(([prefix]) => f.startsWith(prefix)).map(([, counter]) => counter),
      ),
    );
    assert.ok(counters.size > 0, `${code} is raised only where no counter sees it`);
    for (const counter of counters) {
      // What the session and the middle-proxy link do with a failure's code.
      if (counter === 'mtproxy_handshake_failures_total') stats.listener('main').fail(code);
      else stats.dc(2).error(code);
      expected.push([counter, code]);
    }
  }
  const metrics = createMetricsRegistry({ sources: singleSource(stats) });
  try {
    const families = parsePrometheusTextFormat(await metrics.scrape());
    for (const [counter, code] of expected) {
      const family = families.find((f) => f.name === counter);
      assert.ok(family, `missing family ${counter}`);
      const hit = family.metrics.find((m) => m.labels?.reason === code);
      assert.equal(hit && 'value' in hit ? Number(hit.value) : undefined, 1, `${counter}{reason="${code}"}`);
    }
  } finally {
    metrics.close();
  }
});
