/** `git-hosts ...`: which hosts Repo repository URLs may point at (`/api/v1/policy/git-hosts`). */
import {
  type CommandGroup,
  type CommandSpec,
  deleteCommand,
  historyCommand,
  listCommand,
  stringOption,
} from "./commands.ts";
import { formatRecord, type TableColumn } from "./output.ts";

const PATH = "/policy/git-hosts";

/** Exit status of `git-hosts check` for a denied URL, apart from 1 for failed requests. */
export const DENIED_EXIT_CODE = 3;

interface GitHostRule {
  id: string;
  host: string;
  kind: string;
  includeSubdomains: boolean;
  reason: string | null;
  createdBy: string;
  createdAt: string;
}

interface GitHostDecision {
  allowed: boolean;
  host: string;
  mode: "open" | "allowlist";
  rule: { id: string; host: string; kind: string } | null;
  reason: string;
}

const RULE_COLUMNS: TableColumn<GitHostRule>[] = [
  { header: "ID", value: (rule) => rule.id },
  { header: "HOST", value: (rule) => rule.host },
  { header: "KIND", value: (rule) => rule.kind },
  { header: "SUBDOMAINS", value: (rule) => rule.includeSubdomains },
  { header: "REASON", value: (rule) => rule.reason },
];

const RULE_FIELDS: TableColumn<GitHostRule>[] = [
  ...RULE_COLUMNS,
  { header: "CREATED BY", value: (rule) => rule.createdBy },
  { header: "CREATED AT", value: (rule) => rule.createdAt },
];

/** Describes the mode of the rules in one sentence. */
export function describeMode(mode: unknown): string {
  return mode === "allowlist"
    ? "Mode: allowlist. Repos are accepted only from hosts with an allow rule, and never from denied hosts."
    : "Mode: open. Repos are accepted from every host without a deny rule; the first allow rule makes an allowlist.";
}

const add: CommandSpec = {
  name: "add",
  summary: "Create an allow or deny rule for a git host",
  args: ["<host>"],
  options: {
    kind: { type: "string", value: "KIND", description: "allow or deny", required: true },
    reason: {
      type: "string",
      value: "TEXT",
      description: "Why the rule exists; required on deny rules, and shown when a Repo is rejected",
    },
    "no-subdomains": { type: "boolean", description: "Apply to the host itself only" },
  },
  details:
    "<host> is a host name or IP address without scheme or port, such as git.example.com. " +
    "The first allow rule turns the rules into an allowlist.",
  async run({ api }, input) {
    const rule = (await api.request("POST", PATH, {
      json: {
        host: input.args[0],
        kind: stringOption(input, "kind"),
        reason: stringOption(input, "reason"),
        includeSubdomains: input.options["no-subdomains"] === true ? false : undefined,
      },
    })) as GitHostRule;
    return { text: formatRecord(RULE_FIELDS, rule), json: rule };
  },
};

const check: CommandSpec = {
  name: "check",
  summary: "Check a repository URL against the git host rules in force",
  args: ["<url>"],
  details:
    "Accepted forms: https://host/path, http://host/path, ssh://[user@]host[:port]/path and " +
    `user@host:path. Exits with ${DENIED_EXIT_CODE} when the URL is denied.`,
  async run({ api }, input) {
    const decision = (await api.request("POST", `${PATH}/check`, {
      json: { url: input.args[0] },
    })) as GitHostDecision;
    const verdict = decision.allowed ? "allowed" : "denied";
    const rule = decision.rule === null ? "" : ` (rule ${decision.rule.id})`;
    return {
      text: `${verdict}: ${decision.host}: ${decision.reason}${rule}`,
      json: decision,
      exitCode: decision.allowed ? 0 : DENIED_EXIT_CODE,
    };
  },
};

export const gitHostCommands: CommandGroup = {
  name: "git-hosts",
  summary: "Git host rules: which hosts the repository URLs of Repos may point at",
  commands: [
    listCommand<GitHostRule>({
      summary: "List git host rules by host, and the mode they put the node in",
      path: PATH,
      columns: RULE_COLUMNS,
      filters: {
        kind: { type: "string", value: "KIND", description: "Only allow or only deny rules" },
        host: { type: "string", value: "HOST", description: "Only the rules of this host" },
      },
      empty: "No git host rules.",
      header: (lastPage) => describeMode(lastPage.mode),
      json: (items, lastPage) => ({ mode: lastPage.mode, items }),
    }),
    add,
    deleteCommand({
      name: "remove",
      summary: "Remove a git host rule; its history stays readable",
      path: (id) => `${PATH}/${id}`,
      done: (id) => `Removed git host rule ${id}.`,
    }),
    check,
    historyCommand({
      summary: "Show the history of a git host rule, newest first",
      path: (id) => `${PATH}/${id}/history`,
    }),
  ],
};
