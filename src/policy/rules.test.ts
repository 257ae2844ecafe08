import { eq } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { domainRuleEvents, domainRules, domainRulesVersion } from "../db/schema/index.ts";
import {
  checkRuleFields,
  createDomainRule,
  type DomainRule,
  expireDomainRules,
  liftDomainRule,
  listDomainRuleEvents,
  listDomainRules,
  readRulesVersion,
  ruleSortKey,
  updateDomainRule,
} from "./rules.ts";

let database: TestDatabase;
const NOW = new Date("2026-12-05T12:00:00Z");
const LATER = new Date("2027-01-01T00:00:00Z");

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "policy-rules");
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  await database.db.delete(domainRules);
  await database.db.delete(domainRuleEvents);
  await database.db.delete(domainRulesVersion);
});

async function createDeny(domain: string, fields: { expiresAt?: Date } = {}): Promise<DomainRule> {
  const result = await createDomainRule(
    database.db,
    { domain, kind: "deny", severity: "suspend", reason: "spam", ...fields },
    "admin",
    NOW,
  );
  if (!result.ok) throw new Error(JSON.stringify(result.failure));
  return result.value;
}

describe("checkRuleFields", () => {
  it.each([
    [{ domain: "example.com:80", kind: "deny", severity: "suspend", reason: "x" }, "domain"],
    [{ domain: "a b", kind: "allow" }, "domain"],
    [{ domain: "example.com", kind: "deny", reason: "x" }, "severity"],
    [{ domain: "example.com", kind: "allow", severity: "suspend" }, "severity"],
    [{ domain: "example.com", kind: "deny", severity: "suspend" }, "reason"],
    [{ domain: "example.com", kind: "deny", severity: "suspend", reason: "  " }, "reason"],
    [
      { domain: "example.com", kind: "deny", severity: "suspend", reason: "x".repeat(1001) },
      "reason",
    ],
    [{ domain: "example.com", kind: "allow", publicComment: "x".repeat(1001) }, "publicComment"],
    [{ domain: "example.com", kind: "allow", expiresAt: NOW }, "expiresAt"],
  ] as const)("rejects %j in field %s", (input, field) => {
    const result = checkRuleFields(input, NOW);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.failure.kind === "invalid" && result.failure.field).toBe(field);
  });

  it("returns canonical fields", () => {
    const result = checkRuleFields(
      { domain: "Пример.РФ.", kind: "allow", reason: " ", publicComment: " hi " },
      NOW,
    );
    expect(result).toEqual({
      ok: true,
      value: {
        domain: "xn--e1afmkfd.xn--p1ai",
        kind: "allow",
        severity: null,
        includeSubdomains: true,
        reason: null,
        publicComment: "hi",
        expiresAt: null,
      },
    });
  });
});

describe("createDomainRule", () => {
  it("stores the rule with a created event and a new version", async () => {
    const rule = await createDeny("Spam.Example.");
    expect(rule).toMatchObject({
      domain: "spam.example",
      kind: "deny",
      severity: "suspend",
      includeSubdomains: true,
      reason: "spam",
      createdBy: "admin",
      expiresAt: null,
    });
    expect(await readRulesVersion(database.db)).toBe(1);

    const events = await listDomainRuleEvents(database.db, rule.id, 10);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: "created",
      actor: "admin",
      domain: "spam.example",
      before: null,
    });
    expect(events[0]?.after).toMatchObject({ id: rule.id, domain: "spam.example" });
  });

  it("reports an existing rule of the same domain and kind", async () => {
    const first = await createDeny("spam.example");
    const second = await createDomainRule(
      database.db,
      { domain: "SPAM.EXAMPLE", kind: "deny", severity: "reject_content", reason: "again" },
      "admin",
    );
    expect(second.ok).toBe(false);
    expect(!second.ok && second.failure.kind === "exists" && second.failure.rule.id).toBe(first.id);
    expect(await readRulesVersion(database.db)).toBe(1);
  });

  it("keeps an allow and a deny rule for one domain apart", async () => {
    await createDeny("peer.example");
    const allow = await createDomainRule(
      database.db,
      { domain: "peer.example", kind: "allow" },
      "admin",
    );
    expect(allow.ok).toBe(true);
    expect(await database.db.select().from(domainRules)).toHaveLength(2);
  });

  it("is rejected by the table without a reason", async () => {
    await expect(
      database.db
        .insert(domainRules)
        .values({ domain: "x.example", kind: "deny", severity: "suspend", createdBy: "admin" }),
    ).rejects.toThrow();
  });
});

describe("updateDomainRule", () => {
  it("changes fields and records before and after", async () => {
    const rule = await createDeny("spam.example");
    const result = await updateDomainRule(
      database.db,
      rule.id,
      { severity: "reject_content", expiresAt: LATER, publicComment: "noisy" },
      "admin",
      NOW,
    );
    if (!result.ok) throw new Error(JSON.stringify(result.failure));
    expect(result.value).toMatchObject({
      severity: "reject_content",
      expiresAt: LATER,
      publicComment: "noisy",
      reason: "spam",
    });
    expect(result.value.updatedAt.getTime()).toBeGreaterThanOrEqual(rule.updatedAt.getTime());

    const [updated] = await listDomainRuleEvents(database.db, rule.id, 1);
    expect(updated?.type).toBe("updated");
    expect(updated?.before?.severity).toBe("suspend");
    expect(updated?.after?.severity).toBe("reject_content");
    expect(updated?.after?.expiresAt).toBe(LATER.toISOString());
    expect(await readRulesVersion(database.db)).toBe(2);
  });

  it("rejects clearing the reason of a deny rule and writes nothing", async () => {
    const rule = await createDeny("spam.example");
    const result = await updateDomainRule(database.db, rule.id, { reason: "" }, "admin", NOW);
    expect(!result.ok && result.failure.kind === "invalid" && result.failure.field).toBe("reason");
    expect(await listDomainRuleEvents(database.db, rule.id, 10)).toHaveLength(1);
    expect(await readRulesVersion(database.db)).toBe(1);
  });

  it("reports a missing rule", async () => {
    const id = "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44";
    const result = await updateDomainRule(database.db, id, { reason: "x" }, "admin");
    expect(result).toEqual({ ok: false, failure: { kind: "not_found", id } });
  });
});

describe("liftDomainRule", () => {
  it("deletes the rule and keeps its history", async () => {
    const rule = await createDeny("spam.example");
    const result = await liftDomainRule(database.db, rule.id, "admin");
    expect(result.ok).toBe(true);
    expect(await database.db.select().from(domainRules)).toEqual([]);

    const events = await listDomainRuleEvents(database.db, rule.id, 10);
    expect(events.map((event) => event.type)).toEqual(["lifted", "created"]);
    expect(events[0]?.after).toBeNull();
    expect(events[0]?.before?.domain).toBe("spam.example");

    const again = await liftDomainRule(database.db, rule.id, "admin");
    expect(!again.ok && again.failure.kind).toBe("not_found");
  });
});

describe("expireDomainRules", () => {
  it("removes only rules whose expiry has passed", async () => {
    const soon = await createDeny("soon.example", { expiresAt: new Date(NOW.getTime() + 1000) });
    await createDeny("later.example", { expiresAt: LATER });
    await createDeny("forever.example");

    const expired = await expireDomainRules(database.db, new Date(NOW.getTime() + 1000));
    expect(expired.map((rule) => rule.domain)).toEqual(["soon.example"]);
    const left = await database.db.select({ domain: domainRules.domain }).from(domainRules);
    expect(left.map((row) => row.domain).sort()).toEqual(["forever.example", "later.example"]);

    const [event] = await listDomainRuleEvents(database.db, soon.id, 1);
    expect(event).toMatchObject({ type: "expired", actor: "expiry" });
    expect(await readRulesVersion(database.db)).toBe(4);
    expect(await expireDomainRules(database.db, new Date(NOW.getTime() + 1000))).toEqual([]);
    expect(await readRulesVersion(database.db)).toBe(4);
  });
});

describe("listDomainRules", () => {
  it("pages by domain and kind and filters", async () => {
    for (const domain of ["c.example", "a.example", "b.example"]) await createDeny(domain);
    await createDomainRule(database.db, { domain: "b.example", kind: "allow" }, "admin");

    const first = await listDomainRules(database.db, { limit: 2 });
    expect(first.map(ruleSortKey)).toEqual(["a.example deny", "b.example allow"]);
    const last = first.at(-1);
    if (last === undefined) throw new Error("empty page");
    const second = await listDomainRules(database.db, { limit: 5, after: ruleSortKey(last) });
    expect(second.map(ruleSortKey)).toEqual(["b.example deny", "c.example deny"]);

    const allows = await listDomainRules(database.db, { limit: 5, kind: "allow" });
    expect(allows.map(ruleSortKey)).toEqual(["b.example allow"]);
    const one = await listDomainRules(database.db, { limit: 5, domain: "c.example" });
    expect(one.map(ruleSortKey)).toEqual(["c.example deny"]);
  });
});

describe("rule writes", () => {
  it("roll back the rule when the audit event fails", async () => {
    // A CHECK on the events table makes the event insert fail inside the transaction.
    await database.db.execute(
      "alter table domain_rule_events add constraint test_no_events check (false) not valid",
    );
    try {
      await expect(createDeny("spam.example")).rejects.toThrow();
    } finally {
      await database.db.execute("alter table domain_rule_events drop constraint test_no_events");
    }
    expect(
      await database.db.select().from(domainRules).where(eq(domainRules.domain, "spam.example")),
    ).toEqual([]);
    expect(await readRulesVersion(database.db)).toBe(0);
  });
});
