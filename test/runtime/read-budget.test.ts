import assert from 'node:assert/strict';
import test from 'node:test';
import {
  overSharedTurnBudget,
  overTurnBudget,
  READ_BUDGET_PER_TURN,
  SHARED_SOCKET_SHARES,
  type TurnBudget,
} from '../../src/runtime/read-budget.ts';

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

test('a socket shared by many sessions has one fixed budget of SHARED_SOCKET_SHARES shares per turn', async () => {
  const link: TurnBudget = { turnEpoch: 0, turnBytes: 0 };
  const read = 128 * 1024;
  for (let i = 1; i < SHARED_SOCKET_SHARES * (READ_BUDGET_PER_TURN / read); i++) {
    assert.equal(overSharedTurnBudget(link, read), false, `read ${i} still within the budget`);
  }
  assert.equal(overSharedTurnBudget(link, read), true, 'the budget of a shared socket is used up');
  await nextTurn();
  assert.equal(overSharedTurnBudget(link, read), false, 'a new turn, a new budget');
});
