/**
 * Test fixture: a queue worker in its own process that takes one message and never finishes it,
 * so a test can kill the process mid-handling with SIGKILL.
 *
 * Usage: node federation/testing/queue-worker.ts DATABASE_URL QUEUE_NAME LEASE_DURATION_MS
 * Prints `taken <message JSON>` on stdout once its handler has taken a message.
 */
import pg from "pg";
import { PgMessageQueue } from "../queue.ts";

const [databaseUrl, queueName, leaseDurationText] = process.argv.slice(2);
if (databaseUrl === undefined || queueName === undefined || leaseDurationText === undefined) {
  console.error(
    "Usage: node federation/testing/queue-worker.ts DATABASE_URL QUEUE_NAME LEASE_DURATION_MS",
  );
  process.exit(2);
}

const pool = new pg.Pool({ connectionString: databaseUrl, max: 3 });
const queue = new PgMessageQueue(pool, queueName, {
  leaseDurationMs: Number(leaseDurationText),
  pollIntervalMs: 100,
});

await queue.listen(async (message) => {
  process.stdout.write(`taken ${JSON.stringify(message)}\n`);
  // Hold the message until the test kills this process.
  await new Promise(() => {});
});
