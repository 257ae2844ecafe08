import { describe, expect, it } from "vitest";
import { type GradingConfig, loadConfig } from "../config.ts";
import {
  gradeInstance,
  gradeSample,
  gradeUnits,
  type InstanceSampleInput,
  resourceUse,
  SAMPLE_SECONDS,
  type UnitLoad,
} from "./grade.ts";

const SETTINGS: GradingConfig = {
  capacityMps: 100,
  yellowPercent: 90,
  redPercent: 100,
  minSamples: 3,
  unitYellowPercentile: 50,
  unitRedPercentile: 80,
  hotUnits: 2,
};
const HOUR = new Date("2027-01-01T10:00:00Z");

/** Twelve samples with the given MPS each and no node state. */
function samplesAt(mpsList: number[]): InstanceSampleInput[] {
  return mpsList.map((mps, index) => ({
    from: new Date(HOUR.getTime() + index * SAMPLE_SECONDS * 1000),
    messages: mps * SAMPLE_SECONDS,
    bytes: 0,
    nodeStates: [],
  }));
}

function unit(unitId: string, messages: number[]): UnitLoad {
  return { unitId, messages, bytes: messages.map((count) => count * 10) };
}

describe("resourceUse", () => {
  it("reads cpu, memory and disk percent", () => {
    const use = resourceUse({
      host_cpu_percent: 42,
      host_memory_total_bytes: 1000,
      host_memory_available_bytes: 250,
      disk_total_bytes: 2000,
      disk_free_bytes: 200,
    });
    expect(use.cpuPercent).toBe(42);
    expect(use.memoryPercent).toBe(75);
    expect(use.diskPercent).toBe(90);
  });

  it("returns null for missing or zero totals", () => {
    const use = resourceUse({ host_memory_total_bytes: 0, host_memory_available_bytes: 0 });
    expect(use.cpuPercent).toBeNull();
    expect(use.memoryPercent).toBeNull();
    expect(use.diskPercent).toBeNull();
  });
});

describe("gradeSample", () => {
  it("levels load against capacity", () => {
    const [green, yellow, red] = samplesAt([89, 90, 100]).map((input) =>
      gradeSample(input, SETTINGS),
    );
    expect(green?.level).toBe("green");
    expect(yellow?.level).toBe("yellow");
    expect(red?.level).toBe("red");
    expect(yellow?.loadPercent).toBe(90);
  });

  it("takes the busiest resource minute", () => {
    const [input] = samplesAt([10]);
    if (!input) throw new Error("no sample");
    input.nodeStates = [
      { at: input.from, values: { host_cpu_percent: 20 } },
      { at: new Date(input.from.getTime() + 60_000), values: { host_cpu_percent: 95 } },
    ];
    const sample = gradeSample(input, SETTINGS);
    expect(sample.cpuPercent).toBe(95);
    expect(sample.pressurePercent).toBe(95);
    expect(sample.level).toBe("yellow");
    expect(sample.nodeStateMinutes).toBe(2);
  });

  it("grades a full disk red at low load", () => {
    const [input] = samplesAt([1]);
    if (!input) throw new Error("no sample");
    input.nodeStates = [{ at: input.from, values: { disk_total_bytes: 100, disk_free_bytes: 0 } }];
    expect(gradeSample(input, SETTINGS).level).toBe("red");
  });
});

describe("gradeInstance", () => {
  it("ignores a spike shorter than minSamples", () => {
    const grade = gradeInstance(
      samplesAt([10, 10, 150, 150, 10, 10, 10, 10, 10, 10, 10, 10]),
      SETTINGS,
    );
    expect(grade.redSamples).toBe(2);
    expect(grade.status).toBe("green");
    expect(grade.peakMps).toBe(150);
  });

  it("turns red at minSamples red samples", () => {
    const grade = gradeInstance(
      samplesAt([10, 150, 10, 150, 10, 150, 10, 10, 10, 10, 10, 10]),
      SETTINGS,
    );
    expect(grade.status).toBe("red");
  });

  it("counts red samples towards yellow", () => {
    const grade = gradeInstance(
      samplesAt([95, 150, 150, 10, 10, 10, 10, 10, 10, 10, 10, 10]),
      SETTINGS,
    );
    expect(grade.yellowSamples).toBe(3);
    expect(grade.redSamples).toBe(2);
    expect(grade.status).toBe("yellow");
  });

  it("computes mean MPS over the hour", () => {
    const grade = gradeInstance(samplesAt([12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), SETTINGS);
    expect(grade.meanMps).toBe(1);
    expect(grade.messages).toBe(12 * SAMPLE_SECONDS);
  });
});

describe("gradeUnits", () => {
  const zeros = Array<number>(11).fill(0);

  it("colours ten Units five, three and two", () => {
    const loads = Array.from({ length: 10 }, (_, index) =>
      unit(`u${index}`, [(index + 1) * 100, ...zeros]),
    );
    const grades = gradeUnits(loads, SETTINGS);
    const colours = grades.map((grade) => grade.colour);
    expect(colours.filter((colour) => colour === "green")).toHaveLength(5);
    expect(colours.filter((colour) => colour === "yellow")).toHaveLength(3);
    expect(colours.filter((colour) => colour === "red")).toHaveLength(2);
    expect(grades.find((grade) => grade.unitId === "u0")?.percentile).toBe(0);
    expect(grades.find((grade) => grade.unitId === "u5")?.percentile).toBe(50);
    expect(grades.find((grade) => grade.unitId === "u5")?.colour).toBe("yellow");
    expect(grades.find((grade) => grade.unitId === "u8")?.colour).toBe("red");
  });

  it("gives equal loads equal colours", () => {
    const loads = Array.from({ length: 4 }, (_, index) => unit(`u${index}`, [60, ...zeros]));
    const grades = gradeUnits(loads, SETTINGS);
    for (const grade of grades) {
      expect(grade.percentile).toBe(0);
      expect(grade.colour).toBe("green");
    }
  });

  it("leaves idle Units out", () => {
    const grades = gradeUnits([unit("idle", [0, ...zeros]), unit("busy", [3, ...zeros])], SETTINGS);
    expect(grades.map((grade) => grade.unitId)).toEqual(["busy"]);
  });

  it("marks the busiest Units hot", () => {
    const loads = [unit("a", [1, ...zeros]), unit("b", [5, ...zeros]), unit("c", [5, ...zeros])];
    const hot = gradeUnits(loads, SETTINGS)
      .filter((grade) => grade.hot)
      .map((grade) => grade.unitId);
    expect(hot).toEqual(["b", "c"]);
  });

  it("measures mean, peak and active samples", () => {
    const [grade] = gradeUnits([unit("a", [600, 0, 300, 0, 0, 0, 0, 0, 0, 0, 0, 0])], SETTINGS);
    expect(grade?.meanMps).toBe(900 / 3600);
    expect(grade?.peakMps).toBe(2);
    expect(grade?.activeSamples).toBe(2);
    expect(grade?.bytes).toBe(9000);
  });
});

describe("grading settings", () => {
  it("have the documented defaults", () => {
    const { grading } = loadConfig({ PU_NODE_ENV: "test" });
    expect(grading).toEqual({
      capacityMps: 4000,
      yellowPercent: 90,
      redPercent: 100,
      minSamples: 3,
      unitYellowPercentile: 50,
      unitRedPercentile: 80,
      hotUnits: 10,
    });
  });

  it("reject yellow at or above red", () => {
    expect(() =>
      loadConfig({ PU_NODE_GRADE_YELLOW_PERCENT: "100", PU_NODE_GRADE_RED_PERCENT: "100" }),
    ).toThrow(/PU_NODE_GRADE_YELLOW_PERCENT: 100 must be below PU_NODE_GRADE_RED_PERCENT/);
    expect(() =>
      loadConfig({ PU_NODE_UNIT_YELLOW_PERCENTILE: "90", PU_NODE_UNIT_RED_PERCENTILE: "80" }),
    ).toThrow(/PU_NODE_UNIT_YELLOW_PERCENTILE: 90 must be below PU_NODE_UNIT_RED_PERCENTILE/);
  });

  it("reject more samples than an hour has", () => {
    expect(() => loadConfig({ PU_NODE_GRADE_MIN_SAMPLES: "13" })).toThrow(/at most 12 samples/);
  });
});
