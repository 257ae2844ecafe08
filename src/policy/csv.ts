/**
 * Import and export of deny rules in Mastodon's domain-block CSV format, as Mastodon's admin
 * export writes it and shared blocklists use it:
 *
 *     #domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate
 *
 * Mastodon `suspend` maps to `suspend` and `silence` to `reject_content`. A `noop` block only
 * sets media and report flags, which this node has no use for, so such lines are skipped with a
 * reason. Mastodon blocks always cover subdomains, so imported rules include subdomains.
 */
import { eq, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import { domainRules } from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import { canonicalRuleDomain, InvalidHostError } from "./domain.ts";
import {
  bumpRulesVersion,
  type DomainRule,
  findDomainRules,
  MAX_PUBLIC_COMMENT_LENGTH,
  MAX_REASON_LENGTH,
  type RuleEvent,
  WRITE_BATCH_SIZE,
  writeRuleEvents,
} from "./rules.ts";
import type { RuleSeverity } from "./types.ts";

const logger = getNodeLogger("policy", "csv");

export const MASTODON_CSV_COLUMNS = [
  "#domain",
  "#severity",
  "#reject_media",
  "#reject_reports",
  "#public_comment",
  "#obfuscate",
] as const;

/** Most lines one import reads, so that one request cannot hold a transaction for minutes. */
export const MAX_IMPORT_LINES = 20_000;

const IMPORT_REASON = "Imported from a Mastodon domain-block list";

/** One usable line of a blocklist. */
export interface BlocklistEntry {
  line: number;
  domain: string;
  severity: RuleSeverity;
  publicComment: string | null;
}

/** A line that could not be read; `message` says what is wrong and how to fix it. */
export interface CsvProblem {
  line: number;
  message: string;
}

/** A valid line that the import does not turn into a rule, and why. */
export interface CsvSkippedLine {
  line: number;
  domain: string;
  reason: string;
}

export interface ParsedBlocklist {
  entries: BlocklistEntry[];
  skipped: CsvSkippedLine[];
  problems: CsvProblem[];
}

interface CsvRecord {
  /** 1-based line on which the record starts; a quoted field may span lines. */
  line: number;
  fields: string[];
}

/**
 * Splits CSV text into records (RFC 4180: fields in double quotes may contain commas, line
 * breaks and doubled quotes). Blank lines give no record. An unterminated quote is a problem on
 * the line where its field starts, and ends the text.
 */
export function parseCsvRecords(text: string): { records: CsvRecord[]; problems: CsvProblem[] } {
  const records: CsvRecord[] = [];
  const problems: CsvProblem[] = [];
  let line = 1;
  let position = text.charCodeAt(0) === 0xfeff ? 1 : 0;

  while (position < text.length) {
    const recordLine = line;
    const fields: string[] = [];
    let field = "";
    let fieldStarted = false;
    let ended = false;

    while (!ended) {
      if (position >= text.length) {
        fields.push(field);
        break;
      }
      const character = text[position];
      if (character === '"' && !fieldStarted) {
        const quoteLine = line;
        position++;
        let closed = false;
        while (position < text.length) {
          const inner = text[position];
          if (inner === '"') {
            if (text[position + 1] === '"') {
              field += '"';
              position += 2;
              continue;
            }
            position++;
            closed = true;
            break;
          }
          if (inner === "\n") line++;
          field += inner;
          position++;
        }
        if (!closed) {
          problems.push({
            line: quoteLine,
            message:
              "a quoted field has no closing double quote; close it, and write a double quote inside a field as two",
          });
          return { records, problems };
        }
        fieldStarted = true;
        continue;
      }
      if (character === ",") {
        fields.push(field);
        field = "";
        fieldStarted = false;
        position++;
        continue;
      }
      if (character === "\r" && text[position + 1] === "\n") position++;
      if (character === "\n" || character === "\r") {
        fields.push(field);
        position++;
        line++;
        ended = true;
        continue;
      }
      field += character;
      fieldStarted = true;
      position++;
    }

    const blank = fields.length === 1 && fields[0]?.trim() === "";
    if (!blank) records.push({ line: recordLine, fields });
  }
  return { records, problems };
}

const SEVERITIES: Record<string, RuleSeverity | "noop"> = {
  suspend: "suspend",
  silence: "reject_content",
  noop: "noop",
};

const FLAG_VALUES = new Set(["", "true", "false"]);

/** A first line that names a `domain` column, or starts with `#`, is a header. */
function isHeader(record: CsvRecord): boolean {
  if (record.fields[0]?.trim().startsWith("#")) return true;
  return record.fields.some((field) => field.trim().toLowerCase() === "domain");
}

/** Column positions by name (`#` optional); without a header, Mastodon's column order. */
function columnsOf(header: CsvRecord | undefined): Map<string, number> {
  const names = header ? header.fields : MASTODON_CSV_COLUMNS;
  const columns = new Map<string, number>();
  names.forEach((name, index) => {
    columns.set(name.trim().toLowerCase().replace(/^#/, ""), index);
  });
  return columns;
}

/**
 * Reads a Mastodon domain-block CSV. The header is optional; without one, the columns are in
 * Mastodon's order. A missing or empty severity counts as `suspend`, the strictest. Every line
 * ends up in exactly one of entries, skipped lines and problems.
 */
export function parseMastodonCsv(text: string): ParsedBlocklist {
  const { records, problems } = parseCsvRecords(text);
  const entries: BlocklistEntry[] = [];
  const skipped: CsvSkippedLine[] = [];
  const firstLineOf = new Map<string, number>();

  const header = records[0] !== undefined && isHeader(records[0]) ? records[0] : undefined;
  const columns = columnsOf(header);
  const width = header ? header.fields.length : MASTODON_CSV_COLUMNS.length;
  const body = header ? records.slice(1) : records;

  if (header && !columns.has("domain")) {
    problems.push({
      line: header.line,
      message: `the header has no #domain column; start the file with ${MASTODON_CSV_COLUMNS.join(",")}`,
    });
    return { entries: [], skipped: [], problems };
  }

  if (body.length > MAX_IMPORT_LINES) {
    problems.push({
      line: body[MAX_IMPORT_LINES]?.line ?? 0,
      message: `the list has more than ${MAX_IMPORT_LINES} lines; split it into several imports`,
    });
    return { entries: [], skipped: [], problems };
  }

  for (const record of body) {
    const value = (name: string): string => {
      const index = columns.get(name);
      return index === undefined ? "" : (record.fields[index] ?? "").trim();
    };
    const problem = (message: string) => problems.push({ line: record.line, message });

    if (record.fields.length > width) {
      problem(
        `the line has ${record.fields.length} fields, the header ${width}; put fields that contain commas in double quotes`,
      );
      continue;
    }

    const domainText = value("domain");
    if (domainText === "") {
      problem("the domain is empty; put the domain in the first column or remove the line");
      continue;
    }
    if (domainText.includes("*") && !domainText.startsWith("*.")) {
      problem(
        `the domain ${domainText} is obfuscated with *; replace it with the full domain or remove the line`,
      );
      continue;
    }
    let domain: string;
    try {
      domain = canonicalRuleDomain(domainText);
    } catch (error) {
      if (!(error instanceof InvalidHostError)) throw error;
      problem(`invalid domain ${JSON.stringify(domainText)}: ${error.reason}`);
      continue;
    }

    const severityText = value("severity").toLowerCase();
    const severity = severityText === "" ? "suspend" : SEVERITIES[severityText];
    if (severity === undefined) {
      problem(
        `unknown severity ${JSON.stringify(severityText)}; expected suspend, silence or noop`,
      );
      continue;
    }

    const badFlag = ["reject_media", "reject_reports", "obfuscate"].find(
      (name) => !FLAG_VALUES.has(value(name).toLowerCase()),
    );
    if (badFlag !== undefined) {
      problem(`#${badFlag} is ${JSON.stringify(value(badFlag))}; expected true, false or empty`);
      continue;
    }

    const comment = value("public_comment");
    if (comment.length > MAX_PUBLIC_COMMENT_LENGTH) {
      problem(`#public_comment is longer than ${MAX_PUBLIC_COMMENT_LENGTH} characters; shorten it`);
      continue;
    }

    const firstLine = firstLineOf.get(domain);
    if (firstLine !== undefined) {
      problem(`${domain} is already on line ${firstLine}; keep one line per domain`);
      continue;
    }
    firstLineOf.set(domain, record.line);

    if (severity === "noop") {
      skipped.push({
        line: record.line,
        domain,
        reason: "severity noop only sets the media and report flags, which this node does not use",
      });
      continue;
    }
    entries.push({
      line: record.line,
      domain,
      severity,
      publicComment: comment === "" ? null : comment,
    });
  }
  return { entries, skipped, problems };
}

/** Quotes a field when it contains a comma, a double quote or a line break. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * Writes the deny rules that are in force at `now` as Mastodon CSV, sorted by domain. Allow rules
 * have no place in this format. Mastodon blocks always cover subdomains, so a rule without
 * subdomains widens when another server imports it.
 */
export function formatMastodonCsv(rules: readonly DomainRule[], now = new Date()): string {
  const lines = [MASTODON_CSV_COLUMNS.join(",")];
  const active = rules
    .filter((rule) => rule.kind === "deny")
    .filter((rule) => rule.expiresAt === null || rule.expiresAt.getTime() > now.getTime())
    .sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0));
  for (const rule of active) {
    const severity = rule.severity === "reject_content" ? "silence" : "suspend";
    lines.push(
      [rule.domain, severity, "false", "false", csvField(rule.publicComment ?? ""), "false"].join(
        ",",
      ),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** What an import does, or would do, with one entry. */
export interface ImportChange {
  line: number;
  domain: string;
  action: "create" | "update" | "unchanged";
  severity: RuleSeverity;
  /** The rule before the import, when the domain had a deny rule. */
  existing: { id: string; severity: RuleSeverity | null; publicComment: string | null } | null;
  note: string | null;
}

export interface ImportReport {
  dryRun: boolean;
  /** False when nothing was written: a dry run, or problems with `onProblems: "reject"`. */
  applied: boolean;
  changes: ImportChange[];
  skipped: CsvSkippedLine[];
  problems: CsvProblem[];
}

export interface ImportOptions {
  dryRun: boolean;
  /** `reject` writes nothing when any line has a problem; `skip` imports the other lines. */
  onProblems: "reject" | "skip";
}

const STRICTNESS: Record<RuleSeverity, number> = { suspend: 0, reject_content: 1 };

function importReason(comment: string | null): string {
  const reason = comment === null ? IMPORT_REASON : `${IMPORT_REASON}: ${comment}`;
  return reason.slice(0, MAX_REASON_LENGTH);
}

/**
 * Decides per entry: create a deny rule for a new domain; raise the severity of an existing deny
 * rule when the list is stricter (an import never weakens a rule); otherwise leave it.
 */
export function planImport(
  entries: readonly BlocklistEntry[],
  existing: readonly DomainRule[],
): ImportChange[] {
  const byDomain = new Map(existing.map((rule) => [rule.domain, rule]));
  return entries.map((entry): ImportChange => {
    const rule = byDomain.get(entry.domain);
    if (rule === undefined) {
      return { ...baseChange(entry), action: "create", existing: null, note: null };
    }
    const current = rule.severity ?? "suspend";
    const existingFields = {
      id: rule.id,
      severity: rule.severity,
      publicComment: rule.publicComment,
    };
    if (STRICTNESS[entry.severity] < STRICTNESS[current]) {
      return {
        ...baseChange(entry),
        action: "update",
        existing: existingFields,
        note: `raises the severity from ${current} to ${entry.severity}`,
      };
    }
    const note =
      STRICTNESS[entry.severity] > STRICTNESS[current]
        ? `keeps the stricter severity ${current} of the existing rule`
        : null;
    return { ...baseChange(entry), action: "unchanged", existing: existingFields, note };
  });
}

function baseChange(entry: BlocklistEntry) {
  return { line: entry.line, domain: entry.domain, severity: entry.severity };
}

/**
 * Imports a Mastodon domain-block CSV as deny rules created by `import`. A dry run returns the
 * same report without writing. Otherwise all changes commit in one transaction, each with an
 * `imported` audit event.
 */
export async function importMastodonCsv(
  db: DatabaseLike,
  text: string,
  options: ImportOptions,
): Promise<ImportReport> {
  const parsed = parseMastodonCsv(text);
  const domains = parsed.entries.map((entry) => entry.domain);
  const blockedByProblems = options.onProblems === "reject" && parsed.problems.length > 0;

  if (options.dryRun || blockedByProblems) {
    const existing = await findDomainRules(db, domains, "deny");
    return {
      dryRun: options.dryRun,
      applied: false,
      changes: planImport(parsed.entries, existing),
      skipped: parsed.skipped,
      problems: parsed.problems,
    };
  }

  const changes = await db.transaction(async (tx) => {
    const existing = await findDomainRules(tx, domains, "deny", true);
    const planned = planImport(parsed.entries, existing);
    const events = [
      ...(await createImported(tx, planned, parsed.entries)),
      ...(await raiseSeverities(tx, planned, existing)),
    ];
    await writeRuleEvents(tx, events);
    if (events.length > 0) await bumpRulesVersion(tx);
    return planned;
  });

  logger.info(
    "Imported a domain-block list: {created} created, {updated} updated, {skipped} skipped, {problems} problems",
    {
      created: changes.filter((change) => change.action === "create").length,
      updated: changes.filter((change) => change.action === "update").length,
      skipped: parsed.skipped.length,
      problems: parsed.problems.length,
    },
  );
  return {
    dryRun: false,
    applied: true,
    changes,
    skipped: parsed.skipped,
    problems: parsed.problems,
  };
}

/** Inserts the planned new rules; a rule created concurrently turns its change `unchanged`. */
async function createImported(
  tx: DatabaseLike,
  planned: ImportChange[],
  entries: readonly BlocklistEntry[],
): Promise<RuleEvent[]> {
  const commentByLine = new Map(entries.map((entry) => [entry.line, entry.publicComment]));
  const creates = planned.filter((change) => change.action === "create");
  const created = new Map<string, DomainRule>();
  for (let start = 0; start < creates.length; start += WRITE_BATCH_SIZE) {
    const rows = creates.slice(start, start + WRITE_BATCH_SIZE).map((change) => {
      const publicComment = commentByLine.get(change.line) ?? null;
      return {
        domain: change.domain,
        kind: "deny" as const,
        severity: change.severity,
        includeSubdomains: true,
        reason: importReason(publicComment),
        publicComment,
        createdBy: "import" as const,
      };
    });
    const inserted = await tx
      .insert(domainRules)
      .values(rows)
      .onConflictDoNothing({ target: [domainRules.domain, domainRules.kind] })
      .returning();
    for (const rule of inserted) created.set(rule.domain, rule);
  }

  const events: RuleEvent[] = [];
  for (const change of creates) {
    const rule = created.get(change.domain);
    if (rule === undefined) {
      // Another request created the rule after this import read the table.
      change.action = "unchanged";
      change.note = "a rule for this domain was created during the import; run the import again";
      continue;
    }
    events.push({ type: "imported", actor: "import", before: null, after: rule });
  }
  return events;
}

async function raiseSeverities(
  tx: DatabaseLike,
  planned: readonly ImportChange[],
  existing: readonly DomainRule[],
): Promise<RuleEvent[]> {
  const byId = new Map(existing.map((rule) => [rule.id, rule]));
  const events: RuleEvent[] = [];
  for (const change of planned) {
    if (change.action !== "update" || change.existing === null) continue;
    const before = byId.get(change.existing.id);
    if (before === undefined) continue;
    const [after] = await tx
      .update(domainRules)
      .set({ severity: change.severity, updatedAt: sql`now()` })
      .where(eq(domainRules.id, before.id))
      .returning();
    if (after === undefined) throw new Error(`Rule ${before.id} vanished while locked`);
    events.push({ type: "imported", actor: "import", before, after });
  }
  return events;
}
