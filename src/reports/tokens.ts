/**
 * Report tokens: bearer tokens that the administrator creates for scrapers of the load report.
 * A token is 32 random bytes in base64url. Only its SHA-256 is stored, so the token is shown
 * once, when it is created, and a stolen database does not reveal it.
 */
import { createHash, randomBytes } from "node:crypto";
import { desc, eq, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { type ReportTokenRow, type ReportTokenScope, reportTokens } from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";

const logger = getNodeLogger("reports", "tokens");

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export interface CreatedReportToken {
  row: ReportTokenRow;
  /** The token text; it is not stored and cannot be shown again. */
  token: string;
}

export async function createReportToken(
  db: Database,
  request: { name: string; scopes: readonly ReportTokenScope[] },
): Promise<CreatedReportToken> {
  const token = randomBytes(32).toString("base64url");
  const [row] = await db
    .insert(reportTokens)
    .values({ name: request.name, scopes: [...request.scopes], tokenSha256: sha256Hex(token) })
    .returning();
  if (!row) throw new Error(`Report token ${request.name} was not stored`);
  logger.info("Created report token {tokenId} ({name}) with scopes {scopes}", {
    tokenId: row.id,
    name: row.name,
    scopes: row.scopes,
  });
  return { row, token };
}

export async function listReportTokens(db: Database): Promise<ReportTokenRow[]> {
  return await db.select().from(reportTokens).orderBy(desc(reportTokens.createdAt));
}

/**
 * Revokes the token `id`. Returns the row, unchanged when it was revoked before, or undefined
 * when no token has that id.
 */
export async function revokeReportToken(
  db: Database,
  id: string,
): Promise<ReportTokenRow | undefined> {
  const [revoked] = await db
    .update(reportTokens)
    .set({ revokedAt: sql`now()` })
    .where(sql`${reportTokens.id} = ${id} and ${reportTokens.revokedAt} is null`)
    .returning();
  if (revoked) {
    logger.info("Revoked report token {tokenId} ({name})", { tokenId: id, name: revoked.name });
    return revoked;
  }
  const [existing] = await db.select().from(reportTokens).where(eq(reportTokens.id, id));
  return existing;
}

export type TokenCheck =
  | { ok: true; token: ReportTokenRow }
  | { ok: false; reason: "unknown" | "revoked" | "scope" };

/** Checks a presented token for `scope` and records its use. */
export async function checkReportToken(
  db: Database,
  token: string,
  scope: ReportTokenScope,
): Promise<TokenCheck> {
  const [row] = await db
    .select()
    .from(reportTokens)
    .where(eq(reportTokens.tokenSha256, sha256Hex(token)));
  if (!row) return { ok: false, reason: "unknown" };
  if (row.revokedAt !== null) return { ok: false, reason: "revoked" };
  if (!row.scopes.includes(scope)) return { ok: false, reason: "scope" };
  await db.update(reportTokens).set({ lastUsedAt: sql`now()` }).where(eq(reportTokens.id, row.id));
  return { ok: true, token: row };
}
