import { describe, expect, it } from "vitest";
import {
  InvalidRepositoryUrlError,
  parseRepositoryUrl,
  redactRepositoryUrl,
} from "./repository-url.ts";

describe("parseRepositoryUrl", () => {
  it.each([
    ["https://github.com/owner/firmware.git", "https", "github.com", null],
    ["http://git.example.org/lab/relay.git", "http", "git.example.org", null],
    ["https://GitHub.COM:8443/owner/firmware.git", "https", "github.com", 8443],
    ["https://token@github.com./owner/firmware.git", "https", "github.com", null],
    ["ssh://git@GitLab.com:2222/group/firmware.git", "ssh", "gitlab.com", 2222],
    ["ssh://gitlab.com/group/firmware.git", "ssh", "gitlab.com", null],
    ["SSH://git@[2001:DB8::1]/repo.git", "ssh", "[2001:db8::1]", null],
    ["git@github.com:owner/firmware.git", "ssh", "github.com", null],
    ["github.com:owner/firmware.git", "ssh", "github.com", null],
    ["deploy@[::1]:firmware.git", "ssh", "[::1]", null],
    ["git@пример.рф:owner/firmware.git", "ssh", "xn--e1afmkfd.xn--p1ai", null],
    ["https://пример.рф/owner/firmware.git", "https", "xn--e1afmkfd.xn--p1ai", null],
    ["ssh://git@Пример.РФ/owner/firmware.git", "ssh", "xn--e1afmkfd.xn--p1ai", null],
  ])("reads %s", (url, scheme, host, port) => {
    expect(parseRepositoryUrl(url)).toEqual({ scheme, host, port });
  });

  it.each([
    ["", "the URL is empty"],
    ["git://github.com/owner/firmware.git", "the scheme git:// is not accepted"],
    ["file:///srv/git/firmware.git", "the scheme file:// is not accepted"],
    ["ftp://github.com/owner/firmware.git", "the scheme ftp:// is not accepted"],
    ["/srv/git/firmware.git", "expected one of the forms"],
    ["./firmware.git", "expected one of the forms"],
    ["firmware", "expected one of the forms"],
    ["https://github.com /owner.git", "no spaces"],
    ["ssh://exa%6dple.com/repo.git", "invalid host"],
    ["ssh:///repo.git", "the URL has no host"],
    ["ssh://git@/repo.git", "the URL has no host"],
    ["ssh://host:0/repo.git", "expected a port from 1 to 65535"],
    ["git@bad_host.example:repo.git", "invalid host"],
    ["https://[::1/repo.git", "cannot be parsed"],
    [`https://github.com/${"a".repeat(2100)}.git`, "longer than 2048"],
  ])("rejects %.60j", (url, reason) => {
    const error = (() => {
      try {
        parseRepositoryUrl(url);
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InvalidRepositoryUrlError);
    expect((error as Error).message).toContain(reason);
    expect((error as Error).message).toContain("Invalid repository URL");
  });

  it("names the URL in its error without credentials", () => {
    expect(() => parseRepositoryUrl("git://user:secret@example.com/x.git")).toThrow(
      'Invalid repository URL "git://***@example.com/x.git"',
    );
  });
});

describe("redactRepositoryUrl", () => {
  it("masks the user information of http URLs", () => {
    expect(redactRepositoryUrl("https://ghp_secret@github.com/o/r.git")).toBe(
      "https://***@github.com/o/r.git",
    );
    expect(redactRepositoryUrl("http://user:pass@host/r.git")).toBe("http://***@host/r.git");
  });

  it("keeps the ssh user but masks its password", () => {
    expect(redactRepositoryUrl("ssh://git@host/r.git")).toBe("ssh://git@host/r.git");
    expect(redactRepositoryUrl("ssh://git:pass@host/r.git")).toBe("ssh://git:***@host/r.git");
  });

  it("leaves URLs without user information alone", () => {
    expect(redactRepositoryUrl("https://github.com/o/r.git")).toBe("https://github.com/o/r.git");
    expect(redactRepositoryUrl("git@github.com:o/r.git")).toBe("git@github.com:o/r.git");
  });
});
