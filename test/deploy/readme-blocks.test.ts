/**
 * The README says what to do against each 2026 block, where an operator looks: in "Choosing a cover domain"
 * and in "Troubleshooting", naming commands that exist.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, title);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('README against the 2026 blocks', () => {
  for (const title of ['Choosing a cover domain', 'Troubleshooting']) {
    it(`${title}: the connection-rate block → the firewall, a flagged cover → doctor's advice`, () => {
      const text = section(title).replace(/\s+/g, ' ');
      assert.match(text, /connection-rate block[^.]*?`sudo mtproxy firewall apply`/);
      assert.match(text, /--firewall/);
      assert.match(text, /flag[^.]*?`mtproxy doctor`('s)? advice|`mtproxy doctor` and follow its advice/);
    });
  }

  it('the cover-domain advice names what doctor checks', () => {
    const text = section('Choosing a cover domain');
    for (const word of ['X25519MLKEM768', 'TLS 1.3', 'A/AAAA']) assert.ok(text.includes(word), word);
  });
});
