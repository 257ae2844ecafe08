import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../config.ts";

function issuesOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("Telegram settings", () => {
  it("applies defaults", () => {
    const config = loadConfig({});
    expect(config.telegram.supportContact).toBeUndefined();
    expect(config.telegram.noticeIntervalSeconds).toBe(30);
  });

  it("reads the support contact and interval", () => {
    const config = loadConfig({
      PU_NODE_SUPPORT_CONTACT: "  @pepeunit_admin ",
      PU_NODE_TELEGRAM_NOTICE_INTERVAL_SECONDS: "5",
    });
    expect(config.telegram.supportContact).toBe("@pepeunit_admin");
    expect(config.telegram.noticeIntervalSeconds).toBe(5);
  });

  it("rejects a multi-line support contact", () => {
    const [issue] = issuesOf({ PU_NODE_SUPPORT_CONTACT: "@admin\nmore" });
    expect(issue).toContain("PU_NODE_SUPPORT_CONTACT: expected one line");
    expect(issue).toContain('"@admin\\nmore"');
    expect(issue).toContain("example: PU_NODE_SUPPORT_CONTACT=@pepeunit_admin");
  });

  it("rejects a too long support contact", () => {
    const [issue] = issuesOf({ PU_NODE_SUPPORT_CONTACT: "x".repeat(201) });
    expect(issue).toContain("PU_NODE_SUPPORT_CONTACT: expected at most 200 characters");
  });

  it("rejects a zero notice interval", () => {
    const [issue] = issuesOf({ PU_NODE_TELEGRAM_NOTICE_INTERVAL_SECONDS: "0" });
    expect(issue).toContain("PU_NODE_TELEGRAM_NOTICE_INTERVAL_SECONDS");
    expect(issue).toContain("expected a positive number of seconds");
    expect(issue).toContain('(got "0")');
    expect(issue).toContain("example: PU_NODE_TELEGRAM_NOTICE_INTERVAL_SECONDS=30");
  });
});
