/**
 * Allowance child of the money concurrency test:
 * `node test/money-allowance-child.ts DATABASE_URL USER_ID MONTH ALLOWANCE`.
 *
 * Grants the monthly allowance inside a transaction that it never commits, prints
 * `holding <status>`, and keeps the locks until the test kills it. It exits on its own after
 * 120 s in case the test died before killing it.
 */
import { createDatabase, createPool } from "../src/db/client.ts";
import { grantMonthlyAllowance } from "../src/money/billing/allowance.ts";
import { HOLDING_PREFIX } from "./money-worker-plan.ts";

/** The `application_name` of the child's session, by which the test finds its locks. */
export const ALLOWANCE_CHILD_APPLICATION = "test-money-allowance-child";

const SELF_EXIT_MS = 120_000;

if (import.meta.main) {
  const [url, userId, month, allowance] = process.argv.slice(2) as [string, string, string, string];
  setTimeout(() => process.exit(2), SELF_EXIT_MS).unref();
  const pool = createPool({ url, max: 1, applicationName: ALLOWANCE_CHILD_APPLICATION });
  await createDatabase(pool).transaction(async (tx) => {
    const outcome = await grantMonthlyAllowance(tx, userId, month, BigInt(allowance));
    process.stdout.write(`${HOLDING_PREFIX} ${outcome.status}\n`);
    // Keeps the transaction, and with it the row locks, open until the process is killed.
    await new Promise(() => {});
  });
}
