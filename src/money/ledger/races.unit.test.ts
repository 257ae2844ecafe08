/**
 * The branches where a posting with the same key commits after the replay check but before the
 * transaction starts. On a server that needs a second connection; here a wrapper of the
 * database commits the rival posting right before the transaction opens.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accountBalance, createFundedUser } from "../../../test/ledger-support.ts";
import { type MoneyTestDatabase, openMoneyTestDatabase } from "../../../test/money-database.ts";
import type { Database } from "../../db/client.ts";
import { countPostings, createUser } from "../../payments/test-support.ts";
import {
  openSystemAccount,
  openUserAccounts,
  type PostingRequest,
  postTransaction,
  spendTokens,
  verifyLedger,
} from "./index.ts";

let database: MoneyTestDatabase;
let db: Database;

beforeAll(async () => {
  database = await openMoneyTestDatabase("ledger_races");
  db = database.db;
});

afterAll(async () => {
  await database.close();
});

/** Returns `target` whose next `transaction` call first runs `rival` to its commit. */
function withRivalBeforeTransaction(target: Database, rival: () => Promise<unknown>): Database {
  let pending = true;
  return new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver);
      if (property !== "transaction" || !pending) return value;
      return async (...args: Parameters<Database["transaction"]>) => {
        pending = false;
        await rival();
        return await object.transaction(...args);
      };
    },
  });
}

describe("postTransaction race", () => {
  it("replays a key committed meanwhile", async () => {
    const { free } = await openUserAccounts(db, await createUser(db));
    const faucet = await openSystemAccount(db, "faucet");
    const request: PostingRequest = {
      idempotencyKey: `grant-${randomUUID()}`,
      kind: "free_grant",
      entries: [
        { accountId: faucet.id, amount: -25n },
        { accountId: free.id, amount: 25n },
      ],
    };
    let rivalId = 0;
    const racing = withRivalBeforeTransaction(db, async () => {
      rivalId = (await postTransaction(db, request)).id;
    });

    const posted = await postTransaction(racing, request);

    expect(posted.replayed).toBe(true);
    expect(posted.id).toBe(rivalId);
    expect(await accountBalance(db, free.id)).toBe(25n);
    expect(await countPostings(db, request.idempotencyKey)).toBe(1);
    await verifyLedger(db);
  });
});

describe("spendTokens race", () => {
  it("replays a spend committed meanwhile", async () => {
    const user = await createFundedUser(db, 10n, 20n);
    const key = `spend-${randomUUID()}`;
    let rivalId = 0;
    const racing = withRivalBeforeTransaction(db, async () => {
      rivalId = (await spendTokens(db, user.userId, 15n, key)).id;
    });

    const spent = await spendTokens(racing, user.userId, 15n, key);

    expect(spent.replayed).toBe(true);
    expect(spent.id).toBe(rivalId);
    expect(await accountBalance(db, user.free.id)).toBe(0n);
    expect(await accountBalance(db, user.paid.id)).toBe(15n);
    expect(await countPostings(db, key)).toBe(1);
    await verifyLedger(db);
  });
});
