/**
 * File and process helpers of the Mosquitto driver: atomic file writes, the restart and reload
 * actions (a shell command or a function), and the loaded-state file, which records the file
 * contents that the broker has loaded.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";

/**
 * A restart or reload of the broker: a shell command run by `/bin/sh -c`, which must exit with
 * status 0 within `timeoutMs` (default 60 000 ms), or a function that resolves when done.
 */
export type BrokerAction = { command: string; timeoutMs?: number } | (() => Promise<void>);

const DEFAULT_ACTION_TIMEOUT_MS = 60_000;
const MAX_STDERR_CHARACTERS = 2000;

/** Raised when a restart or reload of the broker fails; the message has the exit status and stderr. */
export class BrokerControlError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BrokerControlError";
  }
}

/** Runs `action`; `actionName` ("restart", "reload") names it in errors. */
export async function runBrokerAction(action: BrokerAction, actionName: string): Promise<void> {
  if (typeof action === "function") {
    try {
      await action();
    } catch (error) {
      throw new BrokerControlError(`Mosquitto ${actionName} failed: ${String(error)}`, {
        cause: error,
      });
    }
    return;
  }
  await runCommand(action.command, action.timeoutMs ?? DEFAULT_ACTION_TIMEOUT_MS, actionName);
}

async function runCommand(command: string, timeoutMs: number, actionName: string): Promise<void> {
  // A process group of its own lets a timeout kill the command's children too, which would
  // otherwise keep stderr open after the shell is gone.
  const child = spawn("/bin/sh", ["-c", command], {
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    if (stderr.length < MAX_STDERR_CHARACTERS) stderr += chunk;
  });

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  }, timeoutMs);

  const { code, signal, spawnError } = await new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    spawnError?: Error;
  }>((resolve) => {
    child.once("error", (error) => resolve({ code: null, signal: null, spawnError: error }));
    child.once("close", (exitCode, exitSignal) => resolve({ code: exitCode, signal: exitSignal }));
  }).finally(() => clearTimeout(timer));

  const output = stderr.trim().slice(0, MAX_STDERR_CHARACTERS);
  const details = output === "" ? "no stderr output" : `stderr: ${output}`;
  if (spawnError) {
    throw new BrokerControlError(
      `Mosquitto ${actionName} command ${JSON.stringify(command)} could not start: ${spawnError.message}`,
      { cause: spawnError },
    );
  }
  if (timedOut) {
    throw new BrokerControlError(
      `Mosquitto ${actionName} command ${JSON.stringify(command)} timed out after ${timeoutMs} ms (${details}); check the command or raise its timeout`,
    );
  }
  if (code !== 0) {
    const status = code === null ? `signal ${signal}` : `exit status ${code}`;
    throw new BrokerControlError(
      `Mosquitto ${actionName} command ${JSON.stringify(command)} failed with ${status} (${details})`,
    );
  }
}

/** Reads a text file, or returns undefined when it does not exist. */
export async function readOptionalFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Replaces `file` with `text` through a temporary file in the same directory and a rename, so
 * Mosquitto never reads a half-written file. The temporary name does not end in `.conf`, which
 * keeps include_dir from loading it.
 */
export async function writeFileAtomic(file: string, text: string, mode: number): Promise<void> {
  const temporary = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`,
  );
  const handle = await open(temporary, "w", mode);
  try {
    await handle.writeFile(text, "utf8");
    // The mode argument of open() is masked by the umask; set it exactly.
    await handle.chmod(mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, file);
}

/** SHA-256 hex digests of the file contents the broker loaded at its last restart or reload. */
export interface LoadedState {
  /** Digest of the bridge include file, loaded at the last restart. */
  bridges: string;
  /** Digest of the password file and ACL file, loaded at the last restart or reload. */
  grants: string;
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Reads the loaded-state file. A missing file returns undefined. A malformed one returns digests
 * that match no file, so the next apply restarts the broker rather than trust it.
 */
export async function readLoadedState(file: string): Promise<LoadedState | undefined> {
  const text = await readOptionalFile(file);
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (
      typeof parsed === "object" &&
      parsed !== null &&
      "bridges" in parsed &&
      "grants" in parsed &&
      typeof parsed.bridges === "string" &&
      typeof parsed.grants === "string"
    ) {
      return { bridges: parsed.bridges, grants: parsed.grants };
    }
  } catch {
    // Malformed JSON is handled like a malformed state below.
  }
  return { bridges: "", grants: "" };
}

export async function writeLoadedState(file: string, state: LoadedState): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(state)}\n`, 0o600);
}
