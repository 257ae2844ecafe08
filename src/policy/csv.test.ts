import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { domainRuleEvents, domainRules, domainRulesVersion } from "../db/schema/index.ts";
import {
  formatMastodonCsv,
  importMastodonCsv,
  MASTODON_CSV_COLUMNS,
  parseCsvRecords,
  parseMastodonCsv,
} from "./csv.ts";
import {
  createDomainRule,
  type DomainRule,
  listDomainRuleEvents,
  loadAllDomainRules,
  readRulesVersion,
} from "./rules.ts";

const HEADER = MASTODON_CSV_COLUMNS.join(",");

describe("parseCsvRecords", () => {
  it("reads quoted fields with commas, quotes and line breaks", () => {
    const text = 'a,"b, c","say ""hi"""\r\n\r\n"multi\nline",x\nlast';
    expect(parseCsvRecords(text)).toEqual({
      records: [
        { line: 1, fields: ["a", "b, c", 'say "hi"'] },
        { line: 3, fields: ["multi\nline", "x"] },
        { line: 5, fields: ["last"] },
      ],
      problems: [],
    });
  });

  it("reports an unterminated quote on its line", () => {
    const { records, problems } = parseCsvRecords('a,b\nc,"open\nd');
    expect(records).toEqual([{ line: 1, fields: ["a", "b"] }]);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.line).toBe(2);
    expect(problems[0]?.message).toContain("closing double quote");
  });

  it("skips a byte order mark", () => {
    expect(parseCsvRecords("\ufeff#domain\n").records).toEqual([{ line: 1, fields: ["#domain"] }]);
  });
});

describe("parseMastodonCsv", () => {
  it("maps severities and reports every other line", () => {
    const text = [
      HEADER,
      "spam.example,suspend,false,false,,false",
      'Loud.Example.,silence,true,false,"rude, loud",false',
      "flags.example,noop,true,true,,false",
      "пример.рф,,,,,",
      "bad domain.example,suspend,false,false,,false",
      "ex*mple.com,suspend,false,false,,true",
      "odd.example,block,false,false,,false",
      "flag.example,suspend,maybe,false,,false",
      "comma.example,suspend,false,false,one, two,false",
      "spam.example,silence,false,false,,false",
      ",suspend,false,false,,false",
      "port.example:8443,suspend,false,false,,false",
    ].join("\n");
    const parsed = parseMastodonCsv(text);

    expect(parsed.entries).toEqual([
      { line: 2, domain: "spam.example", severity: "suspend", publicComment: null },
      { line: 3, domain: "loud.example", severity: "reject_content", publicComment: "rude, loud" },
      { line: 5, domain: "xn--e1afmkfd.xn--p1ai", severity: "suspend", publicComment: null },
    ]);
    expect(parsed.skipped).toEqual([
      { line: 4, domain: "flags.example", reason: expect.stringContaining("noop") },
    ]);
    const problemLines = parsed.problems.map((problem) => problem.line);
    expect(problemLines).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
    const messages = parsed.problems.map((problem) => problem.message);
    expect(messages[0]).toContain("spaces");
    expect(messages[1]).toContain("obfuscated");
    expect(messages[2]).toContain("expected suspend, silence or noop");
    expect(messages[3]).toContain("#reject_media");
    expect(messages[4]).toContain("double quotes");
    expect(messages[5]).toContain("already on line 2");
    expect(messages[6]).toContain("domain is empty");
    expect(messages[7]).toContain("remove :8443");
  });

  it("reads a list without header in Mastodon's column order", () => {
    const parsed = parseMastodonCsv("a.example,silence\nb.example\n");
    expect(parsed.entries.map((entry) => [entry.line, entry.domain, entry.severity])).toEqual([
      [1, "a.example", "reject_content"],
      [2, "b.example", "suspend"],
    ]);
    expect(parsed.problems).toEqual([]);
  });

  it("finds columns by header name in any order", () => {
    const parsed = parseMastodonCsv("#severity,#domain,#public_comment\nsilence,a.example,hi\n");
    expect(parsed.entries).toEqual([
      { line: 2, domain: "a.example", severity: "reject_content", publicComment: "hi" },
    ]);
  });
});

function deny(domain: string, fields: Partial<DomainRule> = {}): DomainRule {
  const time = new Date("2026-12-01T00:00:00Z");
  return {
    id: domain,
    domain,
    kind: "deny",
    severity: "suspend",
    includeSubdomains: true,
    reason: "r",
    publicComment: null,
    expiresAt: null,
    createdBy: "admin",
    createdAt: time,
    updatedAt: time,
    ...fields,
  };
}

describe("parseMastodonCsv header", () => {
  it("reports a header without a domain column", () => {
    const parsed = parseMastodonCsv("#host,#severity\na.example,suspend\n");
    expect(parsed.entries).toEqual([]);
    expect(parsed.problems).toEqual([{ line: 1, message: expect.stringContaining("#domain") }]);
  });
});

describe("formatMastodonCsv", () => {
  it("writes active deny rules sorted, quoting where needed", () => {
    const now = new Date("2026-12-05T00:00:00Z");
    const text = formatMastodonCsv(
      [
        deny("b.example", { severity: "reject_content", publicComment: 'loud, "rude"' }),
        deny("a.example"),
        deny("old.example", { expiresAt: new Date("2026-12-04T00:00:00Z") }),
        deny("peer.example", { kind: "allow", severity: null }),
      ],
      now,
    );
    expect(text).toBe(
      `${HEADER}\na.example,suspend,false,false,,false\nb.example,silence,false,false,"loud, ""rude""",false\n`,
    );
  });

  it("round-trips through the parser", () => {
    const rules = [
      deny("a.example", { publicComment: "line one\nline two, with comma" }),
      deny("xn--e1afmkfd.xn--p1ai", { severity: "reject_content" }),
    ];
    const parsed = parseMastodonCsv(formatMastodonCsv(rules));
    expect(parsed.problems).toEqual([]);
    expect(
      parsed.entries.map(({ domain, severity, publicComment }) => ({
        domain,
        severity,
        publicComment,
      })),
    ).toEqual([
      { domain: "a.example", severity: "suspend", publicComment: "line one\nline two, with comma" },
      { domain: "xn--e1afmkfd.xn--p1ai", severity: "reject_content", publicComment: null },
    ]);
  });
});

describe("importMastodonCsv", () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase(inject("postgresAdminUrl"), "policy-csv");
  });

  afterAll(async () => {
    await database?.drop();
  });

  beforeEach(async () => {
    await database.db.delete(domainRules);
    await database.db.delete(domainRuleEvents);
    await database.db.delete(domainRulesVersion);
  });

  const LIST = [
    HEADER,
    "new.example,suspend,false,false,spam wave,false",
    "raise.example,suspend,false,false,,false",
    "keep.example,silence,false,false,,false",
    "same.example,suspend,false,false,,false",
    "flags.example,noop,true,false,,false",
  ].join("\n");

  async function seed(): Promise<void> {
    for (const [domain, severity] of [
      ["raise.example", "reject_content"],
      ["keep.example", "suspend"],
      ["same.example", "suspend"],
    ] as const) {
      const result = await createDomainRule(
        database.db,
        { domain, kind: "deny", severity, reason: "admin rule" },
        "admin",
      );
      if (!result.ok) throw new Error(JSON.stringify(result.failure));
    }
  }

  it("reports the plan on a dry run and writes nothing", async () => {
    await seed();
    const report = await importMastodonCsv(database.db, LIST, {
      dryRun: true,
      onProblems: "reject",
    });
    expect(report.applied).toBe(false);
    expect(report.changes.map((change) => [change.domain, change.action])).toEqual([
      ["new.example", "create"],
      ["raise.example", "update"],
      ["keep.example", "unchanged"],
      ["same.example", "unchanged"],
    ]);
    expect(report.changes[2]?.note).toContain("stricter severity suspend");
    expect(report.skipped.map((line) => line.domain)).toEqual(["flags.example"]);
    expect(await loadAllDomainRules(database.db)).toHaveLength(3);
    expect(await readRulesVersion(database.db)).toBe(3);
  });

  it("applies creates and raises with imported events", async () => {
    await seed();
    const report = await importMastodonCsv(database.db, LIST, {
      dryRun: false,
      onProblems: "reject",
    });
    expect(report.applied).toBe(true);

    const rules = new Map(
      (await loadAllDomainRules(database.db)).map((rule) => [rule.domain, rule]),
    );
    expect(rules.get("new.example")).toMatchObject({
      severity: "suspend",
      includeSubdomains: true,
      createdBy: "import",
      publicComment: "spam wave",
      reason: "Imported from a Mastodon domain-block list: spam wave",
    });
    expect(rules.get("raise.example")?.severity).toBe("suspend");
    expect(rules.get("keep.example")?.severity).toBe("suspend");
    expect(rules.has("flags.example")).toBe(false);

    const raised = rules.get("raise.example");
    if (raised === undefined) throw new Error("raise.example missing");
    const [event] = await listDomainRuleEvents(database.db, raised.id, 1);
    expect(event).toMatchObject({ type: "imported", actor: "import" });
    expect(event?.before?.severity).toBe("reject_content");
    expect(event?.after?.severity).toBe("suspend");
    expect(await readRulesVersion(database.db)).toBe(4);

    const again = await importMastodonCsv(database.db, LIST, {
      dryRun: false,
      onProblems: "reject",
    });
    expect(again.changes.every((change) => change.action === "unchanged")).toBe(true);
    expect(await readRulesVersion(database.db)).toBe(4);
  });

  it("writes nothing when a line has a problem, unless told to skip it", async () => {
    const text = `${LIST}\nbad/domain,suspend,false,false,,false`;
    const rejected = await importMastodonCsv(database.db, text, {
      dryRun: false,
      onProblems: "reject",
    });
    expect(rejected.applied).toBe(false);
    expect(rejected.problems).toEqual([{ line: 7, message: expect.stringContaining('"/"') }]);
    expect(await loadAllDomainRules(database.db)).toEqual([]);

    const skipped = await importMastodonCsv(database.db, text, {
      dryRun: false,
      onProblems: "skip",
    });
    expect(skipped.applied).toBe(true);
    expect(skipped.problems).toHaveLength(1);
    expect(await loadAllDomainRules(database.db)).toHaveLength(4);
  });
});
