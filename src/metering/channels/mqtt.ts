/** The MQTT channel: messages the tap counted, as channel rows. */
import type { ChannelCountRow } from "../../timeseries/types.ts";
import { minuteOf } from "../errors/counter.ts";

export const TAP_SOURCE = "tap";

export interface MinuteMessageTotal {
  /** Any time within the minute; it is aligned to the minute's start. */
  minute: Date;
  messages: number;
}

/**
 * Turns the tap's per-minute message totals into `mqtt` channel rows, adding totals of the same
 * minute. Each total must be the complete count of its minute over every tap (for example a sum
 * over the store's topic counters of a finished minute), because a channel row replaces the
 * earlier row of its minute. Throws on a negative or non-integer count.
 */
export function mqttChannelRows(
  totals: Iterable<MinuteMessageTotal>,
  source = TAP_SOURCE,
): ChannelCountRow[] {
  const byMinute = new Map<number, number>();
  for (const total of totals) {
    if (!Number.isSafeInteger(total.messages) || total.messages < 0) {
      throw new RangeError(
        `Invalid message total ${total.messages} for ${total.minute.toISOString()}: expected a whole number of 0 or more`,
      );
    }
    const minute = minuteOf(total.minute).getTime();
    byMinute.set(minute, (byMinute.get(minute) ?? 0) + total.messages);
  }
  return [...byMinute]
    .sort(([a], [b]) => a - b)
    .map(([minute, count]) => ({ minute: new Date(minute), channel: "mqtt", source, count }));
}
