/**
 * Fair shares of one event-loop turn between saturating connections.
 *
 * libuv reads a readable socket up to 32 times in a row in one turn (64 KiB each), and every read of a relayed
 * socket is decrypted, re-encrypted and written before the next one: a few connections pushing bulk data can
 * hold the loop for tens of milliseconds per turn, while a small message that arrived on another connection
 * waits for the turn to end. A socket that has delivered READ_BUDGET_PER_TURN bytes in the current turn stops
 * reading until the next turn (setImmediate), so each turn serves every ready socket a little.
 *
 * "The current turn" is an epoch counter moved on by one setImmediate per busy turn: every read of one poll
 * phase sees the same epoch.
 */

/** Bytes one socket may deliver in one turn before it yields (two full reads). */
export const READ_BUDGET_PER_TURN = 128 * 1024;

export interface TurnBudget {
  turnEpoch: number;
  turnBytes: number;
}

let epoch = 1;
let advancing = false;

function advanceEpoch(): void {
  epoch++;
  advancing = false;
}

/**
 * Count `bytes` just read by `owner`; true once it has used up its budget for this turn (`shares` budgets for
 * a socket that carries several sessions' bytes).
 */
export function overTurnBudget(owner: TurnBudget, bytes: number, shares = 1): boolean {
  if (owner.turnEpoch !== epoch) {
    owner.turnEpoch = epoch;
    owner.turnBytes = bytes;
  } else {
    owner.turnBytes += bytes;
  }
  if (owner.turnBytes < READ_BUDGET_PER_TURN * shares) return false;
  if (!advancing) {
    advancing = true;
    setImmediate(advanceEpoch);
  }
  return true;
}
