/**
 * The connection policy gate: an ordered list of rules checked once the client is identified. Evaluation
 * stops at the first failing rule. `max_connections` takes one counter slot per rule; the ticket returned
 * with an admission remembers exactly which slots it took and gives each back once, whatever the rules are
 * by then (a reload between connect and close must not unbalance the counters).
 */
import type { PolicyKey, PolicyRule } from '../config/types.ts';
import type { Stats } from '../metrics/stats.ts';
import type { PolicyDecision, PolicyGate, PolicySubject, PolicyTicket } from './types.ts';
import { type CounterStore, LocalCounterStore, type RemoteCounterStore } from './counters.ts';
import { formatPolicyKey } from '../config/policy-keys.ts';
import { keyUsesPeer, keyValue, NO_PEER, type ParsedPeer, parsePeer } from './keys.ts';
import type { TableLookup } from './tables.ts';

interface CompiledRule {
  readonly rule: PolicyRule;
  /** Label used in rejection stats and logs: the rule's configured name, else its description. */
  readonly label: string;
  /** Prefix of this rule's counter keys: the key list, so equal key lists share counters like the reference. */
  readonly counterPrefix: string;
}

function describeRule(rule: PolicyRule): string {
  if (rule.rule === 'max_connections') {
    return `max_connections(${rule.keys.map(formatPolicyKey).join(',')})`;
  }
  return `${rule.rule}(${formatPolicyKey(rule.key)},${rule.table})`;
}

interface CompiledRules {
  readonly list: CompiledRule[];
  /** Whether admit() / allowFronting() read the peer address at all, so rules keyed only on the listener or
   * the TLS domain never parse it. */
  readonly admitNeedsPeer: boolean;
  readonly frontingNeedsPeer: boolean;
}

function compile(rules: readonly PolicyRule[]): CompiledRules {
  const list = rules.map((rule) => ({
    rule,
    label: rule.raw || describeRule(rule),
    counterPrefix: rule.rule === 'max_connections' ? `${rule.keys.map(formatPolicyKey).join(',')}=` : '',
  }));
  const tableRulesNeedPeer = rules.some((r) => r.rule !== 'max_connections' && keyUsesPeer(r.key));
  return {
    list,
    admitNeedsPeer:
      tableRulesNeedPeer || rules.some((r) => r.rule === 'max_connections' && r.keys.some(keyUsesPeer)),
    frontingNeedsPeer: tableRulesNeedPeer,
  };
}

const EMPTY_KEYS: readonly string[] = [];

class Ticket implements PolicyTicket {
  #engine: PolicyEngine<RemoteCounterStore> | null;
  readonly #counterKeys: readonly string[];

  constructor(engine: PolicyEngine<RemoteCounterStore>, counterKeys: readonly string[]) {
    this.#engine = engine;
    this.#counterKeys = counterKeys;
  }

  release(): void {
    const engine = this.#engine;
    if (engine === null) return;
    this.#engine = null;
    engine.giveBack(this.#counterKeys);
  }
}

export interface PolicyEngineOptions<C extends RemoteCounterStore = CounterStore> {
  rules: readonly PolicyRule[];
  tables: TableLookup;
  counters?: C;
  stats?: Stats;
}

/** What admit() returns: a decision right away, unless the counters may have to be asked for (another process). */
export type Admission<C extends RemoteCounterStore> = C extends CounterStore
  ? PolicyDecision
  : PolicyDecision | Promise<PolicyDecision>;

export class PolicyEngine<C extends RemoteCounterStore = CounterStore> implements PolicyGate {
  readonly counters: C;
  readonly #tables: TableLookup;
  readonly #stats: Stats | null;
  #rules: CompiledRules;
  #outstanding = 0;

  constructor(opts: PolicyEngineOptions<C>) {
    this.counters = opts.counters ?? (new LocalCounterStore() as unknown as C);
    this.#tables = opts.tables;
    this.#stats = opts.stats ?? null;
    this.#rules = compile(opts.rules);
  }

  /** Swap the rule list (hot reload). Admitted connections keep the counters they took. */
  setRules(rules: readonly PolicyRule[]): void {
    this.#rules = compile(rules);
  }

  get rules(): PolicyRule[] {
    return this.#rules.list.map((r) => r.rule);
  }

  /** Admissions not yet released: zero once every connection has ended. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** The key a table is checked against by the current rules (first rule wins), so edits can be validated. */
  tableKey(table: string): PolicyKey | null {
    for (const { rule } of this.#rules.list) {
      if (rule.rule !== 'max_connections' && rule.table === table) return rule.key;
    }
    return null;
  }

  /** Tables the current rules refer to. */
  referencedTables(): string[] {
    const names = new Set<string>();
    for (const { rule } of this.#rules.list) if (rule.rule !== 'max_connections') names.add(rule.table);
    return [...names];
  }

  admit(subject: PolicySubject): Admission<C> {
    const { list, admitNeedsPeer } = this.#rules;
    if (list.length === 0) return this.#grant(EMPTY_KEYS) as Admission<C>;
    const peer = admitNeedsPeer ? parsePeer(subject.remoteAddress) : NO_PEER;
    return this.#evaluate(list, 0, subject, peer, null) as Admission<C>;
  }

  /**
   * Rules from `from` on. Synchronous unless the counter store answers with a Promise (worker processes):
   * then the remaining rules run once it settles, against the rule list admission started with.
   */
  #evaluate(
    list: readonly CompiledRule[],
    from: number,
    subject: PolicySubject,
    peer: ParsedPeer,
    taken: string[] | null,
  ): PolicyDecision | Promise<PolicyDecision> {
    for (let i = from; i < list.length; i++) {
      const compiled = list[i];
      const rule = compiled.rule;
      if (rule.rule === 'max_connections') {
        const counterKey = this.#counterKey(compiled, rule.keys, subject, peer);
        if (counterKey === null) continue;
        const acquired = this.counters.tryAcquire(counterKey, rule.limit);
        if (acquired === true) {
          (taken ??= []).push(counterKey);
          continue;
        }
        if (acquired === false) return this.#refuse(compiled.label, taken);
        return acquired.then(
          (ok) => {
            if (!ok) return this.#refuse(compiled.label, taken);
            const now = taken ?? [];
            now.push(counterKey);
            return this.#evaluate(list, i + 1, subject, peer, now);
          },
          (err: unknown) => {
            this.#giveBackTaken(taken);
            throw err;
          },
        );
      }
      if (!this.#tablePasses(rule.rule, rule.key, rule.table, subject, peer)) {
        return this.#refuse(compiled.label, taken);
      }
    }
    return this.#grant(taken ?? EMPTY_KEYS);
  }

  #refuse(label: string, taken: string[] | null): PolicyDecision {
    this.#giveBackTaken(taken);
    return this.#reject(label);
  }

  #giveBackTaken(taken: string[] | null): void {
    if (taken) for (const key of taken) this.counters.release(key);
  }

  allowFronting(subject: PolicySubject): boolean {
    const { list, frontingNeedsPeer } = this.#rules;
    const peer = frontingNeedsPeer ? parsePeer(subject.remoteAddress) : NO_PEER;
    for (const compiled of list) {
      const rule = compiled.rule;
      if (rule.rule === 'max_connections') continue;
      if (!this.#tablePasses(rule.rule, rule.key, rule.table, subject, peer)) {
        this.#stats?.listener(subject.listener).reject(compiled.label);
        return false;
      }
    }
    return true;
  }

  /** Called by a ticket exactly once. */
  giveBack(counterKeys: readonly string[]): void {
    this.#outstanding--;
    for (const key of counterKeys) this.counters.release(key);
  }

  #grant(counterKeys: readonly string[]): PolicyDecision {
    this.#outstanding++;
    return { ok: true, ticket: new Ticket(this, counterKeys) };
  }

  // The session counts refused admissions itself (it has the listener's stats at hand); fronting refusals
  // are counted here because allowFronting() only answers yes or no.
  #reject(label: string): PolicyDecision {
    return { ok: false, rule: label };
  }

  #counterKey(
    compiled: CompiledRule,
    keys: readonly PolicyKey[],
    subject: PolicySubject,
    peer: ParsedPeer,
  ): string | null {
    let out = compiled.counterPrefix;
    for (let i = 0; i < keys.length; i++) {
      const value = keyValue(keys[i], subject, peer);
      // A key that does not apply to this connection skips the whole rule.
      if (value === null) return null;
      out += i === 0 ? value : `,${value}`;
    }
    return out;
  }

  #tablePasses(
    kind: 'in_table' | 'not_in_table',
    key: PolicyKey,
    table: string,
    subject: PolicySubject,
    peer: ParsedPeer,
  ): boolean {
    const value = keyValue(key, subject, peer);
    if (value === null) return true;
    const present = this.#tables.has(table, value);
    return kind === 'in_table' ? present : !present;
  }
}
