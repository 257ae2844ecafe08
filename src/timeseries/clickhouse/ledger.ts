/**
 * Batch writes on ClickHouse that count each batch once, through a ledger table of written batch
 * ids. The tap's counters and EMQX's topic counts each have their own minute and ledger tables.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import { toUnixSeconds } from "../time.ts";
import type { BatchWriteOutcome } from "../types.ts";
import { quoteString } from "./sql.ts";

export interface LedgerTables {
  /** Minute table that receives the batch's rows. */
  rows: string;
  /** Ledger table with one row per written batch. */
  ledger: string;
}

/**
 * Writes a batch's rows, then its ledger row, and returns `"duplicate"` without writing when the
 * ledger already lists `batchId`. That check skips a retry whose first write finished. A retry
 * that races its first attempt writes rows with the same key, which FINAL reads count once, as
 * long as `batch_id` is part of the minute table's sorting key. Rows go first and the ledger row
 * last, so a ledger row always means that the rows landed.
 *
 * `toValues` returns a row's columns other than `minute` and `batch_id`, which this adds.
 * `ledgerValues` are the ledger columns other than `batch_id`, `newest_minute`, `rows` and
 * `written_at`.
 */
export async function writeBatchOnce<Row extends { minute: Date }>(
  client: ClickHouseClient,
  tables: LedgerTables,
  batch: { batchId: string; rows: readonly Row[] },
  toValues: (row: Row) => Record<string, unknown>,
  ledgerValues: Record<string, unknown>,
): Promise<BatchWriteOutcome> {
  const seen = await client.query({
    query: `SELECT count() AS n FROM ${tables.ledger} WHERE batch_id = ${quoteString(batch.batchId)}`,
    format: "JSONEachRow",
  });
  const [found] = await seen.json<{ n: number }>();
  if ((found?.n ?? 0) > 0) return "duplicate";

  let newest = 0;
  const values = batch.rows.map((row) => {
    const minute = toUnixSeconds(row.minute);
    newest = Math.max(newest, minute);
    return { minute, batch_id: batch.batchId, ...toValues(row) };
  });
  await client.insert({ table: tables.rows, values, format: "JSONEachRow" });
  await client.insert({
    table: tables.ledger,
    values: [
      {
        batch_id: batch.batchId,
        ...ledgerValues,
        newest_minute: newest,
        rows: batch.rows.length,
        written_at: toUnixSeconds(new Date()),
      },
    ],
    format: "JSONEachRow",
  });
  return "written";
}
