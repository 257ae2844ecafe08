/**
 * The password file and ACL file of the peer listener, which let remote brokers read the topics
 * of their {@link ExportGrant}s and nothing else.
 *
 * Password lines use the `$7$` format that `mosquitto_passwd` 2.0 writes by default:
 * `username:$7$<iterations>$<base64 salt>$<base64 hash>`, where the hash is PBKDF2-HMAC-SHA512 of
 * the password over the decoded salt, 64 bytes long.
 */
import { pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { type ExportGrant, InvalidBridgeError } from "../driver.ts";
import { checkConfigValue, compareText } from "./bridge-file.ts";

// Values of mosquitto_passwd 2.0.11 (salt of 12 bytes, 101 iterations, SHA-512 output length).
const ITERATIONS = 101;
const SALT_BYTES = 12;
const HASH_BYTES = 64;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Returns a `$7$` password hash with a random salt. */
export function hashPassword(password: string): string {
  const salt = randomBytes(SALT_BYTES);
  const hash = pbkdf2Sync(password, salt, ITERATIONS, HASH_BYTES, "sha512");
  return `$7$${ITERATIONS}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** True when `encoded` is a `$7$` hash of `password`; false for any other or malformed hash. */
export function verifyPassword(password: string, encoded: string): boolean {
  const match = /^\$7\$([0-9]{1,7})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(encoded);
  if (!match) return false;
  const [, iterations = "", salt = "", hash = ""] = match;
  const expected = Buffer.from(hash, "base64");
  if (expected.length === 0) return false;
  const actual = pbkdf2Sync(
    password,
    Buffer.from(salt, "base64"),
    Number(iterations),
    expected.length,
    "sha512",
  );
  return timingSafeEqual(actual, expected);
}

/**
 * Throws {@link InvalidBridgeError} for a grant whose id is not a UUID, whose username cannot
 * be written to the password or ACL file, whose password is empty, or whose topic fails `checkTopic`.
 */
export function checkGrant(grant: ExportGrant, checkTopic: (topic: string) => void): void {
  if (!UUID.test(grant.id)) {
    throw new InvalidBridgeError(`Invalid grant id ${JSON.stringify(grant.id)}: expected a UUID`);
  }
  checkConfigValue(grant.username, `username of grant ${grant.id}`);
  if (grant.username.includes(":")) {
    throw new InvalidBridgeError(
      `Invalid username ${JSON.stringify(grant.username)} of grant ${grant.id}: the Mosquitto password file separates username and hash with ":", so use a name without it`,
    );
  }
  if (grant.password.length === 0) {
    throw new InvalidBridgeError(`Grant ${grant.id} has an empty password; generate one`);
  }
  if (grant.topics.length === 0) {
    throw new InvalidBridgeError(`Grant ${grant.id} has no topics; remove the grant instead`);
  }
  for (const topic of grant.topics) checkTopic(topic);
}

/** Parses `username:hash` lines into a map; blank and `#` lines are skipped. */
export function parsePasswordFile(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    entries.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return entries;
}

/**
 * Renders the password file of `grants`, ordered by grant id. A user whose current hash already
 * matches the password keeps it, so unchanged grants give the same file text.
 */
export function renderPasswordFile(
  grants: readonly ExportGrant[],
  current: ReadonlyMap<string, string>,
): string {
  const lines = sortById(grants).map((grant) => {
    const existing = current.get(grant.username);
    const hash =
      existing !== undefined && verifyPassword(grant.password, existing)
        ? existing
        : hashPassword(grant.password);
    return `${grant.username}:${hash}\n`;
  });
  return lines.join("");
}

/** Renders the ACL block of one grant: a comment with its id, its user and read-only topics. */
export function renderGrantAcl(grant: ExportGrant): string {
  const topics = [...new Set(grant.topics)].sort();
  return [
    `# grant ${grant.id}`,
    `user ${grant.username}`,
    ...topics.map((topic) => `topic read ${topic}`),
  ].join("\n");
}

export const ACL_FILE_HEADER = [
  "# Read-only access of peer brokers, written by Pepeunit Node; edits made here are lost.",
  "# Anonymous clients get no topics, because no topic line comes before the first user line.",
];

/** Renders the ACL file from grant blocks keyed by grant id, ordered by id. */
export function renderAclFile(blocks: ReadonlyMap<string, string>): string {
  const ids = [...blocks.keys()].sort();
  const parts = [ACL_FILE_HEADER.join("\n"), ...ids.map((id) => blocks.get(id))];
  return `${parts.join("\n\n")}\n`;
}

/** Parses an ACL file written by {@link renderAclFile} back into grant blocks by grant id. */
export function parseAclFile(text: string): Map<string, string> {
  const blocks = new Map<string, string>();
  let current: { id: string; lines: string[] } | undefined;

  const finish = () => {
    if (current) blocks.set(current.id, current.lines.join("\n"));
    current = undefined;
  };

  for (const line of text.split("\n")) {
    if (line.startsWith("# grant ")) {
      finish();
      current = { id: line.slice("# grant ".length), lines: [line] };
    } else if (line.trim() === "") {
      finish();
    } else if (current) {
      current.lines.push(line);
    }
  }
  finish();
  return blocks;
}

function sortById<T extends { id: string }>(items: readonly T[]): T[] {
  return [...items].sort((left, right) => compareText(left.id, right.id));
}
