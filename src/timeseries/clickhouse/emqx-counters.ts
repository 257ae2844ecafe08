/**
 * EMQX's topic counts on ClickHouse, in their own minute table and batch ledger, apart from the
 * tap's counters.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import type { EmqxTopicCounterBatch } from "../../metering/emqx/topic-metrics.ts";
import type { EmqxTopicTotal } from "../store.ts";
import { toUnixSeconds } from "../time.ts";
import type { BatchWriteOutcome } from "../types.ts";
import { dateTimeLiteral, integerLiteral, quoteString } from "./sql.ts";

/**
 * Writes a normalized batch with the guarantee of the tap's `writeCounterBatch`. The ledger
 * check skips a retry whose first write finished. A retry that races its first attempt writes
 * rows with the same (minute, source, topic, batch_id) key, which FINAL reads count once. Rows
 * go first and the ledger row last, so a ledger row always means that the rows landed.
 */
export async function writeEmqxTopicCounters(
  client: ClickHouseClient,
  batch: EmqxTopicCounterBatch,
): Promise<BatchWriteOutcome> {
  const seen = await client.query({
    query: `SELECT count() AS n FROM emqx_counter_batches WHERE batch_id = ${quoteString(batch.batchId)}`,
    format: "JSONEachRow",
  });
  const [found] = await seen.json<{ n: number }>();
  if ((found?.n ?? 0) > 0) return "duplicate";

  let newest = 0;
  const values = batch.rows.map((row) => {
    const minute = toUnixSeconds(row.minute);
    newest = Math.max(newest, minute);
    return {
      minute,
      source: batch.source,
      topic: row.topic,
      batch_id: batch.batchId,
      domain: row.domain,
      domain_kind: row.domainKind,
      unit_node_id: row.unitNodeId ?? "",
      unit_id: row.unitId ?? "",
      repo_id: row.repoId ?? "",
      messages_in: row.messages,
      messages_out: row.messagesOut,
      messages_dropped: row.messagesDropped,
    };
  });
  await client.insert({ table: "emqx_topic_counter_minutes", values, format: "JSONEachRow" });
  await client.insert({
    table: "emqx_counter_batches",
    values: [
      {
        batch_id: batch.batchId,
        source: batch.source,
        newest_minute: newest,
        rows: batch.rows.length,
        written_at: toUnixSeconds(new Date()),
      },
    ],
    format: "JSONEachRow",
  });
  return "written";
}

/** Sums per topic over minutes in `[start, end)`, most messages in first, then by topic. */
export async function emqxTopicTotals(
  client: ClickHouseClient,
  start: Date,
  end: Date,
  limit: number,
): Promise<EmqxTopicTotal[]> {
  // Aliases differ from the column names because a ClickHouse alias shadows the column inside
  // the aggregate functions as well.
  const result = await client.query({
    query: `SELECT topic, sum(messages_in) AS total_in, sum(messages_out) AS total_out,
        sum(messages_dropped) AS total_dropped
      FROM emqx_topic_counter_minutes FINAL
      WHERE minute >= ${dateTimeLiteral(start)} AND minute < ${dateTimeLiteral(end)}
      GROUP BY topic
      ORDER BY total_in DESC, topic ASC
      LIMIT ${integerLiteral(limit)}`,
    format: "JSONEachRow",
  });
  const rows = await result.json<{
    topic: string;
    total_in: number;
    total_out: number;
    total_dropped: number;
  }>();
  return rows.map((row) => ({
    topic: row.topic,
    messagesIn: Number(row.total_in),
    messagesOut: Number(row.total_out),
    messagesDropped: Number(row.total_dropped),
  }));
}
