/**
 * Entry point of the admin CLI: `npm run admin -- <group> <command> ...`. It talks to a running
 * node's REST API; `npm run admin -- --help` lists the commands, and docs/cli.md describes them.
 */
import { text } from "node:stream/consumers";
import { runAdminCli } from "./run.ts";

runAdminCli(process.argv.slice(2), {
  stdout: (output) => process.stdout.write(output),
  stderr: (output) => process.stderr.write(output),
  env: process.env,
  cwd: process.cwd(),
  readStdin: () => text(process.stdin),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `Unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
