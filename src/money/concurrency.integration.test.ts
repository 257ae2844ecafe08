/**
 * Many money operations at once against real PostgreSQL and the local fakes of Telegram and
 * Crypto Pay. Free-token grants, faucet calls, monthly allowances of two months, spends, hourly
 * billing charges, payments and refunds are each delivered 2 or 3 times in parallel. Meanwhile a
 * child process that posts in a loop is killed with SIGKILL inside an open transaction, and its
 * work is delivered again. A second child is killed while it holds one monthly allowance grant
 * uncommitted and other grants wait for its locks. Afterwards every balance must equal its
 * postings, nothing may be credited, granted, spent or refunded twice, free tokens must not carry
 * over into the next month, and spends must take free tokens before paid ones.
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
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { and, eq, inArray, sql } from "drizzle-orm";
import { Api } from "grammy";
import type { Update } from "grammy/types";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRandom } from "../../bench/lib/catalogue-generator.ts";
import { FakeCryptoPay } from "../../test/fakes/cryptopay.ts";
import { FakeTelegramBotApi } from "../../test/fakes/telegram-bot-api.ts";
import { ALLOWANCE_CHILD_APPLICATION } from "../../test/money-allowance-child.ts";
import {
  DONE_PREFIX,
  HOLDING_PREFIX,
  type WorkerOperation,
  type WorkerOutcome,
  type WorkerPlan,
} from "../../test/money-worker-plan.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { createDatabase, createPool, type Database } from "../db/client.ts";
import {
  ledgerAccounts,
  ledgerEntries,
  ledgerTransactions,
  type SystemAccountKind,
} from "../db/schema/index.ts";
import { createUser } from "../payments/test-support.ts";
import {
  type AllowanceOutcome,
  allowancePostingKey,
  type ChargeOutcome,
  chargeUser,
  faucetPostingKey,
  grantFaucetTokens,
  grantMonthlyAllowance,
  monthKey,
  usagePostingKey,
} from "./billing/index.ts";
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
const ALLOWANCE_CHILD_FILE = fileURLToPath(
  new URL("../../test/money-allowance-child.ts", import.meta.url),
);
/** The first month of allowances, from the last second of January 2027 in UTC. */
const FIRST_MONTH = monthKey(new Date(Date.UTC(2027, 0, 31, 23, 59, 59)));
const SECOND_MONTH = monthKey(new Date(Date.UTC(2027, 1, 1)));
/** Each month's allowance, different in the two months so that a carried-over balance shows. */
const ALLOWANCES = new Map([
  [FIRST_MONTH, 100n],
  [SECOND_MONTH, 70n],
]);
/** Key prefix of the spends issued together with each user's second-month grant. */
const RACING_SPEND_PREFIX = "month-end-spend-";
const FAUCET_CALL_COUNT = 6;
/** The allowance child is killed once this many sessions wait for the locks it holds. */
const ALLOWANCE_CHILD_WAITERS = 3;
/** Index in the test users of the user whose first month the allowance child grants. */
const ALLOWANCE_CHILD_USER_INDEX = 1;

let database: TestDatabase;
let pool: pg.Pool;
let db: Database;
let telegram: FakeTelegramBotApi;
let cryptoPay: FakeCryptoPay;
let starsProvider: TelegramStarsProvider;
let cryptoPayProvider: CryptoPayProvider;
let scratch: string;
/** Child processes that the test started, killed in `afterAll` if a failed test left them. */
const children: ChildProcess[] = [];

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
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
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
  /** Allowance posting key to every outcome of a grant under that key. */
  readonly allowanceResults = new Map<string, AllowanceOutcome[]>();
  /** Faucet call key to its tokens per user and the users of all its deliveries together. */
  readonly faucetCalls = new Map<string, { tokens: bigint; userIds: Set<string> }>();
  /** Faucet posting key of one user to the transaction id that every delivery returned. */
  readonly faucetGrants = new Map<string, number[]>();

  addResult<T>(map: Map<string, T[]>, key: string, result: T): void {
    map.set(key, [...(map.get(key) ?? []), result]);
  }
}

/** A faucet call of the plan: the same key delivered once per user list, all at once. */
interface FaucetCall {
  callKey: string;
  tokens: bigint;
  deliveries: string[][];
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

/** Grants a monthly allowance once and records the outcome. */
async function grantAllowance(outcomes: Outcomes, userId: string, month: string) {
  const allowance = ALLOWANCES.get(month) as bigint;
  const outcome = await grantMonthlyAllowance(db, userId, month, allowance);
  outcomes.addResult(outcomes.allowanceResults, allowancePostingKey(userId, month), outcome);
  return outcome.status;
}

/**
 * Grants the user's first month `times` times at once, then the second month `times` times at
 * once while spends race it, each spend delivered twice. A spend that takes effect before the
 * second month's grant takes the first month's free tokens.
 *
 * Every spend waits for the one revenue_usage row, and allowance grants do not, so a grant issued
 * with the spends nearly always goes first. The grant therefore starts `grantDelayMs` after the
 * spends, a seeded delay that differs between users.
 */
async function runAllowanceMonths(
  outcomes: Outcomes,
  userId: string,
  times: number,
  spends: readonly { key: string; amount: bigint }[],
  grantDelayMs: number,
) {
  await deliverRepeatedly(times, () => grantAllowance(outcomes, userId, FIRST_MONTH));
  await Promise.all([
    sleep(grantDelayMs).then(() =>
      deliverRepeatedly(times, () => grantAllowance(outcomes, userId, SECOND_MONTH)),
    ),
    ...spends.map(({ key, amount }) =>
      deliverRepeatedly(2, () => spend(outcomes, userId, amount, key)),
    ),
  ]);
}

/** Delivers a faucet call once per user list, all at once, and records the grants. */
async function deliverFaucet(outcomes: Outcomes, call: FaucetCall) {
  const results = await Promise.all(
    call.deliveries.map((userIds) =>
      grantFaucetTokens(db, {
        callKey: call.callKey,
        userIds,
        tokens: call.tokens,
        reason: `Test faucet ${call.callKey}`,
      }),
    ),
  );
  for (const [index, grants] of results.entries()) {
    const granted = grants.map((grant) => grant.userId);
    expect(granted, `users of delivery ${index} of ${call.callKey}`).toEqual(
      call.deliveries[index],
    );
    for (const grant of grants) {
      const key = faucetPostingKey(call.callKey, grant.userId);
      outcomes.addResult(outcomes.faucetGrants, key, grant.transactionId);
    }
  }
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
  planAllowancesAndFaucet(outcomes, testUsers, operations);
  return operations;
}

/**
 * Adds the faucet calls and one allowance run of two months per user to `operations` at seeded
 * positions. The run of the user whose first grant the allowance child holds goes first, so its
 * grants take pool connections before the others and wait for the child's locks.
 */
function planAllowancesAndFaucet(
  outcomes: Outcomes,
  testUsers: readonly TestUser[],
  operations: (() => Promise<unknown>)[],
) {
  const random = createRandom(SEED + 2);
  const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
  const insertAnywhere = (operation: () => Promise<unknown>) => {
    operations.splice(between(0, operations.length), 0, operation);
  };

  for (let index = 0; index < FAUCET_CALL_COUNT; index++) {
    const callKey = `faucet-${index}`;
    // Call 0 goes to all users. Every delivery of another call lists four shared users and a
    // random subset of the rest, in random order, so the lists overlap and differ.
    const shared = new Set([0, 1, 2, 3].map((offset) => (index * 3 + offset) % testUsers.length));
    const deliveries = Array.from({ length: between(2, 3) }, () => {
      const listed = testUsers.filter(
        (_, userIndex) => index === 0 || shared.has(userIndex) || random() < 0.5,
      );
      for (let position = listed.length - 1; position > 0; position--) {
        const other = between(0, position);
        [listed[position], listed[other]] = [
          listed[other] as TestUser,
          listed[position] as TestUser,
        ];
      }
      return listed.map((user) => user.id);
    });
    const call: FaucetCall = { callKey, tokens: BigInt(between(5, 30)), deliveries };
    outcomes.faucetCalls.set(callKey, { tokens: call.tokens, userIds: new Set(deliveries.flat()) });
    insertAnywhere(() => deliverFaucet(outcomes, call));
  }

  for (const [userIndex, user] of testUsers.entries()) {
    const spends = Array.from({ length: between(1, 2) }, (_, spendIndex) => ({
      key: `${RACING_SPEND_PREFIX}${userIndex}-${spendIndex}`,
      amount: BigInt(between(10, 60)),
    }));
    const times = between(2, 3);
    const grantDelayMs = between(0, 1500);
    const run = () => runAllowanceMonths(outcomes, user.id, times, spends, grantDelayMs);
    if (userIndex === ALLOWANCE_CHILD_USER_INDEX) operations.unshift(run);
    else insertAnywhere(run);
  }
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
  children.push(child);
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

/**
 * Starts the allowance child for the first month of `userId` and waits until the child has posted
 * the grant without committing it. Returns the child and the status line it printed.
 */
async function startAllowanceChild(userId: string): Promise<{ child: ChildProcess; line: string }> {
  const allowance = ALLOWANCES.get(FIRST_MONTH) as bigint;
  const child = spawn(
    process.execPath,
    [ALLOWANCE_CHILD_FILE, database.url, userId, FIRST_MONTH, allowance.toString()],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    if (line.startsWith(HOLDING_PREFIX)) return { child, line };
  }
  throw new Error(`The allowance child exited before it posted the grant:\n${stderr}`);
}

/**
 * Waits until `ALLOWANCE_CHILD_WAITERS` sessions wait for the allowance child's locks, or 30 s
 * pass, then kills the child with SIGKILL. Returns the number of waiting sessions at the kill.
 * The count runs on its own connection, because the waiting grants may hold every connection of
 * the test's pool.
 */
async function killAllowanceChildWhenWaitedFor(child: ChildProcess): Promise<number> {
  const monitor = createPool({ url: database.url, max: 1, applicationName: "test-money-monitor" });
  let waiting = 0;
  try {
    const { rows: sessions } = await monitor.query<{ pid: number }>(
      "select pid from pg_stat_activity where application_name = $1",
      [ALLOWANCE_CHILD_APPLICATION],
    );
    expect(sessions, "sessions of the allowance child").toHaveLength(1);
    const childPid = (sessions[0] as { pid: number }).pid;
    const deadline = Date.now() + 30_000;
    while (waiting < ALLOWANCE_CHILD_WAITERS && Date.now() < deadline) {
      await sleep(20);
      const { rows } = await monitor.query<{ count: number }>(
        "select count(*)::int as count from pg_stat_activity where $1 = any(pg_blocking_pids(pid))",
        [childPid],
      );
      waiting = (rows[0] as { count: number }).count;
    }
  } finally {
    // Killed also when a check above failed, because the waiting operations never end otherwise.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    }
    await monitor.end();
  }
  expect(child.signalCode, "signal that ended the allowance child").toBe("SIGKILL");
  return waiting;
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

/** A ledger transaction with the change it made to one user's free and paid balances. */
interface UserPosting {
  id: number;
  kind: string;
  idempotencyKey: string;
  metadata: Record<string, unknown>;
  free: bigint;
  paid: bigint;
}

/**
 * Loads each user's postings in transaction id order: every transaction with an entry on the
 * user's accounts, and the user's allowance postings, which have none when the free balance
 * already equalled the allowance.
 */
async function loadUserPostings(
  testUsers: readonly TestUser[],
): Promise<Map<string, UserPosting[]>> {
  const byUser = new Map(testUsers.map((user) => [user.id, new Map<number, UserPosting>()]));
  const entries = await db
    .select({
      id: ledgerTransactions.id,
      kind: ledgerTransactions.kind,
      idempotencyKey: ledgerTransactions.idempotencyKey,
      metadata: ledgerTransactions.metadata,
      userId: ledgerAccounts.ownerId,
      accountKind: ledgerAccounts.kind,
      amount: ledgerEntries.amount,
    })
    .from(ledgerEntries)
    .innerJoin(ledgerTransactions, eq(ledgerTransactions.id, ledgerEntries.transactionId))
    .innerJoin(ledgerAccounts, eq(ledgerAccounts.id, ledgerEntries.accountId))
    .where(eq(ledgerAccounts.ownerKind, "user"));
  for (const entry of entries) {
    const postings = byUser.get(entry.userId as string) as Map<number, UserPosting>;
    const posting = postings.get(entry.id) ?? {
      id: entry.id,
      kind: entry.kind,
      idempotencyKey: entry.idempotencyKey,
      metadata: entry.metadata,
      free: 0n,
      paid: 0n,
    };
    if (entry.accountKind === "user_free") posting.free += entry.amount;
    else posting.paid += entry.amount;
    postings.set(entry.id, posting);
  }

  const userOfAllowanceKey = new Map(
    testUsers.flatMap((user) =>
      [...ALLOWANCES.keys()].map((month) => [allowancePostingKey(user.id, month), user.id]),
    ),
  );
  const allowances = await db
    .select()
    .from(ledgerTransactions)
    .where(inArray(ledgerTransactions.idempotencyKey, [...userOfAllowanceKey.keys()]));
  for (const row of allowances) {
    const postings = byUser.get(userOfAllowanceKey.get(row.idempotencyKey) as string);
    if (postings === undefined || postings.has(row.id)) continue;
    const { id, kind, idempotencyKey, metadata } = row;
    postings.set(id, { id, kind, idempotencyKey, metadata, free: 0n, paid: 0n });
  }

  return new Map(
    [...byUser].map(([userId, postings]) => [
      userId,
      [...postings.values()].sort((left, right) => left.id - right.id),
    ]),
  );
}

/** What {@link replayFreeTokens} saw of the races it checks. */
interface FreeTokenReplay {
  /** Spends issued with the second month's grant that took effect before the grant. */
  racingSpendsBeforeSecondMonth: number;
  racingSpendsAfterSecondMonth: number;
  /** Spends that took free and paid tokens. */
  splitSpends: number;
  expiredAtSecondMonth: bigint;
}

/**
 * Replays one user's postings in transaction id order and checks the free-token rules. Each
 * allowance expires exactly the free balance before it and leaves exactly the month's allowance.
 * A spend takes paid tokens only when it uses up the free ones. Every posting locks its accounts
 * before it inserts its transaction row and keeps the locks until it commits, so on one account
 * the transaction ids follow the order in which the postings took effect.
 */
function replayFreeTokens(userId: string, postings: readonly UserPosting[]): FreeTokenReplay {
  const replay: FreeTokenReplay = {
    racingSpendsBeforeSecondMonth: 0,
    racingSpendsAfterSecondMonth: 0,
    splitSpends: 0,
    expiredAtSecondMonth: 0n,
  };
  const months: string[] = [];
  let free = 0n;
  for (const posting of postings) {
    const key = posting.idempotencyKey;
    if (posting.kind === "free_allowance") {
      const month = posting.metadata.month as string;
      const allowance = ALLOWANCES.get(month) as bigint;
      months.push(month);
      expect(posting.metadata.expired, `free tokens that ${key} expired`).toBe(free.toString());
      expect(posting.metadata.granted, `free tokens that ${key} granted`).toBe(
        allowance.toString(),
      );
      expect(free + posting.free, `free tokens right after ${key}`).toBe(allowance);
      if (month === SECOND_MONTH) replay.expiredAtSecondMonth = free;
    }
    if (posting.kind === "usage") {
      if (posting.paid < 0n) {
        expect(free + posting.free, `free tokens left by ${key}, which took paid tokens`).toBe(0n);
      }
      if (posting.paid < 0n && posting.free < 0n) replay.splitSpends++;
      if (key.startsWith(RACING_SPEND_PREFIX) && months.at(-1) === FIRST_MONTH) {
        replay.racingSpendsBeforeSecondMonth++;
      }
      if (key.startsWith(RACING_SPEND_PREFIX) && months.at(-1) === SECOND_MONTH) {
        replay.racingSpendsAfterSecondMonth++;
      }
    }
    free += posting.free;
  }
  expect(months, `months of the allowance postings of user ${userId}`).toEqual([
    FIRST_MONTH,
    SECOND_MONTH,
  ]);
  return replay;
}

/** Sums the entries of all postings by transaction kind and account kind. */
async function sumEntriesByKind(): Promise<Map<string, bigint>> {
  const rows = await db
    .select({
      kind: ledgerTransactions.kind,
      accountKind: ledgerAccounts.kind,
      total: sql<string>`sum(${ledgerEntries.amount})::text`,
    })
    .from(ledgerEntries)
    .innerJoin(ledgerTransactions, eq(ledgerTransactions.id, ledgerEntries.transactionId))
    .innerJoin(ledgerAccounts, eq(ledgerAccounts.id, ledgerEntries.accountId))
    .groupBy(ledgerTransactions.kind, ledgerAccounts.kind);
  return new Map(rows.map((row) => [`${row.kind} ${row.accountKind}`, BigInt(row.total)]));
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
    const childUser = testUsers[ALLOWANCE_CHILD_USER_INDEX] as TestUser;
    const [allowanceChild, { plan, keys }] = await Promise.all([
      startAllowanceChild(childUser.id),
      planWorker(outcomes, testUsers),
    ]);
    expect(allowanceChild.line, "status of the allowance child's grant").toBe(
      `${HOLDING_PREFIX} granted`,
    );
    const operations = planOperations(outcomes, testUsers);

    // The worker holds the revenue_usage row locked until it is killed, so the parallel spends
    // wait for the kill and PostgreSQL's rollback of the worker's transaction. The allowance
    // child holds the free_allowance and expired_free rows, which every allowance grant locks,
    // until it is killed while grants wait for it.
    const [reported, , allowanceChildWaiters] = await Promise.all([
      runAndKillWorker(plan),
      Promise.all(operations.map((operation) => operation())),
      killAllowanceChildWhenWaitedFor(allowanceChild.child),
    ]);
    expect(
      allowanceChildWaiters,
      "sessions that waited for the allowance child",
    ).toBeGreaterThanOrEqual(ALLOWANCE_CHILD_WAITERS);
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
    // The killed allowance grant rolled back too, so one of the parallel grants posted it, as the
    // check of each allowance key below requires. Its redelivery, now after the second month's
    // grant, finds that posting and changes nothing.
    expect(
      await grantAllowance(outcomes, childUser.id, FIRST_MONTH),
      "allowance of the killed child after the kill",
    ).toBe("already_granted");

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

    const userPostings = await loadUserPostings(testUsers);
    for (const user of testUsers) {
      const postings = userPostings.get(user.id) as UserPosting[];
      for (const [month, allowance] of ALLOWANCES) {
        const key = allowancePostingKey(user.id, month);
        expect(await countPostingsWithKey(key), `postings of ${key}`).toBe(1);
        const results = outcomes.allowanceResults.get(key) ?? [];
        const granted = results.filter((result) => result.status === "granted");
        expect(granted, `grants of ${key} that posted`).toHaveLength(1);
        expect(results.length, `grants of ${key}`).toBeGreaterThanOrEqual(2);
        const others = results.filter((result) => result.status !== "granted");
        expect(new Set(others.map((result) => result.status)), `other grants of ${key}`).toEqual(
          new Set(["already_granted"]),
        );
        const posting = postings.find((candidate) => candidate.idempotencyKey === key);
        expect(granted[0], `outcome of ${key}`).toEqual({
          status: "granted",
          expired: BigInt(posting?.metadata.expired as string),
          granted: allowance,
          transactionId: posting?.id,
        });
      }
    }
    const replays = testUsers.map((user) =>
      replayFreeTokens(user.id, userPostings.get(user.id) as UserPosting[]),
    );

    for (const [callKey, call] of outcomes.faucetCalls) {
      for (const user of testUsers) {
        const key = faucetPostingKey(callKey, user.id);
        const expected = call.userIds.has(user.id) ? 1 : 0;
        expect(await countPostingsWithKey(key), `postings of ${key}`).toBe(expected);
        const transactionIds = new Set(outcomes.faucetGrants.get(key));
        expect(transactionIds.size, `transactions that deliveries of ${key} returned`).toBe(
          expected,
        );
      }
    }

    // The second month's grants must have raced spends on both sides and expired free tokens,
    // and spends must have split between free and paid tokens.
    const replayTotal = (count: (replay: FreeTokenReplay) => number) =>
      replays.reduce((total, replay) => total + count(replay), 0);
    expect(replayTotal((replay) => replay.racingSpendsBeforeSecondMonth)).toBeGreaterThan(0);
    expect(replayTotal((replay) => replay.racingSpendsAfterSecondMonth)).toBeGreaterThan(0);
    expect(replayTotal((replay) => replay.splitSpends)).toBeGreaterThan(0);
    expect(replayTotal((replay) => Number(replay.expiredAtSecondMonth > 0n))).toBeGreaterThan(0);

    const [negative] = await db
      .select({ count: sql<number>`count(*)::int` })
      .from(ledgerAccounts)
      .where(and(eq(ledgerAccounts.ownerKind, "user"), sql`${ledgerAccounts.balance} < 0`));
    expect(negative?.count, "user accounts below zero").toBe(0);

    // Grants, faucet calls and allowances follow from the seeded plan alone. Expired tokens,
    // spends and refunds depend on the interleaving, so they come from the callers' outcomes.
    const grants = sum(outcomes.grants.values());
    const faucetTokens = sum(
      [...outcomes.faucetCalls.values()].map((call) => call.tokens * BigInt(call.userIds.size)),
    );
    const allowances = BigInt(USER_COUNT) * sum(ALLOWANCES.values());
    const expired = sum(
      [...outcomes.allowanceResults.values()]
        .flat()
        .map((result) => (result.status === "granted" ? result.expired : 0n)),
    );
    const payments = [...outcomes.payments.values()];
    const creditsOf = (provider: PaidOrder["provider"]) =>
      sum(
        payments
          .filter((payment) => payment.provider === provider)
          .map((payment) => payment.tokens),
      );
    const refundsOf = (provider: PaidOrder["provider"]) =>
      sum(
        payments
          .filter((payment) => payment.provider === provider)
          .filter((payment) => outcomes.refundResults.get(payment.orderId)?.includes("refunded"))
          .map((payment) => outcomes.refundTokens.get(payment.orderId) as bigint),
      );
    const credits = creditsOf("telegram_stars") + creditsOf("cryptopay");
    const refunds = refundsOf("telegram_stars") + refundsOf("cryptopay");
    const spends = sum(outcomes.spends.values()) + sum(outcomes.charges.values());

    const expectedByKind = new Map<string, bigint>([
      ["free_grant faucet", -grants],
      ["free_grant user_free", grants],
      ["faucet faucet", -faucetTokens],
      ["faucet user_free", faucetTokens],
      ["free_allowance free_allowance", -allowances],
      ["free_allowance expired_free", expired],
      ["free_allowance user_free", allowances - expired],
      ["usage revenue_usage", spends],
    ]);
    for (const provider of ["telegram_stars", "cryptopay"] as const) {
      expectedByKind.set(`payment.${provider} payments_clearing`, -creditsOf(provider));
      expectedByKind.set(`payment.${provider} user_paid`, creditsOf(provider));
      expectedByKind.set(`refund.${provider} user_paid`, -refundsOf(provider));
      expectedByKind.set(`refund.${provider} refunds`, refundsOf(provider));
    }
    for (const [key, total] of expectedByKind) {
      if (total === 0n) expectedByKind.delete(key);
    }
    // How a spend splits between free and paid tokens depends on the interleaving, and the
    // replay above checks the split, so only the sum of the two is expected here.
    const entriesByKind = await sumEntriesByKind();
    const usageFree = entriesByKind.get("usage user_free") ?? 0n;
    const usagePaid = entriesByKind.get("usage user_paid") ?? 0n;
    expect(usageFree + usagePaid, "tokens that spends took from users").toBe(-spends);
    entriesByKind.delete("usage user_free");
    entriesByKind.delete("usage user_paid");
    expect(entriesByKind, "sums of entries by transaction and account kind").toEqual(
      expectedByKind,
    );

    const [userTotal] = await db
      .select({ total: sql<string>`coalesce(sum(${ledgerAccounts.balance}), 0)::text` })
      .from(ledgerAccounts)
      .where(eq(ledgerAccounts.ownerKind, "user"));
    expect(BigInt(userTotal?.total ?? "0"), "sum of user balances").toBe(
      grants + faucetTokens + allowances - expired + credits - spends - refunds,
    );
    expect(await systemBalance("faucet"), "faucet balance").toBe(-grants - faucetTokens);
    expect(await systemBalance("free_allowance"), "free_allowance balance").toBe(-allowances);
    expect(await systemBalance("expired_free"), "expired_free balance").toBe(expired);
    expect(await systemBalance("payments_clearing"), "payments_clearing balance").toBe(-credits);
    expect(await systemBalance("revenue_usage"), "revenue_usage balance").toBe(spends);
    expect(await systemBalance("refunds"), "refunds balance").toBe(refunds);
  });
});
