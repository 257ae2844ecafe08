/**
 * Reads the host out of a git repository URL in the forms git itself accepts for remote
 * repositories: `https://`, `http://`, `ssh://[user@]host[:port]/path` and the scp-like
 * `[user@]host:path`. Other schemes (`git://`, `file://`) and local paths are rejected.
 */
import { canonicalHost, InvalidHostError, parseHost } from "./domain.ts";

export const REPOSITORY_URL_SCHEMES = ["https", "http", "ssh"] as const;
export type RepositoryUrlScheme = (typeof REPOSITORY_URL_SCHEMES)[number];

/** Maximum length of a repository URL, the same bound as the wire format of federated Repos. */
export const MAX_REPOSITORY_URL_LENGTH = 2048;

export const REPOSITORY_URL_FORMS =
  "https://host/path, http://host/path, ssh://[user@]host[:port]/path or user@host:path";

/** A repository URL as the parser read it. */
export interface ParsedRepositoryUrl {
  /** `ssh` for both `ssh://` URLs and the scp-like form. */
  scheme: RepositoryUrlScheme;
  /** Canonical host (see `src/policy/domain.ts`), without port. */
  host: string;
  port: number | null;
}

/** Raised when a text is not a repository URL; the message names the URL and the fix. */
export class InvalidRepositoryUrlError extends Error {
  /** The URL with credentials masked, safe to log and to return to a client. */
  readonly url: string;
  readonly reason: string;

  constructor(url: string, reason: string) {
    const redacted = redactRepositoryUrl(url);
    super(`Invalid repository URL ${JSON.stringify(redacted)}: ${reason}`);
    this.name = "InvalidRepositoryUrlError";
    this.url = redacted;
    this.reason = reason;
  }
}

const SCHEME_PATTERN = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
// The scp-like form as git reads it: an optional user, a host (IPv6 in brackets) and a colon
// before the first slash. git takes such text as a local path when a slash comes first.
const SCP_PATTERN = /^(?:[^@/\s]+@)?(\[[^\]/\s]+\]|[^@/:[\]\s]+):(.+)$/;

/**
 * Returns `url` with the user information of `scheme://` URLs masked: for http(s) the whole of
 * it, because the user name often contains a token there, and for ssh the password only.
 * Long texts are cut to 200 characters.
 */
export function redactRepositoryUrl(url: string): string {
  const shortened = url.length > 200 ? `${url.slice(0, 200)}...` : url;
  return shortened.replace(
    /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#@]*)@/,
    (_match, scheme: string, userInfo: string) => {
      if (/^ssh:/i.test(scheme)) {
        const colon = userInfo.indexOf(":");
        return colon === -1 ? `${scheme}${userInfo}@` : `${scheme}${userInfo.slice(0, colon)}:***@`;
      }
      return `${scheme}***@`;
    },
  );
}

/**
 * Parses a repository URL and returns its scheme and canonical host.
 *
 * @throws {InvalidRepositoryUrlError} for other schemes, local paths, a missing or invalid host,
 *   and URLs longer than {@link MAX_REPOSITORY_URL_LENGTH}.
 */
export function parseRepositoryUrl(url: string): ParsedRepositoryUrl {
  if (url.length === 0) throw new InvalidRepositoryUrlError(url, "the URL is empty");
  if (url.length > MAX_REPOSITORY_URL_LENGTH) {
    throw new InvalidRepositoryUrlError(
      url,
      `the URL is longer than ${MAX_REPOSITORY_URL_LENGTH} characters`,
    );
  }
  if (/\s/u.test(url)) {
    throw new InvalidRepositoryUrlError(url, "a URL contains no spaces or line breaks");
  }

  const scheme = SCHEME_PATTERN.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined) return parseSchemeUrl(url, scheme);

  const scp = SCP_PATTERN.exec(url);
  if (scp?.[1] !== undefined) {
    const hostText = scp[1];
    return { scheme: "ssh", host: hostOf(url, hostText), port: null };
  }
  throw new InvalidRepositoryUrlError(url, `expected one of the forms ${REPOSITORY_URL_FORMS}`);
}

function parseSchemeUrl(url: string, scheme: string): ParsedRepositoryUrl {
  if (!isRepositoryScheme(scheme)) {
    throw new InvalidRepositoryUrlError(
      url,
      `the scheme ${scheme}:// is not accepted; use one of the forms ${REPOSITORY_URL_FORMS}`,
    );
  }
  if (scheme === "ssh") return parseSshUrl(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidRepositoryUrlError(url, "the URL cannot be parsed; check the host and port");
  }
  const port = parsed.port === "" ? null : Number(parsed.port);
  return { scheme, host: hostOf(url, parsed.hostname), port };
}

/**
 * Reads `ssh://[user[:password]@]host[:port]/path`. The URL standard keeps an ssh host
 * percent-encoded ("opaque host"), so a Unicode name would not match its rule. This function
 * reads the authority from the text instead, and rejects `%` in the host.
 */
function parseSshUrl(url: string): ParsedRepositoryUrl {
  const rest = url.slice("ssh://".length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  const hostAndPort = authority.slice(authority.lastIndexOf("@") + 1);
  if (hostAndPort === "") throw new InvalidRepositoryUrlError(url, "the URL has no host");
  try {
    const { host, port } = parseHost(hostAndPort);
    return { scheme: "ssh", host, port };
  } catch (error) {
    if (!(error instanceof InvalidHostError)) throw error;
    throw new InvalidRepositoryUrlError(url, `invalid host: ${error.reason}`);
  }
}

function isRepositoryScheme(scheme: string): scheme is RepositoryUrlScheme {
  return (REPOSITORY_URL_SCHEMES as readonly string[]).includes(scheme);
}

function hostOf(url: string, hostText: string): string {
  try {
    return canonicalHost(hostText);
  } catch (error) {
    if (!(error instanceof InvalidHostError)) throw error;
    throw new InvalidRepositoryUrlError(url, `invalid host: ${error.reason}`);
  }
}
