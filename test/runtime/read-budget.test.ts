import assert from 'node:assert/strict';
import test from 'node:test';
import { overTurnBudget, READ_BUDGET_PER_TURN, type TurnBudget } from '../../src/runtime/read-budget.ts';

const nextTurn = () => new Promise((r) => setImmediate(r));

test('a socket is over its budget once it has read its share of one turn, and gets a new share next turn', async () => {
  const a: TurnBudget = { turnEpoch: 0, turnBytes: 0 };
  const b: TurnBudget = { turnEpoch: 0, turnBytes: 0 };
  const half = READ_BUDGET_PER_TURN / 2;
  assert.equal(overTurnBudget(a, half), false);
  assert.equal(overTurnBudget(b, half), false, 'each socket has its own share');
  assert.equal(overTurnBudget(a, half), true);
  assert.equal(overTurnBudget(a, 1), true, 'still over until the turn ends');
  await nextTurn();
  assert.equal(overTurnBudget(a, half), false, 'a new turn, a new share');
});

test('a socket carrying several sessions gets as many shares', () => {
  const link: TurnBudget = { turnEpoch: 0, turnBytes: 0 };
  assert.equal(overTurnBudget(link, READ_BUDGET_PER_TURN * 2, 4), false);
  assert.equal(overTurnBudget(link, READ_BUDGET_PER_TURN * 2, 4), true);
});
