import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { LOG_MODULES } from "./logging.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

async function sourceFiles(directory: string): Promise<string[]> {
  const entries = await readdir(path.join(ROOT, directory), { recursive: true });
  return entries
    .filter((entry) => entry.endsWith(".ts") && !entry.endsWith(".test.ts"))
    .map((entry) => path.join(directory, entry));
}

describe("log categories", () => {
  it("come only from getNodeLogger", async () => {
    const files = [...(await sourceFiles("src")), ...(await sourceFiles("federation"))];
    const offenders: string[] = [];
    for (const file of files) {
      if (file === path.join("src", "logging.ts")) continue;
      const text = await readFile(path.join(ROOT, file), "utf8");
      if (/\bgetLogger\s*\(/.test(text)) offenders.push(file);
    }
    expect(offenders).toEqual([]);
  });

  it("use every registered module", async () => {
    const files = [...(await sourceFiles("src")), ...(await sourceFiles("federation"))];
    const used = new Set<string>();
    for (const file of files) {
      const text = await readFile(path.join(ROOT, file), "utf8");
      for (const match of text.matchAll(/getNodeLogger\(\s*"([a-z-]+)"/g)) {
        if (match[1]) used.add(match[1]);
      }
    }
    const unused = LOG_MODULES.filter((module) => !used.has(module));
    expect(unused).toEqual([]);
  });
});
