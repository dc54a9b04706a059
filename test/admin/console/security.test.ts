/**
 * The console's defences against a real proxy (admin API, users, tables) on loopback: nothing but the
 * sign-in page and its style without a session; every change needs the session's CSRF token and a
 * same-origin browser; the cookie's flags; no secret in the HTML; wrong tokens rate-limited per source.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { consoleAssets } from '../../../src/admin/console/assets.ts';
import { FailureLimiter, sourceKey } from '../../../src/admin/console/rate-limit.ts';
import { ConsoleSessions } from '../../../src/admin/console/sessions.ts';
import { parseConfig } from '../../../src/config/load.ts';
import {
  CONSOLE_TOKEN,
  type ConsoleProxy,
  FILED_SECRET,
  raw,
  sameOrigin,
  signIn,
  startConsoleProxy,
} from '../../helpers/console.ts';
import { TEST_SECRET_HEX } from '../../helpers/proxy.ts';
import { suiteTempDir } from '../../helpers/temp-dir.ts';

/** Every kind of thing the console serves, public or not. */
const PROTECTED: Array<[string, string]> = [
  ['GET', '/console/'],
  ['GET', '/console/app/main.js'],
  ['GET', '/console/vendor/preact.mjs'],
  ['GET', '/console/vendor/uPlot.esm.js'],
  ['GET', '/console/api/session'],
  ['GET', '/console/api/events'],
  ['GET', '/console/api/status'],
  ['GET', '/console/api/health'],
  ['GET', '/console/api/links'],
  ['GET', '/console/api/links/qr.svg'],
  ['GET', '/console/api/users'],
  ['GET', '/console/api/users/filed'],
  ['GET', '/console/api/users/filed/qr.svg'],
  ['GET', '/console/api/users/filed/usage'],
  ['GET', '/console/api/tables'],
  ['GET', '/console/api/tables/blocked'],
  ['POST', '/console/api/users'],
  ['PATCH', '/console/api/users/filed'],
  ['DELETE', '/console/api/users/filed'],
  ['POST', '/console/api/tables/blocked'],
  ['DELETE', '/console/api/tables/blocked/1.2.3.4'],
  ['POST', '/console/api/reload'],
  ['POST', '/console/sign-out'],
  ['GET', '/console/no-such-page'],
];

describe('console: security', () => {
  const dir = suiteTempDir('mtp-console-sec-');
  let p: ConsoleProxy;
  let base = '';

  before(async () => {
    p = await startConsoleProxy(dir());
    base = p.base;
  });
  after(() => p.stop());

  it('serves the sign-in page and its style without a session, and nothing else', async () => {
    const page = await raw(base, 'GET', '/console/sign-in');
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'] ?? '', /^text\/html/);
    assert.match(page.body, /<form method="post" action="\/console\/sign-in">/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
    assert.match(String(page.headers['content-security-policy']), /frame-ancestors 'none'/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.equal((await raw(base, 'GET', '/console/public/style.css')).status, 200);

    const forged = ['', 'mtp_console=', `mtp_console=${'A'.repeat(43)}`, 'mtp_console=x; other=1'];
    for (const [method, path] of PROTECTED) {
      for (const cookie of forged) {
        const headers: Record<string, string> = { ...sameOrigin(base), 'x-csrf-token': 'guess' };
        if (cookie) headers.cookie = cookie;
        const res = await raw(
          base,
          method,
          path,
          headers,
          method === 'GET' ? undefined : '{"name":"mallory"}',
        );
        if (path === '/console/') {
          assert.equal(res.status, 303, `${method} ${path} [${cookie}]`);
          assert.equal(res.headers.location, '/console/sign-in');
          assert.equal(res.body, '');
        } else {
          assert.equal(res.status, 401, `${method} ${path} [${cookie}]`);
          assert.deepEqual(JSON.parse(res.body), { error: 'sign in first' });
        }
      }
    }
    // The bearer token is not a console session either, and nothing above ran.
    const bearer = await raw(base, 'GET', '/console/api/status', {
      authorization: `Bearer ${CONSOLE_TOKEN}`,
    });
    assert.equal(bearer.status, 401);
    const users = await raw(base, 'GET', '/users', { authorization: `Bearer ${CONSOLE_TOKEN}` });
    assert.deepEqual(
      JSON.parse(users.body).users.map((u: { name: string }) => u.name),
      ['filed'],
    );
  });

  it('signs in with the admin token: HttpOnly, SameSite=Strict, path-limited cookie with an expiry', async () => {
    const wrong = await raw(
      base,
      'POST',
      '/console/sign-in',
      { ...sameOrigin(base), 'content-type': 'application/x-www-form-urlencoded' },
      'token=not-the-token',
    );
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
    assert.match(wrong.body, /wrong token/);

    const { cookie, setCookie, csrf } = await signIn(base);
    const attrs = setCookie.split(';').map((s) => s.trim());
    assert.match(attrs[0], /^mtp_console=[A-Za-z0-9_-]{43}$/);
    assert.ok(attrs.includes('HttpOnly'), setCookie);
    assert.ok(attrs.includes('SameSite=Strict'), setCookie);
    assert.ok(attrs.includes('Path=/console'), setCookie);
    assert.ok(attrs.includes(`Max-Age=${12 * 3600}`), setCookie);
    const expires = attrs.find((a) => a.startsWith('Expires='));
    assert.ok(expires, setCookie);
    const ms = Date.parse(expires.slice('Expires='.length)) - Date.now();
    assert.ok(ms > 11 * 3_600_000 && ms <= 12 * 3_600_000, expires);
    assert.ok(!attrs.includes('Secure'), 'plain http on loopback: no Secure flag');
    assert.match(csrf, /^[A-Za-z0-9_-]{43}$/);

    // Behind a TLS proxy the cookie is Secure.
    const tls = await raw(
      base,
      'POST',
      '/console/sign-in',
      {
        ...sameOrigin(base),
        'x-forwarded-proto': 'https',
        'content-type': 'application/json',
        accept: 'application/json',
      },
      JSON.stringify({ token: CONSOLE_TOKEN }),
    );
    assert.equal(tls.status, 200);
    assert.match(String(tls.headers['set-cookie']?.[0]), /; Secure/);

    // Two sign-ins are two sessions with their own ids and CSRF tokens.
    const other = await signIn(base);
    assert.notEqual(other.cookie, cookie);
    assert.notEqual(other.csrf, csrf);
    const page = await raw(base, 'GET', '/console/', { cookie, 'sec-fetch-site': 'none' });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self' 'sha256-/);
  });

  it('refuses a change without the right CSRF token, and any cross-site request', async () => {
    const { cookie, csrf } = await signIn(base);
    const body = JSON.stringify({ name: 'csrf-victim' });
    const json = { 'content-type': 'application/json', cookie };
    const attempts: Array<[string, Record<string, string>]> = [
      ['no CSRF header', { ...json, ...sameOrigin(base) }],
      ['wrong CSRF header', { ...json, ...sameOrigin(base), 'x-csrf-token': `${csrf.slice(1)}x` }],
      [
        'CSRF of another session',
        { ...json, ...sameOrigin(base), 'x-csrf-token': (await signIn(base)).csrf },
      ],
      [
        'cross-site',
        { ...json, 'x-csrf-token': csrf, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
      ],
      ['same-site', { ...json, 'x-csrf-token': csrf, origin: base, 'sec-fetch-site': 'same-site' }],
      ['foreign Origin', { ...json, 'x-csrf-token': csrf, origin: 'http://127.0.0.1:1' }],
      ['null Origin', { ...json, 'x-csrf-token': csrf, origin: 'null' }],
    ];
    for (const [why, headers] of attempts) {
      const res = await raw(base, 'POST', '/console/api/users', headers, body);
      assert.equal(res.status, 403, why);
    }
    for (const [method, path] of [
      ['DELETE', '/console/api/users/filed'],
      ['POST', '/console/api/tables/blocked'],
      ['POST', '/console/api/reload'],
      ['POST', '/console/sign-out'],
    ]) {
      const res = await raw(base, method, path, { ...json, ...sameOrigin(base) }, '{"value":"10.0.0.1"}');
      assert.equal(res.status, 403, `${method} ${path}`);
    }
    // Reads from another site are refused too (the cookie is SameSite=Strict; this is the second line).
    for (const site of ['cross-site', 'same-site']) {
      const res = await raw(base, 'GET', '/console/api/users', { cookie, 'sec-fetch-site': site });
      assert.equal(res.status, 403, site);
    }
    const evilOrigin = await raw(base, 'GET', '/console/api/session', {
      cookie,
      origin: 'http://evil.example',
    });
    assert.equal(evilOrigin.status, 403);
    // A sign-in posted from another site (login CSRF) is refused before the token is looked at.
    const crossSignIn = await raw(
      base,
      'POST',
      '/console/sign-in',
      { origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      `token=${CONSOLE_TOKEN}`,
    );
    assert.equal(crossSignIn.status, 403);
    assert.equal(crossSignIn.headers['set-cookie'], undefined);

    const users = await raw(base, 'GET', '/console/api/users', { cookie, ...sameOrigin(base) });
    assert.ok(!users.body.includes('csrf-victim'), 'no attempt created the user');
    assert.equal(
      JSON.parse(
        (await raw(base, 'GET', '/console/api/tables/blocked', { cookie, ...sameOrigin(base) })).body,
      ).size,
      0,
    );

    // With the token and from the page itself, the same request goes through to the admin API.
    const ok = await raw(
      base,
      'POST',
      '/console/api/users',
      { ...json, ...sameOrigin(base), 'x-csrf-token': csrf },
      body,
    );
    assert.equal(ok.status, 201, ok.body);
    assert.equal(JSON.parse(ok.body).name, 'csrf-victim');
    // The admin API's own validation answers, field by field.
    const bad = await raw(
      base,
      'POST',
      '/console/api/users',
      { ...json, ...sameOrigin(base), 'x-csrf-token': csrf },
      JSON.stringify({ name: 'bad name', quota: 'lots' }),
    );
    assert.equal(bad.status, 400);
    assert.deepEqual(Object.keys(JSON.parse(bad.body).errors).sort(), ['name', 'quota']);
  });

  it('puts no secret in the HTML of a page, nor in the files and the live stream that do not show one', async () => {
    const { cookie, csrf } = await signIn(base);
    const created = await raw(
      base,
      'POST',
      '/console/api/users',
      { 'content-type': 'application/json', cookie, ...sameOrigin(base), 'x-csrf-token': csrf },
      JSON.stringify({ name: 'secretive' }),
    );
    const userSecret = JSON.parse(created.body).secret as string;
    assert.match(userSecret, /^[0-9a-f]{32}$/);
    const secrets = [CONSOLE_TOKEN, TEST_SECRET_HEX, FILED_SECRET, userSecret];
    const pages = [
      await raw(base, 'GET', '/console/sign-in'),
      await raw(base, 'GET', '/console/', { cookie, 'sec-fetch-site': 'none' }),
    ];
    for (const name of consoleAssets().list()) {
      if (name.endsWith('.html')) continue;
      const prefix =
        name.startsWith('public/') || name.startsWith('vendor/') ? '' : name.startsWith('app/') ? '' : null;
      if (prefix === null) continue;
      pages.push(await raw(base, 'GET', `/console/${name}`, { cookie, ...sameOrigin(base) }));
    }
    assert.ok(pages.length > 6);
    for (const page of pages) {
      assert.equal(page.status, 200);
      for (const s of secrets)
        assert.ok(!page.body.toLowerCase().includes(s.toLowerCase()), 'a secret in a page');
    }
    // Nor in the live stream, which carries the status and the users list.
    const stream = await firstEvents(
      base,
      cookie,
      (text) => text.includes('"secretive"') && text.includes('event: status'),
    );
    assert.match(stream, /event: status/);
    assert.match(stream, /"secretive"/);
    for (const s of secrets) assert.ok(!stream.includes(s), 'a secret in the live stream');
    // The user's own page asks the API for it: that answer does carry the secret (it shows the links).
    const user = await raw(base, 'GET', '/console/api/users/secretive', { cookie, ...sameOrigin(base) });
    assert.equal(JSON.parse(user.body).secret, userSecret);
  });

  it('serves nothing outside its own files, even signed in', async () => {
    const { cookie } = await signIn(base);
    for (const path of [
      '/console/app/../../../package.json',
      '/console/app/%2e%2e/%2e%2e/handler.ts',
      '/console/vendor/../sign-in.html',
      '/console/app/handler.ts',
      '/console/vendor/preact',
    ]) {
      const res = await raw(base, 'GET', path, { cookie, ...sameOrigin(base) });
      assert.equal(res.status, 404, path);
    }
  });

  it('signs out: the cookie is cleared and no longer works, the live stream ends', async () => {
    const { cookie, csrf } = await signIn(base);
    const { ended } = await openStream(base, cookie);
    const out = await raw(base, 'POST', '/console/sign-out', {
      cookie,
      ...sameOrigin(base),
      'x-csrf-token': csrf,
      accept: 'application/json',
    });
    assert.equal(out.status, 200);
    assert.match(String(out.headers['set-cookie']?.[0]), /^mtp_console=; Path=\/console; Max-Age=0/);
    await ended;
    const after = await raw(base, 'GET', '/console/api/status', { cookie, ...sameOrigin(base) });
    assert.equal(after.status, 401);
  });

  it('limits wrong tokens per source: refused for a while, even with the right token', async () => {
    const { cookie } = await signIn(base);
    let last = 0;
    let retryAfter = '';
    for (let i = 0; i < 6; i++) {
      const res = await raw(
        base,
        'POST',
        '/console/sign-in',
        { ...sameOrigin(base), 'content-type': 'application/x-www-form-urlencoded' },
        `token=guess-${i}`,
      );
      last = res.status;
      retryAfter = String(res.headers['retry-after'] ?? '');
      if (i < 5) assert.equal(res.status, 401, `attempt ${i + 1}`);
    }
    assert.equal(last, 429);
    assert.match(retryAfter, /^\d+$/);
    assert.ok(Number(retryAfter) > 0 && Number(retryAfter) <= 60);
    const right = await raw(
      base,
      'POST',
      '/console/sign-in',
      { ...sameOrigin(base), 'content-type': 'application/x-www-form-urlencoded' },
      `token=${CONSOLE_TOKEN}`,
    );
    assert.equal(right.status, 429, 'blocked sources are not told whether the token is right');
    assert.equal(right.headers['set-cookie'], undefined);
    // A session opened before keeps working.
    assert.equal(
      (await raw(base, 'GET', '/console/api/health', { cookie, ...sameOrigin(base) })).status,
      200,
    );
  });
});

describe('console: rate limiter and sessions (injected clock)', () => {
  it('counts failures per source in a window, and a success starts over', () => {
    let now = 1_000_000;
    const limiter = new FailureLimiter({ maxFailures: 3, windowMs: 60_000 }, () => now);
    for (let i = 0; i < 3; i++) {
      assert.equal(limiter.retryAfter('a'), 0);
      limiter.fail('a');
    }
    assert.equal(limiter.retryAfter('a'), 60);
    assert.equal(limiter.retryAfter('b'), 0, 'another source is not affected');
    now += 59_500;
    assert.equal(limiter.retryAfter('a'), 1);
    now += 500;
    assert.equal(limiter.retryAfter('a'), 0, 'the window is over');
    limiter.fail('b');
    limiter.fail('b');
    limiter.succeed('b');
    limiter.fail('b');
    limiter.fail('b');
    assert.equal(limiter.retryAfter('b'), 0);
  });

  it('groups IPv6 sources by /64 and IPv4-mapped addresses as IPv4', () => {
    assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8::1'), '2001:db8::/64');
    assert.equal(sourceKey('::ffff:198.51.100.7'), '198.51.100.7');
    assert.equal(sourceKey('198.51.100.7'), '198.51.100.7');
    assert.equal(sourceKey('::1'), '::/64');
  });

  it('ends a session at its expiry, and keeps only hashes of the ids', () => {
    let now = 0;
    const sessions = new ConsoleSessions(1000, () => now);
    const s = sessions.create('127.0.0.1');
    assert.equal(sessions.get(s.id), s);
    assert.equal(sessions.get(`${s.id}x`), null);
    now = 999;
    assert.equal(sessions.get(s.id), s);
    now = 1000;
    assert.equal(sessions.get(s.id), null);
    assert.equal(sessions.size, 0);
    const a = sessions.create('x');
    sessions.clear();
    assert.equal(sessions.get(a.id), null);
  });
});

/** Read the live stream until `done` says so; then hang up. */
function firstEvents(base: string, cookie: string, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const controller = new AbortController();
    fetch(`${base}/console/api/events?users=1`, {
      headers: { cookie, 'sec-fetch-site': 'same-origin' },
      signal: controller.signal,
    })
      .then(async (res) => {
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
        let text = '';
        const decoder = new TextDecoder();
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          text += decoder.decode(chunk, { stream: true });
          if (done(text)) {
            controller.abort();
            resolve(text);
            return;
          }
        }
        reject(new Error(`stream ended early: ${text.slice(0, 200)}`));
      })
      .catch((err) => {
        if (!controller.signal.aborted) reject(err);
      });
  });
}

/** Open the live stream; the promise it gives resolves when the server ends the stream. */
async function openStream(base: string, cookie: string): Promise<{ ended: Promise<void> }> {
  const res = await fetch(`${base}/console/api/events`, {
    headers: { cookie, 'sec-fetch-site': 'same-origin' },
  });
  assert.equal(res.status, 200);
  const ended = (async () => {
    for await (const _ of res.body as AsyncIterable<Uint8Array>) {
      // drain until the end
    }
  })();
  return { ended };
}

describe('console: turned off, token rotated, listener QR', () => {
  const dir = suiteTempDir('mtp-console-off-');

  it('is not there with admin.console = false: /console is then a bearer path like any other', async () => {
    const off = await startConsoleProxy(dir(), 'console = false');
    try {
      for (const path of ['/console/sign-in', '/console/', '/console/public/style.css']) {
        const res = await raw(off.base, 'GET', path);
        assert.equal(res.status, 401, path);
        assert.match(res.headers['www-authenticate'] ?? '', /^Bearer/);
      }
    } finally {
      await off.stop();
    }
  });

  it('ends every session when the token changes; serves QR codes of the listener links', async () => {
    const p = await startConsoleProxy(dir());
    try {
      const { cookie } = await signIn(p.base);
      const qr = await raw(p.base, 'GET', '/console/api/links/qr.svg?link=0', {
        cookie,
        ...sameOrigin(p.base),
      });
      assert.equal(qr.status, 200);
      assert.match(qr.headers['content-type'] ?? '', /^image\/svg\+xml/);
      assert.match(qr.body, /^<svg /);
      const none = await raw(p.base, 'GET', '/console/api/links/qr.svg?link=99', {
        cookie,
        ...sameOrigin(p.base),
      });
      assert.equal(none.status, 404);
      // A reload with a new token (the admin server stays where it is).
      await p.proxy.applyConfig(parseConfig(p.toml.replace(CONSOLE_TOKEN, `${CONSOLE_TOKEN}-rotated`)));
      assert.equal(
        (await raw(p.base, 'GET', '/console/api/status', { cookie, ...sameOrigin(p.base) })).status,
        401,
      );
      await assert.rejects(signIn(p.base), /401/);
      await signIn(p.base, `${CONSOLE_TOKEN}-rotated`);
    } finally {
      await p.stop();
    }
  });
});

describe('console: the README', () => {
  it('has a section that shows the screenshots the browser tests take, and how to reach it safely', () => {
    const repo = fileURLToPath(new URL('../../../', import.meta.url));
    const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
    const start = readme.indexOf('\n## Web console\n');
    assert.ok(start >= 0);
    const text = readme.slice(start, readme.indexOf('\n## ', start + 1));
    const images = [...text.matchAll(/\((docs\/console\/[a-z-]+\.png)\)/g)].map((m) => m[1]);
    for (const page of ['overview', 'users', 'user', 'tables', 'listeners']) {
      assert.ok(images.includes(`docs/console/${page}-desktop.png`), page);
    }
    for (const image of images) assert.ok(existsSync(path.join(repo, image)), image);
    assert.match(text, /ssh -N -L 9101:127\.0\.0\.1:9101/);
    assert.match(text, /TLS reverse proxy/);
  });
});
