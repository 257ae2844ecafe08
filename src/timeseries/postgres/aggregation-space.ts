/** Aggregation space snapshots on PostgreSQL, one row per UTC minute. */
import { desc } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import { aggregationSpaceMinutes } from "../../db/schema/index.ts";
import type {
  AggregationSpaceSnapshot,
  DataPipeTable,
} from "../../metering/state/aggregation-space.ts";
import { floorMinute } from "../time.ts";

/** Writes a checked snapshot under its minute, replacing an earlier snapshot of that minute. */
export async function writeAggregationSpace(
  db: DatabaseLike,
  snapshot: AggregationSpaceSnapshot,
): Promise<void> {
  const row = {
    minute: floorMinute(snapshot.at),
    unitNodes: snapshot.unitNodes,
    users: snapshot.users,
    missingTables: snapshot.missingTables,
  };
  await db
    .insert(aggregationSpaceMinutes)
    .values(row)
    .onConflictDoUpdate({
      target: aggregationSpaceMinutes.minute,
      set: {
        unitNodes: row.unitNodes,
        users: row.users,
        missingTables: row.missingTables,
      },
    });
}

export async function latestAggregationSpace(
  db: DatabaseLike,
): Promise<AggregationSpaceSnapshot | null> {
  const [row] = await db
    .select()
    .from(aggregationSpaceMinutes)
    .orderBy(desc(aggregationSpaceMinutes.minute))
    .limit(1);
  if (!row) return null;
  return {
    at: row.minute,
    unitNodes: row.unitNodes,
    users: row.users,
    // The CHECK constraint limits the column to DataPipe table names.
    missingTables: row.missingTables as DataPipeTable[],
  };
}
