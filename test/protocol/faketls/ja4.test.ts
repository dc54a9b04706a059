import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { buildClientHello } from '../../../src/client/tls-hello.ts';
import { parseClientHello } from '../../../src/protocol/faketls/client-hello.ts';
import { ja4 } from '../../../src/protocol/faketls/ja4.ts';
import { HELLO_SHAPES, helloFixture } from '../../helpers/hello-shapes.ts';

const secret = Buffer.alloc(16, 7);

test("the Telegram apps' 2026 Chrome-like hello has the JA4 the field reports for it", () => {
  // t13d1516h2_8daaf6152771_d8a2da3f94cd is the fingerprint DPI vendors matched in June 2026; its cipher
  // hash 8daaf6152771 is Chrome's. The extension order is shuffled per connection: JA4 sorts it away.
  for (let i = 0; i < 5; i++) {
    const h = buildClientHello({ shape: 'modern', secret, domain: 'example.com', unixTime: 1 });
    assert.equal(ja4(parseClientHello(h)), 't13d1516h2_8daaf6152771_d8a2da3f94cd');
    const android = helloFixture('android', { secret, domain: 'example.com', unixTime: 1 });
    assert.equal(ja4(parseClientHello(android.record)), 't13d1516h2_8daaf6152771_d8a2da3f94cd');
  }
});

test('JA4 parts: no SNI gives "i", ALPN first/last characters, GREASE left out, counts', () => {
  const ios = ja4(parseClientHello(helloFixture('ios', { secret, domain: 'x', unixTime: 1 }).record));
  assert.match(ios, /^t13i2013h2_[0-9a-f]{12}_[0-9a-f]{12}$/);
  const legacy = ja4(
    parseClientHello(buildClientHello({ shape: 'legacy', secret, domain: 'a.b', unixTime: 1 })),
  );
  // Three extensions plus padding, no ALPN.
  assert.match(legacy, /^t13d160400_/);
  // Every shape gives a well-formed fingerprint, stable for the shape when only random parts change.
  for (const shape of HELLO_SHAPES) {
    const one = ja4(
      parseClientHello(helloFixture(shape, { secret, domain: 'a.example', unixTime: 1 }).record),
    );
    assert.match(one, /^t1[23][di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$/);
    if (shape !== 'quirks') {
      const two = ja4(
        parseClientHello(helloFixture(shape, { secret, domain: 'b.example', unixTime: 2 }).record),
      );
      assert.equal(one, two, shape);
    }
  }
});

test('JA4 never throws on any hello that parses', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...HELLO_SHAPES),
      fc.integer({ min: 45, max: 1500 }),
      fc.integer({ min: 0, max: 255 }),
      (shape, at, v) => {
        const r = Buffer.from(helloFixture(shape, { secret, domain: 'a.example', unixTime: 1 }).record);
        if (at < r.length) r[at] = v;
        let hello: ReturnType<typeof parseClientHello>;
        try {
          hello = parseClientHello(r);
        } catch {
          return;
        }
        assert.equal(typeof ja4(hello), 'string');
      },
    ),
    { numRuns: 200 },
  );
});
