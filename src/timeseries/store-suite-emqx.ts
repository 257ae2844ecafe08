/**
 * Tests of EMQX's topic counts, part of the shared store suite: `registerStoreSuite` in
 * `store-suite.ts` registers them for every store.
 */
import { expect, it } from "vitest";
import type { EmqxTopicCounterBatch, EmqxTopicCounterRow } from "../metering/emqx/topic-metrics.ts";
import type { TestStore } from "./store-suite.ts";
import { addMs, DAY_MS, HOUR_MS, MINUTE_MS } from "./time.ts";
import type { TopicCounterRow } from "./types.ts";
import { TimeSeriesInputError } from "./validation.ts";

/** `now` of every test: 20 seconds into the minute 12:30 UTC, as in `store-suite.ts`. */
const NOW = new Date("2026-03-10T12:30:20Z");
const END = new Date("2026-03-10T12:30:00Z");
const WIDE_FROM = new Date("2026-01-01T00:00:00Z");

const UNIT = "bbbbbbbb-0000-4000-8000-000000000001";
const REPO = "aaaaaaaa-0000-4000-8000-000000000001";
const NODE_A = "cccccccc-0000-4000-8000-000000000001";
const NODE_B = "cccccccc-0000-4000-8000-000000000002";
const TOPIC_A = `unit.example/${NODE_A}/pepeunit`;
const TOPIC_B = `unit.example/${NODE_B}/pepeunit`;
const TOPIC_FOREIGN = "peer.example/dddddddd-0000-4000-8000-000000000001/pepeunit";
const WEIRD_TOPIC = 'unit.example/it\'s \\ "odd"\n/датчик/😀';

function attribution(topic: string): Omit<TopicCounterRow, "minute" | "messages" | "bytes"> {
  if (topic === TOPIC_A || topic === TOPIC_B) {
    return {
      topic,
      domain: "unit.example",
      domainKind: "local",
      unitNodeId: topic === TOPIC_A ? NODE_A : NODE_B,
      unitId: UNIT,
      repoId: REPO,
    };
  }
  const domain = topic.split("/", 1)[0] ?? "";
  return {
    topic,
    domain,
    domainKind: domain === "unit.example" ? "local" : "foreign",
    unitNodeId: null,
    unitId: null,
    repoId: null,
  };
}

function tapRow(topic: string, minute: Date, messages: number): TopicCounterRow {
  return { ...attribution(topic), minute, messages, bytes: messages * 10 };
}

function emqxRow(
  topic: string,
  minute: Date,
  messages: number,
  messagesOut = 2 * messages,
  messagesDropped = 0,
): EmqxTopicCounterRow {
  return { ...attribution(topic), minute, messages, bytes: 0, messagesOut, messagesDropped };
}

function emqxBatch(batchId: string, rows: EmqxTopicCounterRow[]): EmqxTopicCounterBatch {
  return { batchId, source: "emqx", rows };
}

/** Load reports of every subject and hot lists of every kind, for comparing before and after. */
async function loadFigures(store: TestStore) {
  const figures: Record<string, unknown> = {};
  for (const subject of ["topic", "unitNode", "unit", "repo", "domain"] as const) {
    figures[`load ${subject}`] = await store.loadReport(subject, NOW);
  }
  for (const subject of ["topic", "unit"] as const) {
    for (const window of ["minute", "hour"] as const) {
      figures[`hot ${subject} ${window}`] = await store.hotList(subject, window, NOW, 10);
    }
  }
  return figures;
}

/** Registers the EMQX tests inside a store suite's `describe`; `store` returns its store. */
export function registerEmqxCounterTests(store: () => TestStore) {
  it("sums EMQX counts per topic", async () => {
    const minute = addMs(END, -MINUTE_MS);
    const earlier = addMs(END, -10 * MINUTE_MS);
    expect(
      await store().writeEmqxTopicCounters(
        emqxBatch("emqx-1", [
          emqxRow(TOPIC_A, minute, 5, 7, 1),
          // A second row of the same minute and topic in one batch adds up.
          emqxRow(TOPIC_A, minute, 3, 4, 0),
          emqxRow(TOPIC_B, earlier, 20, 0, 2),
          emqxRow(WEIRD_TOPIC, minute, 8, 1, 0),
          emqxRow(TOPIC_FOREIGN, END, 1000, 1000, 0),
        ]),
      ),
    ).toBe("written");
    expect(
      await store().writeEmqxTopicCounters({
        batchId: "emqx-2",
        source: "emqx-second-cluster",
        rows: [emqxRow(TOPIC_A, minute, 12, 3, 4), emqxRow(TOPIC_B, minute, 1, 1, 1)],
      }),
    ).toBe("written");

    // The foreign topic's row lies at END, outside [WIDE_FROM, END).
    expect(await store().emqxTopicTotals(WIDE_FROM, END, 10)).toEqual([
      { topic: TOPIC_B, messagesIn: 21, messagesOut: 1, messagesDropped: 3 },
      { topic: TOPIC_A, messagesIn: 20, messagesOut: 14, messagesDropped: 5 },
      { topic: WEIRD_TOPIC, messagesIn: 8, messagesOut: 1, messagesDropped: 0 },
    ]);
    expect(await store().emqxTopicTotals(WIDE_FROM, END, 1)).toEqual([
      { topic: TOPIC_B, messagesIn: 21, messagesOut: 1, messagesDropped: 3 },
    ]);
    expect(await store().emqxTopicTotals(minute, END, 10)).toEqual([
      { topic: TOPIC_A, messagesIn: 20, messagesOut: 14, messagesDropped: 5 },
      { topic: WEIRD_TOPIC, messagesIn: 8, messagesOut: 1, messagesDropped: 0 },
      { topic: TOPIC_B, messagesIn: 1, messagesOut: 1, messagesDropped: 1 },
    ]);
  });

  it("orders EMQX ties by topic", async () => {
    const minute = addMs(END, -MINUTE_MS);
    await store().writeEmqxTopicCounters(
      emqxBatch("ties", [
        emqxRow(TOPIC_B, minute, 4),
        emqxRow(TOPIC_FOREIGN, minute, 4),
        emqxRow(TOPIC_A, minute, 4),
      ]),
    );
    const totals = await store().emqxTopicTotals(WIDE_FROM, END, 10);
    expect(totals.map((total) => total.topic)).toEqual([TOPIC_A, TOPIC_B, TOPIC_FOREIGN].sort());
  });

  it("counts a duplicate EMQX batch once", async () => {
    const batch = emqxBatch("batch 'quoted' \\ \n emqx", [
      emqxRow(TOPIC_A, addMs(END, -MINUTE_MS), 5, 6, 1),
    ]);
    expect(await store().writeEmqxTopicCounters(batch)).toBe("written");
    expect(await store().writeEmqxTopicCounters(batch)).toBe("duplicate");
    expect(await store().emqxTopicTotals(WIDE_FROM, END, 10)).toEqual([
      { topic: TOPIC_A, messagesIn: 5, messagesOut: 6, messagesDropped: 1 },
    ]);
  });

  it("counts a racing EMQX retry once", async () => {
    const batch = emqxBatch("emqx-timeout", [
      emqxRow(TOPIC_A, addMs(END, -MINUTE_MS), 9, 1, 0),
      emqxRow(TOPIC_A, addMs(END, -2 * MINUTE_MS), 4, 1, 0),
    ]);
    const outcomes = await Promise.all([
      store().writeEmqxTopicCounters(batch),
      store().writeEmqxTopicCounters(batch),
    ]);
    expect(outcomes).toContain("written");
    expect(await store().writeEmqxTopicCounters(batch)).toBe("duplicate");
    expect(await store().emqxTopicTotals(WIDE_FROM, END, 10)).toEqual([
      { topic: TOPIC_A, messagesIn: 13, messagesOut: 2, messagesDropped: 0 },
    ]);
  });

  it("keeps EMQX counts out of load figures", async () => {
    const lastMinute = addMs(END, -MINUTE_MS);
    const tapRows = [
      tapRow(TOPIC_A, lastMinute, 60),
      tapRow(TOPIC_B, addMs(END, -20 * MINUTE_MS), 120),
      tapRow(TOPIC_A, addMs(END, -5 * HOUR_MS), 7),
      tapRow(TOPIC_B, addMs(END, -3 * DAY_MS), 9),
    ];
    await store().writeCounterBatch({ batchId: "shared-id", tapId: "tap-a", rows: tapRows });
    const before = await loadFigures(store());

    // The same topics and minutes, a topic the tap never saw, and the tap's batch id: none of
    // them may change the tap's figures.
    const outcome = await store().writeEmqxTopicCounters(
      emqxBatch("shared-id", [
        ...tapRows.map((row) => emqxRow(row.topic, row.minute, row.messages * 3)),
        emqxRow(TOPIC_FOREIGN, lastMinute, 5000),
      ]),
    );
    expect(outcome).toBe("written");
    expect(await loadFigures(store())).toEqual(before);

    // After a rollup the week and month windows read hourly rows, which must not take them in.
    await store().rollUp(NOW);
    expect(await loadFigures(store())).toEqual(before);
    expect(await store().emqxTopicTotals(WIDE_FROM, END, 10)).toEqual([
      { topic: TOPIC_FOREIGN, messagesIn: 5000, messagesOut: 10_000, messagesDropped: 0 },
      { topic: TOPIC_B, messagesIn: 387, messagesOut: 774, messagesDropped: 0 },
      { topic: TOPIC_A, messagesIn: 201, messagesOut: 402, messagesDropped: 0 },
    ]);
  });

  it("keeps the EMQX and tap ledgers apart", async () => {
    const minute = addMs(END, -MINUTE_MS);
    const writeEmqx = (batchId: string) =>
      store().writeEmqxTopicCounters(emqxBatch(batchId, [emqxRow(TOPIC_A, minute, 1)]));
    const writeTap = (batchId: string) =>
      store().writeCounterBatch({ batchId, tapId: "tap-a", rows: [tapRow(TOPIC_A, minute, 2)] });

    // Both orders, because either ledger could be the one consulted by mistake.
    expect(await writeEmqx("b-1")).toBe("written");
    expect(await writeTap("b-1")).toBe("written");
    expect(await writeTap("b-2")).toBe("written");
    expect(await writeEmqx("b-2")).toBe("written");

    const report = await store().loadReport("topic", NOW);
    expect(report.figures.map((figure) => [figure.key, figure.messages[3]])).toEqual([
      [TOPIC_A, 4],
    ]);
    expect(await store().emqxTopicTotals(WIDE_FROM, END, 10)).toEqual([
      { topic: TOPIC_A, messagesIn: 2, messagesOut: 4, messagesDropped: 0 },
    ]);
  });

  it("drops EMQX counts after 48 hours", async () => {
    const cutoff = new Date("2026-03-08T12:00:00Z");
    const old = addMs(cutoff, -MINUTE_MS);
    await store().writeEmqxTopicCounters(emqxBatch("old", [emqxRow(TOPIC_A, old, 1)]));
    await store().writeEmqxTopicCounters(emqxBatch("kept", [emqxRow(TOPIC_B, cutoff, 2)]));

    // No rollup has run: EMQX rows have none, so their horizon does not wait for it.
    const cutoffs = await store().applyRetention(NOW);
    expect(cutoffs.emqxMinutesBefore).toEqual(cutoff);
    expect(cutoffs.minutesBefore).toBeNull();
    expect(await store().emqxTopicTotals(WIDE_FROM, END, 10)).toEqual([
      { topic: TOPIC_B, messagesIn: 2, messagesOut: 4, messagesDropped: 0 },
    ]);

    // The ledger row of the dropped batch went with its rows; the kept batch is still known.
    expect(
      await store().writeEmqxTopicCounters(emqxBatch("kept", [emqxRow(TOPIC_B, cutoff, 2)])),
    ).toBe("duplicate");
    expect(await store().writeEmqxTopicCounters(emqxBatch("old", [emqxRow(TOPIC_A, old, 1)]))).toBe(
      "written",
    );
  });

  it("rejects invalid EMQX rows without writing", async () => {
    const good = emqxRow(TOPIC_A, addMs(END, -MINUTE_MS), 1);
    const invalid: Array<[string, Partial<EmqxTopicCounterRow>]> = [
      ["rows[1].bytes", { bytes: 10 }],
      ["rows[1].messagesOut", { messagesOut: -1 }],
      ["rows[1].messagesDropped", { messagesDropped: 0.5 }],
      ["rows[1].minute", { minute: new Date("2026-03-10T12:00:30Z") }],
      ["rows[1].topic", { topic: "a\u0000b" }],
      ["rows[1]", { domain: "other.example" }],
    ];
    for (const [field, change] of invalid) {
      const attempt = store().writeEmqxTopicCounters(
        emqxBatch(`bad-${field}`, [good, { ...good, ...change }]),
      );
      await expect(attempt, field).rejects.toThrow(TimeSeriesInputError);
      await expect(
        store().writeEmqxTopicCounters(emqxBatch("x", [good, { ...good, ...change }])),
      ).rejects.toMatchObject({ field });
    }
    await expect(
      store().writeEmqxTopicCounters({ batchId: "x", source: "", rows: [good] }),
    ).rejects.toMatchObject({ field: "source" });
    expect(await store().emqxTopicTotals(WIDE_FROM, END, 10)).toEqual([]);
  });
}
