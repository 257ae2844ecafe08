/** Admin route of a user's token balance and ledger history. */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { Database } from "../db/client.ts";
import { users } from "../db/schema/index.ts";
import {
  adminRoute,
  decodePageCursor,
  encodePageCursor,
  errorResponses,
  jsonResponse,
  setNextLink,
} from "../http/api/routing.ts";
import { IdParamsSchema } from "../http/api/schemas.ts";
import { HttpError } from "../http/errors.ts";
import {
  HISTORY_DEFAULT_LIMIT,
  HISTORY_MAX_LIMIT,
  type LedgerItem,
  readUserLedger,
} from "../money/ledger/index.ts";

const TimestampSchema = z.string().openapi({ format: "date-time" });
const TokensSchema = z
  .string()
  .regex(/^[0-9]+$/)
  .openapi({ description: "Whole tokens as a decimal string", example: "1000" });
const TokenChangeSchema = z
  .string()
  .regex(/^-?[0-9]+$/)
  .openapi({ description: "Change in whole tokens as a decimal string; negative for a debit" });

const LIMIT_RULE = `expected a whole number from 1 to ${HISTORY_MAX_LIMIT}`;

const LedgerQuerySchema = z.object({
  limit: z.coerce
    .number({ error: LIMIT_RULE })
    .int(LIMIT_RULE)
    .min(1, LIMIT_RULE)
    .max(HISTORY_MAX_LIMIT, LIMIT_RULE)
    .default(HISTORY_DEFAULT_LIMIT)
    .openapi({
      type: "integer",
      minimum: 1,
      maximum: HISTORY_MAX_LIMIT,
      default: HISTORY_DEFAULT_LIMIT,
    }),
  cursor: z
    .string()
    .min(1)
    .max(2000)
    .optional()
    .openapi({ description: "The `next` value of the previous page" }),
});

const LedgerItemSchema = z
  .object({
    transactionId: z.number().int(),
    createdAt: TimestampSchema,
    kind: z.string().openapi({
      description:
        "`free_allowance`, `faucet`, `usage`, `aggregation`, `payment.<provider>` or `refund.<provider>`",
    }),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()),
    changes: z
      .array(z.object({ account: z.enum(["free", "paid"]), amount: TokenChangeSchema }))
      .openapi({ description: "The change of each of the user's accounts" }),
    amount: TokenChangeSchema.openapi({ description: "Net change of free and paid tokens" }),
    balanceAfter: TokensSchema.openapi({
      description: "Free and paid tokens together right after this transaction",
    }),
  })
  .openapi("LedgerHistoryItem");

const UserLedgerSchema = z
  .object({
    userId: z.string(),
    balance: z.object({ free: TokensSchema, paid: TokensSchema, total: TokensSchema }),
    items: z.array(LedgerItemSchema),
    next: z.string().nullable(),
  })
  .openapi("UserLedger");

function itemJson(item: LedgerItem) {
  return {
    transactionId: item.transactionId,
    createdAt: item.createdAt.toISOString(),
    kind: item.kind,
    description: item.description,
    metadata: item.metadata,
    changes: item.changes.map((change) => ({
      account: change.accountKind === "user_free" ? ("free" as const) : ("paid" as const),
      amount: change.amount.toString(),
    })),
    amount: item.amount.toString(),
    balanceAfter: item.balanceAfter.toString(),
  };
}

/** Returns the transaction id in a cursor of this route; throws a 400 {@link HttpError} otherwise. */
function cursorAfter(cursor: string | undefined): number | undefined {
  const after = decodePageCursor(cursor);
  if (after === undefined) return undefined;
  const id = /^[0-9]{1,15}$/.test(after) ? Number(after) : 0;
  if (id < 1) {
    throw new HttpError(
      400,
      "invalid_request",
      "Invalid query field cursor: expected the `next` value of a previous page; start again without cursor",
    );
  }
  return id;
}

/** Registers `GET /users/{id}/ledger` on an API app (mount point `/api/v1`). */
export function registerUserLedgerRoute(
  app: OpenAPIHono,
  options: { db: Database; admin: MiddlewareHandler },
): void {
  const { db, admin } = options;

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/users/{id}/ledger",
      tags: ["Billing"],
      summary: "Read a user's token balance and ledger history, newest first",
      description:
        "The balance and the page are read from one database snapshot, so the `balanceAfter` " +
        "of the first item of the first page equals `balance.total`. Amounts are decimal strings.",
      request: { params: IdParamsSchema, query: LedgerQuerySchema },
      responses: {
        200: jsonResponse(UserLedgerSchema, "The balance and one page of the history"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const query = c.req.valid("query");
      const after = cursorAfter(query.cursor);
      const [user] = await db.select({ id: users.id }).from(users).where(eq(users.id, id));
      if (user === undefined) throw new HttpError(404, "user_not_found", `User ${id} not found`);

      const ledger = await readUserLedger(db, id, { limit: query.limit, after });
      const next = ledger.nextAfter === null ? null : encodePageCursor(String(ledger.nextAfter));
      setNextLink(c, next);
      return c.json(
        {
          userId: id,
          balance: {
            free: ledger.free.toString(),
            paid: ledger.paid.toString(),
            total: (ledger.free + ledger.paid).toString(),
          },
          items: ledger.items.map(itemJson),
          next,
        },
        200,
      );
    },
  );
}
