/**
 * Child process of the money concurrency test: `node test/money-worker.ts PLAN_FILE`.
 *
 * Runs the operations of a {@link WorkerPlan} one after another and prints one line per
 * committed operation. At `holdAt` it runs the operation inside a transaction, prints `holding`,
 * and keeps the transaction open with its row locks held until the test kills the process.
 */
import { readFile } from "node:fs/promises";
import { createDatabase, createPool, type DatabaseLike } from "../src/db/client.ts";
import { InsufficientFundsError, spendTokens } from "../src/money/ledger/index.ts";
import { CryptoPayClient } from "../src/money/payments/cryptopay/client.ts";
import { CryptoPayProvider } from "../src/money/payments/cryptopay/provider.ts";
import { parseDecimalPrice } from "../src/money/payments/price.ts";
import {
  DONE_PREFIX,
  HOLDING_PREFIX,
  type WorkerOperation,
  type WorkerOutcome,
  type WorkerPlan,
} from "./money-worker-plan.ts";

/** The worker exits on its own after this long, in case the test died before killing it. */
const SELF_EXIT_MS = 120_000;

async function runOperation(
  db: DatabaseLike,
  plan: WorkerPlan,
  operation: WorkerOperation,
): Promise<WorkerOutcome> {
  if (operation.kind === "spend") {
    try {
      const posted = await spendTokens(
        db,
        operation.userId,
        BigInt(operation.amount),
        operation.idempotencyKey,
      );
      return posted.replayed ? "replayed" : "posted";
    } catch (error) {
      if (error instanceof InsufficientFundsError) return "insufficient";
      throw error;
    }
  }

  // Only handleNotification runs here, so the token price and limits never matter.
  const provider = new CryptoPayProvider({
    db,
    client: new CryptoPayClient({
      apiUrl: new URL(plan.cryptoPayApiUrl),
      apiToken: plan.cryptoPayToken,
    }),
    apiToken: plan.cryptoPayToken,
    tokenPrice: parseDecimalPrice("0.01", "USDT"),
    maxTokens: 1_000_000n,
    orderTtlSeconds: 3600,
    nodeName: "Money worker",
  });
  const result = await provider.handleNotification({
    body: new TextEncoder().encode(operation.body),
    signature: operation.signature,
  });
  if (result.kind !== "payment" || result.outcome.status === "rejected") {
    throw new Error(`Webhook was not applied: ${JSON.stringify(result)}`);
  }
  return result.outcome.status;
}

async function main(planFile: string | undefined): Promise<void> {
  if (planFile === undefined) {
    throw new Error("Missing argument: usage is node test/money-worker.ts PLAN_FILE");
  }
  const plan = JSON.parse(await readFile(planFile, "utf8")) as WorkerPlan;
  setTimeout(() => process.exit(2), SELF_EXIT_MS);
  const pool = createPool({ url: plan.databaseUrl, max: 2, applicationName: "money-worker" });
  const db = createDatabase(pool);

  for (const [index, operation] of plan.operations.entries()) {
    if (index === plan.holdAt) {
      await db.transaction(async (tx) => {
        await runOperation(tx, plan, operation);
        process.stdout.write(`${HOLDING_PREFIX} ${index}\n`);
        // Never settles: the transaction stays open until the process is killed.
        await new Promise(() => {});
      });
    }
    const outcome = await runOperation(db, plan, operation);
    process.stdout.write(`${DONE_PREFIX} ${index} ${outcome}\n`);
  }
  await pool.end();
}

try {
  await main(process.argv[2]);
} catch (error) {
  process.stderr.write(`Money worker failed: ${error instanceof Error ? error.stack : error}\n`);
  process.exit(1);
}
