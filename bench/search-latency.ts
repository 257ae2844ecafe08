/**
 * Catalogue search latency at growing catalogue sizes. Fills one node's database with generated
 * local and federated Repos and Units (fixed seed), then times `searchRepos` in-process, and
 * optionally `GET /api/v1/search/repos` over loopback HTTP, for a mix of query kinds.
 * With `--explain-over`, it prints `EXPLAIN (ANALYZE, BUFFERS)` of every kind whose p95 is above
 * the threshold.
 */
import { parseArgs } from "node:util";
import { drizzle } from "drizzle-orm/node-postgres";
import type pg from "pg";
import { type RepoSearchParams, searchRepos } from "../src/catalogue/search.ts";
import type { Database } from "../src/db/client.ts";
import * as schema from "../src/db/schema/index.ts";
import { setUpLogging, tearDownLogging } from "../src/logging.ts";
import {
  CatalogueGenerator,
  type FillCounts,
  fillCatalogue,
  ORIGIN_HOSTS,
} from "./lib/catalogue-generator.ts";
import {
  type BenchNode,
  type BenchPostgres,
  describeMachine,
  startBenchNode,
  startBenchPostgres,
} from "./lib/harness.ts";
import {
  type LatencySummary,
  ms,
  parseIntegerList,
  parsePositiveInteger,
  spread,
  summarize,
} from "./lib/stats.ts";

const USAGE = `Usage: npm run bench:search -- [options]

Fills the catalogue to each size in turn and reports search latency percentiles per query kind.

  --sizes LIST         total Repos (local + federated), ascending, comma-separated
                       (default 10000,100000)
  --iterations N       timed searches per query kind and round (default 30)
  --rounds N           repetitions of the whole mix per size (default 3)
  --seed N             seed of the data generator (default 42)
  --http               also time GET /api/v1/search/repos over loopback HTTP
  --explain-over MS    print EXPLAIN (ANALYZE, BUFFERS) of kinds whose p95 exceeds MS
                       in any round (default 50; 0 prints every kind)
  --help               print this text
`;

const PAGE_SIZE = 20;
/** Upper bound of the timed loop of one kind in one round, so a slow kind cannot stall the run. */
const KIND_TIME_LIMIT_MS = 15_000;
const WARM_UP_CALLS = 3;

type SearchFilters = Omit<RepoSearchParams, "limit" | "cursor">;

interface QueryKind {
  name: string;
  filters: SearchFilters;
  /** Pages walked before timing, so the timed call uses a cursor that deep. */
  skipPages?: number;
}

interface PreparedKind extends QueryKind {
  cursor: string | undefined;
  /** Rows matching the text or Unit condition when cheap to count, which shows the selectivity. */
  matches: number | undefined;
}

interface Measurement {
  size: number;
  kind: string;
  transport: "in-process" | "http";
  round: number;
  latency: LatencySummary;
}

interface Options {
  sizes: number[];
  iterations: number;
  rounds: number;
  seed: number;
  http: boolean;
  explainOverMs: number;
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string", default: "10000,100000" },
      iterations: { type: "string", default: "30" },
      rounds: { type: "string", default: "3" },
      seed: { type: "string", default: "42" },
      http: { type: "boolean", default: false },
      "explain-over": { type: "string", default: "50" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const sizes = parseIntegerList("sizes", values.sizes);
  if (sizes.some((size, index) => index > 0 && size <= (sizes[index - 1] as number))) {
    throw new Error(`--sizes: expected ascending sizes, got "${values.sizes}"`);
  }
  const explainOverMs = Number(values["explain-over"]);
  if (!Number.isFinite(explainOverMs) || explainOverMs < 0) {
    throw new Error(
      `--explain-over: expected milliseconds, 0 or more, got "${values["explain-over"]}"`,
    );
  }
  return {
    sizes,
    iterations: parsePositiveInteger("iterations", values.iterations),
    rounds: parsePositiveInteger("rounds", values.rounds),
    seed: parsePositiveInteger("seed", values.seed),
    http: values.http,
    explainOverMs,
  };
}

/**
 * Returns the query mix. With the default seed the common word (Zipf rank 5) is in about 29% of
 * the Repos and the rare word (rank 3001 of 8000) in about 0.03%. The run prints the counts.
 */
function queryKinds(generator: CatalogueGenerator): QueryKind[] {
  return [
    { name: "recency (no q)", filters: {} },
    { name: "common word", filters: { query: generator.wordAt(4) } },
    { name: "rare word", filters: { query: generator.wordAt(3000) } },
    { name: "prefix weath", filters: { query: "weath" } },
    { name: "two words", filters: { query: "weather station" } },
    { name: "platform=Gitlab", filters: { platform: "Gitlab" } },
    { name: "common word, compilable", filters: { query: generator.wordAt(1), compilable: true } },
    { name: "origin=host", filters: { origin: ORIGIN_HOSTS[1] } },
    { name: "origin=local, word", filters: { origin: "local", query: generator.wordAt(4) } },
    { name: "unit=roof", filters: { unit: "roof" } },
    { name: "recency, page 51", filters: {}, skipPages: 50 },
    { name: "common word, page 51", filters: { query: generator.wordAt(4) }, skipPages: 50 },
  ];
}

async function countMatches(pool: pg.Pool, filters: SearchFilters): Promise<number | undefined> {
  if (filters.query !== undefined && filters.platform === undefined) {
    const prefixQuery = filters.query
      .split(/\s+/)
      .map((word) => `${word}:*`)
      .join(" & ");
    const local = filters.origin === "local";
    const result = await pool.query<{ n: number }>(
      `select ((select count(*) from repos where visibility = 'Public'
          and search_document @@ to_tsquery('simple', $1)${filters.compilable ? " and is_compilable" : ""})
        + case when $2 then 0 else (select count(*) from federated_repos
          where search_document @@ to_tsquery('simple', $1)${filters.compilable ? " and is_compilable" : ""}) end)::int as n`,
      [prefixQuery, local],
    );
    return result.rows[0]?.n;
  }
  if (filters.unit !== undefined) {
    const pattern = `%${filters.unit}%`;
    const result = await pool.query<{ n: number }>(
      `select ((select count(distinct u.repo_id) from units u join repos r on r.id = u.repo_id
          where u.visibility = 'Public' and r.visibility = 'Public' and lower(u.name) like $1)
        + (select count(distinct repo_iri) from federated_units where lower(name) like $1))::int as n`,
      [pattern],
    );
    return result.rows[0]?.n;
  }
  return undefined;
}

async function search(db: Database, origin: URL, filters: SearchFilters, cursor?: string) {
  const result = await searchRepos(db, origin, { ...filters, limit: PAGE_SIZE, cursor });
  if (!result.ok) throw new Error(`searchRepos failed: ${JSON.stringify(result.failure)}`);
  return result.value;
}

/** Walks to the kind's starting page, or returns undefined when the results have fewer pages. */
async function prepareKind(
  db: Database,
  pool: pg.Pool,
  origin: URL,
  kind: QueryKind,
): Promise<PreparedKind | undefined> {
  let cursor: string | undefined;
  for (let page = 0; page < (kind.skipPages ?? 0); page++) {
    const next = (await search(db, origin, kind.filters, cursor)).next;
    if (next === null) return undefined;
    cursor = next;
  }
  return { ...kind, cursor, matches: await countMatches(pool, kind.filters) };
}

function searchUrl(origin: string, kind: PreparedKind): string {
  const url = new URL("/api/v1/search/repos", origin);
  const { filters } = kind;
  url.searchParams.set("limit", String(PAGE_SIZE));
  if (filters.query !== undefined) url.searchParams.set("q", filters.query);
  if (filters.platform !== undefined) url.searchParams.set("platform", filters.platform);
  if (filters.compilable !== undefined) {
    url.searchParams.set("compilable", String(filters.compilable));
  }
  if (filters.origin !== undefined) url.searchParams.set("origin", filters.origin);
  if (filters.unit !== undefined) url.searchParams.set("unit", filters.unit);
  if (kind.cursor !== undefined) url.searchParams.set("cursor", kind.cursor);
  return url.href;
}

/** Times `call` sequentially: a few untimed calls, then up to `iterations` timed ones. */
async function timeCalls(call: () => Promise<void>, iterations: number): Promise<number[]> {
  for (let index = 0; index < WARM_UP_CALLS; index++) await call();
  const latencies: number[] = [];
  const deadline = performance.now() + KIND_TIME_LIMIT_MS;
  while (latencies.length < iterations && performance.now() < deadline) {
    const started = performance.now();
    await call();
    latencies.push(performance.now() - started);
  }
  return latencies;
}

/** Prints the plan of the SQL that `searchRepos` sends for `kind`. */
async function explainKind(node: BenchNode, kind: PreparedKind): Promise<void> {
  const { pool, config } = node.node.services;
  let captured: { text: string; params: unknown[] } | undefined;
  const capturingDb = drizzle({
    client: pool,
    schema,
    logger: {
      logQuery: (text, params) => {
        captured = { text, params };
      },
    },
  });
  await search(capturingDb, config.origin, kind.filters, kind.cursor);
  if (!captured) throw new Error(`No SQL was captured for "${kind.name}"`);
  const plan = await pool.query<{ "QUERY PLAN": string }>(
    `explain (analyze, buffers) ${captured.text}`,
    captured.params,
  );
  console.log(`\nEXPLAIN (ANALYZE, BUFFERS) of "${kind.name}":`);
  for (const row of plan.rows) console.log(`  ${row["QUERY PLAN"]}`);
}

function printSummary(measurements: Measurement[], kinds: PreparedKind[][], options: Options) {
  console.log(
    `\nSpread over ${options.rounds} rounds (min–max of each round's percentile), up to ${options.iterations} searches per kind and round:`,
  );
  console.log("| Repos | transport | query kind | matches | p50 ms | p95 ms | p99 ms |");
  console.log("| ---: | --- | --- | ---: | ---: | ---: | ---: |");
  options.sizes.forEach((size, sizeIndex) => {
    for (const transport of ["in-process", "http"] as const) {
      for (const kind of kinds[sizeIndex] ?? []) {
        const rows = measurements.filter(
          (row) => row.size === size && row.transport === transport && row.kind === kind.name,
        );
        if (rows.length === 0) continue;
        const pick = (field: "p50" | "p95" | "p99") => rows.map((row) => row.latency[field]);
        console.log(
          `| ${size} | ${transport} | ${kind.name} | ${kind.matches ?? "-"} | ${spread(pick("p50"), ms)} | ${spread(pick("p95"), ms)} | ${spread(pick("p99"), ms)} |`,
        );
      }
    }
  });
}

async function main(): Promise<void> {
  const options = readOptions();
  await setUpLogging({ level: "warning", format: "text" });

  let postgres: BenchPostgres | undefined;
  let node: BenchNode | undefined;
  try {
    postgres = await startBenchPostgres();
    node = await startBenchNode(postgres, "search");
    for (const line of await describeMachine(postgres.adminUrl)) console.log(line);
    console.log(
      `sizes: ${options.sizes.join(",")}, iterations: ${options.iterations}, rounds: ${options.rounds}, seed: ${options.seed}, page size: ${PAGE_SIZE}`,
    );

    const { db, pool, config } = node.node.services;
    const generator = new CatalogueGenerator({ seed: options.seed });
    const totals: FillCounts = { localRepos: 0, federatedRepos: 0, units: 0, federatedUnits: 0 };
    const measurements: Measurement[] = [];
    const preparedBySize: PreparedKind[][] = [];
    let filled = 0;

    for (const size of options.sizes) {
      const fillStarted = performance.now();
      const added = await fillCatalogue(pool, generator, size - filled);
      filled = size;
      for (const key of Object.keys(totals) as (keyof FillCounts)[]) totals[key] += added[key];
      // VACUUM sets the visibility map as autovacuum would on a settled table; ANALYZE the stats.
      await pool.query("vacuum analyze repos, units, federated_repos, federated_units");
      console.log(
        `\nfilled to ${size} Repos in ${((performance.now() - fillStarted) / 1000).toFixed(1)} s: ${totals.localRepos} local, ${totals.federatedRepos} federated, ${totals.units} Units, ${totals.federatedUnits} federated Units`,
      );

      const prepared: PreparedKind[] = [];
      for (const kind of queryKinds(generator)) {
        const ready = await prepareKind(db, pool, config.origin, kind);
        if (ready) prepared.push(ready);
        else
          console.log(
            `skipped "${kind.name}" at ${size} Repos: fewer than ${kind.skipPages} pages`,
          );
      }
      preparedBySize.push(prepared);

      for (let round = 1; round <= options.rounds; round++) {
        for (const kind of prepared) {
          const inProcess = await timeCalls(async () => {
            await search(db, config.origin, kind.filters, kind.cursor);
          }, options.iterations);
          const measurement: Measurement = {
            size,
            kind: kind.name,
            transport: "in-process",
            round,
            latency: summarize(inProcess),
          };
          measurements.push(measurement);
          console.log(
            `${size} round ${round} in-process ${kind.name}: p50 ${ms(measurement.latency.p50)} ms, p95 ${ms(measurement.latency.p95)} ms (${measurement.latency.count} searches)`,
          );

          if (!options.http) continue;
          const url = searchUrl(node.origin, kind);
          const overHttp = await timeCalls(async () => {
            const response = await fetch(url);
            await response.arrayBuffer();
            if (response.status !== 200) throw new Error(`GET ${url}: HTTP ${response.status}`);
          }, options.iterations);
          measurements.push({
            size,
            kind: kind.name,
            transport: "http",
            round,
            latency: summarize(overHttp),
          });
        }
      }

      for (const kind of prepared) {
        const worstP95 = Math.max(
          ...measurements
            .filter(
              (row) =>
                row.size === size && row.kind === kind.name && row.transport === "in-process",
            )
            .map((row) => row.latency.p95),
        );
        if (worstP95 > options.explainOverMs) {
          console.log(`\n${size} Repos, "${kind.name}": worst p95 ${ms(worstP95)} ms`);
          await explainKind(node, kind);
        }
      }
    }
    printSummary(measurements, preparedBySize, options);
  } finally {
    await node?.close();
    await postgres?.stop();
    await tearDownLogging();
  }
}

try {
  await main();
} catch (error) {
  console.error(`Search benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exitCode = 1;
}
