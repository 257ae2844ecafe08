/** Input checks shared by the ledger functions. Each raises {@link InvalidLedgerRequestError}. */
import { z } from "zod";
import { InvalidLedgerRequestError } from "./errors.ts";

export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** One line of a posting: a signed amount in minor units, positive to add to the account. */
export interface PostingEntry {
  accountId: number;
  amount: bigint;
}

/** Input of {@link postTransaction}. `kind` names the business event, such as `usage`. */
export interface PostingRequest {
  idempotencyKey: string;
  kind: string;
  description?: string | undefined;
  metadata?: Record<string, JsonValue> | undefined;
  entries: readonly PostingEntry[];
}

/** A checked posting with defaults filled in and entries sorted by account id. */
export interface Posting {
  idempotencyKey: string;
  kind: string;
  description: string | null;
  metadata: Record<string, JsonValue>;
  entries: PostingEntry[];
}

export const IDEMPOTENCY_KEY_MAX_LENGTH = 200;
export const DESCRIPTION_MAX_LENGTH = 500;
export const KIND_MAX_LENGTH = 64;

const NUL_MESSAGE = "must not contain the character U+0000, which PostgreSQL cannot store in text";

const IdempotencyKeySchema = z
  .string()
  .min(1, "must not be empty")
  .max(IDEMPOTENCY_KEY_MAX_LENGTH, `must be at most ${IDEMPOTENCY_KEY_MAX_LENGTH} characters`)
  .refine((value) => !value.includes("\u0000"), NUL_MESSAGE);

const KindSchema = z
  .string()
  .max(KIND_MAX_LENGTH, `must be at most ${KIND_MAX_LENGTH} characters`)
  .regex(
    /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/,
    "must be lower-case words joined by _ or ., such as usage or payment.telegram_stars",
  );

const PostingRequestSchema = z.object({
  idempotencyKey: IdempotencyKeySchema,
  kind: KindSchema,
  description: z
    .string()
    .max(DESCRIPTION_MAX_LENGTH, `must be at most ${DESCRIPTION_MAX_LENGTH} characters`)
    .refine((value) => !value.includes("\u0000"), NUL_MESSAGE)
    .optional(),
  metadata: z
    .record(z.string(), z.json())
    .refine((value) => !JSON.stringify(value).includes("\\u0000"), NUL_MESSAGE)
    .optional(),
  entries: z
    .array(
      z.object({
        accountId: z.number().int().positive(),
        amount: z.bigint().refine((amount) => amount !== 0n, "must not be 0"),
      }),
    )
    .min(2, "must contain at least 2 entries"),
});

/** Checks a posting request: the fields, distinct accounts, and entries that sum to zero. */
export function parsePostingRequest(request: PostingRequest): Posting {
  const parsed = parseWithSchema(PostingRequestSchema, request);

  const entries = [...parsed.entries].sort((left, right) => left.accountId - right.accountId);
  for (let index = 1; index < entries.length; index++) {
    const accountId = (entries[index] as PostingEntry).accountId;
    if ((entries[index - 1] as PostingEntry).accountId === accountId) {
      throw new InvalidLedgerRequestError(
        "entries",
        `account ${accountId} appears twice: merge its amounts into one entry`,
      );
    }
  }

  const sum = entries.reduce((total, entry) => total + entry.amount, 0n);
  if (sum !== 0n) {
    throw new InvalidLedgerRequestError(
      "entries",
      `amounts sum to ${sum}, but a double-entry posting must sum to 0`,
    );
  }

  return {
    idempotencyKey: parsed.idempotencyKey,
    kind: parsed.kind,
    description: parsed.description ?? null,
    metadata: (parsed.metadata ?? {}) as Record<string, JsonValue>,
    entries,
  };
}

/** Checks an idempotency key on its own, for callers that build the posting later. */
export function parseIdempotencyKey(key: string): string {
  return parseWithSchema(IdempotencyKeySchema, key, "idempotencyKey");
}

/** Checks that `userId` is a UUID, the type of `users.id`. */
export function parseUserId(userId: string): string {
  return parseWithSchema(z.guid("must be a UUID"), userId, "userId");
}

/** Checks that an amount in minor units is a bigint above zero. */
export function parsePositiveAmount(amount: bigint): bigint {
  return parseWithSchema(z.bigint().positive("must be above 0"), amount, "amount");
}

function parseWithSchema<T>(schema: z.ZodType<T>, value: unknown, field?: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;

  const [issue] = result.error.issues as [z.core.$ZodIssue];
  const path = [field, ...issue.path.map(String)].filter((part) => part !== undefined);
  throw new InvalidLedgerRequestError(path.length > 0 ? path.join(".") : "request", issue.message);
}
