import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  hashPassword,
  parseAclFile,
  parsePasswordFile,
  renderAclFile,
  renderGrantAcl,
  renderPasswordFile,
  verifyPassword,
} from "./peer-auth.ts";

const MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd";

function mosquittoPasswdMissingReason(): string | undefined {
  try {
    accessSync(MOSQUITTO_PASSWD, constants.X_OK);
    return undefined;
  } catch {
    return `(${MOSQUITTO_PASSWD} not found; install the mosquitto package)`;
  }
}

const missingPasswd = mosquittoPasswdMissingReason();

const grant = {
  id: "7d0c4a53-4a8e-4f8e-9c1e-2f1d5b8a6c3e",
  username: "peer-b",
  password: "s3cret with spaces",
  topics: [
    "a.example/9b2f6f3e-1c4d-4b7a-8e2f-6a5d4c3b2a10",
    "a.example/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
  ],
};

describe("peer auth files", () => {
  it("hash has the $7$ layout", () => {
    const hash = hashPassword("pw");
    expect(hash).toMatch(/^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
    expect(verifyPassword("pw", hash)).toBe(true);
    expect(verifyPassword("pw2", hash)).toBe(false);
  });

  it("malformed hash does not verify", () => {
    for (const hash of ["", "$6$abc$def", "$7$101$$", "plain", "$7$101$c2FsdA==$"]) {
      expect(verifyPassword("pw", hash), hash).toBe(false);
    }
  });

  it.skipIf(missingPasswd !== undefined)(
    `verifies mosquitto_passwd hashes ${missingPasswd ?? ""}`,
    async () => {
      const directory = await mkdtemp(path.join(tmpdir(), "pepeunit-node-passwd-"));
      try {
        const file = path.join(directory, "passwd");
        await promisify(execFile)(MOSQUITTO_PASSWD, ["-b", "-c", file, "peer-b", grant.password]);
        const entries = parsePasswordFile(await readFile(file, "utf8"));
        const hash = entries.get("peer-b");
        expect(hash).toMatch(/^\$7\$/);
        expect(verifyPassword(grant.password, hash ?? "")).toBe(true);
        expect(verifyPassword("other", hash ?? "")).toBe(false);
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    },
  );

  it("password file keeps matching hashes", () => {
    const first = renderPasswordFile([grant], new Map());
    const again = renderPasswordFile([grant], parsePasswordFile(first));
    const changed = renderPasswordFile([{ ...grant, password: "new" }], parsePasswordFile(first));
    expect(again).toBe(first);
    expect(changed).not.toBe(first);
    expect(verifyPassword("new", parsePasswordFile(changed).get("peer-b") ?? "")).toBe(true);
  });

  it("ACL block is read-only and parses back", () => {
    const block = renderGrantAcl(grant);
    expect(block.split("\n")).toEqual([
      `# grant ${grant.id}`,
      "user peer-b",
      `topic read ${grant.topics[1]}`,
      `topic read ${grant.topics[0]}`,
    ]);
    const text = renderAclFile(new Map([[grant.id, block]]));
    expect(parseAclFile(text)).toEqual(new Map([[grant.id, block]]));
  });
});
