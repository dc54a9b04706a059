/**
 * A user's own ad tag, middle mode end to end: the user's sessions reach the middle proxy with the user's
 * tag, the listener secret's with the listener's, and a user without one gets the listener's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectObfuscated } from '../../src/client/obfuscated-client.ts';
import { encryptedPayload, TEST_AD_TAG, withMiddleSetup } from '../helpers/middle-harness.ts';

const TAGGED = 'e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7';
const PLAIN = 'e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8';
const USER_TAG = '0badc0de0badc0de0badc0de0badc0de';

test("a user's ad tag overrides the listener's in middle mode", () =>
  withMiddleSetup(
    {
      // The listener's table ends here: these users follow it (and [upstream] comes after them).
      listener: `
[[users]]
name = "tagged"
secret = "${TAGGED}"
ad_tag = "${USER_TAG}"

[[users]]
name = "plain"
secret = "${PLAIN}"
`,
    },
    async (setup) => {
      const tagOf = async (secret: string) => {
        const before = setup.fake.requests.length;
        const c = await connectObfuscated({ host: '127.0.0.1', port: setup.proxy.port(), secret, dcId: 2 });
        const p = encryptedPayload(4);
        c.sendFrame(p);
        assert.deepEqual((await c.nextFrame()).payload, p);
        c.close();
        const requests = setup.fake.requests.slice(before);
        assert.ok(requests.length > 0);
        return requests[0].adTag;
      };
      assert.equal(await tagOf(TAGGED), USER_TAG);
      assert.equal(await tagOf(PLAIN), TEST_AD_TAG);
      assert.equal(await tagOf(TAGGED), USER_TAG);
      const listenerSession = await setup.connect('intermediate', 2);
      const p = encryptedPayload(4);
      listenerSession.sendFrame(p);
      assert.deepEqual((await listenerSession.nextFrame()).payload, p);
      assert.equal(setup.fake.requests.at(-1)!.adTag, TEST_AD_TAG);
      listenerSession.close();
      assert.deepEqual(setup.fake.violations, []);
    },
  ));
