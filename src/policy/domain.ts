/**
 * Canonical form of remote hosts, the key that domain rules and policy decisions work on.
 *
 * One host has one canonical form: lower case, without trailing dots and without port, with IDN
 * labels in punycode (`пример.рф` becomes `xn--e1afmkfd.xn--p1ai`), IPv4 in dotted decimal and
 * IPv6 in brackets in the compressed form of the WHATWG URL standard. Look-alike characters are
 * not folded: a Cyrillic `а` in `exаmple.com` gives `xn--exmple-4nf.com`, another domain.
 *
 * Rules name a host without port, and a rule covers every port of that host. A port in a rule's
 * domain is rejected, because a rule for one port would be bypassed by the same server on another.
 */
import { domainToASCII } from "node:url";

/** Maximum length of a domain name in ASCII form, and of one label (RFC 1035, section 2.3.4). */
export const MAX_DOMAIN_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

/** A host as the parser read it: the canonical host and the port, if the text had one. */
export interface ParsedHost {
  host: string;
  port: number | null;
}

/** Raised when a text is not a host name or address; `reason` describes the problem and the fix. */
export class InvalidHostError extends Error {
  readonly input: string;
  readonly reason: string;

  constructor(input: string, reason: string) {
    super(`Invalid host ${JSON.stringify(input)}: ${reason}`);
    this.name = "InvalidHostError";
    this.input = input;
    this.reason = reason;
  }
}

// ASCII characters that may appear in a host name before IDN mapping. Everything else in ASCII
// (`/`, `@`, `%`, `*`, spaces, ...) is rejected up front, because domainToASCII would silently
// cut the text at `/` or decode `%41`, so `example.com/x` and `ex%61mple.com` would match rules.
const FOREIGN_NAME_CHARACTER = /[^A-Za-z0-9.\u{80}-\u{10FFFF}-]|\s/u;
// The same, but allowing the colon and brackets of ports and IPv6 addresses, for the whole input.
const FOREIGN_INPUT_CHARACTER = /[^A-Za-z0-9.:[\]\u{80}-\u{10FFFF}-]|\s/u;
const LABEL_PATTERN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const PORT_PATTERN = /^[0-9]{1,5}$/;
const IPV4_PATTERN = /^[0-9]{1,3}(\.[0-9]{1,3}){3}$/;

/**
 * Parses `host`, `host:port`, `[ipv6]`, `[ipv6]:port` or a bare IPv6 address into its canonical
 * host and port.
 *
 * @throws {InvalidHostError} for empty labels, spaces, `/`, `@`, wildcards, labels longer than
 *   63 or names longer than 253 characters, and ports outside 1 to 65535.
 */
export function parseHost(input: string): ParsedHost {
  if (input.length === 0) throw new InvalidHostError(input, "the host is empty");
  // Bounded early so that a huge header value costs no IDN work; Unicode names are longer than
  // their punycode form only by a small factor.
  if (input.length > MAX_DOMAIN_LENGTH * 4) {
    throw new InvalidHostError(
      input.slice(0, 64),
      `the host is longer than ${MAX_DOMAIN_LENGTH} characters`,
    );
  }

  rejectForeignCharacters(input, FOREIGN_INPUT_CHARACTER);

  if (input.startsWith("[")) return parseBracketedIpv6(input);
  // Two or more colons without brackets can only be an IPv6 address without port.
  if (input.indexOf(":") !== input.lastIndexOf(":")) {
    return { host: canonicalIpv6(input, input), port: null };
  }

  const colon = input.indexOf(":");
  const name = colon === -1 ? input : input.slice(0, colon);
  const port = colon === -1 ? null : parsePort(input, input.slice(colon + 1));
  return { host: canonicalName(input, name), port };
}

/** Returns the canonical host of `input`, dropping any port. */
export function canonicalHost(input: string): string {
  return parseHost(input).host;
}

/**
 * Returns the canonical domain that a rule names.
 *
 * @throws {InvalidHostError} when `input` is not a host, or carries a port.
 */
export function canonicalRuleDomain(input: string): string {
  if (input.startsWith("*.")) {
    throw new InvalidHostError(
      input,
      `wildcards are not supported; name ${input.slice(2)} and include its subdomains`,
    );
  }
  const parsed = parseHost(input);
  if (parsed.port !== null) {
    throw new InvalidHostError(
      input,
      `a rule covers every port of a host; remove :${parsed.port} and name ${parsed.host}`,
    );
  }
  return parsed.host;
}

/** True when the canonical `host` is an IPv4 or IPv6 address, which has no parent domains. */
export function isIpAddress(host: string): boolean {
  return host.startsWith("[") || IPV4_PATTERN.test(host);
}

function parseBracketedIpv6(input: string): ParsedHost {
  const close = input.indexOf("]");
  if (close === -1) throw new InvalidHostError(input, "the IPv6 address has no closing ]");
  const host = canonicalIpv6(input, input.slice(1, close));
  const rest = input.slice(close + 1);
  if (rest === "") return { host, port: null };
  if (!rest.startsWith(":")) {
    throw new InvalidHostError(input, "expected :port or nothing after the IPv6 address");
  }
  return { host, port: parsePort(input, rest.slice(1)) };
}

function canonicalIpv6(input: string, address: string): string {
  if (!/^[0-9A-Fa-f:.]+$/.test(address)) {
    throw new InvalidHostError(input, "expected an IPv6 address such as [2001:db8::1]");
  }
  try {
    return new URL(`http://[${address}]/`).hostname;
  } catch {
    throw new InvalidHostError(input, "expected an IPv6 address such as [2001:db8::1]");
  }
}

function parsePort(input: string, text: string): number {
  const port = PORT_PATTERN.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new InvalidHostError(input, "expected a port from 1 to 65535 after the colon");
  }
  return port;
}

function rejectForeignCharacters(input: string, foreign: RegExp, text = input): void {
  const match = foreign.exec(text);
  if (match !== null) throw new InvalidHostError(input, describeCharacter(match[0]));
}

function canonicalName(input: string, name: string): string {
  rejectForeignCharacters(input, FOREIGN_NAME_CHARACTER, name);

  // A fully qualified name may end in one dot (the root); more are removed too, as the brief
  // form of the same name.
  const trimmed = name.replace(/\.+$/, "");
  if (trimmed === "") throw new InvalidHostError(input, "the host has no labels");
  checkLabels(input, trimmed);

  const lower = trimmed.toLowerCase();
  if (isPlainAsciiName(lower)) {
    if (lower.length > MAX_DOMAIN_LENGTH) throw tooLong(input, lower);
    return lower;
  }

  // domainToASCII applies UTS #46 mapping (case folding, full-width forms) and punycode, and
  // turns numeric IPv4 forms such as 0x7f.1 into dotted decimal. It returns "" when it fails.
  const ascii = domainToASCII(trimmed);
  if (ascii === "") {
    throw new InvalidHostError(input, "not a valid internationalised domain name");
  }
  checkLabels(input, ascii);
  if (ascii.length > MAX_DOMAIN_LENGTH) throw tooLong(input, ascii);
  for (const label of ascii.split(".")) {
    if (!LABEL_PATTERN.test(label)) {
      throw new InvalidHostError(
        input,
        `the label ${JSON.stringify(label)} must consist of letters, digits and inner hyphens`,
      );
    }
  }
  return ascii;
}

/**
 * True when domainToASCII would return `name` unchanged: lower-case letters, digits and inner
 * hyphens only, no punycode label to check, and a last label that the URL standard does not
 * read as an IPv4 number. Skipping the IDN call for these names makes a decision several times
 * cheaper; a test compares both paths.
 */
function isPlainAsciiName(name: string): boolean {
  const labels = name.split(".");
  for (const label of labels) {
    if (!LABEL_PATTERN.test(label) || label.startsWith("xn--")) return false;
  }
  const last = labels[labels.length - 1] ?? "";
  return !/^([0-9]+|0x[0-9a-f]*)$/.test(last);
}

function tooLong(input: string, ascii: string): InvalidHostError {
  return new InvalidHostError(
    input,
    `the name is ${ascii.length} characters long in ASCII form, more than ${MAX_DOMAIN_LENGTH}`,
  );
}

function checkLabels(input: string, name: string): void {
  for (const label of name.split(".")) {
    if (label === "") {
      throw new InvalidHostError(input, "the host has an empty label (two dots in a row)");
    }
    if (label.length > MAX_LABEL_LENGTH) {
      throw new InvalidHostError(
        input,
        `the label ${JSON.stringify(label.slice(0, 20))}... is longer than ${MAX_LABEL_LENGTH} characters`,
      );
    }
  }
}

function describeCharacter(character: string): string {
  if (character === "*") {
    return "wildcards are not supported; name the parent domain and include its subdomains";
  }
  if (/\s/u.test(character)) return "a host contains no spaces; remove them";
  return `${JSON.stringify(character)} cannot appear in a host; give the host name only, without scheme, user, path or query`;
}
