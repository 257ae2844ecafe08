/**
 * Recent message rate of the tap, used to estimate how many messages it may have missed while it
 * was disconnected.
 */

/** Length of the window that the rate is averaged over. */
export const RATE_WINDOW_SECONDS = 60;

/** Messages per second over the last {@link RATE_WINDOW_SECONDS} seconds, in one-second buckets. */
export class RecentRate {
  readonly #buckets = new Float64Array(RATE_WINDOW_SECONDS);
  #currentSecond: number;
  readonly #startedSecond: number;

  constructor(nowMs: number) {
    this.#currentSecond = Math.floor(nowMs / 1000);
    this.#startedSecond = this.#currentSecond;
  }

  record(nowMs: number, messages = 1): void {
    this.#advance(Math.floor(nowMs / 1000));
    const index = this.#currentSecond % RATE_WINDOW_SECONDS;
    this.#buckets[index] = (this.#buckets[index] ?? 0) + messages;
  }

  /**
   * Returns the average rate over the window that ends at `nowMs`, or over the time since the
   * tap started when that is shorter. The current, unfinished second counts as a whole one.
   */
  perSecond(nowMs: number): number {
    const second = Math.floor(nowMs / 1000);
    this.#advance(second);
    const span = Math.min(RATE_WINDOW_SECONDS, second - this.#startedSecond + 1);
    let sum = 0;
    for (const bucket of this.#buckets) sum += bucket;
    return sum / span;
  }

  #advance(second: number): void {
    if (second <= this.#currentSecond) return;
    const steps = Math.min(second - this.#currentSecond, RATE_WINDOW_SECONDS);
    for (let step = 1; step <= steps; step += 1) {
      this.#buckets[(this.#currentSecond + step) % RATE_WINDOW_SECONDS] = 0;
    }
    this.#currentSecond = second;
  }
}
