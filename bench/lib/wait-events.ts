/**
 * Samples what the benchmark's PostgreSQL backends wait for, from `pg_stat_activity`, to show
 * what limits a run: row locks, WAL flushes at commit, or CPU.
 */
import pg from "pg";

/** Share of samples per wait, such as `Lock:transactionid` or `CPU` for no wait event. */
export interface WaitProfile {
  /** Active client backends seen over all samples. */
  backendSamples: number;
  /** Wait names with their share of `backendSamples` (0..1), largest first. */
  shares: { wait: string; share: number }[];
}

export interface WaitSampler {
  /** Stops sampling and returns the profile since `start`. */
  stop(): Promise<WaitProfile>;
}

/**
 * Starts polling `pg_stat_activity` every `intervalMs` milliseconds over its own connection.
 * Only active client backends of the database `databaseUrl` names count, not the sampler itself.
 */
export async function startWaitSampler(databaseUrl: string, intervalMs = 20): Promise<WaitSampler> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const counts = new Map<string, number>();
  let backendSamples = 0;
  let stopped = false;

  const sampleOnce = async () => {
    const result = await client.query<{ wait: string | null }>(
      `select wait_event_type || ':' || wait_event as wait
       from pg_stat_activity
       where datname = current_database() and backend_type = 'client backend'
         and state = 'active' and pid <> pg_backend_pid()`,
    );
    for (const row of result.rows) {
      const wait = row.wait ?? "CPU";
      counts.set(wait, (counts.get(wait) ?? 0) + 1);
      backendSamples++;
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await sampleOnce();
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();

  return {
    stop: async () => {
      stopped = true;
      await loop;
      await client.end();
      const shares = [...counts.entries()]
        .map(([wait, count]) => ({ wait, share: count / Math.max(1, backendSamples) }))
        .sort((left, right) => right.share - left.share);
      return { backendSamples, shares };
    },
  };
}

/** Formats the largest `top` shares as `Lock:transactionid 71%, CPU 12%`. */
export function formatWaitProfile(profile: WaitProfile, top = 3): string {
  if (profile.backendSamples === 0) return "no active backend sampled";
  return profile.shares
    .slice(0, top)
    .map((entry) => `${entry.wait} ${(entry.share * 100).toFixed(0)}%`)
    .join(", ");
}
