/** A temporary folder shared by the tests of one suite. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';

/**
 * Registers hooks on the enclosing suite that make a fresh folder (named `prefix` + random) before its tests
 * and remove it after them; the returned function gives the folder's path once the tests run.
 */
export function suiteTempDir(prefix: string): () => string {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), prefix));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return () => dir;
}
