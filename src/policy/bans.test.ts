import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import {
  banEvents,
  bans,
  domainRuleEvents,
  domainRules,
  domainRulesVersion,
} from "../db/schema/index.ts";
import {
  createAdminBan,
  expireBans,
  extendBan,
  InvalidViolationError,
  liftBan,
  recordViolation,
} from "./bans.ts";
import { activeTopicBans, banHistory, findTopicBan, getBan, listBans } from "./bans-queries.ts";
import type { BanSettings, Violation, ViolationEvidence } from "./bans-types.ts";
import { DatabasePolicyEngine } from "./engine.ts";
import { createDomainRule, getDomainRule, readRulesVersion } from "./rules.ts";

const START = new Date("2027-03-01T00:00:00Z");
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const SETTINGS: BanSettings = { topicBansForDomain: 3, topicBansWindowSeconds: 86_400 };
const UNIT_NODES = [
  "9d0c6a52-5b0e-4d8e-8a53-4f2e1c7b9a10",
  "1f6a0c3e-2b4d-4e8f-9a1b-3c5d7e9f0a21",
  "7e3b2a19-8c4d-4f6e-a0b1-c2d3e4f5a6b7",
];

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "policy-bans");
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  await database.db.delete(bans);
  await database.db.delete(banEvents);
  await database.db.delete(domainRules);
  await database.db.delete(domainRuleEvents);
  await database.db.delete(domainRulesVersion);
});

function at(offsetMs: number): Date {
  return new Date(START.getTime() + offsetMs);
}

function evidence(now: Date, count = 120, limit = 100): ViolationEvidence {
  return {
    count,
    limit,
    windowSeconds: 3600,
    firstSeenAt: new Date(now.getTime() - 30 * MINUTE).toISOString(),
    lastSeenAt: now.toISOString(),
    samples: [{ at: now.toISOString(), status: 401, path: "/ap/inbox" }],
  };
}

function domainViolation(domain: string, now: Date): Violation {
  return {
    subject: { kind: "domain", domain },
    condition: "signature_failures",
    evidence: evidence(now),
    now,
  };
}

function topicViolation(index: number, now: Date): Violation {
  return {
    subject: {
      kind: "topic",
      domain: "unit.peer.example",
      topic: `unit.peer.example/${UNIT_NODES[index]}`,
    },
    condition: "bridged_mps",
    evidence: { ...evidence(now, 25, 10), windowSeconds: 60 },
    now,
  };
}

async function banOrFail(violation: Violation) {
  const outcome = await recordViolation(database.db, violation, SETTINGS);
  if (outcome.action !== "banned") throw new Error(`expected a ban, got ${outcome.action}`);
  return outcome;
}

describe("recordViolation escalation", () => {
  it("escalates 1 d, 7 d, 30 d, then permanent", async () => {
    const expected = [DAY, 7 * DAY, 30 * DAY];
    let now = START;
    for (const [index, duration] of expected.entries()) {
      const { ban } = await banOrFail(domainViolation("Bad.Example", now));
      expect(ban.domain).toBe("bad.example");
      expect(ban.level).toBe(index + 1);
      expect(ban.expiresAt?.getTime()).toBe(now.getTime() + duration);
      expect(ban.ruleId).toBeNull();
      now = new Date(now.getTime() + duration + MINUTE);
    }

    const { ban: fourth } = await banOrFail(domainViolation("bad.example", now));
    expect(fourth.level).toBe(4);
    expect(fourth.expiresAt).toBeNull();
    expect(fourth.ruleId).not.toBeNull();
    const rule = await getDomainRule(database.db, fourth.ruleId ?? "");
    expect(rule).toMatchObject({
      domain: "bad.example",
      kind: "deny",
      severity: "suspend",
      expiresAt: null,
      createdBy: "auto",
    });
  });

  it("stores the evidence and a reason", async () => {
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    expect(ban.condition).toBe("signature_failures");
    expect(ban.evidence).toMatchObject({ count: 120, limit: 100, windowSeconds: 3600 });
    expect(ban.reason).toContain("120");
    expect(ban.reason).toContain("signature verification");
    expect(ban.startsAt).toEqual(START);
  });

  it("ignores bans older than the lookback", async () => {
    await banOrFail(domainViolation("bad.example", START));
    const { ban } = await banOrFail(domainViolation("bad.example", at(366 * DAY)));
    expect(ban.level).toBe(1);
  });

  it("does not count lifted bans", async () => {
    const { ban: first } = await banOrFail(domainViolation("bad.example", START));
    await liftBan(database.db, first.id, "admin", "false alarm", at(MINUTE));
    const { ban: second } = await banOrFail(domainViolation("bad.example", at(2 * MINUTE)));
    expect(second.level).toBe(1);
  });

  it("does not stack on an active ban", async () => {
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    const outcome = await recordViolation(
      database.db,
      domainViolation("bad.example", at(HOUR)),
      SETTINGS,
    );
    expect(outcome).toMatchObject({ action: "already_banned", ban: { id: ban.id } });
    expect(await database.db.select().from(bans)).toHaveLength(1);
  });

  it("writes nothing below the limit", async () => {
    const outcome = await recordViolation(
      database.db,
      { ...domainViolation("bad.example", START), evidence: evidence(START, 99, 100) },
      SETTINGS,
    );
    expect(outcome).toEqual({ action: "below_limit" });
    expect(await database.db.select().from(bans)).toHaveLength(0);
  });

  it("rejects an invalid topic", async () => {
    const violation: Violation = {
      subject: {
        kind: "topic",
        domain: "unit.peer.example",
        topic: "unit.peer.example/not-a-uuid",
      },
      condition: "bridged_mps",
      evidence: evidence(START),
      now: START,
    };
    await expect(recordViolation(database.db, violation, SETTINGS)).rejects.toThrow(
      InvalidViolationError,
    );
  });

  it("keeps the node host of a topic apart from its domain", async () => {
    const { ban } = await banOrFail({
      ...topicViolation(0, START),
      subject: {
        kind: "topic",
        domain: "Node.Peer.Example",
        topic: `Unit.Peer.Example/${UNIT_NODES[0]}`,
      },
    });
    expect(ban.domain).toBe("node.peer.example");
    expect(ban.topic).toBe(`unit.peer.example/${UNIT_NODES[0]}`);
    const found = await findTopicBan(
      database.db,
      "node.peer.example",
      `unit.peer.example/${UNIT_NODES[0]}`,
      at(MINUTE),
    );
    expect(found?.id).toBe(ban.id);
  });

  it("bumps the rules version", async () => {
    const before = await readRulesVersion(database.db);
    await banOrFail(domainViolation("bad.example", START));
    expect(await readRulesVersion(database.db)).toBe(before + 1);
  });
});

describe("topic bans", () => {
  it("records a bridged_mps topic ban", async () => {
    const { ban, domainBan } = await banOrFail(topicViolation(0, START));
    expect(ban).toMatchObject({
      kind: "topic",
      domain: "unit.peer.example",
      topic: `unit.peer.example/${UNIT_NODES[0]}`,
      condition: "bridged_mps",
      level: 1,
    });
    expect(domainBan).toBeNull();

    const active = await activeTopicBans(database.db, at(MINUTE));
    expect(active.map((row) => row.id)).toEqual([ban.id]);
    const found = await findTopicBan(
      database.db,
      "unit.peer.example",
      `unit.peer.example/${UNIT_NODES[0]}`,
      at(MINUTE),
    );
    expect(found?.id).toBe(ban.id);
    expect(
      await findTopicBan(
        database.db,
        "unit.peer.example",
        `unit.peer.example/${UNIT_NODES[1]}`,
        at(MINUTE),
      ),
    ).toBeUndefined();
    expect(await activeTopicBans(database.db, at(DAY + MINUTE))).toEqual([]);
  });

  it("bans the domain at the third topic ban", async () => {
    await banOrFail(topicViolation(0, START));
    await banOrFail(topicViolation(1, at(HOUR)));
    const third = await banOrFail(topicViolation(2, at(2 * HOUR)));
    const domainBan = third.domainBan;
    expect(domainBan).toMatchObject({
      kind: "domain",
      domain: "unit.peer.example",
      topic: null,
      condition: "topic_bans",
      level: 1,
    });
    expect(domainBan?.evidence).toMatchObject({ count: 3, limit: 3, windowSeconds: 86_400 });
    const samples = (domainBan?.evidence.samples ?? []) as { topic: string }[];
    expect(samples.map((sample) => sample.topic)).toEqual(
      UNIT_NODES.map((node) => `unit.peer.example/${node}`),
    );

    // A topic of a banned domain is covered by the domain ban and gets no ban of its own.
    const extra = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    const found = await findTopicBan(
      database.db,
      "unit.peer.example",
      `unit.peer.example/${extra}`,
      at(3 * HOUR),
    );
    expect(found?.id).toBe(domainBan?.id);
  });

  it("leaves the domain alone outside the window", async () => {
    await banOrFail(topicViolation(0, START));
    await banOrFail(topicViolation(1, at(2 * DAY)));
    const third = await banOrFail(topicViolation(2, at(4 * DAY)));
    expect(third.domainBan).toBeNull();
  });
});

describe("lift, extend and expiry", () => {
  it("expires a ban by a moved clock with an event", async () => {
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    expect(await expireBans(database.db, at(DAY - MINUTE))).toEqual([]);

    const expired = await expireBans(database.db, at(DAY + MINUTE));
    expect(expired.map((row) => row.id)).toEqual([ban.id]);
    expect(expired[0]?.expiredAt).toEqual(at(DAY + MINUTE));

    const history = await banHistory(database.db, { banId: ban.id }, 10);
    expect(history.map((event) => event.type)).toEqual(["expired", "created"]);
    expect(history[0]?.actor).toBe("expiry");
    expect(history[0]?.before?.expiredAt).toBeNull();
    expect(history[0]?.after?.expiredAt).toBe(at(DAY + MINUTE).toISOString());
    expect(history[0]?.createdAt).toEqual(at(DAY + MINUTE));
  });

  it("lifts a ban with an event and refuses a second lift", async () => {
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    const lifted = await liftBan(database.db, ban.id, "admin", "fixed their keys", at(HOUR));
    if (!lifted.ok) throw new Error(JSON.stringify(lifted.failure));
    expect(lifted.value).toMatchObject({
      liftedAt: at(HOUR),
      liftedBy: "admin",
      liftReason: "fixed their keys",
    });

    const again = await liftBan(database.db, ban.id, "admin", "twice", at(2 * HOUR));
    expect(again.ok ? "ok" : again.failure.kind).toBe("ended");

    const history = await banHistory(database.db, { domain: "bad.example" }, 10);
    expect(history.map((event) => event.type)).toEqual(["lifted", "created"]);
    expect(history[0]).toMatchObject({ actor: "admin", reason: "fixed their keys" });
  });

  it("lifts the deny rule of a level 4 ban", async () => {
    let now = START;
    for (const duration of [DAY, 7 * DAY, 30 * DAY]) {
      await banOrFail(domainViolation("bad.example", now));
      now = new Date(now.getTime() + duration + MINUTE);
    }
    const { ban } = await banOrFail(domainViolation("bad.example", now));
    const lifted = await liftBan(database.db, ban.id, "admin", "trust restored", now);
    expect(lifted.ok).toBe(true);
    expect(await getDomainRule(database.db, ban.ruleId ?? "")).toBeUndefined();
  });

  it("raises an existing deny rule at level 4 and keeps it on lift", async () => {
    const rule = await createDomainRule(
      database.db,
      { domain: "bad.example", kind: "deny", severity: "reject_content", reason: "spam" },
      "admin",
      START,
    );
    if (!rule.ok) throw new Error(JSON.stringify(rule.failure));
    for (let level = 1; level <= 3; level++) {
      await createAdminBan(
        database.db,
        {
          subject: { kind: "domain", domain: "bad.example" },
          reason: "test",
          expiresAt: at(level * MINUTE),
        },
        SETTINGS,
        at((level - 1) * MINUTE),
      );
    }
    const { ban } = await banOrFail(domainViolation("bad.example", at(4 * MINUTE)));
    expect(ban.level).toBe(4);
    expect(ban.ruleId).toBeNull();
    expect(await getDomainRule(database.db, rule.value.id)).toMatchObject({
      severity: "suspend",
      expiresAt: null,
    });

    await liftBan(database.db, ban.id, "admin", "done", at(5 * MINUTE));
    expect(await getDomainRule(database.db, rule.value.id)).toBeDefined();
  });

  it("extends a ban to a later time and to permanent", async () => {
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    const later = await extendBan(
      database.db,
      ban.id,
      at(3 * DAY),
      "admin",
      "still abusive",
      at(HOUR),
    );
    if (!later.ok) throw new Error(JSON.stringify(later.failure));
    expect(later.value.expiresAt).toEqual(at(3 * DAY));

    const permanent = await extendBan(
      database.db,
      ban.id,
      "permanent",
      "admin",
      "for good",
      at(2 * HOUR),
    );
    if (!permanent.ok) throw new Error(JSON.stringify(permanent.failure));
    expect(permanent.value.expiresAt).toBeNull();

    const history = await banHistory(database.db, { banId: ban.id }, 10);
    expect(history.map((event) => event.type)).toEqual(["extended", "extended", "created"]);
    expect(history[1]?.before?.expiresAt).toBe(at(DAY).toISOString());
    expect(history[1]?.after?.expiresAt).toBe(at(3 * DAY).toISOString());
  });

  it("rejects an extension to an earlier time", async () => {
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    const earlier = await extendBan(database.db, ban.id, at(HOUR), "admin", "shorter", at(MINUTE));
    expect(earlier.ok ? "ok" : earlier.failure).toMatchObject({ kind: "invalid", field: "until" });
  });

  it("refuses to extend an expired ban", async () => {
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    const result = await extendBan(database.db, ban.id, at(5 * DAY), "admin", "late", at(2 * DAY));
    expect(result.ok ? "ok" : result.failure.kind).toBe("ended");
  });

  it("reports an unknown id", async () => {
    const result = await liftBan(
      database.db,
      "00000000-0000-4000-8000-000000000000",
      "admin",
      "none",
      START,
    );
    expect(result.ok ? "ok" : result.failure.kind).toBe("not_found");
  });
});

describe("listBans", () => {
  it("filters by activity, kind and domain", async () => {
    const { ban: first } = await banOrFail(domainViolation("a.example", START));
    const { ban: second } = await banOrFail(domainViolation("b.example", at(MINUTE)));
    const { ban: topic } = await banOrFail(topicViolation(0, at(2 * MINUTE)));
    await liftBan(database.db, first.id, "admin", "ok", at(3 * MINUTE));
    const now = at(4 * MINUTE);

    const all = await listBans(database.db, { limit: 10, now });
    expect(all.map((ban) => ban.id)).toEqual([topic.id, second.id, first.id]);
    const active = await listBans(database.db, { limit: 10, active: true, now });
    expect(active.map((ban) => ban.id)).toEqual([topic.id, second.id]);
    const ended = await listBans(database.db, { limit: 10, active: false, now });
    expect(ended.map((ban) => ban.id)).toEqual([first.id]);
    const topics = await listBans(database.db, { limit: 10, kind: "topic", now });
    expect(topics.map((ban) => ban.id)).toEqual([topic.id]);
    const ofDomain = await listBans(database.db, { limit: 10, domain: "b.example", now });
    expect(ofDomain.map((ban) => ban.id)).toEqual([second.id]);
    expect((await getBan(database.db, second.id))?.id).toBe(second.id);
  });
});

describe("engine with bans", () => {
  it("suspends a banned domain until the ban expires", async () => {
    const engine = new DatabasePolicyEngine(database.db, { mode: "open" });
    await engine.reload();
    expect(engine.decide("bad.example", START)).toEqual({ action: "allow" });

    const { ban } = await banOrFail(domainViolation("bad.example", START));
    expect(await engine.refresh()).toBe(true);
    expect(engine.decide("bad.example:8443", at(HOUR))).toEqual({
      action: "suspend",
      reason: ban.reason,
      source: { kind: "ban", id: ban.id },
      expiresAt: at(DAY),
    });
    // A ban covers the exact host only.
    expect(engine.decide("sub.bad.example", at(HOUR))).toEqual({ action: "allow" });
    expect(engine.decide("bad.example", at(DAY + MINUTE))).toEqual({ action: "allow" });
  });

  it("stops suspending after a lift", async () => {
    const engine = new DatabasePolicyEngine(database.db, { mode: "open" });
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    await engine.reload();
    expect(engine.decide("bad.example", at(MINUTE)).action).toBe("suspend");

    await liftBan(database.db, ban.id, "admin", "ok", at(2 * MINUTE));
    expect(await engine.refresh()).toBe(true);
    expect(engine.decide("bad.example", at(3 * MINUTE))).toEqual({ action: "allow" });
  });

  it("prefers a ban over a weaker rule", async () => {
    await createDomainRule(
      database.db,
      { domain: "bad.example", kind: "deny", severity: "reject_content", reason: "spam" },
      "admin",
      START,
    );
    const { ban } = await banOrFail(domainViolation("bad.example", START));
    const engine = new DatabasePolicyEngine(database.db, { mode: "open" });
    await engine.reload();
    const decision = engine.decide("bad.example", at(MINUTE));
    expect(decision.action).toBe("suspend");
    expect(decision.action === "allow" ? null : decision.source).toEqual({
      kind: "ban",
      id: ban.id,
    });
  });
});
