import { readFileSync } from "node:fs";

/** The node's version from `package.json`, read once at start. */
export const NODE_VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;
