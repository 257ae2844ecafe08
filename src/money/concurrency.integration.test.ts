/**
 * Many money operations at once against real PostgreSQL and the local fakes of Telegram and
 * Crypto Pay: free-token grants, spends, hourly billing charges, payments and refunds, each
 * delivered 2 or 3 times in parallel. Meanwhile a child process that posts in a loop is killed
 * with SIGKILL inside an open transaction, and its work is delivered again. Afterwards every
 * balance must equal its postings, and nothing may be credited, spent or refunded twice.
 *
 * The interleaving differs from run to run, so each check holds for every interleaving: a spend
 * or refund may fail with InsufficientFundsError, and the expected totals come from the outcomes
 * the callers saw. The operation mix comes from a seeded PRNG.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { and, eq, sql } from "drizzle-orm";
import { Api } from "grammy";
import type { Update } from "grammy/types";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRandom } from "../../bench/lib/catalogue-generator.ts";
import { FakeCryptoPay } from "../../test/fakes/cryptopay.ts";
import { FakeTelegramBotApi } from "../../test/fakes/telegram-bot-api.ts";
import {
  DONE_PREFIX,
  HOLDING_PREFIX,
  type WorkerOperation,
  type WorkerOutcome,
  type WorkerPlan,
} from "../../test/money-worker-plan.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { createDatabase, createPool, type Database } from "../db/client.ts";
import { ledgerAccounts, ledgerTransactions, type SystemAccountKind } from "../db/schema/index.ts";
import { createUser } from "../payments/test-support.ts";
import { type ChargeOutcome, chargeUser, usagePostingKey } from "./billing/index.ts";
import {
  IdempotencyConflictError,
  InsufficientFundsError,
  openSystemAccount,
  openUserAccounts,
  postTransaction,
  spendTokens,
  verifyLedger,
} from "./ledger/index.ts";
import { CryptoPayClient } from "./payments/cryptopay/client.ts";
import { CryptoPayProvider } from "./payments/cryptopay/provider.ts";
import { paymentPostingKey, refundPostingKey } from "./payments/orders.ts";
import { parseDecimalPrice } from "./payments/price.ts";
import type { NotificationResult } from "./payments/provider.ts";
import { TelegramStarsProvider } from "./payments/telegram-stars.ts";
import type { LoadPrice } from "./pricing.ts";

const SEED = 20_261_204;
const USER_COUNT = 20;
const OPERATION_COUNT = 200;
const WORKER_OPERATION_COUNT = 30;
/** The worker commits this many operations, then leaves the next one uncommitted. */
const WORKER_HOLD_AT = 18;
/** Free tokens each user gets before the parallel phase. */
const STARTING_FREE_TOKENS = 60n;
const TELEGRAM_TOKEN = "123456:TEST-concurrency_bot";
const CRYPTOPAY_TOKEN = "12345:AAconcurrencyCryptoPayToken";
const WORKER_FILE = fileURLToPath(new URL("../../test/money-worker.ts", import.meta.url));

let database: TestDatabase;
let pool: pg.Pool;
let db: Database;
let telegram: FakeTelegramBotApi;
let cryptoPay: FakeCryptoPay;
let starsProvider: TelegramStarsProvider;
let cryptoPayProvider: CryptoPayProvider;
let scratch: string;
let worker: ChildProcess | undefined;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "money_concurrency");
  // More connections than the test database's default pool, so more postings overlap.
  pool = createPool({ url: database.url, max: 24, applicationName: "test-money-concurrency" });
  db = createDatabase(pool);
  // The deadline is far above any pre-checkout reply, so a slow shared machine cannot make the
  // fake cancel a payment.
  telegram = new FakeTelegramBotApi({ token: TELEGRAM_TOKEN, deadlineMs: 120_000 });
  await telegram.start();
  cryptoPay = new FakeCryptoPay({ token: CRYPTOPAY_TOKEN });
  await cryptoPay.start();
  starsProvider = new TelegramStarsProvider({
    db,
    api: new Api(TELEGRAM_TOKEN, { apiRoot: telegram.apiRoot }),
    starsPerToken: 2n,
    maxTokens: 1000n,
    orderTtlSeconds: 3600,
    nodeName: "Test node",
  });
  cryptoPayProvider = new CryptoPayProvider({
    db,
    client: new CryptoPayClient({ apiUrl: cryptoPay.apiUrl, apiToken: CRYPTOPAY_TOKEN }),
    apiToken: CRYPTOPAY_TOKEN,
    tokenPrice: parseDecimalPrice("0.015", "USDT"),
    maxTokens: 1000n,
    orderTtlSeconds: 3600,
    nodeName: "Test node",
  });
  scratch = await mkdtemp(path.join(tmpdir(), "pepeunit-money-concurrency-"));
});

afterAll(async () => {
  if (worker !== undefined && worker.exitCode === null && worker.signalCode === null) {
    worker.kill("SIGKILL");
  }
  await rm(scratch, { recursive: true, force: true });
  await cryptoPay.stop();
  await telegram.stop();
  await pool.end();
  await database.drop();
});

interface TestUser {
  id: string;
  telegramId: number;
}

interface PaidOrder {
  provider: "telegram_stars" | "cryptopay";
  providerPaymentId: string;
  orderId: string;
  tokens: bigint;
}

/** What the callers saw, from which the expected ledger totals follow. */
class Outcomes {
  /** Idempotency key of a grant to its amount. */
  readonly grants = new Map<string, bigint>();
  /** Idempotency key of a spend that some call posted or replayed, to its amount. */
  readonly spends = new Map<string, bigint>();
  /** Spend keys with every outcome seen, for the exactly-once checks. */
  readonly spendResults = new Map<string, string[]>();
  /** The payment behind each credit, by the ledger key of the credit. */
  readonly payments = new Map<string, PaidOrder>();
  /** Ledger key of a payment's credit to the status of every delivery of the payment. */
  readonly creditResults = new Map<string, string[]>();
  /** Idempotency key of a billing charge that posted, to the tokens it charged. */
  readonly charges = new Map<string, bigint>();
  /** Billing charge keys with every outcome seen. */
  readonly chargeResults = new Map<string, string[]>();
  /** Billing charge keys to the user and price, for the retry. */
  readonly chargeRequests = new Map<string, { userId: string; price: LoadPrice }>();
  /** Order id to every refund outcome seen. */
  readonly refundResults = new Map<string, string[]>();
  /** Order id to the tokens its refund takes back. */
  readonly refundTokens = new Map<string, bigint>();

  addResult(map: Map<string, string[]>, key: string, result: string): void {
    map.set(key, [...(map.get(key) ?? []), result]);
  }
}

/** Runs `attempt` `times` times in parallel, as a retrying client or a redelivering provider. */
async function deliverRepeatedly<T>(times: number, attempt: () => Promise<T>): Promise<T[]> {
  return await Promise.all(Array.from({ length: times }, attempt));
}

async function grantFree(outcomes: Outcomes, userId: string, amount: bigint, key: string) {
  const { free } = await openUserAccounts(db, userId);
  const faucet = await openSystemAccount(db, "faucet");
  const posted = await postTransaction(db, {
    idempotencyKey: key,
    kind: "free_grant",
    entries: [
      { accountId: faucet.id, amount: -amount },
      { accountId: free.id, amount },
    ],
  });
  if (!posted.replayed) {
    expect(outcomes.grants.has(key), `grant ${key} posted twice`).toBe(false);
    outcomes.grants.set(key, amount);
  }
}

/** Spends once; records `posted`, `replayed` or `insufficient` and raises anything else. */
async function spend(
  outcomes: Outcomes,
  userId: string,
  amount: bigint,
  key: string,
): Promise<WorkerOutcome> {
  let result: WorkerOutcome;
  try {
    const posted = await spendTokens(db, userId, amount, key);
    result = posted.replayed ? "replayed" : "posted";
  } catch (error) {
    if (!(error instanceof InsufficientFundsError)) throw error;
    result = "insufficient";
  }
  outcomes.addResult(outcomes.spendResults, key, result);
  if (result !== "insufficient") outcomes.spends.set(key, amount);
  return result;
}

/**
 * Charges one Unit's hour as an hourly billing run does. `chargeUser` raises a ledger error when
 * a concurrent spend changes the balance between its read and its posting, and a later run
 * retries that key, so the error is recorded as `retry`.
 */
async function charge(outcomes: Outcomes, userId: string, price: LoadPrice, key: string) {
  outcomes.chargeRequests.set(key, { userId, price });
  let outcome: ChargeOutcome | undefined;
  try {
    outcome = await chargeUser(db, {
      userId,
      idempotencyKey: key,
      price,
      kind: "usage",
      description: "Unit hour",
      metadata: { key },
    });
  } catch (error) {
    if (!(error instanceof InsufficientFundsError || error instanceof IdempotencyConflictError)) {
      throw error;
    }
  }
  outcomes.addResult(outcomes.chargeResults, key, outcome?.status ?? "retry");
  if (outcome === undefined) return "retry";
  if (outcome.status === "charged" || outcome.status === "exhausted") {
    if (outcome.transactionId !== null) outcomes.charges.set(key, outcome.charged);
  }
  return outcome.status;
}

/** Refunds an order; records `refunded`, `already_refunded` or `insufficient`. */
async function refund(outcomes: Outcomes, orderId: string, tokens: bigint, viaTelegram: boolean) {
  outcomes.refundTokens.set(orderId, tokens);
  let result: string;
  try {
    const outcome = viaTelegram
      ? await starsProvider.refund(orderId)
      : await cryptoPayProvider.refund(orderId, { externallyRefunded: true });
    result = outcome.status;
  } catch (error) {
    if (!(error instanceof InsufficientFundsError)) throw error;
    result = "insufficient";
  }
  outcomes.addResult(outcomes.refundResults, orderId, result);
}

/** Pays a Telegram Stars invoice and delivers the `successful_payment` update `times` times. */
async function payWithStars(
  outcomes: Outcomes,
  user: TestUser,
  tokens: bigint,
  times: number,
  refundTimes: number,
) {
  const { order } = await starsProvider.createInvoice({
    userId: user.id,
    tokens,
    language: "en",
    telegramChatId: user.telegramId,
  });
  const firstDeliveries: Promise<unknown>[] = [];
  const attempt = await telegram.pay({
    payload: order.id,
    user: { id: user.telegramId, language_code: "en" },
    deliver: async (update) => {
      const handled = starsProvider.handleNotification(update);
      if (update.message?.successful_payment !== undefined) firstDeliveries.push(handled);
      return await handled;
    },
  });
  expect(attempt.ok, `payment of order ${order.id} was not accepted`).toBe(true);

  const chargeId = attempt.chargeId as string;
  const key = paymentPostingKey("telegram_stars", chargeId);
  outcomes.payments.set(key, {
    provider: "telegram_stars",
    providerPaymentId: chargeId,
    orderId: order.id,
    tokens,
  });
  const results = await Promise.all([
    ...firstDeliveries,
    ...Array.from({ length: times - 1 }, () =>
      starsProvider.handleNotification(attempt.update as Update),
    ),
  ]);
  for (const result of results as NotificationResult[]) {
    const status = result.kind === "payment" ? result.outcome.status : result.kind;
    outcomes.addResult(outcomes.creditResults, key, status);
  }
  if (refundTimes > 0) {
    await deliverRepeatedly(refundTimes, () => refund(outcomes, order.id, tokens, true));
  }
}

/** Builds a paid Crypto Pay invoice of a new order and returns its signed webhook. */
async function paidCryptoPayInvoice(outcomes: Outcomes, user: TestUser, tokens: bigint) {
  const { order } = await cryptoPayProvider.createInvoice({
    userId: user.id,
    tokens,
    language: "ru",
  });
  const invoice = cryptoPay.markPaid(Number(order.providerInvoiceId));
  const body = cryptoPay.webhookBody(invoice);
  const paymentId = String(invoice.invoice_id);
  const key = paymentPostingKey("cryptopay", paymentId);
  outcomes.payments.set(key, {
    provider: "cryptopay",
    providerPaymentId: paymentId,
    orderId: order.id,
    tokens,
  });
  return { order, key, body, signature: cryptoPay.sign(body) };
}

async function deliverCryptoPayWebhook(
  outcomes: Outcomes,
  key: string,
  body: string,
  signature: string,
) {
  const result = await cryptoPayProvider.handleNotification({
    body: new TextEncoder().encode(body),
    signature,
  });
  const status = result.kind === "payment" ? result.outcome.status : result.kind;
  outcomes.addResult(outcomes.creditResults, key, status);
  return status;
}

async function payWithCryptoPay(
  outcomes: Outcomes,
  user: TestUser,
  tokens: bigint,
  times: number,
  refundTimes: number,
) {
  const { order, key, body, signature } = await paidCryptoPayInvoice(outcomes, user, tokens);
  await deliverRepeatedly(times, () => deliverCryptoPayWebhook(outcomes, key, body, signature));
  if (refundTimes > 0) {
    await deliverRepeatedly(refundTimes, () => refund(outcomes, order.id, tokens, false));
  }
}

/** Builds the seeded list of parallel operations. */
function planOperations(outcomes: Outcomes, testUsers: readonly TestUser[]) {
  const random = createRandom(SEED);
  const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
  // A spend that no balance covers, so the check of insufficient funds always runs.
  const poorUser = testUsers[0] as TestUser;
  const operations: (() => Promise<unknown>)[] = [
    () => deliverRepeatedly(2, () => spend(outcomes, poorUser.id, 1_000_000n, "spend-too-much")),
  ];
  for (let index = 1; index < OPERATION_COUNT; index++) {
    const user = testUsers[between(0, testUsers.length - 1)] as TestUser;
    const times = between(2, 3);
    const refundTimes = random() < 0.4 ? 2 : 0;
    const choice = random();
    if (choice < 0.1) {
      const amount = BigInt(between(1, 50));
      operations.push(() =>
        deliverRepeatedly(times, () => grantFree(outcomes, user.id, amount, `grant-${index}`)),
      );
    } else if (choice < 0.25) {
      const price: LoadPrice =
        random() < 0.1 ? { kind: "unbounded" } : { kind: "finite", amount: BigInt(between(1, 30)) };
      const key = usagePostingKey(`unit-${between(1, 50)}`, new Date(Date.UTC(2027, 0, 1, index)));
      operations.push(() => deliverRepeatedly(times, () => charge(outcomes, user.id, price, key)));
    } else if (choice < 0.5) {
      const amount = BigInt(between(1, 40));
      operations.push(() =>
        deliverRepeatedly(times, () => spend(outcomes, user.id, amount, `spend-${index}`)),
      );
    } else if (choice < 0.75) {
      const tokens = BigInt(between(5, 60));
      operations.push(() => payWithStars(outcomes, user, tokens, times, refundTimes));
    } else {
      const tokens = BigInt(between(5, 60));
      operations.push(() => payWithCryptoPay(outcomes, user, tokens, times, refundTimes));
    }
  }
  return operations;
}

/**
 * Builds the worker's operations, paid Crypto Pay webhooks and spends with a spend at the hold,
 * and the ledger key that each operation posts under.
 */
async function planWorker(
  outcomes: Outcomes,
  testUsers: readonly TestUser[],
): Promise<{ plan: WorkerPlan; keys: string[] }> {
  const random = createRandom(SEED + 1);
  const operations: WorkerOperation[] = [];
  const keys: string[] = [];
  for (let index = 0; index < WORKER_OPERATION_COUNT; index++) {
    const user = testUsers[Math.floor(random() * testUsers.length)] as TestUser;
    const isSpend = index === WORKER_HOLD_AT || random() < 0.6;
    if (isSpend) {
      const amount = String(1 + Math.floor(random() * 20));
      operations.push({
        kind: "spend",
        userId: user.id,
        amount,
        idempotencyKey: `worker-spend-${index}`,
      });
      keys.push(`worker-spend-${index}`);
    } else {
      const tokens = BigInt(5 + Math.floor(random() * 50));
      const { key, body, signature } = await paidCryptoPayInvoice(outcomes, user, tokens);
      operations.push({ kind: "webhook", body, signature });
      keys.push(key);
    }
  }
  const plan: WorkerPlan = {
    databaseUrl: database.url,
    cryptoPayApiUrl: cryptoPay.apiUrl.href,
    cryptoPayToken: CRYPTOPAY_TOKEN,
    operations,
    holdAt: WORKER_HOLD_AT,
  };
  return { plan, keys };
}

/**
 * Starts the worker, waits until it holds its transaction open, and kills it with SIGKILL.
 * Returns the outcome of every operation it reported as committed.
 */
async function runAndKillWorker(plan: WorkerPlan): Promise<Map<number, WorkerOutcome>> {
  const planFile = path.join(scratch, "worker-plan.json");
  await writeFile(planFile, JSON.stringify(plan));
  const child = spawn(process.execPath, [WORKER_FILE, planFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  worker = child;
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const exited = once(child, "exit");

  const reported = new Map<number, WorkerOutcome>();
  let holding = false;
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    const [prefix, index, outcome] = line.split(" ");
    if (prefix === DONE_PREFIX) reported.set(Number(index), outcome as WorkerOutcome);
    if (prefix === HOLDING_PREFIX) {
      holding = true;
      child.kill("SIGKILL");
      break;
    }
  }
  await exited;
  expect(holding, `the worker stopped before it held a transaction:\n${stderr}`).toBe(true);
  expect(child.signalCode).toBe("SIGKILL");
  return reported;
}

/** Counts ledger transactions with exactly this idempotency key. */
async function countPostingsWithKey(key: string): Promise<number> {
  const [row] = await db
    .select({ count: sql<number>`count(*)::int` })
    .from(ledgerTransactions)
    .where(eq(ledgerTransactions.idempotencyKey, key));
  return (row as { count: number }).count;
}

async function systemBalance(kind: SystemAccountKind): Promise<bigint> {
  const [account] = await db
    .select({ balance: ledgerAccounts.balance })
    .from(ledgerAccounts)
    .where(and(eq(ledgerAccounts.ownerKind, "system"), eq(ledgerAccounts.kind, kind)));
  return account?.balance ?? 0n;
}

function sum(values: Iterable<bigint>): bigint {
  let total = 0n;
  for (const value of values) total += value;
  return total;
}

describe("money under concurrency", () => {
  it("applies each operation exactly once", { timeout: 180_000 }, async () => {
    const outcomes = new Outcomes();
    const testUsers: TestUser[] = [];
    for (let index = 0; index < USER_COUNT; index++) {
      const id = await createUser(db);
      testUsers.push({ id, telegramId: 900_000 + index });
      await grantFree(outcomes, id, STARTING_FREE_TOKENS, `grant-start-${index}`);
    }
    const { plan, keys } = await planWorker(outcomes, testUsers);
    const operations = planOperations(outcomes, testUsers);

    // The worker holds the revenue_usage row locked until it is killed, so the parallel spends
    // wait for the kill and PostgreSQL's rollback of the worker's transaction.
    const [reported] = await Promise.all([
      runAndKillWorker(plan),
      Promise.all(operations.map((operation) => operation())),
    ]);
    expect(reported.size).toBe(WORKER_HOLD_AT);
    for (const [index, outcome] of reported) {
      const operation = plan.operations[index] as WorkerOperation;
      const key = keys[index] as string;
      if (operation.kind === "webhook") outcomes.addResult(outcomes.creditResults, key, outcome);
      else outcomes.addResult(outcomes.spendResults, key, outcome);
    }

    // Deliver everything the worker was doing again, as its restarted successor would.
    for (const [index, operation] of plan.operations.entries()) {
      const key = keys[index] as string;
      const outcome =
        operation.kind === "spend"
          ? await spend(outcomes, operation.userId, BigInt(operation.amount), key)
          : await deliverCryptoPayWebhook(outcomes, key, operation.body, operation.signature);
      if (reported.get(index) === "posted") {
        expect(outcome, `worker spend ${index} after the kill`).toBe("replayed");
      }
      if (reported.get(index) === "credited") {
        expect(outcome, `worker webhook ${index} after the kill`).toBe("already_credited");
      }
    }
    // The next billing run retries the charges that met a concurrent balance change.
    for (const [key, results] of outcomes.chargeResults) {
      if (!results.includes("retry")) continue;
      const request = outcomes.chargeRequests.get(key) as { userId: string; price: LoadPrice };
      expect(await charge(outcomes, request.userId, request.price, key)).not.toBe("retry");
    }
    // The killed transaction rolled back, so its spend was not stored before the redelivery.
    expect(outcomes.spendResults.get(keys[WORKER_HOLD_AT] as string)).not.toContain("replayed");

    await verifyLedger(db);

    for (const [key, payment] of outcomes.payments) {
      expect(await countPostingsWithKey(key), `postings of ${key}`).toBe(1);
      const statuses = outcomes.creditResults.get(key) ?? [];
      const credited = statuses.filter((status) => status === "credited").length;
      expect(credited, `deliveries of ${key} that credited`).toBe(1);
      const others = statuses.filter((status) => status !== "credited");
      expect(new Set(others), `other deliveries of ${key}`).toEqual(
        new Set(others.length > 0 ? ["already_credited"] : []),
      );

      const refundResults = outcomes.refundResults.get(payment.orderId) ?? [];
      const refunded = refundResults.filter((result) => result === "refunded").length;
      expect(refunded, `refunds of order ${payment.orderId}`).toBeLessThanOrEqual(1);
      if (refundResults.includes("already_refunded")) {
        expect(refunded, `refunds of order ${payment.orderId}`).toBe(1);
      }
      const refundKey = refundPostingKey(payment.provider, payment.providerPaymentId);
      expect(await countPostingsWithKey(refundKey), `postings of ${refundKey}`).toBe(refunded);
    }

    for (const [key, results] of outcomes.spendResults) {
      const posted = results.filter((result) => result === "posted").length;
      expect(posted, `spends of ${key} that posted`).toBeLessThanOrEqual(1);
      const stored = await countPostingsWithKey(key);
      expect(stored, `postings of ${key}`).toBe(outcomes.spends.has(key) ? 1 : 0);
      if (stored === 1) expect(posted, `spends of ${key} that posted`).toBe(1);
    }
    for (const key of outcomes.chargeResults.keys()) {
      const stored = await countPostingsWithKey(key);
      expect(stored, `postings of ${key}`).toBe(outcomes.charges.has(key) ? 1 : 0);
    }
    // The mix must have exercised both sides of every race it is meant to cover.
    const allSpendResults = [...outcomes.spendResults.values()].flat();
    expect(allSpendResults).toContain("replayed");
    expect(allSpendResults).toContain("insufficient");
    const allChargeResults = [...outcomes.chargeResults.values()].flat();
    expect(allChargeResults).toContain("charged");
    expect(allChargeResults).toContain("exhausted");
    const allRefundResults = [...outcomes.refundResults.values()].flat();
    expect(allRefundResults).toContain("already_refunded");

    const [negative] = await db
      .select({ count: sql<number>`count(*)::int` })
      .from(ledgerAccounts)
      .where(and(eq(ledgerAccounts.ownerKind, "user"), sql`${ledgerAccounts.balance} < 0`));
    expect(negative?.count, "user accounts below zero").toBe(0);

    const grants = sum(outcomes.grants.values());
    const credits = sum([...outcomes.payments.values()].map((payment) => payment.tokens));
    const spends = sum(outcomes.spends.values()) + sum(outcomes.charges.values());
    const refunds = sum(
      [...outcomes.refundResults.entries()]
        .filter(([, results]) => results.includes("refunded"))
        .map(([orderId]) => outcomes.refundTokens.get(orderId) as bigint),
    );
    const [userTotal] = await db
      .select({ total: sql<string>`coalesce(sum(${ledgerAccounts.balance}), 0)::text` })
      .from(ledgerAccounts)
      .where(eq(ledgerAccounts.ownerKind, "user"));
    expect(BigInt(userTotal?.total ?? "0"), "sum of user balances").toBe(
      grants + credits - spends - refunds,
    );
    expect(await systemBalance("faucet"), "faucet balance").toBe(-grants);
    expect(await systemBalance("payments_clearing"), "payments_clearing balance").toBe(-credits);
    expect(await systemBalance("revenue_usage"), "revenue_usage balance").toBe(spends);
    expect(await systemBalance("refunds"), "refunds balance").toBe(refunds);
  });
});
