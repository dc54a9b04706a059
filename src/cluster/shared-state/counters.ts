/**
 * `max_connections` and user limits counted over the whole fleet (the policy engine's RemoteCounterStore).
 *
 * Each counter is a Redis hash: one field per node holding that node's share. A node's share counts only
 * while the node is alive (its heartbeat key exists, see nodes.ts): acquiring sums the live shares in one
 * Lua script, drops the fields of dead nodes and takes a slot when the total is under the limit. So a node
 * that dies (kill -9, power cut) stops holding its sessions' slots once its heartbeat key expires.
 *
 * The node also keeps its own shares locally (`held`), which are the truth about its sessions. While Redis
 * is unreachable it decides from them alone (the limit then holds per node), and when Redis is back it
 * writes its shares as absolute values, which repairs whatever increments or decrements were lost.
 */
import type { RemoteCounterStore } from '../../policy/counters.ts';
import type { SharedStateLink } from './client.ts';

/** Counter hashes nobody touched for this long disappear (a share is re-written on every reconcile). */
const COUNTER_TTL_MS = 24 * 3600_000;

const ACQUIRE = `
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local node = fields[i]
  if node == ARGV[1] or redis.call('EXISTS', ARGV[3] .. node) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], node)
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`;

const RELEASE = `
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
`;

/** Absolute share of this node for one counter (0 removes the field). */
const ASSERT = `
local n = tonumber(ARGV[2])
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) return 0 end
redis.call('HSET', KEYS[1], ARGV[1], n)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
`;

/** Sum of the live shares (status). */
const TOTAL = `
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[1] .. fields[i]) == 1 then total = total + tonumber(fields[i + 1]) end
end
return total
`;

interface Scripts {
  mtpAcquire(key: string, node: string, limit: number, alivePrefix: string, ttl: number): Promise<number>;
  mtpRelease(key: string, node: string): Promise<number>;
  mtpAssert(key: string, node: string, n: number, ttl: number): Promise<number>;
  mtpTotal(key: string, alivePrefix: string): Promise<number>;
}

export class ClusterCounterStore implements RemoteCounterStore {
  readonly #link: SharedStateLink;
  readonly #node: string;
  readonly #alivePrefix: string;
  readonly #held = new Map<string, number>();
  /** Counters whose Redis share may be wrong (a command failed, or it was decided locally). */
  readonly #dirty = new Set<string>();
  #reconciling: Promise<void> | null = null;
  /** Acquisitions decided from local shares because Redis could not be asked (status). */
  localDecisions = 0;

  constructor(link: SharedStateLink, nodeId: string) {
    this.#link = link;
    this.#node = nodeId;
    this.#alivePrefix = link.key('alive', '');
    const r = link.redis;
    r.defineCommand('mtpAcquire', { numberOfKeys: 1, lua: ACQUIRE });
    r.defineCommand('mtpRelease', { numberOfKeys: 1, lua: RELEASE });
    r.defineCommand('mtpAssert', { numberOfKeys: 1, lua: ASSERT });
    r.defineCommand('mtpTotal', { numberOfKeys: 1, lua: TOTAL });
  }

  get #scripts(): Scripts {
    return this.#link.redis as unknown as Scripts;
  }

  #key(key: string): string {
    return this.#link.key('count', key);
  }

  tryAcquire(key: string, limit: number): boolean | Promise<boolean> {
    if (!this.#link.up) return this.#local(key, limit);
    return this.#scripts
      .mtpAcquire(this.#key(key), this.#node, limit, this.#alivePrefix, COUNTER_TTL_MS)
      .then(
        (ok) => {
          if (ok !== 1) return false;
          this.#add(key, 1);
          return true;
        },
        (err: unknown) => {
          this.#link.fail('acquire', err);
          return this.#local(key, limit);
        },
      );
  }

  release(key: string): void {
    const n = this.#held.get(key);
    if (n === undefined) return;
    this.#add(key, -1);
    if (!this.#link.up) {
      this.#dirty.add(key);
      return;
    }
    this.#scripts.mtpRelease(this.#key(key), this.#node).catch((err: unknown) => {
      this.#link.fail('release', err);
      this.#dirty.add(key);
    });
  }

  /** This node's share of `key`. */
  get(key: string): number {
    return this.#held.get(key) ?? 0;
  }

  /** The fleet's total of `key` (live nodes only), or null when Redis cannot be asked. */
  async total(key: string): Promise<number | null> {
    if (!this.#link.up) return null;
    try {
      return await this.#scripts.mtpTotal(this.#key(key), this.#alivePrefix);
    } catch (err) {
      this.#link.fail('total', err);
      return null;
    }
  }

  /** Slots held by this node's sessions. */
  heldTotal(): number {
    let sum = 0;
    for (const n of this.#held.values()) sum += n;
    return sum;
  }

  /** Counters waiting to be written back to Redis. */
  get dirty(): number {
    return this.#dirty.size;
  }

  /** Write this node's shares of every counter that may be off (after an outage); all of them with `all`. */
  reconcile(all = false): Promise<void> {
    this.#reconciling ??= this.#reconcile(all).finally(() => {
      this.#reconciling = null;
    });
    return this.#reconciling;
  }

  async #reconcile(all: boolean): Promise<void> {
    if (!this.#link.up) return;
    const keys = new Set(this.#dirty);
    if (all) for (const k of this.#held.keys()) keys.add(k);
    if (keys.size === 0) return;
    for (const k of keys) this.#dirty.delete(k);
    const pipeline = this.#link.redis.pipeline();
    for (const k of keys)
      (pipeline as unknown as { mtpAssert: (...a: unknown[]) => void }).mtpAssert(
        this.#key(k),
        this.#node,
        this.#held.get(k) ?? 0,
        COUNTER_TTL_MS,
      );
    try {
      const results = await pipeline.exec();
      let i = 0;
      for (const k of keys) {
        if (results?.[i]?.[0]) this.#dirty.add(k);
        i++;
      }
    } catch (err) {
      this.#link.fail('reconcile', err);
      for (const k of keys) this.#dirty.add(k);
    }
  }

  #local(key: string, limit: number): boolean {
    this.localDecisions++;
    if ((this.#held.get(key) ?? 0) >= limit) return false;
    this.#add(key, 1);
    this.#dirty.add(key);
    return true;
  }

  #add(key: string, delta: number): void {
    const n = (this.#held.get(key) ?? 0) + delta;
    if (n <= 0) this.#held.delete(key);
    else this.#held.set(key, n);
  }
}
