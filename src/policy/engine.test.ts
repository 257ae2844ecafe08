import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { DatabasePolicyEngine, DomainPolicyEngine, type EngineRule } from "./engine.ts";
import { createDomainRule, liftDomainRule, updateDomainRule } from "./rules.ts";

const NOW = new Date("2026-12-05T12:00:00Z");
const HOUR = 3_600_000;

function rule(id: string, domain: string, fields: Partial<EngineRule> = {}): EngineRule {
  return {
    id,
    domain,
    kind: "deny",
    severity: "suspend",
    includeSubdomains: true,
    reason: `reason ${id}`,
    expiresAt: null,
    ...fields,
  };
}

function sourceId(decision: ReturnType<DomainPolicyEngine["decide"]>): string | null | undefined {
  return decision.action === "allow" ? undefined : decision.source.id;
}

describe("DomainPolicyEngine in open mode", () => {
  it("allows a host without rules", () => {
    expect(new DomainPolicyEngine("open").decide("example.com", NOW)).toEqual({ action: "allow" });
  });

  it("returns reason, source and expiry of the deciding rule", () => {
    const expiresAt = new Date(NOW.getTime() + HOUR);
    const engine = new DomainPolicyEngine("open", [
      rule("r1", "spam.example", { severity: "reject_content", expiresAt }),
    ]);
    expect(engine.decide("spam.example", NOW)).toEqual({
      action: "reject_content",
      reason: "reason r1",
      source: { kind: "rule", id: "r1" },
      expiresAt,
    });
  });

  it("lets the strictest matching rule win", () => {
    const engine = new DomainPolicyEngine("open", [
      rule("parent", "example.com", { severity: "suspend" }),
      rule("child", "social.example.com", { severity: "reject_content" }),
    ]);
    const decision = engine.decide("social.example.com", NOW);
    expect(decision.action).toBe("suspend");
    expect(sourceId(decision)).toBe("parent");
  });

  it("prefers the more specific rule at equal severity", () => {
    const engine = new DomainPolicyEngine("open", [
      rule("parent", "example.com"),
      rule("child", "social.example.com"),
    ]);
    expect(sourceId(engine.decide("a.social.example.com", NOW))).toBe("child");
  });

  it("ignores expired rules", () => {
    const engine = new DomainPolicyEngine("open", [
      rule("expired", "example.com", { expiresAt: new Date(NOW.getTime() - 1) }),
      rule("ends-now", "example.org", { expiresAt: NOW }),
      rule("later", "example.net", { expiresAt: new Date(NOW.getTime() + 1) }),
    ]);
    expect(engine.decide("example.com", NOW)).toEqual({ action: "allow" });
    expect(engine.decide("example.org", NOW)).toEqual({ action: "allow" });
    expect(engine.decide("example.net", NOW).action).toBe("suspend");
  });

  it("falls back to a parent rule when the exact rule expired", () => {
    const engine = new DomainPolicyEngine("open", [
      rule("child", "social.example.com", { expiresAt: new Date(NOW.getTime() - HOUR) }),
      rule("parent", "example.com", { severity: "reject_content" }),
    ]);
    expect(sourceId(engine.decide("social.example.com", NOW))).toBe("parent");
  });

  it("lets a deny rule win over an allow rule", () => {
    const engine = new DomainPolicyEngine("open", [
      rule("allow", "example.com", { kind: "allow", severity: null }),
      rule("deny", "example.com"),
    ]);
    expect(sourceId(engine.decide("example.com", NOW))).toBe("deny");
  });

  it("swaps all rules on replaceRules", () => {
    const engine = new DomainPolicyEngine("open", [rule("old", "old.example")]);
    engine.replaceRules([rule("new", "new.example")]);
    expect(engine.decide("old.example", NOW)).toEqual({ action: "allow" });
    expect(sourceId(engine.decide("new.example", NOW))).toBe("new");
    expect(engine.size).toBe(1);
  });
});

describe("DomainPolicyEngine in allowlist mode", () => {
  const engine = new DomainPolicyEngine("allowlist", [
    rule("peer", "peer.example", { kind: "allow", severity: null }),
    rule("hub", "hub.example", { kind: "allow", severity: null, includeSubdomains: false }),
    rule("bad-child", "bad.peer.example", { severity: "reject_content" }),
    rule("lapsed", "lapsed.example", {
      kind: "allow",
      severity: null,
      expiresAt: new Date(NOW.getTime() - 1),
    }),
  ]);

  it.each([
    ["peer.example", "allow"],
    ["node.peer.example:8443", "allow"],
    ["hub.example", "allow"],
    ["www.hub.example", "allowlist"],
    ["other.example", "allowlist"],
    ["lapsed.example", "allowlist"],
    ["bad.peer.example", "bad-child"],
  ])("decides %s by %s", (host, expected) => {
    const decision = engine.decide(host, NOW);
    if (expected === "allow") {
      expect(decision).toEqual({ action: "allow" });
      return;
    }
    if (decision.action === "allow") throw new Error(`${host} was allowed`);
    if (expected === "allowlist") {
      expect(decision.action).toBe("suspend");
      expect(decision.source).toEqual({ kind: "allowlist", id: null });
    } else {
      expect(decision.action).toBe("reject_content");
      expect(decision.source).toEqual({ kind: "rule", id: expected });
    }
  });
});

describe("DomainPolicyEngine with 10,000 rules", () => {
  it("decides exact, subdomain and missing hosts", () => {
    const rules: EngineRule[] = [];
    for (let index = 0; index < 10_000; index++) {
      rules.push(
        rule(`r${index}`, `host${index}.example${index % 7}.org`, {
          includeSubdomains: index % 2 === 0,
        }),
      );
    }
    const engine = new DomainPolicyEngine("open", rules);
    expect(sourceId(engine.decide("host9998.example2.org", NOW))).toBe("r9998");
    expect(sourceId(engine.decide("a.host9998.example2.org", NOW))).toBe("r9998");
    expect(engine.decide("a.host9999.example3.org", NOW)).toEqual({ action: "allow" });
    expect(engine.decide("host10000.example4.org", NOW)).toEqual({ action: "allow" });
  });
});

describe("DatabasePolicyEngine", () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase(inject("postgresAdminUrl"), "policy-engine");
  });

  afterAll(async () => {
    await database?.drop();
  });

  it("reloads only when the rules version changes", async () => {
    const engine = new DatabasePolicyEngine(database.db, { mode: "open" });
    await engine.reload();
    expect(engine.version).toBe(0);
    expect(await engine.refresh()).toBe(false);
    expect(engine.decide("spam.example")).toEqual({ action: "allow" });

    const created = await createDomainRule(
      database.db,
      { domain: "SPAM.example", kind: "deny", severity: "suspend", reason: "spam wave" },
      "admin",
    );
    if (!created.ok) throw new Error(JSON.stringify(created.failure));
    // Decisions use the rules in memory until the next refresh.
    expect(engine.decide("spam.example")).toEqual({ action: "allow" });
    expect(await engine.refresh()).toBe(true);
    expect(engine.version).toBe(1);
    expect(engine.decide("a.spam.example").action).toBe("suspend");

    await updateDomainRule(database.db, created.value.id, { severity: "reject_content" }, "admin");
    expect(await engine.refresh()).toBe(true);
    expect(engine.decide("spam.example").action).toBe("reject_content");

    await liftDomainRule(database.db, created.value.id, "admin");
    expect(await engine.refresh()).toBe(true);
    expect(engine.version).toBe(3);
    expect(engine.decide("spam.example")).toEqual({ action: "allow" });
    expect(await engine.refresh()).toBe(false);
  });

  it("picks up changes through the periodic check", async () => {
    const engine = new DatabasePolicyEngine(database.db, { mode: "open", checkIntervalMs: 20 });
    await engine.reload();
    engine.start();
    try {
      const created = await createDomainRule(
        database.db,
        { domain: "later.example", kind: "deny", severity: "suspend", reason: "abuse" },
        "admin",
      );
      expect(created.ok).toBe(true);
      await expect
        .poll(() => engine.decide("later.example").action, { timeout: 5000, interval: 20 })
        .toBe("suspend");
    } finally {
      await engine.stop();
    }
  });
});
