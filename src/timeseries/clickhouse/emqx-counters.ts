/**
 * EMQX's topic counts on ClickHouse, in their own minute table and batch ledger, apart from the
 * tap's counters.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import type { EmqxTopicCounterBatch } from "../../metering/emqx/topic-metrics.ts";
import type { EmqxTopicTotal } from "../store.ts";
import type { BatchWriteOutcome } from "../types.ts";
import { writeBatchOnce } from "./ledger.ts";
import { dateTimeLiteral, integerLiteral } from "./sql.ts";

/**
 * Writes a normalized batch once per batch id (see `writeBatchOnce`), as the tap's
 * `writeCounterBatch` does. A retry that races its first attempt writes rows with the same
 * (minute, source, topic, batch_id) key.
 */
export async function writeEmqxTopicCounters(
  client: ClickHouseClient,
  batch: EmqxTopicCounterBatch,
): Promise<BatchWriteOutcome> {
  return await writeBatchOnce(
    client,
    { rows: "emqx_topic_counter_minutes", ledger: "emqx_counter_batches" },
    batch,
    (row) => ({
      source: batch.source,
      topic: row.topic,
      domain: row.domain,
      domain_kind: row.domainKind,
      unit_node_id: row.unitNodeId ?? "",
      unit_id: row.unitId ?? "",
      repo_id: row.repoId ?? "",
      messages_in: row.messages,
      messages_out: row.messagesOut,
      messages_dropped: row.messagesDropped,
    }),
    { source: batch.source },
  );
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
