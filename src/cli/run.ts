/**
 * The admin CLI without process globals: parses `<group> <command> [args] [options]`, runs the
 * command against a node's REST API and returns the exit status.
 *
 * Exit statuses: 0 success, 1 failed request (the API's error message is printed), 2 usage or
 * setup error, 3 a `git-hosts check` whose URL is denied.
 */
import { readFile, writeFile } from "node:fs/promises";
import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import { banCommands } from "./bans.ts";
import { bridgeCommands } from "./bridges.ts";
import {
  ApiClient,
  ApiError,
  CliSetupError,
  DEFAULT_NODE_PORT,
  resolveAdminToken,
  resolveNodeUrl,
} from "./client.ts";
import {
  type CommandContext,
  type CommandGroup,
  type CommandSpec,
  type OptionSpec,
  UsageError,
} from "./commands.ts";
import { gitHostCommands } from "./git-hosts.ts";
import { reportCommands } from "./reports.ts";
import { ruleCommands } from "./rules.ts";
import { telegramCommands } from "./telegram.ts";
import { userCommands } from "./users.ts";

/** Every command group; a new group is one more entry here. */
export const COMMAND_GROUPS: readonly CommandGroup[] = [
  ruleCommands,
  gitHostCommands,
  banCommands,
  bridgeCommands,
  telegramCommands,
  userCommands,
  reportCommands,
];

const USAGE_PREFIX = "npm run admin --";

const GLOBAL_OPTIONS: Record<string, OptionSpec & { short?: string }> = {
  url: {
    type: "string",
    value: "URL",
    description: `Address of the node; default http://127.0.0.1:<PU_NODE_PORT or ${DEFAULT_NODE_PORT}>`,
  },
  token: {
    type: "string",
    value: "TOKEN",
    description:
      "Admin token; default PU_NODE_ADMIN_TOKEN, then the file <PU_NODE_DATA_DIR or ./data>/admin-token",
  },
  json: { type: "boolean", description: "Print JSON for scripts instead of a table" },
  help: { type: "boolean", short: "h", description: "Print help for the command" },
};

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Reads standard input, for `rules import -`. */
  readStdin(): Promise<string>;
}

function toParseArgsOptions(options: Record<string, OptionSpec & { short?: string }>) {
  const config: ParseArgsOptionsConfig = {};
  for (const [name, option] of Object.entries(options)) {
    config[name] = option.short
      ? { type: option.type, short: option.short }
      : { type: option.type };
  }
  return config;
}

function describeOptions(options: Record<string, OptionSpec & { short?: string }>): string[] {
  const entries = Object.entries(options).map(([name, option]) => {
    const flag = `${option.short ? `-${option.short}, ` : ""}--${name}${option.value ? ` ${option.value}` : ""}`;
    const required = option.required ? " (required)" : "";
    return [flag, `${option.description}${required}`] as const;
  });
  const width = Math.max(0, ...entries.map(([flag]) => flag.length));
  return entries.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`);
}

function overviewHelp(): string {
  const lines = [`Usage: ${USAGE_PREFIX} <group> <command> [arguments] [options]`, ""];
  lines.push("Administers a running Pepeunit Node through its REST API.", "");
  for (const group of COMMAND_GROUPS) {
    lines.push(`${group.name}: ${group.summary}`);
    for (const command of group.commands) {
      const args = command.args?.join(" ") ?? "";
      lines.push(`  ${`${command.name} ${args}`.padEnd(22)} ${command.summary}`);
    }
    lines.push("");
  }
  lines.push("Options of every command:", ...describeOptions(GLOBAL_OPTIONS), "");
  lines.push(`Run '${USAGE_PREFIX} <group> <command> --help' for the options of one command.`);
  return lines.join("\n");
}

function groupHelp(group: CommandGroup): string {
  const lines = [`Usage: ${USAGE_PREFIX} ${group.name} <command> [arguments] [options]`, ""];
  lines.push(`${group.summary}.`, "", "Commands:");
  for (const command of group.commands) {
    const args = command.args?.join(" ") ?? "";
    lines.push(`  ${`${command.name} ${args}`.padEnd(22)} ${command.summary}`);
  }
  return lines.join("\n");
}

function commandHelp(group: CommandGroup, command: CommandSpec): string {
  const args = command.args?.length ? ` ${command.args.join(" ")}` : "";
  const lines = [`Usage: ${USAGE_PREFIX} ${group.name} ${command.name}${args} [options]`, ""];
  lines.push(`${command.summary}.`);
  if (command.details) lines.push("", command.details);
  const options = command.options ?? {};
  if (Object.keys(options).length > 0) lines.push("", "Options:", ...describeOptions(options));
  lines.push("", "Options of every command:", ...describeOptions(GLOBAL_OPTIONS));
  return lines.join("\n");
}

/** Finds the group and command names, which come before any command option. */
function findCommand(argv: string[]): {
  group?: CommandGroup;
  command?: CommandSpec;
  names: string[];
} {
  const { positionals } = parseArgs({
    args: argv,
    options: toParseArgsOptions(GLOBAL_OPTIONS),
    strict: false,
    allowPositionals: true,
  });
  const [groupName, commandName] = positionals;
  const group = COMMAND_GROUPS.find((candidate) => candidate.name === groupName);
  const command = group?.commands.find((candidate) => candidate.name === commandName);
  return { group, command, names: positionals.slice(0, 2) };
}

function createContext(api: ApiClient, io: CliIo): CommandContext {
  return {
    api,
    readInput: async (file) => (file === "-" ? await io.readStdin() : await readFile(file, "utf8")),
    writeFile: async (file, text) => await writeFile(file, text, "utf8"),
  };
}

/** Prints an API error: its message, its field issues or import problems, and the status. */
function printApiError(error: ApiError, io: CliIo): void {
  const status =
    error.status === null ? "" : ` (HTTP ${error.status}${error.code ? `, ${error.code}` : ""})`;
  io.stderr(`Error: ${error.message}${status}\n`);
  const details = error.details as { problems?: { line: number; message: string }[] } | undefined;
  for (const problem of details?.problems ?? []) {
    io.stderr(`  line ${problem.line}: ${problem.message}\n`);
  }
}

/** Runs the CLI with `argv` (the arguments after the script) and returns the exit status. */
export async function runAdminCli(argv: string[], io: CliIo): Promise<number> {
  const { group, command, names } = findCommand(argv);
  const wantsHelp = argv.includes("--help") || argv.includes("-h") || names[0] === "help";

  if (group === undefined) {
    if (wantsHelp || names.length === 0) {
      io.stdout(`${overviewHelp()}\n`);
      return names.length === 0 && !wantsHelp ? 2 : 0;
    }
    io.stderr(`Unknown command group "${names[0]}".\n\n${overviewHelp()}\n`);
    return 2;
  }
  if (command === undefined) {
    if (wantsHelp || names.length === 1) {
      io.stdout(`${groupHelp(group)}\n`);
      return wantsHelp ? 0 : 2;
    }
    io.stderr(`Unknown command "${group.name} ${names[1]}".\n\n${groupHelp(group)}\n`);
    return 2;
  }
  if (wantsHelp) {
    io.stdout(`${commandHelp(group, command)}\n`);
    return 0;
  }

  const seeHelp = `Run '${USAGE_PREFIX} ${group.name} ${command.name} --help' for usage.`;
  try {
    const options = { ...GLOBAL_OPTIONS, ...(command.options ?? {}) };
    const parsed = parseArgs({
      args: argv,
      options: toParseArgsOptions(options),
      strict: true,
      allowPositionals: true,
    });
    const args = parsed.positionals.slice(2);
    const expected = command.args ?? [];
    // A last placeholder ending in "..." takes one or more values.
    const variadic = expected.at(-1)?.endsWith("...") === true;
    const countMatches = variadic
      ? args.length >= expected.length
      : args.length === expected.length;
    if (!countMatches) {
      const expectedText = expected.length === 0 ? "no arguments" : expected.join(" ");
      throw new UsageError(
        `${group.name} ${command.name} expects ${expectedText}, but got ${args.length === 0 ? "none" : args.join(" ")}`,
      );
    }
    for (const [name, option] of Object.entries(command.options ?? {})) {
      if (option.required && parsed.values[name] === undefined) {
        throw new UsageError(`Missing option --${name}: ${option.description}`);
      }
    }
    const values = parsed.values as Record<string, string | boolean | undefined>;

    const url = resolveNodeUrl(stringValue(values.url), io.env);
    // A command that talks to no node still gets a client, with an empty token it never sends.
    const token =
      command.needsAdminToken === false
        ? ""
        : await resolveAdminToken(stringValue(values.token), io.env, io.cwd);
    const output = await command.run(createContext(new ApiClient(url, token), io), {
      args,
      options: values,
    });
    const text =
      values.json === true && output.json !== undefined
        ? JSON.stringify(output.json, null, 2)
        : output.text;
    io.stdout(`${text}\n`);
    return output.exitCode ?? 0;
  } catch (error) {
    if (error instanceof ApiError) {
      printApiError(error, io);
      return 1;
    }
    if (error instanceof UsageError || isParseArgsError(error)) {
      io.stderr(`Error: ${(error as Error).message}\n${seeHelp}\n`);
      return 2;
    }
    if (error instanceof CliSetupError) {
      io.stderr(`Error: ${error.message}\n`);
      return 2;
    }
    if (isFileError(error)) {
      io.stderr(`Error: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

function stringValue(value: string | boolean | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_");
}

function isFileError(error: unknown): error is NodeJS.ErrnoException {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ENOENT" || code === "EACCES" || code === "EISDIR";
}
