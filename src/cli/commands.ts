/**
 * The command table of the admin CLI and builders for the common shapes of admin routes (list,
 * show, delete, history), so that a new group of commands is a few declarations.
 */
import type { ApiClient } from "./client.ts";
import { formatRecord, formatTable, type TableColumn } from "./output.ts";

/** One option of a command; `--name VALUE` for strings, `--name` for flags. */
export interface OptionSpec {
  type: "string" | "boolean";
  /** Placeholder of the value in help, such as `TEXT` or `ISO-TIME`. */
  value?: string;
  /** Help text: the setting the option changes, and its unit or allowed values. */
  description: string;
  /** Checked before the request; a missing required option is a usage error. */
  required?: boolean;
}

/** Parsed arguments of one command. */
export interface CommandInput {
  /** Positional arguments after the command name, one per entry of `args` in the spec. */
  args: string[];
  options: Record<string, string | boolean | undefined>;
}

/** Services a command uses besides its arguments. */
export interface CommandContext {
  api: ApiClient;
  /** Reads a file, or standard input for `-`. */
  readInput(file: string): Promise<string>;
  writeFile(file: string, text: string): Promise<void>;
}

/** The result of a command: text for people and data for `--json`. */
export interface CommandOutput {
  text: string;
  /** Printed as JSON with `--json`; when undefined, `text` is printed in both modes. */
  json?: unknown;
  /** Exit status; 0 when undefined. */
  exitCode?: number;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /**
   * Placeholders of the positional arguments, such as `<id>`; all are required. A last one that
   * ends in `...` takes one or more values.
   */
  args?: readonly string[];
  options?: Readonly<Record<string, OptionSpec>>;
  /** Extra help text after the options. */
  details?: string;
  /** False for a command that sends nothing to this node, so it needs no admin token. */
  needsAdminToken?: boolean;
  run(context: CommandContext, input: CommandInput): Promise<CommandOutput>;
}

export interface CommandGroup {
  name: string;
  summary: string;
  commands: readonly CommandSpec[];
}

/** Raised by a command for a wrong combination of arguments; exits with the usage status. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Returns a string option, or undefined. */
export function stringOption(input: CommandInput, name: string): string | undefined {
  const value = input.options[name];
  return typeof value === "string" ? value : undefined;
}

/** Returns the id argument, checked to be a UUID, so that a typo gets a clear message. */
export function idArgument(input: CommandInput, source = "the list command"): string {
  const id = input.args[0] ?? "";
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
    throw new UsageError(`Invalid id ${JSON.stringify(id)}: expected a UUID from ${source}`);
  }
  return id;
}

/** `list`: reads every page of `path` and prints one table row per item. */
export function listCommand<T>(spec: {
  summary: string;
  path: string;
  columns: readonly TableColumn<T>[];
  /** Query options passed through to the route, such as `kind`. */
  filters?: Readonly<Record<string, OptionSpec>>;
  /** Text when the list is empty. */
  empty: string;
  /** Lines before the table, from the last page (for example the mode of the rules). */
  header?: (lastPage: Record<string, unknown>) => string;
  /** JSON output from the items and the last page; the items when undefined. */
  json?: (items: T[], lastPage: Record<string, unknown>) => unknown;
}): CommandSpec {
  return {
    name: "list",
    summary: spec.summary,
    options: spec.filters ?? {},
    async run({ api }, input) {
      const query: Record<string, string | undefined> = {};
      for (const name of Object.keys(spec.filters ?? {})) query[name] = stringOption(input, name);
      const { items, lastPage } = await api.listAll<T>(spec.path, query);
      const table = items.length === 0 ? spec.empty : formatTable(spec.columns, items);
      const header = spec.header?.(lastPage);
      return {
        text: header === undefined ? table : `${header}\n\n${table}`,
        json: spec.json?.(items, lastPage) ?? items,
      };
    },
  };
}

/** `show <id>`: reads one item and prints its fields. */
export function showCommand<T>(spec: {
  summary: string;
  path: (id: string) => string;
  fields: readonly TableColumn<T>[];
}): CommandSpec {
  return {
    name: "show",
    summary: spec.summary,
    args: ["<id>"],
    async run({ api }, input) {
      const item = (await api.request("GET", spec.path(idArgument(input)))) as T;
      return { text: formatRecord(spec.fields, item), json: item };
    },
  };
}

/** Builds a command that calls a delete route, under a name such as `lift` or `remove`. */
export function deleteCommand(spec: {
  name: string;
  summary: string;
  path: (id: string) => string;
  /** The sentence printed on success. */
  done: (id: string) => string;
}): CommandSpec {
  return {
    name: spec.name,
    summary: spec.summary,
    args: ["<id>"],
    async run({ api }, input) {
      const id = idArgument(input);
      await api.request("DELETE", spec.path(id));
      return { text: spec.done(id), json: { id, deleted: true } };
    },
  };
}

/** An audit event as the policy routes return it. */
export interface AuditEvent {
  id: number;
  type: string;
  actor: string;
  /** Why, when the route records one (bans do). */
  reason?: string | null;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  createdAt: string;
}

/** Lists the fields that differ between `before` and `after`, as `field: old -> new`. */
export function describeChanges(event: AuditEvent): string {
  if (event.before === null || event.after === null) return "";
  const changes: string[] = [];
  for (const key of Object.keys(event.after)) {
    if (key === "updatedAt") continue;
    const before = JSON.stringify(event.before[key] ?? null);
    const after = JSON.stringify(event.after[key] ?? null);
    if (before !== after) changes.push(`${key}: ${before} -> ${after}`);
  }
  return changes.join(", ");
}

/** `history <id>`: the audit events of one item, newest first. */
export function historyCommand(spec: { summary: string; path: (id: string) => string }) {
  const columns: TableColumn<AuditEvent>[] = [
    { header: "TIME", value: (event) => event.createdAt },
    { header: "EVENT", value: (event) => event.type },
    { header: "ACTOR", value: (event) => event.actor },
    { header: "CHANGES", value: describeChanges },
  ];
  const command: CommandSpec = {
    name: "history",
    summary: spec.summary,
    args: ["<id>"],
    async run({ api }, input) {
      const body = (await api.request("GET", spec.path(idArgument(input)))) as {
        items: AuditEvent[];
      };
      const withReasons = body.items.some((event) => typeof event.reason === "string");
      const shown = withReasons
        ? [
            ...columns.slice(0, 3),
            { header: "REASON", value: (event: AuditEvent) => event.reason },
            columns[3],
          ]
        : columns;
      return {
        text: formatTable(
          shown.filter((column) => column !== undefined),
          body.items,
        ),
        json: body.items,
      };
    },
  };
  return command;
}
