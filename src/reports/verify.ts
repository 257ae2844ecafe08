/**
 * Verification of a load report chain. A chain is a list of compact JWS reports in the order of
 * their sequence numbers. It verifies when every signature is valid for the issuer's key, the
 * sequence numbers go up by one, and each report contains the SHA-256 of the JWS before it. So
 * an edited report fails its signature, and a deleted or reordered report breaks a link.
 *
 * A list that starts after sequence 1 is checked from its first report on. Deleting reports at
 * its very start is then detectable only against an anchor that the verifier kept, which
 * `options.anchor` takes.
 *
 * Every supported payload version verifies at any position, so a chain whose version-1 reports
 * are followed by version-2 ones after an upgrade verifies as one chain.
 */
import type { webcrypto } from "node:crypto";
import { compactVerify, decodeProtectedHeader, errors } from "jose";
import { z } from "zod";
import {
  LOAD_REPORT_JWS_TYPE,
  LOAD_REPORT_TYPE,
  SUPPORTED_LOAD_REPORT_VERSIONS,
} from "./payload.ts";
import { sha256Hex } from "./tokens.ts";

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The payload fields that verification relies on; the rest is checked by the signature. */
const ChainFieldsSchema = z.looseObject({
  type: z.literal(LOAD_REPORT_TYPE),
  version: z.literal(SUPPORTED_LOAD_REPORT_VERSIONS, {
    error: (issue) =>
      issue.input === undefined
        ? "missing version"
        : `unsupported version ${JSON.stringify(issue.input)}; this verifier reads versions ${SUPPORTED_LOAD_REPORT_VERSIONS.join(" and ")}, so update the verifier to read newer reports`,
  }),
  iss: z.string(),
  sequence: z.number().int().min(1),
  previousSha256: z.string().regex(SHA256_HEX).nullable(),
});

export type ChainVerification =
  | {
      ok: true;
      count: number;
      first: number | null;
      last: number | null;
      lastSha256: string | null;
    }
  | {
      ok: false;
      /** Position in the list of the first report that failed. */
      index: number;
      /** Its sequence number, when its payload could be read. */
      sequence: number | null;
      reason: string;
    };

export interface ChainOptions {
  /** The last report the verifier trusted before: the list must continue right after it. */
  anchor?: { sequence: number; sha256: string };
  /** Origin the reports must name as `iss`. */
  issuer?: string;
}

function failure(index: number, sequence: number | null, reason: string): ChainVerification {
  return { ok: false, index, sequence, reason };
}

/** Verifies `reports` with one public key; see the module comment for the rules. */
export async function verifyLoadReportChain(
  reports: readonly string[],
  publicKey: webcrypto.CryptoKey,
  options: ChainOptions = {},
): Promise<ChainVerification> {
  let previous: { sequence: number; sha256: string } | null = options.anchor ?? null;
  let first: number | null = null;

  for (const [index, jws] of reports.entries()) {
    let payloadBytes: Uint8Array;
    try {
      const verified = await compactVerify(jws, publicKey, { algorithms: ["EdDSA"] });
      payloadBytes = verified.payload;
      if (verified.protectedHeader.typ !== LOAD_REPORT_JWS_TYPE) {
        return failure(
          index,
          null,
          `report at position ${index} has JWS type ${String(verified.protectedHeader.typ)}, expected ${LOAD_REPORT_JWS_TYPE}`,
        );
      }
    } catch (error) {
      const detail =
        error instanceof errors.JWSSignatureVerificationFailed
          ? "the signature does not match its content, so the report was changed or signed by another key"
          : `it is not a valid JWS (${error instanceof Error ? error.message : String(error)})`;
      return failure(index, null, `report at position ${index} failed verification: ${detail}`);
    }

    const parsed = ChainFieldsSchema.safeParse(parseJson(payloadBytes));
    if (!parsed.success) {
      return failure(
        index,
        null,
        `report at position ${index} is not a load report: ${parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`,
      );
    }
    const fields = parsed.data;
    if (options.issuer !== undefined && fields.iss !== options.issuer) {
      return failure(
        index,
        fields.sequence,
        `report ${fields.sequence} was issued by ${fields.iss}, not by ${options.issuer}`,
      );
    }

    if (previous === null) {
      if (fields.sequence === 1 && fields.previousSha256 !== null) {
        return failure(index, 1, "report 1 names a previous report, but the chain starts there");
      }
    } else {
      if (fields.sequence !== previous.sequence + 1) {
        const kind = fields.sequence <= previous.sequence ? "reordered or repeated" : "missing";
        return failure(
          index,
          fields.sequence,
          `report ${fields.sequence} follows report ${previous.sequence}: a report is ${kind} (expected sequence ${previous.sequence + 1})`,
        );
      }
      if (fields.previousSha256 !== previous.sha256) {
        return failure(
          index,
          fields.sequence,
          `report ${fields.sequence} does not link to report ${previous.sequence}: it names previous hash ${String(fields.previousSha256)}, but that report hashes to ${previous.sha256}`,
        );
      }
    }

    first ??= fields.sequence;
    previous = { sequence: fields.sequence, sha256: sha256Hex(jws) };
  }

  return {
    ok: true,
    count: reports.length,
    first,
    last: previous === null || reports.length === 0 ? null : previous.sequence,
    lastSha256: reports.length === 0 ? null : (previous?.sha256 ?? null),
  };
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}

/** Fetches the public key named by a report's `kid`, such as from the issuer's actor. */
export type ReportKeyFetcher = (kid: URL) => Promise<webcrypto.CryptoKey>;

/**
 * Verifies `reports` of the node at `issuer` with the key their `kid` names. The `kid` must be a
 * URL on `issuer`, so a report cannot point at a key of another host. Every report must name the
 * same `kid`.
 */
export async function verifyLoadReportChainFromIssuer(
  reports: readonly string[],
  issuer: URL,
  fetchKey: ReportKeyFetcher,
  options: Omit<ChainOptions, "issuer"> = {},
): Promise<ChainVerification> {
  if (reports.length === 0) {
    return { ok: true, count: 0, first: null, last: null, lastSha256: null };
  }

  let kid: URL | undefined;
  for (const [index, jws] of reports.entries()) {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(jws);
    } catch (error) {
      return failure(
        index,
        null,
        `report at position ${index} has no readable JWS header (${String(error)})`,
      );
    }
    if (typeof header.kid !== "string" || !URL.canParse(header.kid)) {
      return failure(index, null, `report at position ${index} has no key id URL (kid)`);
    }
    const current = new URL(header.kid);
    if (current.origin !== issuer.origin) {
      return failure(
        index,
        null,
        `report at position ${index} names key ${current.href}, which is not on ${issuer.origin}`,
      );
    }
    if (kid !== undefined && kid.href !== current.href) {
      return failure(
        index,
        null,
        `report at position ${index} names key ${current.href}, but earlier reports name ${kid.href}`,
      );
    }
    kid = current;
  }

  const publicKey = await fetchKey(kid as URL);
  return await verifyLoadReportChain(reports, publicKey, { ...options, issuer: issuer.origin });
}
