/**
 * EMQX's topic counts on PostgreSQL, in their own minute table and batch ledger, apart from the
 * tap's counters.
 */
import { sql } from "drizzle-orm";
import type { Database, DatabaseLike } from "../../db/client.ts";
import { emqxCounterBatches, emqxTopicCounterMinutes } from "../../db/schema/index.ts";
import type { EmqxTopicCounterBatch } from "../../metering/emqx/topic-metrics.ts";
import type { EmqxTopicTotal } from "../store.ts";
import type { BatchWriteOutcome } from "../types.ts";
import { writeBatchOnce } from "./ledger.ts";

/**
 * Writes a normalized batch (see `normalizeEmqxTopicCounterBatch`) once per batch id, as the
 * tap's `writeCounterBatch` does, through `writeBatchOnce`.
 */
export async function writeEmqxTopicCounters(
  db: Database,
  batch: EmqxTopicCounterBatch,
): Promise<BatchWriteOutcome> {
  return await writeBatchOnce(
    db,
    batch.rows,
    async (tx, newestMinute) => {
      const recorded = await tx
        .insert(emqxCounterBatches)
        .values({
          batchId: batch.batchId,
          source: batch.source,
          newestMinute,
          rows: batch.rows.length,
        })
        .onConflictDoNothing()
        .returning({ batchId: emqxCounterBatches.batchId });
      return recorded.length > 0;
    },
    async (tx, chunk) => {
      const values = chunk.map((row) => ({
        minute: row.minute,
        source: batch.source,
        topic: row.topic,
        domain: row.domain,
        domainKind: row.domainKind,
        unitNodeId: row.unitNodeId,
        unitId: row.unitId,
        repoId: row.repoId,
        messagesIn: row.messages,
        messagesOut: row.messagesOut,
        messagesDropped: row.messagesDropped,
      }));
      await tx
        .insert(emqxTopicCounterMinutes)
        .values(values)
        .onConflictDoUpdate({
          target: [
            emqxTopicCounterMinutes.minute,
            emqxTopicCounterMinutes.source,
            emqxTopicCounterMinutes.topic,
          ],
          set: {
            messagesIn: sql`${emqxTopicCounterMinutes.messagesIn} + excluded.messages_in`,
            messagesOut: sql`${emqxTopicCounterMinutes.messagesOut} + excluded.messages_out`,
            messagesDropped: sql`${emqxTopicCounterMinutes.messagesDropped} + excluded.messages_dropped`,
            // Attribution follows the latest batch, as it does for the tap's counters.
            domain: sql`excluded.domain`,
            domainKind: sql`excluded.domain_kind`,
            unitNodeId: sql`excluded.unit_node_id`,
            unitId: sql`excluded.unit_id`,
            repoId: sql`excluded.repo_id`,
          },
        });
    },
  );
}

/** Sums per topic over minutes in `[start, end)`, most messages in first, then by topic. */
export async function emqxTopicTotals(
  db: DatabaseLike,
  start: Date,
  end: Date,
  limit: number,
): Promise<EmqxTopicTotal[]> {
  const result = await db.execute(sql`
    select topic,
      sum(messages_in)::float8 as messages_in,
      sum(messages_out)::float8 as messages_out,
      sum(messages_dropped)::float8 as messages_dropped
    from emqx_topic_counter_minutes
    where minute >= ${start} and minute < ${end}
    group by topic
    order by messages_in desc, topic collate "C"
    limit ${limit}`);
  return result.rows.map((row) => {
    const record = row as Record<string, unknown>;
    return {
      topic: String(record.topic),
      messagesIn: Number(record.messages_in),
      messagesOut: Number(record.messages_out),
      messagesDropped: Number(record.messages_dropped),
    };
  });
}
