/**
 * Batch writes on PostgreSQL that count each batch once, through a ledger table of written batch
 * ids. The tap's counters and EMQX's topic counts each have their own minute and ledger tables.
 */
import type { Database, Transaction } from "../../db/client.ts";
import type { BatchWriteOutcome } from "../types.ts";

/**
 * Rows per INSERT statement. EMQX's minute rows, the widest, take 11 parameters each, so a
 * statement stays under PostgreSQL's limit of 65,535 parameters.
 */
const INSERT_CHUNK_ROWS = 5_000;

/**
 * Writes a batch in one transaction: the ledger row first, then the minute rows in chunks. A
 * second write of the same batch id waits on the ledger's primary key until the first commits,
 * then finds the row and returns `"duplicate"`.
 *
 * `recordBatch` inserts the ledger row, skipping a conflict, and returns whether it inserted one.
 * `writeRows` adds one chunk of rows to the minute table.
 */
export async function writeBatchOnce<Row extends { minute: Date }>(
  db: Database,
  rows: readonly Row[],
  recordBatch: (tx: Transaction, newestMinute: Date) => Promise<boolean>,
  writeRows: (tx: Transaction, chunk: Row[]) => Promise<void>,
): Promise<BatchWriteOutcome> {
  const newestMinute = rows.reduce(
    (newest, row) => (row.minute.getTime() > newest.getTime() ? row.minute : newest),
    rows[0]?.minute ?? new Date(0),
  );
  return await db.transaction(async (tx) => {
    if (!(await recordBatch(tx, newestMinute))) return "duplicate";

    for (let start = 0; start < rows.length; start += INSERT_CHUNK_ROWS) {
      await writeRows(tx, rows.slice(start, start + INSERT_CHUNK_ROWS));
    }
    return "written";
  });
}
