/**
 * Setup file of the money unit run. A unit test runs in one process, so opening a socket,
 * listening on a port or starting a child process fails the test at once. Otherwise such a
 * test would quietly become an integration test.
 */
import childProcess from "node:child_process";
import net from "node:net";

function forbid(what: string): () => never {
  return () => {
    throw new Error(
      `${what} is not allowed in a unit test; serve fakes in process (their fetch method) ` +
        "or move the test to a *.integration.test.ts file",
    );
  };
}

net.Socket.prototype.connect = forbid("Opening a network connection") as never;
net.Server.prototype.listen = forbid("Listening on a port") as never;
for (const name of ["spawn", "fork", "exec", "execFile"] as const) {
  Object.defineProperty(childProcess, name, { value: forbid(`child_process.${name}`) });
}
