/**
 * Cheap checks of inbox POSTs that run before Fedify verifies signatures: the media type, JSON
 * syntax, and an activity type that the node handles. A request that fails gets a 4xx in the
 * node's error shape and costs no key fetch or signature check.
 */
import type { MiddlewareHandler } from "hono";
import { errorResponse } from "../src/http/errors.ts";
import { getNodeLogger } from "../src/logging.ts";

const logger = getNodeLogger("federation", "inbox");

/** Activity types with an inbox listener (see `inbox/index.ts`). */
export const SUPPORTED_ACTIVITY_TYPES = [
  "Follow",
  "Undo",
  "Accept",
  "Reject",
  "Create",
  "Update",
  "Delete",
  "Offer",
] as const;

const JSON_MEDIA_TYPES = ["application/activity+json", "application/ld+json", "application/json"];

function typesOf(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === "string");
  return [];
}

/** True for the POST paths that Fedify treats as inboxes. */
export function isInboxPath(pathname: string): boolean {
  return pathname === "/ap/inbox" || /^\/ap\/actors\/[^/]+\/inbox$/.test(pathname);
}

export function inboxGuard(): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method !== "POST" || !isInboxPath(c.req.path)) return await next();

    const mediaType = c.req.header("content-type")?.split(";")[0]?.trim().toLowerCase() ?? "";
    if (!JSON_MEDIA_TYPES.includes(mediaType)) {
      return errorResponse(
        c,
        415,
        "unsupported_media_type",
        `Content-Type ${mediaType || "(none)"} is not accepted; send application/activity+json`,
      );
    }

    const text = await c.req.text();
    let document: unknown;
    try {
      document = JSON.parse(text);
    } catch (error) {
      return errorResponse(
        c,
        400,
        "malformed_json",
        `The body is not valid JSON: ${String(error)}`,
      );
    }
    const types =
      document !== null && typeof document === "object" && !Array.isArray(document)
        ? typesOf((document as { type?: unknown }).type)
        : [];
    if (types.length === 0) {
      return errorResponse(
        c,
        400,
        "not_an_activity",
        "The body is not an ActivityStreams activity: expected a JSON object with a type",
      );
    }
    const supported = types.some((type) =>
      (SUPPORTED_ACTIVITY_TYPES as readonly string[]).includes(type),
    );
    if (!supported) {
      logger.debug("Rejected activity of type {types}", { types });
      return errorResponse(
        c,
        400,
        "unsupported_activity_type",
        `Activity type ${types.join(", ")} is not handled by this node; it accepts ${SUPPORTED_ACTIVITY_TYPES.join(", ")}`,
      );
    }

    // The body stream is consumed; hand Fedify an identical request.
    c.req.raw = new Request(c.req.raw, { body: text });
    await next();
  };
}
