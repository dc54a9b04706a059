/**
 * What the listener hands to every client session. Getters, not snapshots: a hot reload swaps the config and
 * new sessions see it at once, while established sessions keep what they were admitted with.
 */
import type { Config, ListenerConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { PolicyGate } from '../policy/types.ts';
import type { Stats } from '../metrics/stats.ts';
import type { Upstream } from '../upstream/types.ts';
import type { UserRegistry } from '../users/registry.ts';

/**
 * Anti-replay: true when the key was seen before (and records it either way). Synchronous wherever it can be
 * (one process, or worker threads over shared memory); only worker processes, which must ask the primary,
 * answer with a Promise, and the session awaits only then.
 */
export interface ReplayGuard {
  seen(key: Buffer): boolean | Promise<boolean>;
}

export type { PolicyDecision, PolicyGate, PolicySubject, PolicyTicket } from '../policy/types.ts';

export interface SessionEnv {
  config(): Config;
  listener(): ListenerConfig;
  /** Upstream for this listener under the current mode (direct/middle/auto). */
  upstream(listener: ListenerConfig): Upstream;
  replay: ReplayGuard;
  policy: PolicyGate;
  stats: Stats;
  log: Logger;
  /** Named users ([[users]] and the state database); absent = listener secrets only. */
  users?: UserRegistry;
}
