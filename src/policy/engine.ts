/**
 * The connection policy gate: an ordered list of rules checked once the client is identified. Evaluation
 * stops at the first failing rule. `max_connections` takes one counter slot per rule; the ticket returned
 * with an admission remembers exactly which slots it took and gives each back once, whatever the rules are
 * by then (a reload between connect and close must not unbalance the counters).
 */
import type { PolicyKey, PolicyRule } from '../config/types.ts';
import type { Stats } from '../metrics/stats.ts';
import type { PolicyDecision, PolicyGate, PolicySubject, PolicyTicket } from '../session/types.ts';
import { type CounterStore, LocalCounterStore } from './counters.ts';
import { formatPolicyKey, keyUsesPeer, keyValue, NO_PEER, type ParsedPeer, parsePeer } from './keys.ts';
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
  #engine: PolicyEngine | null;
  readonly #counterKeys: readonly string[];

  constructor(engine: PolicyEngine, counterKeys: readonly string[]) {
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

export interface PolicyEngineOptions {
  rules: readonly PolicyRule[];
  tables: TableLookup;
  counters?: CounterStore;
  stats?: Stats;
}

export class PolicyEngine implements PolicyGate {
  readonly counters: CounterStore;
  readonly #tables: TableLookup;
  readonly #stats: Stats | null;
  #rules: CompiledRules;
  #outstanding = 0;

  constructor(opts: PolicyEngineOptions) {
    this.counters = opts.counters ?? new LocalCounterStore();
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

  admit(subject: PolicySubject): PolicyDecision {
    const { list, admitNeedsPeer } = this.#rules;
    if (list.length === 0) return this.#grant(EMPTY_KEYS);
    const peer = admitNeedsPeer ? parsePeer(subject.remoteAddress) : NO_PEER;
    let taken: string[] | null = null;
    for (const compiled of list) {
      const rule = compiled.rule;
      if (rule.rule === 'max_connections') {
        const counterKey = this.#counterKey(compiled, rule.keys, subject, peer);
        if (counterKey === null) continue;
        if (!this.counters.tryAcquire(counterKey, rule.limit)) {
          if (taken) for (const key of taken) this.counters.release(key);
          return this.#reject(compiled.label);
        }
        (taken ??= []).push(counterKey);
      } else if (!this.#tablePasses(rule.rule, rule.key, rule.table, subject, peer)) {
        if (taken) for (const key of taken) this.counters.release(key);
        return this.#reject(compiled.label);
      }
    }
    return this.#grant(taken ?? EMPTY_KEYS);
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
