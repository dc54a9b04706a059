/**
 * Replay protection across the fleet. The node's own cache answers first (a key it has seen is refused
 * without leaving the process); a key new to the node is offered to Redis with SET NX PX, which refuses it
 * when any node stored it before. At most one script call is out at a time: the checks that arrive while
 * it is out go together in the next one.
 *
 * While Redis is unreachable, or more checks wait than `maxWaiting`, the local cache alone decides (a replay
 * across nodes then passes; one on the same node is still refused).
 */
import type { ReplayConfig } from '../../config/types.ts';
import { ReplayCache } from '../../session/replay-cache.ts';
import type { ReplayGuard } from '../../session/types.ts';
import type { SharedStateLink } from './client.ts';

const DEFAULT_MAX_WAITING = 4096;

/** SET NX PX for every key: 1 where it was stored now, 0 where it was there already. */
const REPLAY = `
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('SET', k, '1', 'PX', ARGV[1], 'NX') then out[i] = 1 else out[i] = 0 end
end
return out
`;

interface ReplayScript {
  mtpReplay(n: number, ...keysThenPx: (Buffer | number)[]): Promise<unknown[]>;
}

export class ClusterReplayGuard implements ReplayGuard {
  readonly #link: SharedStateLink;
  readonly #local: ReplayCache;
  readonly #prefix: Buffer;
  readonly #maxWaiting: number;
  #enabled: boolean;
  #maxAgeMs: number;
  #keys: Buffer[] = [];
  #answers: Array<(seen: boolean) => void> = [];
  #waiting = 0;
  #scheduled = false;
  /** A script call is out: checks that arrive meanwhile go in the next one, sent when it is answered. */
  #inFlight = false;
  /** Checks answered by the local cache alone because Redis could not be asked (status). */
  localOnly = 0;

  constructor(link: SharedStateLink, cfg: ReplayConfig, maxWaiting = DEFAULT_MAX_WAITING) {
    this.#link = link;
    this.#local = new ReplayCache({ maxEntries: cfg.maxEntries, maxAgeMs: cfg.maxAgeMs });
    this.#prefix = Buffer.from(link.key('replay', ''), 'latin1');
    this.#maxWaiting = maxWaiting;
    this.#enabled = cfg.enabled;
    this.#maxAgeMs = cfg.maxAgeMs;
    link.redis.defineCommand('mtpReplay', { lua: REPLAY });
  }

  /** Hot reload of `[replay]`. */
  configure(cfg: ReplayConfig): void {
    this.#enabled = cfg.enabled;
    this.#maxAgeMs = cfg.maxAgeMs;
    this.#local.configure(cfg.maxEntries, cfg.maxAgeMs);
  }

  seen(key: Buffer): boolean | Promise<boolean> {
    if (!this.#enabled) return false;
    if (this.#local.seen(key)) return true;
    if (!this.#link.up || this.#waiting >= this.#maxWaiting) {
      this.localOnly++;
      return false;
    }
    this.#waiting++;
    // The session's key buffer may be reused after this call returns: keep a copy.
    this.#keys.push(Buffer.concat([this.#prefix, key]));
    const answer = new Promise<boolean>((resolve) => this.#answers.push(resolve));
    if (!this.#scheduled && !this.#inFlight) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
    return answer;
  }

  /** Checks sent and not answered yet. */
  get waiting(): number {
    return this.#waiting;
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#keys.length === 0) return;
    this.#inFlight = true;
    const keys = this.#keys;
    const answers = this.#answers;
    this.#keys = [];
    this.#answers = [];
    const px = Math.max(1, Math.round(this.#maxAgeMs));
    let settled = false;
    const settle = (results: unknown[] | null, err: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      this.#inFlight = false;
      this.#waiting -= answers.length;
      if (err) this.#link.fail('replay', err);
      for (let i = 0; i < answers.length; i++) {
        const r = results?.[i];
        // 1: stored now, a first sighting. 0: another node stored it before. No answer: local only.
        if (r === 1 || r === 0) answers[i](r === 0);
        else {
          this.localOnly++;
          answers[i](false);
        }
      }
      // What came in while this call was out goes now, as one batch: under load the batches grow by
      // themselves, and a lone check never waits for a timer.
      if (this.#keys.length > 0 && !this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    };
    // Belt and braces over the command timeout: a session never waits longer than twice the timeout.
    const guard = setTimeout(
      () => settle(null, new Error('replay check timed out')),
      this.#link.config.timeoutMs * 2,
    );
    // One script call for the whole batch: cheaper for this process than a pipeline of SET commands.
    (this.#link.redis as unknown as ReplayScript).mtpReplay(keys.length, ...keys, px).then(
      (results) => settle(results, null),
      (err: unknown) => settle(null, err),
    );
  }
}
