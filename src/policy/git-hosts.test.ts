import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { gitHostRuleEvents, gitHostRules } from "../db/schema/index.ts";
import {
  checkRepositoryUrl,
  createGitHostRule,
  type GitHostRule,
  type GitHostRuleInput,
  GitHostRuleSet,
  listGitHostRuleEvents,
  removeGitHostRule,
  updateGitHostRule,
} from "./git-hosts.ts";
import { InvalidRepositoryUrlError } from "./repository-url.ts";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "git-hosts");
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  await database.db.delete(gitHostRules);
  await database.db.delete(gitHostRuleEvents);
});

async function addRule(input: GitHostRuleInput): Promise<GitHostRule> {
  const result = await createGitHostRule(database.db, input, "admin");
  if (!result.ok) throw new Error(`rule not created: ${JSON.stringify(result.failure)}`);
  return result.value;
}

async function isAllowed(url: string): Promise<boolean> {
  const fromDatabase = await checkRepositoryUrl(database.db, url);
  // The rule set of the import must decide the same way as the per-check query.
  const fromRuleSet = (await GitHostRuleSet.load(database.db)).checkRepositoryUrl(url);
  expect(fromRuleSet).toEqual(fromDatabase);
  return fromDatabase.allowed;
}

describe("git host rule writes", () => {
  it("stores the canonical host", async () => {
    const rule = await addRule({
      host: "Git.Пример.РФ.",
      kind: "deny",
      reason: "mirror of malware",
    });
    expect(rule.host).toBe("git.xn--e1afmkfd.xn--p1ai");
    expect(rule.includeSubdomains).toBe(true);
    expect(rule.createdBy).toBe("admin");
  });

  it("rejects a port, a wildcard and a URL", async () => {
    for (const host of ["github.com:443", "*.github.com", "https://github.com/x.git"]) {
      const result = await createGitHostRule(database.db, { host, kind: "allow" }, "admin");
      expect(result.ok, host).toBe(false);
      if (!result.ok) expect(result.failure).toMatchObject({ kind: "invalid", field: "host" });
    }
  });

  it("requires a reason on deny rules", async () => {
    const result = await createGitHostRule(
      database.db,
      { host: "evil.example", kind: "deny", reason: "  " },
      "admin",
    );
    expect(result).toMatchObject({ ok: false, failure: { kind: "invalid", field: "reason" } });
  });

  it("reports an existing rule of the same kind", async () => {
    const first = await addRule({ host: "github.com", kind: "allow" });
    const second = await createGitHostRule(
      database.db,
      { host: "GITHUB.com", kind: "allow" },
      "admin",
    );
    expect(second).toMatchObject({
      ok: false,
      failure: { kind: "exists", rule: { id: first.id } },
    });
  });

  it("records created, updated and removed events", async () => {
    const rule = await addRule({ host: "evil.example", kind: "deny", reason: "malware" });
    const updated = await updateGitHostRule(
      database.db,
      rule.id,
      { includeSubdomains: false, reason: "malware mirror" },
      "admin",
    );
    expect(updated).toMatchObject({
      ok: true,
      value: { includeSubdomains: false, reason: "malware mirror" },
    });
    expect(await removeGitHostRule(database.db, rule.id, "admin")).toMatchObject({ ok: true });

    const events = await listGitHostRuleEvents(database.db, rule.id, 10);
    expect(events.map((event) => event.type)).toEqual(["removed", "updated", "created"]);
    expect(events[0]?.after).toBeNull();
    expect(events[0]?.before).toMatchObject({ host: "evil.example", reason: "malware mirror" });
    expect(events[1]?.before).toMatchObject({ includeSubdomains: true, reason: "malware" });
    expect(events[1]?.after).toMatchObject({ includeSubdomains: false });
    expect(events.every((event) => event.actor === "admin")).toBe(true);
  });

  it("keeps the reason of a deny rule required on update", async () => {
    const rule = await addRule({ host: "evil.example", kind: "deny", reason: "malware" });
    const result = await updateGitHostRule(database.db, rule.id, { reason: null }, "admin");
    expect(result).toMatchObject({ ok: false, failure: { kind: "invalid", field: "reason" } });
  });

  it("reports unknown ids as not found", async () => {
    const id = "00000000-0000-4000-8000-000000000000";
    expect(await removeGitHostRule(database.db, id, "admin")).toMatchObject({
      ok: false,
      failure: { kind: "not_found", id },
    });
    expect(await updateGitHostRule(database.db, id, { reason: "x" }, "admin")).toMatchObject({
      ok: false,
      failure: { kind: "not_found", id },
    });
  });
});

describe("git host decisions", () => {
  it("allows every host without rules", async () => {
    const decision = await checkRepositoryUrl(database.db, "git@gitlab.com:group/repo.git");
    expect(decision).toEqual({
      allowed: true,
      host: "gitlab.com",
      mode: "open",
      rule: null,
      reason: "no git host rule matches the host",
    });
  });

  it("denies a host in every URL form", async () => {
    const rule = await addRule({ host: "evil.example", kind: "deny", reason: "malware" });
    for (const url of [
      "https://evil.example/o/r.git",
      "http://EVIL.example:8080/o/r.git",
      "ssh://git@evil.example:2222/o/r.git",
      "git@evil.example.:o/r.git",
      "https://user@evil.example/o/r.git",
    ]) {
      const decision = await checkRepositoryUrl(database.db, url);
      expect(decision.allowed, url).toBe(false);
      expect(decision.rule?.id, url).toBe(rule.id);
      expect(decision.reason, url).toBe("denied by the git host rule for evil.example: malware");
    }
    expect(await isAllowed("https://github.com/o/r.git")).toBe(true);
  });

  it("matches subdomains only when the rule includes them", async () => {
    await addRule({ host: "example.org", kind: "deny", reason: "whole domain" });
    await addRule({
      host: "corp.example",
      kind: "deny",
      reason: "apex only",
      includeSubdomains: false,
    });
    expect(await isAllowed("https://git.example.org/o/r.git")).toBe(false);
    expect(await isAllowed("https://a.b.example.org/o/r.git")).toBe(false);
    expect(await isAllowed("https://notexample.org/o/r.git")).toBe(true);
    expect(await isAllowed("https://corp.example/o/r.git")).toBe(false);
    expect(await isAllowed("https://git.corp.example/o/r.git")).toBe(true);
  });

  it("matches Unicode hosts through their punycode", async () => {
    await addRule({ host: "xn--e1afmkfd.xn--p1ai", kind: "deny", reason: "blocked" });
    expect(await isAllowed("https://пример.рф/o/r.git")).toBe(false);
    expect(await isAllowed("git@ПРИМЕР.рф:o/r.git")).toBe(false);
    expect(await isAllowed("ssh://git@git.пример.рф/o/r.git")).toBe(false);
  });

  it("matches IP addresses exactly", async () => {
    await addRule({ host: "[2001:db8::1]", kind: "deny", reason: "lab server" });
    await addRule({ host: "192.0.2.10", kind: "deny", reason: "lab server" });
    expect(await isAllowed("ssh://git@[2001:DB8:0::1]:22/r.git")).toBe(false);
    expect(await isAllowed("http://192.0.2.10/r.git")).toBe(false);
    expect(await isAllowed("http://192.0.2.11/r.git")).toBe(true);
  });

  it("becomes an allowlist with the first allow rule", async () => {
    expect(await isAllowed("https://gitlab.com/g/r.git")).toBe(true);
    const allow = await addRule({ host: "github.com", kind: "allow" });

    const denied = await checkRepositoryUrl(database.db, "https://gitlab.com/g/r.git");
    expect(denied).toMatchObject({ allowed: false, mode: "allowlist", rule: null });
    expect(denied.reason).toContain("gitlab.com is not on this node's allowlist");
    const allowed = await checkRepositoryUrl(database.db, "git@github.com:o/r.git");
    expect(allowed).toMatchObject({ allowed: true, mode: "allowlist", rule: { id: allow.id } });
    expect(await isAllowed("https://api.github.com/o/r.git")).toBe(true);

    await removeGitHostRule(database.db, allow.id, "admin");
    expect(await isAllowed("https://gitlab.com/g/r.git")).toBe(true);
  });

  it("lets a deny rule win over a matching allow rule", async () => {
    await addRule({ host: "github.com", kind: "allow" });
    await addRule({ host: "gist.github.com", kind: "deny", reason: "no gists" });
    await addRule({
      host: "github.com",
      kind: "deny",
      reason: "both kinds",
      includeSubdomains: false,
    });
    expect(await isAllowed("https://gist.github.com/o/r.git")).toBe(false);
    expect(await isAllowed("https://github.com/o/r.git")).toBe(false);
    expect(await isAllowed("https://codeload.github.com/o/r.git")).toBe(true);
  });

  it("names the most specific deny rule", async () => {
    await addRule({ host: "example.org", kind: "deny", reason: "domain" });
    const specific = await addRule({ host: "git.example.org", kind: "deny", reason: "host" });
    const decision = await checkRepositoryUrl(database.db, "https://git.example.org/r.git");
    expect(decision.rule?.id).toBe(specific.id);
  });

  it("rejects URLs in other forms", async () => {
    await expect(checkRepositoryUrl(database.db, "git://github.com/o/r.git")).rejects.toThrow(
      InvalidRepositoryUrlError,
    );
  });
});
