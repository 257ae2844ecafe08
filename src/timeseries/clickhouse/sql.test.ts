import { describe, expect, it } from "vitest";
import { dateTimeLiteral, integerLiteral, quoteString } from "./sql.ts";

describe("quoteString", () => {
  it("escapes quotes and backslashes", () => {
    expect(quoteString("it's")).toBe("'it\\'s'");
    expect(quoteString("a\\b")).toBe("'a\\\\b'");
    expect(quoteString("\\'")).toBe("'\\\\\\''");
  });

  it("escapes control characters", () => {
    expect(quoteString("a\nb")).toBe("'a\\x0ab'");
    expect(quoteString("\r\t\u0000\u001f\u007f")).toBe("'\\x0d\\x09\\x00\\x1f\\x7f'");
  });

  it("keeps non-ASCII characters", () => {
    expect(quoteString("датчик/温度/😀")).toBe("'датчик/温度/😀'");
  });

  it("quotes the empty string", () => {
    expect(quoteString("")).toBe("''");
  });
});

describe("dateTimeLiteral", () => {
  it("uses whole Unix seconds", () => {
    expect(dateTimeLiteral(new Date("2026-01-01T00:00:01.900Z"))).toBe("toDateTime(1767225601)");
  });

  it("rejects times before 1970", () => {
    expect(() => dateTimeLiteral(new Date("1969-12-31T23:59:59Z"))).toThrow(RangeError);
  });
});

describe("integerLiteral", () => {
  it("rejects fractions and negatives", () => {
    expect(integerLiteral(42)).toBe("42");
    expect(() => integerLiteral(1.5)).toThrow(RangeError);
    expect(() => integerLiteral(-1)).toThrow(RangeError);
    expect(() => integerLiteral(Number.NaN)).toThrow(RangeError);
  });
});
