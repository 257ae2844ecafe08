import { domainToASCII } from "node:url";
import { describe, expect, it } from "vitest";
import {
  canonicalHost,
  canonicalRuleDomain,
  InvalidHostError,
  isIpAddress,
  parseHost,
} from "./domain.ts";
import { DomainPolicyEngine, type EngineRule } from "./engine.ts";

describe("parseHost", () => {
  it.each([
    ["example.com", "example.com", null],
    ["EXAMPLE.Com", "example.com", null],
    ["example.com.", "example.com", null],
    ["example.com..", "example.com", null],
    ["example.com:8443", "example.com", 8443],
    ["Example.COM.:443", "example.com", 443],
    ["пример.рф", "xn--e1afmkfd.xn--p1ai", null],
    ["ПРИМЕР.РФ", "xn--e1afmkfd.xn--p1ai", null],
    ["xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai", null],
    ["XN--E1AFMKFD.XN--P1AI:80", "xn--e1afmkfd.xn--p1ai", 80],
    ["ｅｘａｍｐｌｅ.com", "example.com", null],
    ["exаmple.com", "xn--exmple-4nf.com", null],
    ["127.0.0.1:8080", "127.0.0.1", 8080],
    ["0x7f.1", "127.0.0.1", null],
    ["2130706433", "127.0.0.1", null],
    ["[::1]", "[::1]", null],
    ["[::1]:8080", "[::1]", 8080],
    ["[2001:DB8:0:0::1]", "[2001:db8::1]", null],
    ["2001:db8::1", "[2001:db8::1]", null],
  ])("reads %s as %s port %s", (input, host, port) => {
    expect(parseHost(input)).toEqual({ host, port });
  });

  it.each([
    ["", "empty"],
    [".", "no labels"],
    ["a..b", "empty label"],
    [".example.com", "empty label"],
    ["exa mple.com", "spaces"],
    [" example.com", "spaces"],
    ["example.com\t", "spaces"],
    ["example.com/path", '"/"'],
    ["user@example.com", '"@"'],
    ["ex%61mple.com", '"%"'],
    ["https://example.com", '"/"'],
    ["ex*mple.com", "wildcards"],
    ["-example.com", "inner hyphens"],
    ["example-.com", "inner hyphens"],
    ["exa_mple.com", '"_"'],
    ["ex\u2024ample.com", "internationalised"],
    ["xn--.com", "inner hyphens"],
    [`${"a".repeat(64)}.com`, "longer than 63"],
    [`${"abcdefghi.".repeat(25)}abc.com`, "more than 253"],
    ["example.com:0", "port from 1 to 65535"],
    ["example.com:65536", "port from 1 to 65535"],
    ["example.com:http", "port from 1 to 65535"],
    ["[::1", "closing ]"],
    ["[::1]x", ":port"],
    ["[example.com]", "IPv6 address"],
  ])("rejects %j (%s)", (input, fragment) => {
    const error = (() => {
      try {
        parseHost(input);
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InvalidHostError);
    expect((error as InvalidHostError).reason).toContain(fragment);
  });

  it("accepts a name of 253 characters", () => {
    const name = `${"abcdefghi.".repeat(24)}abcdefghi.com`;
    expect(name.length).toBe(253);
    expect(canonicalHost(name)).toBe(name);
  });
});

describe("plain ASCII shortcut", () => {
  it.each([
    "example.com",
    "EXAMPLE.COM",
    "a-b.c-d.example",
    "ab--cd.example",
    "1.2.3.example",
    "example.0x",
    "example.0xg",
    "example.123a",
    "123.example",
    "x.xn--p1ai",
    "XN--E1AFMKFD.xn--p1ai",
    "1.2.3.4",
    "1.2.3.0x4",
    "10.0.0.010",
  ])("matches domainToASCII for %s", (host) => {
    const expected = domainToASCII(host);
    if (expected === "") {
      expect(() => canonicalHost(host)).toThrow(InvalidHostError);
    } else {
      expect(canonicalHost(host)).toBe(expected);
    }
  });
});

describe("canonicalRuleDomain", () => {
  it("rejects a port and names the fix", () => {
    expect(() => canonicalRuleDomain("example.com:8443")).toThrow(/remove :8443/);
  });

  it("rejects a wildcard and names the fix", () => {
    expect(() => canonicalRuleDomain("*.example.com")).toThrow(/include its subdomains/);
  });

  it("returns punycode for Unicode", () => {
    expect(canonicalRuleDomain("Пример.рф.")).toBe("xn--e1afmkfd.xn--p1ai");
  });
});

describe("isIpAddress", () => {
  it.each([
    ["127.0.0.1", true],
    ["[::1]", true],
    ["example.com", false],
    ["1.example.com", false],
  ])("%s is %s", (host, expected) => {
    expect(isIpAddress(host)).toBe(expected);
  });
});

describe("bypass attempts", () => {
  const rule = (id: string, domain: string, fields: Partial<EngineRule> = {}): EngineRule => ({
    id,
    domain,
    kind: "deny",
    severity: "suspend",
    includeSubdomains: true,
    reason: `blocked ${domain}`,
    expiresAt: null,
    ...fields,
  });
  const engine = new DomainPolicyEngine("open", [
    rule("example", "example.com"),
    rule("idn", canonicalRuleDomain("пример.рф")),
    rule("exact-only", "exact.org", { includeSubdomains: false }),
    rule("loopback", "127.0.0.1"),
    rule("ipv6", "[2001:db8::1]"),
  ]);

  it.each([
    // Case, trailing dots and ports name the same host.
    ["example.com", "example"],
    ["EXAMPLE.COM", "example"],
    ["Example.Com.", "example"],
    ["example.com:8443", "example"],
    ["EXAMPLE.com.:443", "example"],
    ["ｅｘａｍｐｌｅ.com", "example"],
    // UTS #46 removes zero-width spaces and soft hyphens, as browsers and URL parsers do.
    ["exa\u200bmple.com", "example"],
    ["exa\u00admple.com", "example"],
    // Subdomains of a rule that includes them.
    ["social.example.com", "example"],
    ["a.b.c.example.com:80", "example"],
    // Unicode and punycode are one domain.
    ["пример.рф", "idn"],
    ["ПРИМЕР.РФ", "idn"],
    ["xn--e1afmkfd.xn--p1ai", "idn"],
    ["sub.xn--e1afmkfd.xn--p1ai", "idn"],
    ["sub.пример.рф:8080", "idn"],
    // Look-alikes are other domains: Cyrillic а (U+0430) and о (U+043E) in place of Latin ones.
    ["exаmple.com", null],
    ["xn--exmple-4nf.com", null],
    ["exampleе.com", null],
    ["examplе.com", null],
    // Suffix and prefix tricks.
    ["example.com.evil.org", null],
    ["evil-example.com", null],
    ["evilexample.com", null],
    ["example.co", null],
    ["com", null],
    // A rule without subdomains.
    ["exact.org", "exact-only"],
    ["EXACT.ORG.:1", "exact-only"],
    ["www.exact.org", null],
    // Addresses in other spellings.
    ["127.0.0.1:8080", "loopback"],
    ["2130706433", "loopback"],
    ["0x7f.0.0.1", "loopback"],
    ["[2001:DB8:0::1]:443", "ipv6"],
    ["2001:db8::1", "ipv6"],
  ])("%s matches %s", (host, ruleId) => {
    const decision = engine.decide(host);
    if (ruleId === null) {
      expect(decision).toEqual({ action: "allow" });
      return;
    }
    expect(decision.action).toBe("suspend");
    expect(decision.action !== "allow" && decision.source).toEqual({ kind: "rule", id: ruleId });
  });

  it.each([
    "example.com/",
    "example.com@evil.org",
    "evil.org#example.com",
    "example..com",
    "exa mple.com",
    "1.127.0.0.1",
  ])("suspends the invalid host %j", (host) => {
    const decision = engine.decide(host);
    expect(decision.action).toBe("suspend");
    expect(decision.action !== "allow" && decision.source).toEqual({ kind: "rule", id: null });
  });
});
