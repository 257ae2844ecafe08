import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

function issuesOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("applies defaults with an empty environment", () => {
    const config = loadConfig({});
    expect(config.role).toBe("all");
    expect(config.port).toBe(8080);
    expect(config.origin.href).toBe("http://localhost:8080/");
    expect(config.pepeunitDomain).toBe("localhost");
    expect(config.databaseUrl).toBeUndefined();
    expect(config.allowPrivateAddress).toBe(false);
  });

  it("names the variable, value and example", () => {
    const [issue] = issuesOf({ PU_NODE_PORT: "abc" });
    expect(issue).toContain("PU_NODE_PORT");
    expect(issue).toContain('"abc"');
    expect(issue).toContain("example: PU_NODE_PORT=8080");
  });

  it("lists every invalid variable at once", () => {
    const issues = issuesOf({ PU_NODE_ROLE: "tapper", PU_NODE_LOG_LEVEL: "loud" });
    expect(issues).toHaveLength(2);
    expect(issues.some((issue) => issue.startsWith("PU_NODE_ROLE"))).toBe(true);
    expect(issues.some((issue) => issue.startsWith("PU_NODE_LOG_LEVEL"))).toBe(true);
  });

  it("rejects an origin with a path", () => {
    const [issue] = issuesOf({ PU_NODE_ORIGIN: "https://node.example.com/pepeunit" });
    expect(issue).toContain("https://node.example.com");
    expect(issue).toContain("without path");
  });

  it("hides tokens and database passwords", () => {
    const [tokenIssue] = issuesOf({ PU_NODE_ADMIN_TOKEN: "short-secret" });
    expect(tokenIssue).not.toContain("short-secret");
    const [urlIssue] = issuesOf({ PU_NODE_DATABASE_URL: "mysql://user:hunter2@db/x" });
    expect(urlIssue).not.toContain("hunter2");
  });

  it("refuses private addresses in production", () => {
    const [issue] = issuesOf({ PU_NODE_ALLOW_PRIVATE_ADDRESS: "true" });
    expect(issue).toContain("PU_NODE_ALLOW_PRIVATE_ADDRESS");
    const config = loadConfig({ PU_NODE_ALLOW_PRIVATE_ADDRESS: "true", PU_NODE_ENV: "test" });
    expect(config.allowPrivateAddress).toBe(true);
  });

  it("takes the Pepeunit domain from the origin", () => {
    const config = loadConfig({ PU_NODE_ORIGIN: "https://node.example.com" });
    expect(config.pepeunitDomain).toBe("node.example.com");
  });

  it("reads ban thresholds with defaults", () => {
    const defaults = loadConfig({}).bans;
    expect(defaults.rateLimited).toEqual({ count: 600, windowSeconds: 600 });
    expect(defaults.signatureFailures).toEqual({ count: 100, windowSeconds: 3600 });
    expect(defaults.invalidPayloads).toEqual({ count: 100, windowSeconds: 3600 });
    expect(defaults.topicBansForDomain).toEqual({ count: 3, windowSeconds: 86400 });

    const set = loadConfig({
      PU_NODE_BAN_SIGNATURE_FAILURES: "0",
      PU_NODE_BAN_INVALID_PAYLOADS_WINDOW_SECONDS: "60",
    }).bans;
    expect(set.signatureFailures.count).toBe(0);
    expect(set.invalidPayloads.windowSeconds).toBe(60);
  });

  it("rejects a negative ban threshold", () => {
    const [issue] = issuesOf({ PU_NODE_BAN_RATE_LIMITED: "-1" });
    expect(issue).toContain("PU_NODE_BAN_RATE_LIMITED");
    expect(issue).toContain("0 to turn the check off");
  });
  it("turns bridges off without a broker", () => {
    const config = loadConfig({});
    expect(config.bridgeDriver).toBe("off");
    expect(config.bridgeBrokerUrl).toBeUndefined();
    expect(config.bridgeMaxMps).toBe(10);
  });

  it("picks the EMQX bridge driver with EMQX", () => {
    const config = loadConfig({ PU_NODE_EMQX_API_URL: "http://127.0.0.1:18083" });
    expect(config.bridgeDriver).toBe("emqx");
  });

  it("names missing Mosquitto bridge settings", () => {
    const issues = issuesOf({ PU_NODE_BRIDGE_DRIVER: "mosquitto" });
    for (const variable of [
      "PU_NODE_MOSQUITTO_BRIDGE_FILE",
      "PU_NODE_MOSQUITTO_PASSWORD_FILE",
      "PU_NODE_MOSQUITTO_ACL_FILE",
      "PU_NODE_MOSQUITTO_RESTART_COMMAND",
    ]) {
      expect(issues.some((issue) => issue.startsWith(`${variable}: required`))).toBe(true);
    }
  });

  it("rejects the EMQX bridge driver without EMQX", () => {
    const issues = issuesOf({ PU_NODE_BRIDGE_DRIVER: "emqx" });
    expect(issues[0]).toContain("emqx needs PU_NODE_EMQX_API_URL");
  });

  it("rejects a bridge broker URL that is not MQTT", () => {
    const issues = issuesOf({ PU_NODE_BRIDGE_BROKER_URL: "https://mqtt.example" });
    expect(issues[0]).toMatch(/^PU_NODE_BRIDGE_BROKER_URL: /);
  });
  it("rejects a Mosquitto bridge file without .conf", () => {
    const issues = issuesOf({ PU_NODE_MOSQUITTO_BRIDGE_FILE: "/tmp/bridges.d/pepeunit" });
    expect(issues[0]).toContain("include_dir reads only files ending in .conf");
  });

  it("rejects the removed PU_NODE_PRICE_PER_MPS", () => {
    const issues = issuesOf({ PU_NODE_PRICE_PER_MPS: "100" });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^PU_NODE_PRICE_PER_MPS: removed/);
    expect(issues[0]).toContain("PUT /api/v1/billing/settings");
    expect(issues[0]).toContain("PU_NODE_HALF_CAPACITY_PRICE");
  });

  it("lists a removed variable with invalid ones", () => {
    const issues = issuesOf({ PU_NODE_PRICE_PER_MPS: "100", PU_NODE_PORT: "abc" });
    expect(issues).toHaveLength(2);
    expect(issues.some((issue) => issue.startsWith("PU_NODE_PRICE_PER_MPS"))).toBe(true);
    expect(issues.some((issue) => issue.startsWith("PU_NODE_PORT"))).toBe(true);
  });

  it("ignores an empty removed variable", () => {
    const config = loadConfig({ PU_NODE_PRICE_PER_MPS: "" });
    expect(config.loadReport.freeMps).toBe(1);
  });

  it("reads the first billing settings values", () => {
    const config = loadConfig({
      PU_NODE_FREE_MPS: "0.5",
      PU_NODE_FREE_AGGREGATION_TOPICS: "3",
      PU_NODE_PRICE_PER_AGGREGATION_TOPIC: "7",
    });
    expect(config.loadReport).toEqual({
      freeMps: 0.5,
      freeAggregationTopics: 3,
      pricePerAggregationTopic: 7,
      aggregationTopicBytes: 1048576,
    });
  });
});
