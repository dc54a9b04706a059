/**
 * A session's admission with a user: the policy engine's decision, then the user's limits, as one decision
 * whose ticket gives back both. A user refusal is reported as the rule `user_<reason>` (counted with the
 * other policy refusals).
 */
import type { PolicyDecision, PolicyTicket } from '../policy/types.ts';
import type { BoundSession, UserAdmission, UserLease, UserRegistry, UserState } from './registry.ts';

export class UserTicket implements PolicyTicket {
  readonly lease: UserLease;
  readonly #policy: PolicyTicket;

  constructor(policy: PolicyTicket, lease: UserLease) {
    this.#policy = policy;
    this.lease = lease;
  }

  release(): void {
    this.lease.release();
    this.#policy.release();
  }
}

function combine(decision: PolicyDecision & { ok: true }, admission: UserAdmission): PolicyDecision {
  if (admission.ok) return { ok: true, ticket: new UserTicket(decision.ticket, admission.lease) };
  decision.ticket.release();
  return { ok: false, rule: `user_${admission.reason}` };
}

function withUser(
  decision: PolicyDecision,
  users: UserRegistry,
  user: UserState,
  listener: string,
  remoteAddress: string,
  session: BoundSession,
): PolicyDecision | Promise<PolicyDecision> {
  if (!decision.ok) return decision;
  const admission = users.admit(user, listener, remoteAddress, session);
  if (admission instanceof Promise) {
    return admission.then(
      (a) => combine(decision, a),
      (err: unknown) => {
        decision.ticket.release();
        throw err;
      },
    );
  }
  return combine(decision, admission);
}

/** The policy decision followed by the user's admission (the user's limits are checked only if it passed). */
export function admitUser(
  decision: PolicyDecision | Promise<PolicyDecision>,
  users: UserRegistry,
  user: UserState,
  listener: string,
  remoteAddress: string,
  session: BoundSession,
): PolicyDecision | Promise<PolicyDecision> {
  if (decision instanceof Promise)
    return decision.then((d) => withUser(d, users, user, listener, remoteAddress, session));
  return withUser(decision, users, user, listener, remoteAddress, session);
}
