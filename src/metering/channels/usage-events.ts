/**
 * Usage events pushed by the Pepeunit backend, stored once each. The identity of an event is
 * `source` + `id`, as in CloudEvents, so a delivery retried after a lost response is a duplicate.
 */
import { sql } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import { usageEvents } from "../../db/schema/usage.ts";

export interface UsageEventInput {
  id: string;
  source: string;
  type: string;
  subject: string;
  time: Date;
  value: number;
}

export interface UsageIngestOutcome {
  created: number;
  duplicates: number;
}

/**
 * Inserts `events` in one statement, skipping any whose `(source, id)` is already stored or
 * appears earlier in the same list. A duplicate keeps the first stored content even when its
 * other fields differ, because the sender declared it the same event.
 */
export async function storeUsageEvents(
  db: DatabaseLike,
  events: readonly UsageEventInput[],
): Promise<UsageIngestOutcome> {
  if (events.length === 0) return { created: 0, duplicates: 0 };
  const inserted = await db
    .insert(usageEvents)
    .values(
      events.map((event) => ({
        source: event.source,
        eventId: event.id,
        type: event.type,
        subject: event.subject,
        time: event.time,
        // Exact decimal text; JSON numbers past 15 significant digits were already rounded.
        value: event.value.toString(),
      })),
    )
    .onConflictDoNothing({ target: [usageEvents.source, usageEvents.eventId] })
    .returning({ id: usageEvents.id });
  return { created: inserted.length, duplicates: events.length - inserted.length };
}

/** Sum of `value` per type for one subject within `[from, to)`, as decimal text. */
export async function sumUsage(
  db: DatabaseLike,
  subject: string,
  from: Date,
  to: Date,
): Promise<Map<string, string>> {
  const result = await db.execute<{ type: string; total: string }>(
    sql`select type, sum(value)::text as total from ${usageEvents}
        where subject = ${subject} and time >= ${from.toISOString()} and time < ${to.toISOString()}
        group by type`,
  );
  return new Map(result.rows.map((row) => [row.type, row.total]));
}
