/**
 * Fedify message queue on the node's `pg` pool, in the `queue_messages` table.
 *
 * Delivery is at least once. A worker takes a message by setting a lease on its row, with
 * `FOR UPDATE SKIP LOCKED` so that two workers never hold one row at the same time. It renews the
 * lease while the handler runs and deletes the row when the handler returns. If the worker dies, the lease runs
 * out and another worker takes the message again. The rules for handlers that throw are on
 * {@link PgMessageQueueOptions.maxAttempts}.
 */
import type {
  MessageQueue,
  MessageQueueDepth,
  MessageQueueEnqueueOptions,
  MessageQueueListenOptions,
} from "@fedify/fedify";
import type pg from "pg";
import { getNodeLogger } from "../src/logging.ts";
import {
  NotificationSubscription,
  QUEUE_NOTIFICATION_CHANNEL,
  WakeSignal,
} from "./queue-notifications.ts";

const logger = getNodeLogger("queue");

const MAX_QUEUE_NAME_LENGTH = 200;
const MAX_STORED_ERROR_LENGTH = 4_000;
const MAX_DATABASE_ERROR_DELAY_MS = 30_000;

export interface PgMessageQueueOptions {
  /**
   * Milliseconds between checks for due messages while a listener is idle; 5,000 when unset.
   * Notifications wake listeners sooner, so this matters only when a notification is lost
   * (for example while the notification connection reconnects) and for expired leases.
   */
  pollIntervalMs?: number;
  /**
   * Milliseconds a worker owns a message it took; 60,000 when unset. The worker renews the lease
   * every third of this while the handler runs, so the lease bounds how long a dead worker's
   * message waits, not how long a handler may take.
   */
  leaseDurationMs?: number;
  /**
   * Handler runs allowed per message; 5 when unset. A handler that throws is retried after
   * `retryDelayMs * 2 ** (attempt - 1)`, capped at one hour. After the last attempt the row is
   * kept with `failed_at` and `last_error` set and is never taken again, so nothing is dropped
   * silently. A lease that expires counts as an attempt too, so a message that keeps killing its
   * worker also ends up failed.
   */
  maxAttempts?: number;
  /** Milliseconds before the first retry of a failed handler; 1,000 when unset. */
  retryDelayMs?: number;
  /** Messages that one `listen()` call handles at the same time; 1 when unset. */
  concurrency?: number;
}

interface TakenMessage {
  id: number;
  payload: unknown;
  attempts: number;
  leaseToken: string;
}

/**
 * A Fedify {@link MessageQueue} backed by PostgreSQL. Several instances with the same `name`,
 * in any number of processes, share one queue.
 *
 * Messages with the same `orderingKey` are handled one at a time in enqueue order. A message
 * waits while any earlier message with its key is pending, delayed, in flight or waiting for a
 * retry. Only a message marked failed stops blocking the messages behind it.
 */
export class PgMessageQueue implements MessageQueue {
  /** Fedify runs its own retry policy on top; the retries here only catch unexpected throws. */
  readonly nativeRetrial = false;

  readonly #pool: pg.Pool;
  readonly #name: string;
  readonly #pollIntervalMs: number;
  readonly #leaseDurationMs: number;
  readonly #maxAttempts: number;
  readonly #retryDelayMs: number;
  readonly #concurrency: number;

  constructor(pool: pg.Pool, name: string, options: PgMessageQueueOptions = {}) {
    if (name.length === 0 || name.length > MAX_QUEUE_NAME_LENGTH) {
      throw new RangeError(
        `Invalid queue name ${JSON.stringify(name)}: expected 1 to ${MAX_QUEUE_NAME_LENGTH} characters, for example "fedify"`,
      );
    }
    this.#pool = pool;
    this.#name = name;
    this.#pollIntervalMs = positiveInteger("pollIntervalMs", options.pollIntervalMs ?? 5_000);
    this.#leaseDurationMs = positiveInteger("leaseDurationMs", options.leaseDurationMs ?? 60_000);
    this.#maxAttempts = positiveInteger("maxAttempts", options.maxAttempts ?? 5);
    this.#retryDelayMs = positiveInteger("retryDelayMs", options.retryDelayMs ?? 1_000);
    this.#concurrency = positiveInteger("concurrency", options.concurrency ?? 1);
  }

  get name(): string {
    return this.#name;
  }

  async enqueue(message: unknown, options?: MessageQueueEnqueueOptions): Promise<void> {
    await this.enqueueMany([message], options);
  }

  /** Inserts all messages in one statement, in array order, and notifies idle listeners. */
  async enqueueMany(
    messages: readonly unknown[],
    options?: MessageQueueEnqueueOptions,
  ): Promise<void> {
    if (messages.length === 0) return;
    const payloads = messages.map(serializeMessage);
    // The notification is sent when the insert commits, so a listener never wakes before the
    // rows are visible.
    await this.#pool.query(
      `with inserted as (
         insert into queue_messages (queue, payload, ordering_key, available_at)
         select $1, message.payload::json, $3, now() + $4::double precision * interval '1 millisecond'
           from unnest($2::text[]) with ordinality as message(payload, position)
          order by message.position
         returning id
       )
       select pg_notify($5, $1) from (select count(*) from inserted) as counted`,
      [
        this.#name,
        payloads,
        options?.orderingKey ?? null,
        delayMilliseconds(options),
        QUEUE_NOTIFICATION_CHANNEL,
      ],
    );
  }

  /**
   * Handles messages until `signal` aborts, then lets the messages in hand finish and resolves.
   * Never rejects: database failures are logged and retried with backoff.
   */
  async listen(
    handler: (message: unknown) => Promise<void> | void,
    options: MessageQueueListenOptions = {},
  ): Promise<void> {
    const { signal } = options;
    if (signal?.aborted) return;

    const wake = new WakeSignal();
    const onAbort = () => wake.wake();
    signal?.addEventListener("abort", onAbort);
    const subscription = new NotificationSubscription({
      pool: this.#pool,
      queue: this.#name,
      logger,
      onWake: () => wake.wake(),
    });
    await subscription.start();
    logger.info("Started listening on queue {queue} with {concurrency} workers", {
      queue: this.#name,
      concurrency: this.#concurrency,
    });

    try {
      const workers = Array.from({ length: this.#concurrency }, () =>
        this.#work(handler, wake, signal),
      );
      await Promise.all(workers);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      await subscription.stop();
      logger.info("Stopped listening on queue {queue}", { queue: this.#name });
    }
  }

  /** Counts messages that no worker holds: ready ones and delayed ones (including retries). */
  async getDepth(): Promise<MessageQueueDepth> {
    const result = await this.#pool.query<{ ready: number; delayed: number }>(
      `select count(*) filter (where available_at <= now())::int as ready,
              count(*) filter (where available_at > now())::int as delayed
         from queue_messages
        where queue = $1 and failed_at is null
          and (leased_until is null or leased_until <= now())`,
      [this.#name],
    );
    const ready = result.rows[0]?.ready ?? 0;
    const delayed = result.rows[0]?.delayed ?? 0;
    return { queued: ready + delayed, ready, delayed };
  }

  async #work(
    handler: (message: unknown) => Promise<void> | void,
    wake: WakeSignal,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    let databaseFailures = 0;
    while (!signal?.aborted) {
      // Read before looking for work, so a notification that arrives during the lookup makes
      // the following sleep return at once instead of being missed.
      const generation = wake.generation;
      let message: TakenMessage | undefined;
      let idleDelayMs = this.#pollIntervalMs;
      try {
        message = await this.#take();
        if (message === undefined) {
          idleDelayMs = Math.min(
            this.#pollIntervalMs,
            (await this.#msUntilNextDelayed()) ?? Infinity,
          );
        }
        databaseFailures = 0;
      } catch (error) {
        databaseFailures++;
        idleDelayMs = Math.min(
          this.#pollIntervalMs * 2 ** (databaseFailures - 1),
          MAX_DATABASE_ERROR_DELAY_MS,
        );
        logger.error(
          "Failed to take a message from queue {queue}, attempt {attempt}; retrying in {delayMs} ms: {error}",
          {
            queue: this.#name,
            attempt: databaseFailures,
            delayMs: idleDelayMs,
            error,
          },
        );
      }

      if (message === undefined) {
        await wake.sleep(idleDelayMs, generation);
      } else if (message.attempts > this.#maxAttempts) {
        await this.#markAbandoned(message);
      } else {
        await this.#handle(message, handler);
      }
    }
  }

  /** Leases the next due message whose ordering key is free, or returns undefined. */
  async #take(): Promise<TakenMessage | undefined> {
    const result = await this.#pool.query<TakenMessage>(
      `with candidate as (
         select m.id
           from queue_messages m
          where m.queue = $1
            and m.failed_at is null
            and m.available_at <= now()
            and (m.leased_until is null or m.leased_until <= now())
            and (m.ordering_key is null or not exists (
                  select 1 from queue_messages earlier
                   where earlier.queue = m.queue
                     and earlier.ordering_key = m.ordering_key
                     and earlier.id < m.id
                     and earlier.failed_at is null))
          order by m.available_at, m.id
          limit 1
          for update of m skip locked
       )
       update queue_messages q
          set leased_until = now() + $2::double precision * interval '1 millisecond',
              lease_token = gen_random_uuid(),
              attempts = q.attempts + 1
         from candidate
        where q.id = candidate.id
       returning q.id, q.payload, q.attempts, q.lease_token as "leaseToken"`,
      [this.#name, this.#leaseDurationMs],
    );
    return result.rows[0];
  }

  async #msUntilNextDelayed(): Promise<number | undefined> {
    const result = await this.#pool.query<{ waitMs: number | null }>(
      `select ceil(extract(epoch from min(available_at) - now()) * 1000)::float8 as "waitMs"
         from queue_messages
        where queue = $1 and failed_at is null and available_at > now()`,
      [this.#name],
    );
    return result.rows[0]?.waitMs ?? undefined;
  }

  async #handle(
    message: TakenMessage,
    handler: (message: unknown) => Promise<void> | void,
  ): Promise<void> {
    const lease = new LeaseRenewal(this.#pool, this.#name, message, this.#leaseDurationMs);
    let failure: { error: unknown } | undefined;
    try {
      await handler(message.payload);
    } catch (error) {
      failure = { error };
    } finally {
      await lease.stop();
    }

    try {
      if (failure === undefined) await this.#complete(message);
      else await this.#recordFailure(message, failure.error);
    } catch (error) {
      // The lease runs out and another worker takes the message again.
      logger.error(
        "Failed to record the outcome of message {messageId} on queue {queue}; it will be handled again after its lease: {error}",
        { queue: this.#name, messageId: message.id, error },
      );
    }
  }

  async #complete(message: TakenMessage): Promise<void> {
    const result = await this.#pool.query(
      "delete from queue_messages where id = $1 and lease_token = $2",
      [message.id, message.leaseToken],
    );
    if (result.rowCount === 0) {
      logger.warn(
        "Lost the lease of message {messageId} on queue {queue} before its handler finished; another worker may have handled it too",
        { queue: this.#name, messageId: message.id },
      );
    }
  }

  async #recordFailure(message: TakenMessage, error: unknown): Promise<void> {
    const retryDelayMs = Math.min(this.#retryDelayMs * 2 ** (message.attempts - 1), 3_600_000);
    const result = await this.#pool.query<{ failed: boolean }>(
      `update queue_messages
          set leased_until = null,
              lease_token = null,
              last_error = $3,
              failed_at = case when attempts >= $4 then now() end,
              available_at = case when attempts >= $4 then available_at
                                  else now() + $5::double precision * interval '1 millisecond' end
        where id = $1 and lease_token = $2
        returning failed_at is not null as failed`,
      [message.id, message.leaseToken, describeError(error), this.#maxAttempts, retryDelayMs],
    );
    const properties = {
      queue: this.#name,
      messageId: message.id,
      attempt: message.attempts,
      maxAttempts: this.#maxAttempts,
      error,
    };
    if (result.rows[0]?.failed) {
      logger.error(
        "Handler failed on message {messageId} of queue {queue} at attempt {attempt} of {maxAttempts}; the message is kept as failed: {error}",
        properties,
      );
    } else {
      logger.error(
        "Handler failed on message {messageId} of queue {queue} at attempt {attempt} of {maxAttempts}; retrying in {retryDelayMs} ms: {error}",
        { ...properties, retryDelayMs },
      );
    }
  }

  /**
   * Marks as failed a message taken more than `maxAttempts` times: its last lease expired
   * without an outcome, because the worker died or lost its database connection.
   */
  async #markAbandoned(message: TakenMessage): Promise<void> {
    const reason = `all ${this.#maxAttempts} attempts used, and the lease of the last one expired before its handler finished`;
    try {
      // The previous handler error, if any, stays in last_error below the reason.
      await this.#pool.query(
        `update queue_messages
            set leased_until = null, lease_token = null, failed_at = now(),
                last_error = $3 || coalesce(E'\n' || last_error, '')
          where id = $1 and lease_token = $2`,
        [message.id, message.leaseToken, reason],
      );
      logger.error("Message {messageId} of queue {queue} is kept as failed: {reason}", {
        queue: this.#name,
        messageId: message.id,
        reason,
      });
    } catch (error) {
      logger.error("Failed to mark message {messageId} of queue {queue} as failed: {error}", {
        queue: this.#name,
        messageId: message.id,
        error,
      });
    }
  }
}

/**
 * Renews a message's lease every third of its duration while the handler runs. A failed
 * renewal is logged, and the next one tries again.
 */
class LeaseRenewal {
  readonly #timer: NodeJS.Timeout;
  #pending: Promise<void> = Promise.resolve();

  constructor(pool: pg.Pool, queue: string, message: TakenMessage, leaseDurationMs: number) {
    this.#timer = setInterval(
      () => {
        this.#pending = this.#pending.then(async () => {
          try {
            const result = await pool.query(
              `update queue_messages
                set leased_until = now() + $3::double precision * interval '1 millisecond'
              where id = $1 and lease_token = $2`,
              [message.id, message.leaseToken, leaseDurationMs],
            );
            if (result.rowCount === 0) {
              logger.warn("Lease of message {messageId} on queue {queue} was taken over", {
                queue,
                messageId: message.id,
              });
            }
          } catch (error) {
            logger.warn(
              "Failed to renew the lease of message {messageId} on queue {queue}: {error}",
              {
                queue,
                messageId: message.id,
                error,
              },
            );
          }
        });
      },
      Math.max(1, Math.floor(leaseDurationMs / 3)),
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#pending;
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Invalid queue option ${name}: expected a positive integer, got ${value}`);
  }
  return value;
}

function serializeMessage(message: unknown): string {
  const json = JSON.stringify(message);
  if (json === undefined) {
    throw new TypeError(`Invalid queue message: ${typeof message} is not JSON-serialisable`);
  }
  return json;
}

/** Returns the delay in milliseconds; a negative delay counts as none rather than losing the message. */
function delayMilliseconds(options: MessageQueueEnqueueOptions | undefined): number {
  if (options?.delay === undefined) return 0;
  // `total` throws a RangeError for years, months or weeks, because their length depends on a
  // start date; Fedify's delays use days and smaller units.
  return Math.max(0, options.delay.total({ unit: "millisecond" }));
}

function describeError(error: unknown): string {
  const text =
    error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
  return text.slice(0, MAX_STORED_ERROR_LENGTH);
}
