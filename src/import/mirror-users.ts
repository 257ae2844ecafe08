import { eq } from "drizzle-orm";
import { users } from "../db/schema/index.ts";
import { type MirroredUser, mapUser } from "./mapping.ts";
import { differingFields, type MirrorContext, skipRow } from "./mirror-context.ts";
import { placeholderName, planUniqueNames } from "./names.ts";
import type { SourceUser } from "./source.ts";

const USER_FIELDS = ["login", "role", "status"] as const;

/**
 * Inserts or updates the node's copy of every Pepeunit user: login, role and status only. Users
 * are few and have no update timestamp in Pepeunit, so all of them are compared on every run.
 */
export async function mirrorUsers(context: MirrorContext, sourceUsers: SourceUser[]) {
  const { tx, summary } = context;
  const local = await tx
    .select({
      id: users.id,
      login: users.login,
      role: users.role,
      status: users.status,
      source: users.source,
    })
    .from(users);
  const localById = new Map(local.map((row) => [row.id, row]));

  const candidates: { user: MirroredUser; createdAt: Date }[] = [];
  for (const row of sourceUsers) {
    const mapped = mapUser(row);
    if (!mapped.ok) {
      skipRow(context, {
        entity: "user",
        sourceId: row.id,
        reason: "invalid-value",
        detail: `${mapped.problem}; fix the row in Pepeunit`,
      });
      continue;
    }
    const existing = localById.get(row.id);
    if (existing && existing.source !== "pepeunit") {
      skipRow(context, {
        entity: "user",
        sourceId: row.id,
        reason: "id-conflict",
        detail: `node user ${existing.id} (${existing.login}) has the same id; delete the node user to mirror the Pepeunit one`,
      });
      continue;
    }
    candidates.push({ user: mapped.value, createdAt: row.createdAt });
  }

  const plan = planUniqueNames(
    local.map((row) => ({ id: row.id, name: row.login, source: row.source })),
    candidates.map(({ user }) => ({ id: user.id, name: user.login })),
  );
  for (const id of plan.renamedIds) {
    await tx
      .update(users)
      .set({ login: placeholderName(id) })
      .where(eq(users.id, id));
  }

  for (const { user, createdAt } of candidates) {
    const holder = plan.blocked.get(user.id);
    if (holder) {
      skipRow(context, {
        entity: "user",
        sourceId: user.id,
        reason: "name-conflict",
        detail: `login ${JSON.stringify(user.login)} belongs to ${holder.source} user ${holder.id}; rename or delete that user`,
      });
      continue;
    }

    const existing = localById.get(user.id);
    if (!existing) {
      await tx.insert(users).values({ ...user, source: "pepeunit", createdAt });
      summary.counts.user.inserted += 1;
      continue;
    }
    if (differingFields(existing, user, USER_FIELDS).length === 0) {
      summary.counts.user.unchanged += 1;
      continue;
    }
    await tx
      .update(users)
      .set({ login: user.login, role: user.role, status: user.status, updatedAt: new Date() })
      .where(eq(users.id, user.id));
    summary.counts.user.updated += 1;
  }
}
