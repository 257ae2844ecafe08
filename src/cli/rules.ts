/** `rules ...`: domain rules of federation policy (`/api/v1/policy/domain-rules`). */
import {
  type CommandGroup,
  type CommandInput,
  type CommandSpec,
  deleteCommand,
  historyCommand,
  idArgument,
  listCommand,
  showCommand,
  stringOption,
  UsageError,
} from "./commands.ts";
import { formatRecord, formatTable, type TableColumn } from "./output.ts";

const PATH = "/policy/domain-rules";

interface DomainRule {
  id: string;
  domain: string;
  kind: string;
  severity: string | null;
  includeSubdomains: boolean;
  reason: string | null;
  publicComment: string | null;
  expiresAt: string | null;
  active: boolean;
  createdBy: string;
  createdAt: string;
}

const RULE_COLUMNS: TableColumn<DomainRule>[] = [
  { header: "ID", value: (rule) => rule.id },
  { header: "DOMAIN", value: (rule) => rule.domain },
  { header: "KIND", value: (rule) => rule.kind },
  { header: "SEVERITY", value: (rule) => rule.severity },
  { header: "SUBDOMAINS", value: (rule) => rule.includeSubdomains },
  { header: "EXPIRES", value: (rule) => (rule.active ? rule.expiresAt : "expired") },
  { header: "REASON", value: (rule) => rule.reason },
];

const RULE_FIELDS: TableColumn<DomainRule>[] = [
  ...RULE_COLUMNS.slice(0, 6),
  { header: "REASON", value: (rule) => rule.reason },
  { header: "PUBLIC COMMENT", value: (rule) => rule.publicComment },
  { header: "CREATED BY", value: (rule) => rule.createdBy },
  { header: "CREATED AT", value: (rule) => rule.createdAt },
];

const SEVERITY_OPTION = {
  type: "string",
  value: "SEVERITY",
  description:
    "suspend (no traffic at all) or reject_content (no Repos or Units stored); deny only",
} as const;
const REASON_OPTION = {
  type: "string",
  value: "TEXT",
  description: "Why the rule exists, for the audit trail; required on deny rules",
} as const;
const COMMENT_OPTION = {
  type: "string",
  value: "TEXT",
  description: "Text that may be shown to other servers and users",
} as const;

/** Returns the `--expires-at` value for the API: an ISO time, or null for `never`. */
function expiresAtOption(input: CommandInput): string | null | undefined {
  const value = stringOption(input, "expires-at");
  if (value === undefined) return undefined;
  return value === "never" ? null : value;
}

const add: CommandSpec = {
  name: "add",
  summary: "Create an allow or deny rule for a domain",
  args: ["<domain>"],
  options: {
    kind: { type: "string", value: "KIND", description: "allow or deny", required: true },
    severity: SEVERITY_OPTION,
    reason: REASON_OPTION,
    "public-comment": COMMENT_OPTION,
    "expires-at": {
      type: "string",
      value: "ISO-TIME",
      description: "When the rule stops applying, such as 2027-01-01T00:00:00Z; default never",
    },
    "no-subdomains": { type: "boolean", description: "Apply to the domain itself only" },
  },
  async run({ api }, input) {
    const rule = (await api.request("POST", PATH, {
      json: {
        domain: input.args[0],
        kind: stringOption(input, "kind"),
        severity: stringOption(input, "severity"),
        reason: stringOption(input, "reason"),
        publicComment: stringOption(input, "public-comment"),
        expiresAt: expiresAtOption(input) ?? undefined,
        includeSubdomains: input.options["no-subdomains"] === true ? false : undefined,
      },
    })) as DomainRule;
    return { text: formatRecord(RULE_FIELDS, rule), json: rule };
  },
};

const update: CommandSpec = {
  name: "update",
  summary: "Change the severity, subdomains, reason, public comment or expiry of a rule",
  args: ["<id>"],
  options: {
    severity: SEVERITY_OPTION,
    reason: { ...REASON_OPTION, description: "New reason; an empty text clears it" },
    "public-comment": { ...COMMENT_OPTION, description: "New public comment; empty clears it" },
    "expires-at": {
      type: "string",
      value: "ISO-TIME",
      description: "New expiry, such as 2027-01-01T00:00:00Z, or never for a permanent rule",
    },
    subdomains: { type: "boolean", description: "Apply the rule to subdomains too" },
    "no-subdomains": { type: "boolean", description: "Apply the rule to the domain itself only" },
  },
  details: "Domain and kind cannot change; add a new rule and lift this one instead.",
  async run({ api }, input) {
    const id = idArgument(input);
    if (input.options.subdomains === true && input.options["no-subdomains"] === true) {
      throw new UsageError("Pass either --subdomains or --no-subdomains, not both");
    }
    const patch: Record<string, unknown> = {
      severity: stringOption(input, "severity"),
      reason: stringOption(input, "reason"),
      publicComment: stringOption(input, "public-comment"),
      expiresAt: expiresAtOption(input),
    };
    if (input.options.subdomains === true) patch.includeSubdomains = true;
    if (input.options["no-subdomains"] === true) patch.includeSubdomains = false;
    if (Object.values(patch).every((value) => value === undefined)) {
      throw new UsageError("Nothing to change: pass at least one option; see --help");
    }
    const rule = (await api.request("PATCH", `${PATH}/${id}`, { json: patch })) as DomainRule;
    return { text: formatRecord(RULE_FIELDS, rule), json: rule };
  },
};

interface ImportReport {
  dryRun: boolean;
  applied: boolean;
  changes: {
    line: number;
    domain: string;
    action: string;
    severity: string;
    note: string | null;
  }[];
  skipped: { line: number; domain: string; reason: string }[];
  problems: { line: number; message: string }[];
}

/** Renders an import report: the changes, the skipped lines, the problems and a total. */
export function formatImportReport(report: ImportReport): string {
  const parts: string[] = [];
  if (report.changes.length > 0) {
    parts.push(
      formatTable(
        [
          { header: "LINE", value: (change) => change.line },
          { header: "DOMAIN", value: (change) => change.domain },
          { header: "ACTION", value: (change) => change.action },
          { header: "SEVERITY", value: (change) => change.severity },
          { header: "NOTE", value: (change) => change.note },
        ],
        report.changes,
      ),
    );
  }
  for (const line of report.skipped) {
    parts.push(`Skipped line ${line.line} (${line.domain}): ${line.reason}`);
  }
  for (const problem of report.problems) {
    parts.push(`Problem on line ${problem.line}: ${problem.message}`);
  }
  const count = (action: string) =>
    report.changes.filter((change) => change.action === action).length;
  const rest = `${count("unchanged")} unchanged, ${report.skipped.length} skipped, ${report.problems.length} with problems`;
  parts.push(
    report.dryRun
      ? `Dry run, nothing was written: ${count("create")} to create, ${count("update")} to update, ${rest}.`
      : `Imported: ${count("create")} created, ${count("update")} updated, ${rest}.`,
  );
  return parts.join("\n");
}

const importRules: CommandSpec = {
  name: "import",
  summary: "Import a Mastodon domain-block CSV as deny rules",
  args: ["<file>"],
  options: {
    "dry-run": { type: "boolean", description: "Show what the import would change; write nothing" },
    "skip-problems": {
      type: "boolean",
      description:
        "Import the readable lines when some have problems; by default nothing is written then",
    },
  },
  details:
    "<file> is a CSV path, or - for standard input. Mastodon suspend becomes suspend, silence " +
    "becomes reject_content, and noop lines are skipped. An import never lowers a severity.",
  async run({ api, readInput }, input) {
    const csv = await readInput(input.args[0] ?? "-");
    const report = (await api.request("POST", `${PATH}/import`, {
      query: {
        dryRun: input.options["dry-run"] === true,
        onProblems: input.options["skip-problems"] === true ? "skip" : "reject",
      },
      body: csv,
      contentType: "text/csv",
    })) as ImportReport;
    // A dry run with problem lines predicts a failed import unless problems are skipped, so it
    // exits like the real import would.
    const wouldFail =
      report.dryRun && report.problems.length > 0 && input.options["skip-problems"] !== true;
    const text = formatImportReport(report);
    return {
      text: wouldFail
        ? `${text}\nThe import would write nothing because of the problems; fix them or add --skip-problems.`
        : text,
      json: report,
      ...(wouldFail ? { exitCode: 1 } : {}),
    };
  },
};

const exportRules: CommandSpec = {
  name: "export",
  summary: "Export the deny rules in force as Mastodon domain-block CSV",
  options: {
    output: { type: "string", value: "FILE", description: "Write the CSV to FILE, not to stdout" },
  },
  async run({ api, writeFile }, input) {
    const csv = String(await api.request("GET", `${PATH}/export`));
    const file = stringOption(input, "output");
    if (file === undefined) return { text: csv.replace(/\n$/, "") };
    await writeFile(file, csv);
    const rules = Math.max(csv.split("\n").filter((line) => line !== "").length - 1, 0);
    return { text: `Wrote ${rules} rules to ${file}`, json: { file, rules } };
  },
};

export const ruleCommands: CommandGroup = {
  name: "rules",
  summary: "Domain rules of federation policy: allow and deny rules for remote servers",
  commands: [
    listCommand<DomainRule>({
      summary: "List domain rules by domain, expired ones included",
      path: PATH,
      columns: RULE_COLUMNS,
      filters: {
        kind: { type: "string", value: "KIND", description: "Only allow or only deny rules" },
        domain: { type: "string", value: "DOMAIN", description: "Only the rules of this domain" },
      },
      empty: "No domain rules.",
    }),
    showCommand<DomainRule>({
      summary: "Show one domain rule",
      path: (id) => `${PATH}/${id}`,
      fields: RULE_FIELDS,
    }),
    add,
    update,
    deleteCommand({
      name: "lift",
      summary: "Lift a domain rule; its history stays readable",
      path: (id) => `${PATH}/${id}`,
      done: (id) => `Lifted domain rule ${id}.`,
    }),
    historyCommand({
      summary: "Show the history of a domain rule, newest first",
      path: (id) => `${PATH}/${id}/events`,
    }),
    importRules,
    exportRules,
  ],
};
