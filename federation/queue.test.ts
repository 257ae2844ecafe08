import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { testMessageQueue } from "@fedify/testing";
import { Temporal as TemporalPolyfill } from "@js-temporal/polyfill";
import type pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createPool } from "../src/db/client.ts";
import { createTestDatabase, type TestDatabase } from "../test/postgres.ts";
import { PgMessageQueue, type PgMessageQueueOptions } from "./queue.ts";

const REPOSITORY_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

let database: TestDatabase;
/** Pools, abort controllers and child processes that `afterEach` cleans up. */
let extraPools: pg.Pool[] = [];
let controllers: AbortController[] = [];
let listenings: Promise<void>[] = [];
let children: ChildProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "queue");
});

afterAll(async () => {
  await database.drop();
});

beforeEach(async () => {
  await database.pool.query("truncate queue_messages");
});

afterEach(async () => {
  for (const child of children) child.kill("SIGKILL");
  for (const controller of controllers) controller.abort();
  await Promise.all(listenings);
  await Promise.all(extraPools.map((pool) => pool.end()));
  extraPools = [];
  controllers = [];
  listenings = [];
  children = [];
});

/** Creates a pool of its own, so two queues behave like two processes. */
function newPool(): pg.Pool {
  const pool = createPool({ url: database.url, max: 6, applicationName: "queue-test" });
  extraPools.push(pool);
  return pool;
}

function newQueue(name: string, options: PgMessageQueueOptions = {}): PgMessageQueue {
  return new PgMessageQueue(newPool(), name, { pollIntervalMs: 200, ...options });
}

/** Starts `queue.listen` and registers it for cleanup; returns the abort controller. */
function startListening(
  queue: PgMessageQueue,
  handler: (message: unknown) => Promise<void> | void,
): AbortController {
  const controller = new AbortController();
  controllers.push(controller);
  listenings.push(queue.listen(handler, { signal: controller.signal }));
  return controller;
}

function duration(fields: { seconds?: number; milliseconds?: number }): Temporal.Duration {
  return TemporalPolyfill.Duration.from(fields) as unknown as Temporal.Duration;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` until it returns true; throws naming `description` after `timeoutMs`. */
async function waitFor(
  description: string,
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline)
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${description}`);
    await sleep(50);
  }
}

async function queueRows(): Promise<
  Array<{
    payload: unknown;
    attempts: number;
    failed: boolean;
    leased: boolean;
    lastError: string | null;
  }>
> {
  const result = await database.pool.query(
    `select payload, attempts, failed_at is not null as failed, leased_until is not null as leased,
            last_error as "lastError"
       from queue_messages order by id`,
  );
  return result.rows;
}

describe("PgMessageQueue conformance", () => {
  it("passes Fedify's testMessageQueue", { timeout: 120_000 }, async () => {
    // A poll interval longer than the whole test: only notifications and the delayed-message
    // timer can wake the listeners.
    const pool = newPool();
    await testMessageQueue(
      () => new PgMessageQueue(pool, "conformance", { pollIntervalMs: 600_000 }),
      ({ controller }) => controller.abort(),
      { testOrderingKey: true },
    );
  });
});

describe("PgMessageQueue delivery", () => {
  it("hands each message to one of two listeners once", async () => {
    const total = 200;
    const handled = new Map<number, number>();
    const record = async (message: unknown) => {
      await sleep(Math.random() * 5);
      const id = (message as { id: number }).id;
      handled.set(id, (handled.get(id) ?? 0) + 1);
    };
    startListening(newQueue("shared", { concurrency: 4 }), record);
    startListening(newQueue("shared", { concurrency: 4 }), record);

    await newQueue("shared").enqueueMany(Array.from({ length: total }, (_, id) => ({ id })));
    await waitFor("all messages", () => handled.size === total);
    await waitFor("deleted rows", async () => (await queueRows()).length === 0);

    expect([...handled.values()].every((count) => count === 1)).toBe(true);
  });

  it("handles one message per ordering key at a time, in order", async () => {
    const seen = new Map<string, number[]>();
    const inFlight = new Map<string, number>();
    let overlaps = 0;
    const handler = async (message: unknown) => {
      const { key, index } = message as { key: string; index: number };
      inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
      if ((inFlight.get(key) ?? 0) > 1) overlaps++;
      await sleep(Math.random() * 10);
      seen.set(key, [...(seen.get(key) ?? []), index]);
      inFlight.set(key, (inFlight.get(key) ?? 0) - 1);
    };
    startListening(newQueue("ordered", { concurrency: 4 }), handler);
    startListening(newQueue("ordered", { concurrency: 4 }), handler);

    const producer = newQueue("ordered");
    const perKey = 15;
    for (let index = 0; index < perKey; index++) {
      for (const key of ["a", "b", "c"])
        await producer.enqueue({ key, index }, { orderingKey: key });
    }
    await waitFor("all keys", () => [...seen.values()].flat().length === perKey * 3);

    const expected = Array.from({ length: perKey }, (_, index) => index);
    expect(seen.get("a")).toEqual(expected);
    expect(seen.get("b")).toEqual(expected);
    expect(seen.get("c")).toEqual(expected);
    expect(overlaps).toBe(0);
  });

  it("holds a message back until its delay passes", async () => {
    const queue = newQueue("delayed");
    const enqueuedAt = Date.now();
    await queue.enqueue("later", { delay: duration({ seconds: 1 }) });
    expect(await queue.getDepth()).toEqual({ queued: 1, ready: 0, delayed: 1 });

    let handledAt: number | undefined;
    startListening(queue, () => {
      handledAt = Date.now();
    });
    await waitFor("the delayed message", () => handledAt !== undefined);
    expect((handledAt ?? Number.NaN) - enqueuedAt).toBeGreaterThanOrEqual(1_000);
  });

  it("keeps messages across a restart", async () => {
    const firstPool = newPool();
    await new PgMessageQueue(firstPool, "durable").enqueue({ kept: true });
    await firstPool.end();
    extraPools = extraPools.filter((pool) => pool !== firstPool);

    const received: unknown[] = [];
    startListening(newQueue("durable"), (message) => {
      received.push(message);
    });
    await waitFor("the stored message", () => received.length === 1);
    expect(received).toEqual([{ kept: true }]);
  });

  it("round-trips a NUL character", async () => {
    const received: unknown[] = [];
    const queue = newQueue("nul");
    startListening(queue, (message) => {
      received.push(message);
    });
    await queue.enqueue({ text: "before\u0000after" });
    await waitFor("the message", () => received.length === 1);
    expect(received).toEqual([{ text: "before\u0000after" }]);
  });

  it("keeps named queues apart", async () => {
    const received: unknown[] = [];
    startListening(newQueue("inbox"), (message) => {
      received.push(message);
    });
    await newQueue("outbox").enqueue("for the outbox");
    await newQueue("inbox").enqueue("for the inbox");
    await waitFor("the inbox message", () => received.length === 1);

    expect(received).toEqual(["for the inbox"]);
    expect(await newQueue("outbox").getDepth()).toEqual({ queued: 1, ready: 1, delayed: 0 });
  });

  it("rejects invalid messages and options", async () => {
    const queue = newQueue("invalid");
    await expect(queue.enqueue(undefined)).rejects.toThrow(/not JSON-serialisable/);
    expect(() => new PgMessageQueue(database.pool, "")).toThrow(RangeError);
    expect(() => new PgMessageQueue(database.pool, "q", { leaseDurationMs: 0 })).toThrow(
      /leaseDurationMs/,
    );
  });
});

describe("PgMessageQueue listening", () => {
  it("wakes an idle listener through NOTIFY", async () => {
    const received: unknown[] = [];
    const queue = newQueue("notified", { pollIntervalMs: 600_000 });
    startListening(queue, (message) => {
      received.push(message);
    });
    // The first message proves the listener runs; after it the listener sleeps for the poll
    // interval unless a notification wakes it.
    await queue.enqueue("first");
    await waitFor("the first message", () => received.length === 1);
    await sleep(300);
    await queue.enqueue("second");
    await waitFor("the notified message", () => received.length === 2);
  });

  it("reconnects the notification connection", async () => {
    const received: unknown[] = [];
    const queue = newQueue("reconnect", { pollIntervalMs: 600_000 });
    startListening(queue, (message) => {
      received.push(message);
    });
    const listenerPids = async (): Promise<number[]> => {
      const result = await database.pool.query(
        `select pid from pg_stat_activity
          where datname = current_database() and query ilike 'listen %' and pid <> pg_backend_pid()`,
      );
      return result.rows.map((row) => row.pid);
    };
    await waitFor("the LISTEN connection", async () => (await listenerPids()).length === 1);
    const [firstPid] = await listenerPids();

    await database.pool.query("select pg_terminate_backend($1)", [firstPid]);
    await waitFor("a new LISTEN connection", async () => {
      const pids = await listenerPids();
      return pids.length === 1 && pids[0] !== firstPid;
    });
    await sleep(300);
    await queue.enqueue("after reconnect");
    await waitFor("the message after reconnect", () => received.length === 1);
  });

  it("lets the message in hand finish after abort", async () => {
    const queue = newQueue("abort");
    const events: string[] = [];
    let releaseHandler: () => void = () => {};
    const controller = new AbortController();
    const listening = queue.listen(
      async () => {
        events.push("handler started");
        await new Promise<void>((resolve) => {
          releaseHandler = resolve;
        });
        events.push("handler finished");
      },
      { signal: controller.signal },
    );
    await queue.enqueue("in hand");
    await waitFor("the handler", () => events.includes("handler started"));

    controller.abort();
    await sleep(100);
    releaseHandler();
    await listening;
    events.push("listen resolved");

    expect(events).toEqual(["handler started", "handler finished", "listen resolved"]);
    expect(await queueRows()).toEqual([]);
  });

  it("returns at once for an aborted signal", async () => {
    await newQueue("aborted").listen(() => {}, { signal: AbortSignal.abort() });
  });

  it("renews the lease of a long handler", async () => {
    const leaseDurationMs = 600;
    const calls: unknown[] = [];
    const slowHandler = async (message: unknown) => {
      calls.push(message);
      await sleep(leaseDurationMs * 3);
    };
    const queue = newQueue("long", { leaseDurationMs, pollIntervalMs: 50 });
    startListening(queue, slowHandler);
    await queue.enqueue("slow");
    await waitFor("the first handler", () => calls.length === 1);
    // A second worker polls often enough to take the message if its lease ran out.
    startListening(newQueue("long", { leaseDurationMs, pollIntervalMs: 50 }), slowHandler);
    await waitFor("the row to be deleted", async () => (await queueRows()).length === 0);

    expect(calls).toEqual(["slow"]);
  });
});

describe("PgMessageQueue failures", () => {
  it("retries a throwing handler, then keeps the message as failed", async () => {
    let calls = 0;
    const queue = newQueue("failing", { maxAttempts: 3, retryDelayMs: 50 });
    startListening(queue, () => {
      calls++;
      throw new Error("handler broke");
    });
    await queue.enqueue("poison");
    await waitFor("the failed mark", async () => (await queueRows())[0]?.failed === true);

    const [row] = await queueRows();
    expect(calls).toBe(3);
    expect(row?.attempts).toBe(3);
    expect(row?.leased).toBe(false);
    expect(row?.lastError).toContain("handler broke");
    expect(await queue.getDepth()).toEqual({ queued: 0, ready: 0, delayed: 0 });
  });

  it("completes a message after one failed attempt", async () => {
    let calls = 0;
    const queue = newQueue("flaky", { retryDelayMs: 50 });
    startListening(queue, () => {
      calls++;
      if (calls === 1) throw new Error("first attempt broke");
    });
    await queue.enqueue("flaky");
    await waitFor(
      "the row to be deleted",
      async () => calls === 2 && (await queueRows()).length === 0,
    );
  });

  it("unblocks an ordering key after a failed message", async () => {
    const received: unknown[] = [];
    const queue = newQueue("blocked", { maxAttempts: 2, retryDelayMs: 50 });
    startListening(queue, (message) => {
      if (message === "bad") throw new Error("bad message");
      received.push(message);
    });
    await queue.enqueue("bad", { orderingKey: "k" });
    await queue.enqueue("good", { orderingKey: "k" });
    await waitFor("the message behind the failed one", () => received.length === 1);

    expect(received).toEqual(["good"]);
    expect((await queueRows()).map((row) => [row.payload, row.failed])).toEqual([["bad", true]]);
  });

  it("fails a message whose leases keep expiring", async () => {
    const queue = newQueue("abandoned", { maxAttempts: 2 });
    await queue.enqueue("kills its worker");
    // The state after two workers died while handling the message.
    await database.pool.query(
      `update queue_messages
          set attempts = 2, leased_until = now() - interval '1 second', lease_token = gen_random_uuid()`,
    );
    let calls = 0;
    startListening(queue, () => {
      calls++;
    });
    await waitFor("the failed mark", async () => (await queueRows())[0]?.failed === true);

    const [row] = await queueRows();
    expect(calls).toBe(0);
    expect(row?.lastError).toContain("lease of the last one expired");
  });

  it("hands a killed worker's message to another after the lease", async () => {
    const queue = newQueue("crash", { pollIntervalMs: 100 });
    await queue.enqueue({ job: "survives a crash" });

    const child = spawn(
      path.join(REPOSITORY_ROOT, "node_modules/.bin/node"),
      [
        path.join(REPOSITORY_ROOT, "federation/testing/queue-worker.ts"),
        database.url,
        "crash",
        "1000",
      ],
      { cwd: REPOSITORY_ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    children.push(child);
    let output = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    await waitFor("the child to take the message", () => output.includes("taken "), 20_000);
    expect(output).toContain('taken {"job":"survives a crash"}');

    const exited = once(child, "exit");
    child.kill("SIGKILL");
    const [, exitSignal] = await exited;
    expect(exitSignal).toBe("SIGKILL");
    expect((await queueRows())[0]).toMatchObject({ leased: true, attempts: 1 });

    const received: Array<{ message: unknown; attempts: number }> = [];
    startListening(queue, async (message) => {
      const result = await database.pool.query("select attempts from queue_messages");
      received.push({ message, attempts: result.rows[0]?.attempts });
    });
    await waitFor("the message after the lease", () => received.length === 1);
    await waitFor("the row to be deleted", async () => (await queueRows()).length === 0);

    expect(received).toEqual([{ message: { job: "survives a crash" }, attempts: 2 }]);
  });
});

describe("PgMessageQueue depth", () => {
  it("counts ready and delayed messages but not in-flight or failed ones", async () => {
    const queue = newQueue("depth");
    await queue.enqueueMany(["a", "b"]);
    await queue.enqueue("c", { delay: duration({ seconds: 60 }) });
    await queue.enqueue("in flight");
    await queue.enqueue("failed");
    await database.pool.query(
      `update queue_messages set leased_until = now() + interval '1 minute', lease_token = gen_random_uuid()
        where payload::text = '"in flight"'`,
    );
    await database.pool.query(
      `update queue_messages set failed_at = now() where payload::text = '"failed"'`,
    );

    expect(await queue.getDepth()).toEqual({ queued: 3, ready: 2, delayed: 1 });
  });
});
