import { describe, expect, it } from "vitest";
import { type BridgeRateViolation, BridgeTrafficMonitor } from "./monitor.ts";

const TOPIC = "a.pepeunit.test/6f1c2b9e-0d4a-4f7e-9a1b-3c5d7e9f1a2b";
const OTHER = "a.pepeunit.test/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const START = Date.UTC(2026, 11, 4, 12, 0, 0);

function monitorWith(windowSeconds: number, maxMps: number) {
  const reported: BridgeRateViolation[] = [];
  const monitor = new BridgeTrafficMonitor({
    windowSeconds,
    report: async (violation) => {
      reported.push(violation);
    },
  });
  monitor.setLimits([
    { bridgeId: "b1", peerHost: "a.example", topic: TOPIC, unitNodeId: "n1", maxMps },
  ]);
  return { monitor, reported };
}

describe("BridgeTrafficMonitor", () => {
  it("stays quiet at the agreed rate", async () => {
    const { monitor, reported } = monitorWith(10, 5);
    for (let second = 0; second < 30; second++) {
      for (let i = 0; i < 5; i++) monitor.observe(TOPIC, START + second * 1000 + i);
      await monitor.check(START + second * 1000 + 999);
    }
    expect(reported).toEqual([]);
  });

  it("reports a burst over the window limit once", async () => {
    const { monitor, reported } = monitorWith(10, 5);
    for (let i = 0; i < 51; i++) monitor.observe(TOPIC, START + i);
    await monitor.check(START + 500);
    await monitor.check(START + 1500);
    expect(reported).toHaveLength(1);
    const evidence = reported[0]?.evidence;
    expect(evidence?.messages).toBe(51);
    expect(evidence?.maxMps).toBe(5);
    expect(evidence?.windowSeconds).toBe(10);
    expect(evidence?.measuredMps).toBe(5.1);
    expect(reported[0]?.peerHost).toBe("a.example");
  });

  it("forgets messages older than the window", async () => {
    const { monitor, reported } = monitorWith(10, 5);
    for (let i = 0; i < 50; i++) monitor.observe(TOPIC, START + i);
    for (let i = 0; i < 50; i++) monitor.observe(TOPIC, START + 10_000 + i);
    await monitor.check(START + 10_500);
    expect(reported).toEqual([]);
  });

  it("reports again after a quiet window", async () => {
    const { monitor, reported } = monitorWith(2, 1);
    for (let i = 0; i < 10; i++) monitor.observe(TOPIC, START + i);
    await monitor.check(START + 100);
    for (let i = 0; i < 10; i++) monitor.observe(TOPIC, START + 3000 + i);
    await monitor.check(START + 3100);
    expect(reported).toHaveLength(2);
  });

  it("ignores topics that are not bridged", async () => {
    const { monitor, reported } = monitorWith(1, 1);
    for (let i = 0; i < 100; i++) monitor.observe(OTHER, START + i);
    await monitor.check(START + 500);
    expect(reported).toEqual([]);
  });

  it("takes the stricter of two limits", async () => {
    const { monitor, reported } = monitorWith(1, 100);
    monitor.setLimits([
      { bridgeId: "b1", peerHost: "a.example", topic: TOPIC, unitNodeId: "n1", maxMps: 100 },
      { bridgeId: "b2", peerHost: "a.example", topic: TOPIC, unitNodeId: "n1", maxMps: 2 },
    ]);
    for (let i = 0; i < 3; i++) monitor.observe(TOPIC, START + i);
    await monitor.check(START + 500);
    expect(reported[0]?.evidence.bridgeId).toBe("b2");
  });

  it("keeps running when reporting fails", async () => {
    const monitor = new BridgeTrafficMonitor({
      windowSeconds: 1,
      report: async () => {
        throw new Error("database down");
      },
    });
    monitor.setLimits([
      { bridgeId: "b1", peerHost: "a.example", topic: TOPIC, unitNodeId: "n1", maxMps: 1 },
    ]);
    for (let i = 0; i < 5; i++) monitor.observe(TOPIC, START + i);
    const violations = await monitor.check(START + 500);
    expect(violations).toHaveLength(1);
  });

  it("rejects a window that is not whole seconds", () => {
    expect(() => new BridgeTrafficMonitor({ windowSeconds: 0.5, report: async () => {} })).toThrow(
      /whole seconds/,
    );
  });
});
