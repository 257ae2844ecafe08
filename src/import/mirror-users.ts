import { eq } from "drizzle-orm";
import { users } from "../db/schema/index.ts";
import { mapUser } from "./mapping.ts";
import type { MirrorContext } from "./mirror-context.ts";
import { mirrorNamedRows } from "./mirror-rows.ts";
import type { SourceUser } from "./source.ts";

const USER_FIELDS = ["login", "role", "status"] as const;

/**
 * Inserts or updates the node's copy of every Pepeunit user: login, role and status only. Users
 * are few and have no update timestamp in Pepeunit, so all of them are compared on every run.
 * Users are not in the catalogue, so their changes record no `catalogue_changes` row.
 */
export async function mirrorUsers(context: MirrorContext, sourceUsers: SourceUser[]) {
  const { tx } = context;
  const local = await tx
    .select({
      id: users.id,
      login: users.login,
      role: users.role,
      status: users.status,
      source: users.source,
    })
    .from(users);

  await mirrorNamedRows(
    context,
    {
      entity: "user",
      label: "user",
      local,
      fields: USER_FIELDS,
      map: mapUser,
      nameOf: (row) => row.login,
      describeNameConflict: (user, holder) =>
        `login ${JSON.stringify(user.login)} belongs to ${holder.source} user ${holder.id}; rename or delete that user`,
      rename: (id, login) => tx.update(users).set({ login }).where(eq(users.id, id)),
      insert: (user, createdAt) =>
        tx.insert(users).values({ ...user, source: "pepeunit", createdAt }),
      update: ({ id, ...fields }) =>
        tx
          .update(users)
          .set({ ...fields, updatedAt: new Date() })
          .where(eq(users.id, id)),
    },
    sourceUsers,
  );
}
