/**
 * Inbox throughput: how many signed `Create` activities of Repo `Service` actors node B accepts
 * and stores per second. Node A's instance actor signs them and the load loop POSTs them to B's
 * shared inbox over loopback HTTP, at each requested concurrency. The run fails unless B's
 * `federated_repos` gains exactly one row per activity.
 *
 * Both nodes, the load loop and the PostgreSQL client side share this one Node.js process, and
 * PostgreSQL runs on the same machine, so the numbers are those of a node whose CPU is shared
 * with its sender.
 */
import type { webcrypto } from "node:crypto";
import { parseArgs } from "node:util";
import { signRequest } from "@fedify/fedify";
import { Create, CryptographicKey, PropertyValue, Service } from "@fedify/vocab";
import { sql } from "drizzle-orm";
import { getActorKeyPairs } from "../federation/keys.ts";
import { toInstant } from "../federation/wire.ts";
import type { Database } from "../src/db/client.ts";
import { setUpLogging, tearDownLogging } from "../src/logging.ts";
import {
  type BenchNode,
  type BenchPostgres,
  describeMachine,
  startBenchNode,
  startBenchPostgres,
  waitFor,
} from "./lib/harness.ts";
import {
  type LatencySummary,
  ms,
  parseIntegerList,
  parsePositiveInteger,
  spread,
  summarize,
} from "./lib/stats.ts";

const USAGE = `Usage: npm run bench:inbox -- [options]

Sends signed Create activities of Repo actors from node A to node B's shared inbox and reports
requests per second and latency percentiles per concurrency.

  --count N            activities per concurrency level and round (default 1000)
  --concurrency LIST   requests in flight, comma-separated (default 1,8,32)
  --rounds N           repetitions of the whole set of levels (default 3)
  --signing MODE       presigned: sign every request before the clock starts (default);
                       inline: sign inside the timed loop, so latency includes signing;
                       both: run every level in both modes
  --cold-samples N     deliveries timed right after clearing B's cached copy of A's key (default 5)
  --synchronous-commit on|off
                       PostgreSQL synchronous_commit for node B's database (default on, the
                       server default); off shows how much of the time waits for WAL flushes
  --help               print this text
`;

type SigningMode = "presigned" | "inline";

interface Options {
  count: number;
  concurrency: number[];
  rounds: number;
  signing: SigningMode[];
  coldSamples: number;
  synchronousCommit: "on" | "off";
}

interface Sender {
  signingKey: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
  keyId: URL;
  instance: URL;
  origin: string;
}

/** A request ready to send: the JSON body and, when pre-signed, the signed headers. */
interface Delivery {
  body: string;
  headers: Record<string, string> | undefined;
}

interface LevelResult {
  mode: SigningMode;
  concurrency: number;
  round: number;
  requestsPerSecond: number;
  latency: LatencySummary;
  /** Commits on B's database per delivery, approximate because B's background jobs count too. */
  commitsPerDelivery: number;
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      count: { type: "string", default: "1000" },
      concurrency: { type: "string", default: "1,8,32" },
      rounds: { type: "string", default: "3" },
      signing: { type: "string", default: "presigned" },
      "cold-samples": { type: "string", default: "5" },
      "synchronous-commit": { type: "string", default: "on" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const signing = values.signing;
  if (signing !== "presigned" && signing !== "inline" && signing !== "both") {
    throw new Error(`--signing: expected presigned, inline or both, got "${signing}"`);
  }
  const synchronousCommit = values["synchronous-commit"];
  if (synchronousCommit !== "on" && synchronousCommit !== "off") {
    throw new Error(`--synchronous-commit: expected on or off, got "${synchronousCommit}"`);
  }
  return {
    synchronousCommit,
    count: parsePositiveInteger("count", values.count),
    concurrency: parseIntegerList("concurrency", values.concurrency),
    rounds: parsePositiveInteger("rounds", values.rounds),
    signing: signing === "both" ? ["presigned", "inline"] : [signing],
    coldSamples: parsePositiveInteger("cold-samples", values["cold-samples"]),
  };
}

/** Builds a `Create` of a Repo actor shaped like the ones `federation/entities.ts` publishes. */
async function buildCreateBody(sender: Sender, sequence: number): Promise<string> {
  const repoId = crypto.randomUUID();
  const actorIri = new URL(`${sender.origin}/ap/actors/${repoId}`);
  const name = `bench-${sequence.toString(36)}-${repoId.slice(0, 6)}`.slice(0, 20);
  const now = toInstant(new Date());
  const repo = new Service({
    id: actorIri,
    preferredUsername: name,
    name,
    summary: `Weather station firmware ${sequence}: reads a BME280 sensor and publishes over MQTT`,
    url: new URL(`https://github.com/pepeunit-bench/${name}.git`),
    inbox: new URL(`${actorIri.href}/inbox`),
    outbox: new URL(`${actorIri.href}/outbox`),
    followers: new URL(`${actorIri.href}/followers`),
    manuallyApprovesFollowers: false,
    published: now,
    updated: now,
    attachments: [
      new PropertyValue({ name: "pepeunit:kind", value: "repo" }),
      new PropertyValue({ name: "pepeunit:id", value: repoId }),
      new PropertyValue({
        name: "pepeunit:repositoryUrl",
        value: `https://github.com/pepeunit-bench/${name}.git`,
      }),
      new PropertyValue({ name: "pepeunit:platform", value: "Github" }),
      new PropertyValue({ name: "pepeunit:compilable", value: "true" }),
      new PropertyValue({
        name: "pepeunit:versions",
        value: JSON.stringify([
          { tag: "v1.0.0", commit: "0123456789abcdef0123456789abcdef01234567" },
        ]),
      }),
      new PropertyValue({ name: "pepeunit:defaultBranch", value: "main" }),
    ],
    // The sender's instance key replaces the Repo's own key, which has the same size on the wire.
    publicKey: new CryptographicKey({
      id: new URL(`${actorIri.href}#main-key`),
      owner: actorIri,
      publicKey: sender.publicKey,
    }),
  });
  const create = new Create({
    id: new URL(`${actorIri.href}#create-bench`),
    actor: sender.instance,
    object: repo,
    to: new URL("https://www.w3.org/ns/activitystreams#Public"),
    published: now,
  });
  return JSON.stringify(await create.toJsonLd());
}

async function signDelivery(sender: Sender, inboxUrl: string, body: string): Promise<Request> {
  const request = new Request(inboxUrl, {
    method: "POST",
    headers: { "content-type": "application/activity+json" },
    body,
  });
  return await signRequest(request, sender.signingKey, sender.keyId);
}

async function prepareDeliveries(
  sender: Sender,
  inboxUrl: string,
  count: number,
  mode: SigningMode,
  firstSequence: number,
): Promise<Delivery[]> {
  const deliveries: Delivery[] = [];
  for (let index = 0; index < count; index++) {
    const body = await buildCreateBody(sender, firstSequence + index);
    if (mode === "inline") {
      deliveries.push({ body, headers: undefined });
      continue;
    }
    const signed = await signDelivery(sender, inboxUrl, body);
    deliveries.push({ body, headers: Object.fromEntries(signed.headers) });
  }
  return deliveries;
}

/** POSTs one delivery and returns the status, reading the body so that the socket is reused. */
async function send(sender: Sender, inboxUrl: string, delivery: Delivery): Promise<number> {
  const signal = AbortSignal.timeout(60_000);
  const response = delivery.headers
    ? await fetch(inboxUrl, {
        method: "POST",
        headers: delivery.headers,
        body: delivery.body,
        signal,
      })
    : await fetch(await signDelivery(sender, inboxUrl, delivery.body), { signal });
  await response.arrayBuffer();
  return response.status;
}

async function countRows(db: Database, originHost: string) {
  const result = await db.execute<{ repos: number; activities: number; commits: number }>(sql`
    select (select count(*) from federated_repos where origin_host = ${originHost})::int as repos,
      (select count(*) from processed_activities)::int as activities,
      (select xact_commit from pg_stat_database where datname = current_database())::int as commits`);
  const row = result.rows[0];
  if (!row) throw new Error("The row count query returned no row");
  return row;
}

/**
 * Waits a little over a second, because busy backends send their statistics to
 * `pg_stat_database` at most once a second. The commit counter is settled after that.
 */
async function settleStatistics(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1_100));
}

/** Runs `deliveries` through `concurrency` workers and returns the wall time and latencies. */
async function runLevel(
  sender: Sender,
  inboxUrl: string,
  deliveries: Delivery[],
  concurrency: number,
): Promise<{ elapsedMs: number; latencies: number[]; failures: string[] }> {
  const latencies: number[] = [];
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    for (;;) {
      const index = next++;
      const delivery = deliveries[index];
      if (!delivery) return;
      const started = performance.now();
      try {
        const status = await send(sender, inboxUrl, delivery);
        if (status !== 202) failures.push(`delivery ${index}: HTTP ${status}, expected 202`);
      } catch (error) {
        failures.push(`delivery ${index}: ${String(error)}`);
      }
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { elapsedMs: performance.now() - started, latencies, failures };
}

/**
 * Makes B follow A, then waits until A has accepted and B has read A's outbox once. That first
 * backfill removes federated Repos that A's outbox does not list, which includes every Repo this
 * benchmark sends, so deliveries start only after it.
 */
async function followAndWait(nodeA: BenchNode, nodeB: BenchNode): Promise<void> {
  await nodeB.node.services.federation.followInstance(new URL(nodeA.origin));
  await waitFor(async () => {
    const rows = await nodeB.node.services.db.query.outboundFollows.findMany();
    const follow = rows[0];
    return follow?.state === "accepted" && follow.backfilledAt !== null ? true : undefined;
  }, "node A to accept node B's follow and node B to read A's outbox");
}

async function loadSender(nodeA: BenchNode): Promise<Sender> {
  const [rsa] = await getActorKeyPairs(nodeA.node.services.db, "instance");
  if (!rsa) throw new Error("Node A has no RSA key pair for its instance actor");
  const instance = new URL(`${nodeA.origin}/ap/actors/instance`);
  const response = await fetch(instance, { headers: { accept: "application/activity+json" } });
  const actor = (await response.json()) as { publicKey?: { id?: string } };
  if (!actor.publicKey?.id) throw new Error(`Actor ${instance.href} has no publicKey.id`);
  return {
    signingKey: rsa.privateKey,
    publicKey: rsa.publicKey,
    keyId: new URL(actor.publicKey.id),
    instance,
    origin: nodeA.origin,
  };
}

/**
 * Times single deliveries right after removing every cached remote document and key from B's
 * Fedify key-value store, so each one includes fetching A's actor to verify the signature.
 */
async function measureColdDeliveries(
  sender: Sender,
  nodeB: BenchNode,
  inboxUrl: string,
  samples: number,
): Promise<number[]> {
  const latencies: number[] = [];
  for (let sample = 0; sample < samples; sample++) {
    await nodeB.node.services.pool.query("delete from fedify_kv where key[1] = '_fedify'");
    const [delivery] = await prepareDeliveries(sender, inboxUrl, 1, "presigned", -1 - sample);
    if (!delivery) throw new Error("No delivery was prepared");
    const started = performance.now();
    const status = await send(sender, inboxUrl, delivery);
    latencies.push(performance.now() - started);
    if (status !== 202) throw new Error(`Cold delivery ${sample} got HTTP ${status}, expected 202`);
  }
  return latencies;
}

function printResults(results: LevelResult[], options: Options): void {
  console.log("\nPer round:");
  console.log("| signing | concurrency | round | requests/s | p50 ms | p95 ms | p99 ms | max ms |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const result of results) {
    const { latency } = result;
    console.log(
      `| ${result.mode} | ${result.concurrency} | ${result.round} | ${result.requestsPerSecond.toFixed(0)} | ${ms(latency.p50)} | ${ms(latency.p95)} | ${ms(latency.p99)} | ${ms(latency.max)} |`,
    );
  }

  console.log(`\nSpread over ${options.rounds} rounds (min–max), ${options.count} requests each:`);
  console.log("| signing | concurrency | requests/s | p50 ms | p95 ms | p99 ms |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const mode of options.signing) {
    for (const concurrency of options.concurrency) {
      const rows = results.filter(
        (result) => result.mode === mode && result.concurrency === concurrency,
      );
      const pick = (field: "p50" | "p95" | "p99") => rows.map((row) => row.latency[field]);
      console.log(
        `| ${mode} | ${concurrency} | ${spread(
          rows.map((row) => row.requestsPerSecond),
          (value) => value.toFixed(0),
        )} | ${spread(pick("p50"), ms)} | ${spread(pick("p95"), ms)} | ${spread(pick("p99"), ms)} |`,
      );
    }
  }
}

async function main(): Promise<void> {
  const options = readOptions();
  await setUpLogging({ level: "warning", format: "text" });

  let postgres: BenchPostgres | undefined;
  let nodeA: BenchNode | undefined;
  let nodeB: BenchNode | undefined;
  try {
    postgres = await startBenchPostgres();
    nodeA = await startBenchNode(postgres, "a");
    nodeB = await startBenchNode(postgres, "b", {
      databaseSettings: { synchronous_commit: options.synchronousCommit },
    });
    for (const line of await describeMachine(postgres.adminUrl)) console.log(line);
    console.log(
      `count: ${options.count} per level, concurrency: ${options.concurrency.join(",")}, rounds: ${options.rounds}, signing: ${options.signing.join(",")}, synchronous_commit on B: ${options.synchronousCommit}`,
    );

    await followAndWait(nodeA, nodeB);
    const sender = await loadSender(nodeA);
    const inboxUrl = `${nodeB.origin}/ap/inbox`;
    const originHost = new URL(nodeA.origin).host;
    const db = nodeB.node.services.db;

    const cold = summarize(
      await measureColdDeliveries(sender, nodeB, inboxUrl, options.coldSamples),
    );
    console.log(
      `cold delivery (B fetches A's key first), ${cold.count} samples: p50 ${ms(cold.p50)} ms, max ${ms(cold.max)} ms`,
    );
    // Warm B's key cache, the connection pools and the JIT before the clock starts.
    const warmUp = await prepareDeliveries(sender, inboxUrl, 50, "presigned", -100);
    const warmUpRun = await runLevel(sender, inboxUrl, warmUp, 4);
    if (warmUpRun.failures.length > 0) {
      throw new Error(`Warm-up deliveries failed:\n${warmUpRun.failures.slice(0, 5).join("\n")}`);
    }

    const results: LevelResult[] = [];
    let sequence = 0;
    for (let round = 1; round <= options.rounds; round++) {
      for (const mode of options.signing) {
        for (const concurrency of options.concurrency) {
          const deliveries = await prepareDeliveries(
            sender,
            inboxUrl,
            options.count,
            mode,
            sequence,
          );
          sequence += options.count;
          await settleStatistics();
          const before = await countRows(db, originHost);
          const run = await runLevel(sender, inboxUrl, deliveries, concurrency);
          await settleStatistics();
          const after = await countRows(db, originHost);

          if (run.failures.length > 0) {
            throw new Error(
              `${run.failures.length} of ${options.count} deliveries failed (${mode}, concurrency ${concurrency}):\n${run.failures.slice(0, 5).join("\n")}`,
            );
          }
          const storedRepos = after.repos - before.repos;
          const storedActivities = after.activities - before.activities;
          if (storedRepos !== options.count || storedActivities !== options.count) {
            throw new Error(
              `Expected ${options.count} new federated_repos and processed_activities rows on node B, found ${storedRepos} and ${storedActivities} (${mode}, concurrency ${concurrency}, round ${round})`,
            );
          }

          const result: LevelResult = {
            mode,
            concurrency,
            round,
            requestsPerSecond: (options.count / run.elapsedMs) * 1000,
            latency: summarize(run.latencies),
            commitsPerDelivery: (after.commits - before.commits) / options.count,
          };
          results.push(result);
          console.log(
            `round ${round} ${mode} concurrency ${concurrency}: ${result.requestsPerSecond.toFixed(0)} requests/s, p50 ${ms(result.latency.p50)} ms, p95 ${ms(result.latency.p95)} ms, p99 ${ms(result.latency.p99)} ms; ${storedRepos} rows stored, ${result.commitsPerDelivery.toFixed(1)} commits per delivery`,
          );
        }
      }
    }
    printResults(results, options);
  } finally {
    await nodeB?.close();
    await nodeA?.close();
    await postgres?.stop();
    await tearDownLogging();
  }
}

try {
  await main();
} catch (error) {
  console.error(
    `Inbox benchmark failed: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exitCode = 1;
}
