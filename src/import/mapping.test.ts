import { describe, expect, it } from "vitest";
import { releaseTags, repoVersions } from "./mapping.ts";
import { planUniqueNames } from "./names.ts";

describe("releaseTags", () => {
  it("lists the tags of releases_data", () => {
    const data = JSON.stringify({
      "v2.0.0": [["esp32.bin", "https://example.invalid/v2/esp32.bin"]],
      "v1.0.0": [],
    });
    expect(releaseTags(data)).toEqual(["v2.0.0", "v1.0.0"]);
  });

  it("returns no tags for missing or malformed data", () => {
    expect(releaseTags(null)).toEqual([]);
    expect(releaseTags("")).toEqual([]);
    expect(releaseTags("{not json")).toEqual([]);
    expect(releaseTags("[1, 2]")).toEqual([]);
    expect(releaseTags('{"v1": "not a list"}')).toEqual([]);
  });

  it("adds the pinned default commit last", () => {
    expect(repoVersions('{"v1": []}', "abc123")).toEqual([
      { tag: "v1", commit: null },
      { tag: null, commit: "abc123" },
    ]);
  });
});

describe("planUniqueNames", () => {
  it("allows a swap between mirrored rows", () => {
    const plan = planUniqueNames(
      [
        { id: "a", name: "alpha", source: "pepeunit" },
        { id: "b", name: "beta", source: "pepeunit" },
      ],
      [
        { id: "a", name: "beta" },
        { id: "b", name: "alpha" },
      ],
    );
    expect([...plan.blocked.keys()]).toEqual([]);
    expect(plan.renamedIds.sort()).toEqual(["a", "b"]);
  });

  it("blocks a name held by a node row", () => {
    const plan = planUniqueNames(
      [{ id: "n", name: "alpha", source: "node" }],
      [{ id: "a", name: "alpha" }],
    );
    expect(plan.blocked.get("a")?.id).toBe("n");
  });

  it("blocks a chain behind a blocked row", () => {
    // b wants a's name, a wants the node row's name: a stays put, so b stays blocked too.
    const plan = planUniqueNames(
      [
        { id: "n", name: "gamma", source: "node" },
        { id: "a", name: "alpha", source: "pepeunit" },
        { id: "b", name: "beta", source: "pepeunit" },
      ],
      [
        { id: "a", name: "gamma" },
        { id: "b", name: "alpha" },
      ],
    );
    expect([...plan.blocked.keys()].sort()).toEqual(["a", "b"]);
    expect(plan.renamedIds).toEqual([]);
  });

  it("blocks a name kept by an unchanged mirrored row", () => {
    const plan = planUniqueNames(
      [{ id: "a", name: "alpha", source: "pepeunit" }],
      [{ id: "b", name: "alpha" }],
    );
    expect(plan.blocked.get("b")?.id).toBe("a");
  });
});
