/**
 * Wake-ups for idle queue workers: the `LISTEN` side of the message queue (one dedicated
 * connection per listening queue that receives the `NOTIFY` sent on every enqueue, and reconnects
 * when the connection drops), and the signal that workers sleep on.
 */
import type { Logger } from "@logtape/logtape";
import pg from "pg";

/** The one channel that every named queue notifies on; the payload is the queue name. */
export const QUEUE_NOTIFICATION_CHANNEL = "queue_messages";

const FIRST_RECONNECT_DELAY_MS = 500;
const MAX_RECONNECT_DELAY_MS = 30_000;

export interface NotificationSubscriptionOptions {
  pool: pg.Pool;
  queue: string;
  logger: Logger;
  /**
   * Called for each notification about this queue, and after every reconnect because
   * notifications sent while the connection was down are lost.
   */
  onWake: () => void;
}

/**
 * A pool client with `LISTEN` running on it. Connection failures are logged and retried with
 * backoff instead of thrown, because polling keeps the queue working without notifications.
 */
export class NotificationSubscription {
  readonly #options: NotificationSubscriptionOptions;
  #client: pg.PoolClient | undefined;
  #stopped = false;
  #failedAttempts = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #connecting: Promise<void> | undefined;

  constructor(options: NotificationSubscriptionOptions) {
    this.#options = options;
  }

  /** Makes the first connection attempt; on failure a reconnect is scheduled. */
  async start(): Promise<void> {
    this.#connecting = this.#connect();
    await this.#connecting;
  }

  /** Stops reconnecting and returns the client to the pool. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    await this.#connecting;
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    try {
      await client.query("unlisten *");
      client.release();
    } catch (error) {
      // A client that failed here is broken; releasing it with the error makes the pool close it.
      client.release(error instanceof Error ? error : new Error(String(error)));
    }
  }

  async #connect(): Promise<void> {
    const { pool, queue, logger } = this.#options;
    let client: pg.PoolClient | undefined;
    try {
      client = await pool.connect();
      const connected = client;
      // A checked-out pg client with no `error` listener crashes the process when its
      // connection drops, so the listener stays attached for the client's whole life.
      connected.on("error", (error) => this.#drop(connected, error));
      connected.on("end", () => this.#drop(connected, new Error("connection ended")));
      connected.on("notification", (notification) => {
        if (notification.channel === QUEUE_NOTIFICATION_CHANNEL && notification.payload === queue) {
          this.#options.onWake();
        }
      });
      await connected.query(`listen ${pg.escapeIdentifier(QUEUE_NOTIFICATION_CHANNEL)}`);
    } catch (error) {
      client?.release(error instanceof Error ? error : new Error(String(error)));
      this.#failedAttempts++;
      logger.warn(
        "Failed to listen for notifications on queue {queue}, attempt {attempt}; polling until it reconnects: {error}",
        { queue, attempt: this.#failedAttempts, error },
      );
      this.#scheduleReconnect();
      return;
    }

    if (this.#stopped) {
      client.release();
      return;
    }
    const reconnected = this.#failedAttempts > 0;
    this.#client = client;
    this.#failedAttempts = 0;
    if (reconnected) {
      logger.info("Reconnected notifications for queue {queue}", { queue });
      this.#options.onWake();
    } else {
      logger.debug("Listening for notifications on queue {queue}", { queue });
    }
  }

  #drop(client: pg.PoolClient, error: Error): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.release(error);
    if (this.#stopped) return;
    this.#failedAttempts++;
    this.#options.logger.warn(
      "Lost the notification connection of queue {queue}; polling until it reconnects: {error}",
      { queue: this.#options.queue, error },
    );
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#stopped) return;
    const delay = Math.min(
      FIRST_RECONNECT_DELAY_MS * 2 ** Math.max(0, this.#failedAttempts - 1),
      MAX_RECONNECT_DELAY_MS,
    );
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => {
      this.#connecting = this.#connect();
    }, delay);
  }
}

/**
 * Lets idle workers sleep until a timeout or a wake-up. The generation counter closes the gap
 * between "found no work" and "started sleeping", in which a wake-up would otherwise be lost.
 */
export class WakeSignal {
  #generation = 0;
  readonly #sleepers = new Set<() => void>();

  get generation(): number {
    return this.#generation;
  }

  wake(): void {
    this.#generation++;
    for (const resume of this.#sleepers) resume();
    this.#sleepers.clear();
  }

  /** Waits `ms`, or less if {@link wake} is called, or not at all if it was called since `generation`. */
  sleep(ms: number, generation: number): Promise<void> {
    if (generation !== this.#generation) return Promise.resolve();
    return new Promise((resolve) => {
      const resume = () => {
        clearTimeout(timer);
        this.#sleepers.delete(resume);
        resolve();
      };
      const timer = setTimeout(resume, ms);
      this.#sleepers.add(resume);
    });
  }
}
