import { describe, expect, it } from "vitest";
import { canonicalJson, hashJson, hashPosting } from "./content-hash.ts";
import { InvalidLedgerRequestError } from "./errors.ts";
import { type PostingRequest, parsePostingRequest } from "./validation.ts";

const balanced = [
  { accountId: 2, amount: -5n },
  { accountId: 1, amount: 5n },
];

function failureOf(request: unknown): InvalidLedgerRequestError {
  try {
    parsePostingRequest(request as PostingRequest);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidLedgerRequestError);
    return error as InvalidLedgerRequestError;
  }
  throw new Error("expected parsePostingRequest to throw");
}

describe("parsePostingRequest", () => {
  it("fills defaults and sorts entries", () => {
    expect(parsePostingRequest({ idempotencyKey: "k", kind: "usage", entries: balanced })).toEqual({
      idempotencyKey: "k",
      kind: "usage",
      description: null,
      metadata: {},
      entries: [
        { accountId: 1, amount: 5n },
        { accountId: 2, amount: -5n },
      ],
    });
  });

  it("names the invalid field", () => {
    const cases: [unknown, string, string][] = [
      [null, "request", "expected object"],
      [{ idempotencyKey: "", kind: "usage", entries: balanced }, "idempotencyKey", "empty"],
      [
        { idempotencyKey: "a".repeat(201), kind: "usage", entries: balanced },
        "idempotencyKey",
        "200",
      ],
      [
        { idempotencyKey: "a\u0000b", kind: "usage", entries: balanced },
        "idempotencyKey",
        "U+0000",
      ],
      [{ idempotencyKey: "k", kind: "Usage", entries: balanced }, "kind", "lower-case"],
      [{ idempotencyKey: "k", kind: "u".repeat(65), entries: balanced }, "kind", "64"],
      [
        { idempotencyKey: "k", kind: "usage", description: "d".repeat(501), entries: balanced },
        "description",
        "500",
      ],
      [
        { idempotencyKey: "k", kind: "usage", description: "\u0000", entries: balanced },
        "description",
        "U+0000",
      ],
      [
        { idempotencyKey: "k", kind: "usage", metadata: { note: "\u0000" }, entries: balanced },
        "metadata",
        "U+0000",
      ],
      [
        { idempotencyKey: "k", kind: "usage", metadata: [], entries: balanced },
        "metadata",
        "expected record",
      ],
      [{ idempotencyKey: "k", kind: "usage", entries: [balanced[0]] }, "entries", "at least 2"],
      [
        {
          idempotencyKey: "k",
          kind: "usage",
          entries: [
            { accountId: 1, amount: 0n },
            { accountId: 2, amount: 0n },
          ],
        },
        "entries.0.amount",
        "must not be 0",
      ],
      [
        {
          idempotencyKey: "k",
          kind: "usage",
          entries: [
            { accountId: 1.5, amount: 1n },
            { accountId: 2, amount: -1n },
          ],
        },
        "entries.0.accountId",
        "expected int",
      ],
      [
        {
          idempotencyKey: "k",
          kind: "usage",
          entries: [
            { accountId: 3, amount: 1n },
            { accountId: 3, amount: 1n },
            { accountId: 2, amount: -2n },
          ],
        },
        "entries",
        "account 3 appears twice",
      ],
      [
        {
          idempotencyKey: "k",
          kind: "usage",
          entries: [
            { accountId: 1, amount: 3n },
            { accountId: 2, amount: -1n },
          ],
        },
        "entries",
        "sum to 2",
      ],
    ];
    for (const [request, field, text] of cases) {
      const failure = failureOf(request);
      expect(failure.field).toBe(field);
      expect(failure.message).toContain(text);
    }
  });

  it("accepts dotted kinds", () => {
    const posting = parsePostingRequest({
      idempotencyKey: "k",
      kind: "payment.telegram_stars",
      entries: balanced,
    });
    expect(posting.kind).toBe("payment.telegram_stars");
  });
});

describe("content hash", () => {
  it("ignores key order", () => {
    expect(canonicalJson({ b: [1, { d: null, c: "x" }], a: true })).toBe(
      '{"a":true,"b":[1,{"c":"x","d":null}]}',
    );
    expect(hashJson({ a: 1, b: 2 })).toBe(hashJson({ b: 2, a: 1 }));
    expect(hashJson({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });

  it("tells different postings apart", () => {
    const base = parsePostingRequest({ idempotencyKey: "k", kind: "usage", entries: balanced });
    const variants = [
      { ...base, kind: "refund" },
      { ...base, description: "other" },
      { ...base, metadata: { unitId: "u" } },
      {
        ...base,
        entries: [
          { accountId: 1, amount: 6n },
          { accountId: 2, amount: -6n },
        ],
      },
    ];
    for (const variant of variants) {
      expect(hashPosting(variant)).not.toBe(hashPosting(base));
    }
    // The idempotency key is the look-up key, not part of the content.
    expect(hashPosting({ ...base, idempotencyKey: "other" })).toBe(hashPosting(base));
  });
});
