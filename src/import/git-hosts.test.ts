/** The Pepeunit import against git host rules: denied Repos are skipped and reported. */
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import {
  createPepeunitSourceDatabase,
  type PepeunitSourceDatabase,
} from "../../test/fixtures/pepeunit/source-database.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { repos, units } from "../db/schema/index.ts";
import { createGitHostRule, removeGitHostRule } from "../policy/git-hosts.ts";
import { importFromPepeunit } from "./pepeunit.ts";
import { countSkipReasons } from "./summary.ts";

// Fixture Repos (test/fixtures/pepeunit/rows.sql) and their repository hosts.
const PROBE_REPO = "30000000-0000-4000-8000-000000000005"; // gitlab.com
const RELAY_REPO = "30000000-0000-4000-8000-000000000002"; // git.example.org
const PROBE_UNIT = "40000000-0000-4000-8000-000000000005";

let node: TestDatabase;
let source: PepeunitSourceDatabase;

beforeEach(async () => {
  node = await createTestDatabase(inject("postgresAdminUrl"), "import-git-hosts");
  source = await createPepeunitSourceDatabase(inject("postgresAdminUrl"));
});

afterEach(async () => {
  await node.drop();
  await source.drop();
});

async function addRule(host: string, kind: "allow" | "deny", reason?: string) {
  const result = await createGitHostRule(node.db, { host, kind, reason }, "admin");
  if (!result.ok) throw new Error(`rule not created: ${JSON.stringify(result.failure)}`);
  return result.value;
}

describe("import with git host rules", () => {
  it("skips a denied Repo and its Units with a summary line", async () => {
    await addRule("gitlab.com", "deny", "mirrors only");
    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.counts.repo).toMatchObject({ inserted: 4, skipped: 1 });
    expect(countSkipReasons(summary)["git-host-denied"]).toBe(1);
    expect(summary.skips).toContainEqual({
      entity: "repo",
      sourceId: PROBE_REPO,
      reason: "git-host-denied",
      detail:
        "the repository host gitlab.com is not accepted (denied by the git host rule for gitlab.com: mirrors only); change the rule or the Repo's repository URL",
    });
    expect(summary.skips).toContainEqual(
      expect.objectContaining({ entity: "unit", sourceId: PROBE_UNIT, reason: "missing-parent" }),
    );
    const repoIds = (await node.db.select({ id: repos.id }).from(repos)).map((row) => row.id);
    expect(repoIds).not.toContain(PROBE_REPO);
    const unitIds = (await node.db.select({ id: units.id }).from(units)).map((row) => row.id);
    expect(unitIds).not.toContain(PROBE_UNIT);
  });

  it("skips Repos off the allowlist", async () => {
    await addRule("github.com", "allow");
    const summary = await importFromPepeunit(node.db, source.pool);

    const skipped = summary.skips.filter((skip) => skip.reason === "git-host-denied");
    expect(skipped.map((skip) => skip.sourceId).sort()).toEqual([RELAY_REPO, PROBE_REPO].sort());
    expect(skipped[0]?.detail).toContain("is not on this node's allowlist of git hosts");
    expect(summary.counts.repo).toMatchObject({ inserted: 3, skipped: 2 });
  });

  it("imports a skipped Repo once its rule is removed", async () => {
    const rule = await addRule("gitlab.com", "deny", "mirrors only");
    await importFromPepeunit(node.db, source.pool);
    // The Repo is reported on every run while it stays skipped.
    const again = await importFromPepeunit(node.db, source.pool);
    expect(countSkipReasons(again)["git-host-denied"]).toBe(1);

    await removeGitHostRule(node.db, rule.id, "admin");
    const summary = await importFromPepeunit(node.db, source.pool);
    expect(summary.counts.repo.inserted).toBe(1);
    expect(summary.counts.unit.inserted).toBe(1);
    expect(summary.skips).toEqual([]);
  });

  it("skips a repository URL whose host cannot be read", async () => {
    await source.pool.query(
      "update repository_registry set repository_url = 'git://gitlab.com/pepeunit/ds18b20-probe.git' where repository_url like '%ds18b20-probe.git'",
    );
    const summary = await importFromPepeunit(node.db, source.pool);
    const skip = summary.skips.find((entry) => entry.sourceId === PROBE_REPO);
    expect(skip?.reason).toBe("git-host-denied");
    expect(skip?.detail).toBe(
      'Invalid repository URL "git://gitlab.com/pepeunit/ds18b20-probe.git": the scheme git:// is not accepted; use one of the forms https://host/path, http://host/path, ssh://[user@]host[:port]/path or user@host:path; fix the repository URL in Pepeunit',
    );
  });
});
