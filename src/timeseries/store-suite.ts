/**
 * The test suite that every time-series store must pass. `postgres.test.ts` and
 * `clickhouse.test.ts` register it with a factory that returns a fresh, migrated store.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CounterReader, WindowPlan } from "./load.ts";
import { HORIZON_SECONDS, type LoadReport, type TimeSeriesStore } from "./store.ts";
import { registerAggregationSpaceTests } from "./store-suite-aggregation-space.ts";
import { registerEmqxCounterTests } from "./store-suite-emqx.ts";
import { addMs, DAY_MS, HOUR_MS, MINUTE_MS } from "./time.ts";
import type { CounterBatch, TopicCounterRow } from "./types.ts";
import { TimeSeriesInputError } from "./validation.ts";

export type TestStore = TimeSeriesStore & CounterReader;

export interface StoreFixture {
  store: TestStore;
  /** Closes the store and removes its data. */
  cleanup(): Promise<void>;
}

/** `now` of every test: 20 seconds into the minute 12:30 UTC. */
const NOW = new Date("2026-03-10T12:30:20Z");
const END = new Date("2026-03-10T12:30:00Z");

const REPO_A = "aaaaaaaa-0000-4000-8000-000000000001";
const REPO_B = "aaaaaaaa-0000-4000-8000-000000000002";
const UNITS = [
  { id: "bbbbbbbb-0000-4000-8000-000000000001", repo: REPO_A },
  { id: "bbbbbbbb-0000-4000-8000-000000000002", repo: REPO_A },
  { id: "bbbbbbbb-0000-4000-8000-000000000003", repo: REPO_B },
];
const WEIRD_TOPIC = 'unit.example/it\'s a "topic"\\back\nline\ttab/датчик/温度/😀\u007f';

interface TopicSpec {
  topic: string;
  domain: string;
  domainKind: "local" | "foreign";
  unitNodeId: string | null;
  unitId: string | null;
  repoId: string | null;
}

/** Two UnitNodes per Unit, one foreign topic without ids and one topic with hard characters. */
function topicSpecs(): TopicSpec[] {
  const specs: TopicSpec[] = [];
  UNITS.forEach((unit, unitIndex) => {
    for (let node = 0; node < 2; node++) {
      const unitNodeId = `cccccccc-0000-4000-8000-00000000000${unitIndex * 2 + node}`;
      specs.push({
        topic: `unit.example/${unitNodeId}/pepeunit`,
        domain: "unit.example",
        domainKind: "local",
        unitNodeId,
        unitId: unit.id,
        repoId: unit.repo,
      });
    }
  });
  specs.push({
    topic: "peer.example/dddddddd-0000-4000-8000-000000000001/pepeunit",
    domain: "peer.example",
    domainKind: "foreign",
    unitNodeId: null,
    unitId: null,
    repoId: null,
  });
  specs.push({
    topic: WEIRD_TOPIC,
    domain: "unit.example",
    domainKind: "local",
    unitNodeId: null,
    unitId: null,
    repoId: null,
  });
  return specs;
}

function row(spec: TopicSpec, minute: Date, messages: number, bytes = messages * 10) {
  return { ...spec, minute, messages, bytes } satisfies TopicCounterRow;
}

/** Deterministic pseudo-random integers, so a failure reproduces. */
function lcg(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state;
  };
}

function figureOf(report: LoadReport, key: string) {
  const figure = report.figures.find((item) => item.key === key);
  if (!figure) throw new Error(`no figure for ${key} in ${report.subject} report`);
  return figure;
}

/** Returns a plan that reads only minute rows, or only hour rows, over a wide range. */
function rawPlan(kind: "minutes" | "hours"): WindowPlan {
  const from = new Date("2024-01-01T00:00:00Z");
  const to = new Date("2027-01-01T00:00:00Z");
  return kind === "minutes"
    ? { hoursFrom: from, hoursTo: from, minutesFrom: from, minutesTo: to }
    : { hoursFrom: from, hoursTo: to, minutesFrom: from, minutesTo: from };
}

async function rawTotals(store: TestStore, kind: "minutes" | "hours") {
  const sums = await store.sumCounters("topic", [rawPlan(kind)]);
  return new Map(sums.map((sum) => [sum.key, sum.messages[0] ?? 0]));
}

export function registerStoreSuite(name: string, createFixture: () => Promise<StoreFixture>) {
  describe(`${name} time-series store`, () => {
    let fixture: StoreFixture;
    let store: TestStore;

    beforeEach(async () => {
      fixture = await createFixture();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    registerEmqxCounterTests(() => store);
    registerAggregationSpaceTests(() => store);

    it("counts exact totals from two taps", async () => {
      const specs = topicSpecs();
      const random = lcg(7);
      const expected = new Map<string, number>();
      const add = (key: string | null, count: number) => {
        if (key !== null) expected.set(key, (expected.get(key) ?? 0) + count);
      };
      for (let flush = 0; flush < 20; flush++) {
        for (const tapId of ["tap-a", "tap-b"]) {
          const rows = [];
          for (const spec of specs) {
            // Every flush hits the same minutes again, so rows of one key arrive many times.
            const minute = addMs(END, -((random() % 50) + 1) * MINUTE_MS);
            const messages = random() % 1000;
            rows.push(row(spec, minute, messages));
            for (const key of [spec.topic, spec.unitNodeId, spec.unitId, spec.domain]) {
              add(key, messages);
            }
            add(`repo:${spec.repoId}`, spec.repoId ? messages : 0);
          }
          const outcome = await store.writeCounterBatch({
            batchId: `${tapId}-${flush}`,
            tapId,
            rows,
          });
          expect(outcome).toBe("written");
        }
      }

      for (const subject of ["topic", "unitNode", "unit", "domain"] as const) {
        const report = await store.loadReport(subject, NOW);
        for (const figure of report.figures) {
          expect(figure.messages, `${subject} ${figure.key}`).toEqual(
            Array(4).fill(expected.get(figure.key)),
          );
        }
      }
      const topics = await store.loadReport("topic", NOW);
      expect(topics.figures.map((figure) => figure.key).sort()).toEqual(
        specs.map((spec) => spec.topic).sort(),
      );
      const domains = await store.loadReport("domain", NOW);
      expect(domains.figures.map((figure) => figure.key)).toEqual(["peer.example", "unit.example"]);

      const units = await store.loadReport("unit", NOW);
      const repos = await store.loadReport("repo", NOW);
      expect(repos.figures.map((figure) => figure.key)).toEqual([REPO_A, REPO_B]);
      for (const repoId of [REPO_A, REPO_B]) {
        const repo = figureOf(repos, repoId);
        expect(repo.messages[3]).toBe(expected.get(`repo:${repoId}`));
        const members = UNITS.filter((unit) => unit.repo === repoId);
        const meanMps =
          members.reduce((sum, unit) => sum + (figureOf(units, unit.id).mps[3] ?? 0), 0) /
          members.length;
        expect(repo.activeUnits).toEqual(Array(4).fill(members.length));
        expect(repo.mps[3]).toBeCloseTo(meanMps, 9);
      }
    });

    it("counts a duplicate batch once", async () => {
      const [spec] = topicSpecs();
      if (!spec) throw new Error("no topic");
      const batch: CounterBatch = {
        batchId: "tap-a-1",
        tapId: "tap-a",
        rows: [row(spec, addMs(END, -MINUTE_MS), 5)],
      };
      expect(await store.writeCounterBatch(batch)).toBe("written");
      expect(await store.writeCounterBatch(batch)).toBe("duplicate");
      expect((await rawTotals(store, "minutes")).get(spec.topic)).toBe(5);
    });

    it("counts a retry racing its first attempt once", async () => {
      const [spec] = topicSpecs();
      if (!spec) throw new Error("no topic");
      const batch: CounterBatch = {
        batchId: "tap-a-timeout",
        tapId: "tap-a",
        rows: [row(spec, addMs(END, -MINUTE_MS), 9), row(spec, addMs(END, -2 * MINUTE_MS), 4)],
      };
      // The tap gave up waiting on the first attempt (a timeout) and retried while the first
      // write was still in flight; both reach the store.
      const first = store.writeCounterBatch(batch);
      const retry = store.writeCounterBatch(batch);
      const outcomes = await Promise.all([first, retry]);
      expect(outcomes).toContain("written");
      expect(await store.writeCounterBatch(batch)).toBe("duplicate");
      expect((await rawTotals(store, "minutes")).get(spec.topic)).toBe(13);
    });

    it("computes MPS over each horizon", async () => {
      const [spec] = topicSpecs();
      if (!spec) throw new Error("no topic");
      // Minute, messages: one point inside each window edge and one just outside.
      const points: Array<[string, number]> = [
        ["2026-03-10T12:29:00Z", 1], // hour
        ["2026-03-10T11:30:00Z", 2], // hour, first minute
        ["2026-03-10T11:29:00Z", 4], // day
        ["2026-03-09T12:30:00Z", 8], // day, first minute
        ["2026-03-09T12:29:00Z", 16], // week
        ["2026-03-03T12:00:00Z", 32], // week, first hour
        ["2026-03-03T11:59:00Z", 64], // month
        ["2026-02-08T12:00:00Z", 128], // month, first hour
        ["2026-02-08T11:59:00Z", 256], // outside every window
        ["2026-03-10T12:30:00Z", 512], // the current minute, not yet complete
      ];
      await store.writeCounterBatch({
        batchId: "horizons",
        tapId: "tap-a",
        rows: points.map(([minute, messages]) => row(spec, new Date(minute), messages)),
      });
      const expectedMessages = [255, 63, 15, 3];
      const expectedSeconds = [
        HORIZON_SECONDS.month + 1800,
        HORIZON_SECONDS.week + 1800,
        HORIZON_SECONDS.day,
        HORIZON_SECONDS.hour,
      ];

      const check = async (stage: string) => {
        const report = await store.loadReport("topic", NOW);
        expect(report.windowEnd, stage).toEqual(END);
        expect(report.windowSeconds, stage).toEqual(expectedSeconds);
        const figure = figureOf(report, spec.topic);
        expect(figure.messages, stage).toEqual(expectedMessages);
        figure.mps.forEach((mps, index) => {
          expect(mps, `${stage} horizon ${index}`).toBeCloseTo(
            (expectedMessages[index] ?? 0) / (expectedSeconds[index] ?? 1),
            12,
          );
        });
      };
      await check("before rollup");
      await store.rollUp(NOW);
      await check("after rollup");
      await store.applyRetention(NOW);
      await check("after retention");
      // Minutes from 2026-03-08T12:00 on are kept; older ones now live only in hourly rows.
      expect((await rawTotals(store, "minutes")).get(spec.topic)).toBe(1 + 2 + 4 + 8 + 16 + 512);
    });

    it("rolls up idempotently and takes late batches", async () => {
      const specs = topicSpecs();
      const rows = specs.flatMap((spec, index) => [
        row(spec, new Date("2026-03-10T09:15:00Z"), index + 1),
        row(spec, new Date("2026-03-10T10:59:00Z"), 10 * (index + 1)),
        row(spec, new Date("2026-03-10T12:01:00Z"), 100),
      ]);
      await store.writeCounterBatch({ batchId: "b1", tapId: "tap-a", rows });

      const first = await store.rollUp(NOW);
      expect(first.to).toEqual(new Date("2026-03-10T12:00:00Z"));
      const hoursAfterFirst = await rawTotals(store, "hours");
      const second = await store.rollUp(NOW);
      expect(second.rows).toBeLessThanOrEqual(first.rows);
      expect(await rawTotals(store, "hours")).toEqual(hoursAfterFirst);
      expect(await store.readRollupWatermark()).toEqual(new Date("2026-03-10T12:00:00Z"));
      specs.forEach((spec, index) => {
        // The 12:01 minute belongs to the current hour and is not rolled up yet.
        expect(hoursAfterFirst.get(spec.topic)).toBe(11 * (index + 1));
      });

      // A batch for 10:00 that arrives late, within the lookback, reaches the rollup.
      const [late] = specs;
      if (!late) throw new Error("no topic");
      await store.writeCounterBatch({
        batchId: "late",
        tapId: "tap-b",
        rows: [row(late, new Date("2026-03-10T10:00:00Z"), 1000)],
      });
      await store.rollUp(NOW);
      expect((await rawTotals(store, "hours")).get(late.topic)).toBe(1011);
    });

    it("drops exactly the expired rows", async () => {
      const [spec] = topicSpecs();
      if (!spec) throw new Error("no topic");
      const longCutoff = addMs(new Date("2026-03-10T00:00:00Z"), -400 * DAY_MS);
      const minuteCutoff = new Date("2026-03-08T12:00:00Z");
      const errorCutoff = new Date("2026-03-03T12:00:00Z");
      const minutes = [
        addMs(longCutoff, -MINUTE_MS),
        longCutoff,
        addMs(minuteCutoff, -MINUTE_MS),
        minuteCutoff,
        addMs(END, -MINUTE_MS),
      ];
      await store.writeCounterBatch({
        batchId: "retention",
        tapId: "tap-a",
        rows: minutes.map((minute) => ({ ...row(spec, minute, 1), topic: minute.toISOString() })),
      });

      // Before any rollup, no minute row is due.
      await store.applyRetention(NOW);
      expect((await rawTotals(store, "minutes")).size).toBe(5);

      await store.rollUp(NOW);
      const cutoffs = await store.applyRetention(NOW);
      expect(cutoffs.minutesBefore).toEqual(minuteCutoff);
      expect(cutoffs.hoursBefore).toEqual(longCutoff);
      expect(cutoffs.errorsBefore).toEqual(errorCutoff);
      expect([...(await rawTotals(store, "minutes")).keys()].sort()).toEqual(
        [minuteCutoff, addMs(END, -MINUTE_MS)].map((minute) => minute.toISOString()).sort(),
      );
      // Hour rows exist for every complete hour; the one before the long cutoff is gone.
      expect([...(await rawTotals(store, "hours")).keys()].sort()).toEqual(
        [longCutoff, addMs(minuteCutoff, -MINUTE_MS), minuteCutoff]
          .map((minute) => minute.toISOString())
          .sort(),
      );

      const errorMinutes = [addMs(errorCutoff, -MINUTE_MS), errorCutoff];
      await store.writeErrorCounts(
        errorMinutes.map((minute) => ({
          minute,
          source: "node",
          fingerprint: minute.toISOString(),
          level: "error",
          category: "db",
          sample: "failed",
          count: 1,
        })),
      );
      const longMinutes = [addMs(longCutoff, -MINUTE_MS), longCutoff];
      for (const minute of longMinutes) {
        await store.writeNodeState({ at: minute, values: { cpu_percent: 1 } });
      }
      await store.writeChannelCounts(
        longMinutes.map((minute, index) => ({
          minute,
          channel: "rest",
          source: "tap",
          count: index + 1,
        })),
      );
      await store.applyRetention(NOW);

      const errors = await store.errorFrequencies(new Date("2026-01-01T00:00:00Z"), NOW);
      expect(errors.map((error) => error.fingerprint)).toEqual([errorCutoff.toISOString()]);
      const states = await store.nodeStateHistory(new Date("2024-01-01T00:00:00Z"), NOW);
      expect(states.map((state) => state.at)).toEqual([longCutoff]);
      expect(await store.channelTotals(new Date("2024-01-01T00:00:00Z"), NOW)).toEqual([
        { channel: "rest", count: 2 },
      ]);
    });

    it("adds up error frequencies", async () => {
      const minute = new Date("2026-03-10T12:10:00Z");
      const base = {
        source: "node" as const,
        level: "error" as const,
        category: "db",
        sample: "first",
      };
      await store.writeErrorCounts([
        { ...base, minute, fingerprint: "f1", count: 2 },
        { ...base, minute, fingerprint: "f1", count: 3 },
        { ...base, minute, fingerprint: "f2", count: 1 },
      ]);
      await store.writeErrorCounts([
        { ...base, minute, fingerprint: "f1", count: 4, sample: "second", level: "critical" },
        { ...base, minute: addMs(minute, HOUR_MS), fingerprint: "f1", count: 100 },
        { ...base, minute, source: "backend", fingerprint: "f1", count: 7, sample: "backend" },
      ]);
      const frequencies = await store.errorFrequencies(minute, addMs(minute, MINUTE_MS));
      expect(frequencies).toEqual([
        {
          source: "node",
          fingerprint: "f1",
          level: "critical",
          category: "db",
          sample: "second",
          count: 9,
          firstMinute: minute,
          lastMinute: minute,
        },
        {
          source: "backend",
          fingerprint: "f1",
          level: "error",
          category: "db",
          sample: "backend",
          count: 7,
          firstMinute: minute,
          lastMinute: minute,
        },
        {
          source: "node",
          fingerprint: "f2",
          level: "error",
          category: "db",
          sample: "first",
          count: 1,
          firstMinute: minute,
          lastMinute: minute,
        },
      ]);
      const wide = await store.errorFrequencies(minute, addMs(minute, 2 * HOUR_MS));
      expect(wide[0]?.count).toBe(109);
      expect(wide[0]?.lastMinute).toEqual(addMs(minute, HOUR_MS));
    });

    it("replaces channel counts", async () => {
      const minute = new Date("2026-03-10T12:10:00Z");
      await store.writeChannelCounts([
        { minute, channel: "mqtt", source: "tap", count: 5 },
        { minute, channel: "rest", source: "ingest", count: 3 },
      ]);
      await store.writeChannelCounts([
        { minute, channel: "mqtt", source: "tap", count: 7 },
        { minute, channel: "mqtt", source: "backend-prometheus", count: 11 },
        { minute: addMs(minute, MINUTE_MS), channel: "graphql", source: "ingest", count: 2 },
      ]);
      expect(await store.channelTotals(minute, addMs(minute, MINUTE_MS))).toEqual([
        { channel: "mqtt", count: 18 },
        { channel: "rest", count: 3 },
      ]);
      expect(await store.channelTotals(minute, addMs(minute, 2 * MINUTE_MS))).toEqual([
        { channel: "graphql", count: 2 },
        { channel: "mqtt", count: 18 },
        { channel: "rest", count: 3 },
      ]);
    });

    it("keeps node state per minute", async () => {
      expect(await store.latestNodeState()).toBeNull();
      await store.writeNodeState({
        at: new Date("2026-03-10T12:10:05Z"),
        values: { cpu_percent: 10, stale: 1 },
      });
      await store.writeNodeState({
        at: new Date("2026-03-10T12:10:45Z"),
        values: { cpu_percent: 12.5, memory_used_bytes: 2 ** 40 },
      });
      await store.writeNodeState({
        at: new Date("2026-03-10T12:09:00Z"),
        values: { cpu_percent: 9 },
      });
      expect(await store.latestNodeState()).toEqual({
        at: new Date("2026-03-10T12:10:00Z"),
        values: { cpu_percent: 12.5, memory_used_bytes: 2 ** 40 },
      });
      const history = await store.nodeStateHistory(
        new Date("2026-03-10T12:09:00Z"),
        new Date("2026-03-10T12:10:00Z"),
      );
      expect(history).toEqual([
        { at: new Date("2026-03-10T12:09:00Z"), values: { cpu_percent: 9 } },
      ]);
    });

    it("lists hot topics and Units", async () => {
      const specs = topicSpecs().slice(0, 4);
      const lastMinute = addMs(END, -MINUTE_MS);
      await store.writeCounterBatch({
        batchId: "hot",
        tapId: "tap-a",
        rows: specs.flatMap((spec, index) => [
          row(spec, lastMinute, (index + 1) * 60),
          row(spec, addMs(END, -30 * MINUTE_MS), (4 - index) * 3600),
        ]),
      });
      const minute = await store.hotList("topic", "minute", NOW, 2);
      expect(minute.map((entry) => [entry.key, entry.mps])).toEqual([
        [specs[3]?.topic, 4],
        [specs[2]?.topic, 3],
      ]);
      const hour = await store.hotList("unit", "hour", NOW, 5);
      expect(hour.map((entry) => [entry.key, entry.messages])).toEqual([
        [UNITS[0]?.id, 60 + 120 + 4 * 3600 + 3 * 3600],
        [UNITS[1]?.id, 180 + 240 + 2 * 3600 + 3600],
      ]);
      expect(hour[0]?.mps).toBeCloseTo((hour[0]?.messages ?? 0) / 3600, 12);
    });

    it("round-trips hard characters", async () => {
      const spec = topicSpecs().find((item) => item.topic === WEIRD_TOPIC);
      if (!spec) throw new Error("no weird topic");
      const domain = "it's\\\"odd\n";
      const batch: CounterBatch = {
        batchId: "batch 'quoted' \\ \n id",
        tapId: "tap-a",
        rows: [{ ...row(spec, addMs(END, -MINUTE_MS), 3), domain }],
      };
      expect(await store.writeCounterBatch(batch)).toBe("written");
      expect(await store.writeCounterBatch(batch)).toBe("duplicate");
      const hot = await store.hotList("topic", "minute", NOW, 10);
      expect(hot.map((entry) => entry.key)).toEqual([WEIRD_TOPIC]);
      const domains = await store.loadReport("domain", NOW);
      expect(domains.figures.map((figure) => figure.key)).toEqual([domain]);

      await store.writeErrorCounts([
        {
          minute: END,
          source: "backend",
          fingerprint: "fp'\\\n",
          level: "critical",
          category: "категория",
          sample: "значение 'x' \\ \"y\"\n😀",
          count: 1,
        },
      ]);
      const [error] = await store.errorFrequencies(END, addMs(END, MINUTE_MS));
      expect(error?.fingerprint).toBe("fp'\\\n");
      expect(error?.sample).toBe("значение 'x' \\ \"y\"\n😀");
    });

    it("rejects invalid rows without writing", async () => {
      const [spec] = topicSpecs();
      if (!spec) throw new Error("no topic");
      const good = row(spec, addMs(END, -MINUTE_MS), 1);
      const invalid: Array<[string, Partial<TopicCounterRow>]> = [
        ["rows[1].topic", { topic: "a\u0000b" }],
        ["rows[1].topic", { topic: "bad \ud800 surrogate" }],
        ["rows[1].minute", { minute: new Date("2026-03-10T12:00:30Z") }],
        ["rows[1].messages", { messages: -1 }],
        ["rows[1].bytes", { bytes: 1.5 }],
        ["rows[1].unitId", { unitId: "not-a-uuid" }],
      ];
      for (const [field, change] of invalid) {
        const attempt = store.writeCounterBatch({
          batchId: `bad-${field}`,
          tapId: "tap-a",
          rows: [good, { ...good, ...change }],
        });
        await expect(attempt, field).rejects.toThrow(TimeSeriesInputError);
        await expect(
          store.writeCounterBatch({
            batchId: "x",
            tapId: "t",
            rows: [good, { ...good, ...change }],
          }),
        ).rejects.toMatchObject({ field });
      }
      expect((await rawTotals(store, "minutes")).size).toBe(0);
    });
  });
}
