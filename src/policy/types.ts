/** The gate a session asks before it serves (or fronts) a client: what the policy engine implements. */

/** Facts the policy engine may key on, known once the client is identified. */
export interface PolicySubject {
  listener: string;
  remoteAddress: string;
  tlsDomain: string | null;
}

export interface PolicyTicket {
  /** Give back every counter this admission took. Idempotent. */
  release(): void;
}

export type PolicyDecision = { ok: true; ticket: PolicyTicket } | { ok: false; rule: string };

export interface PolicyGate {
  /** A Promise only when a counter lives in another process (worker processes); otherwise synchronous. */
  admit(subject: PolicySubject): PolicyDecision | Promise<PolicyDecision>;
  /** Fronting candidates are checked against table rules only (no max_connections counters). */
  allowFronting(subject: PolicySubject): boolean;
}
