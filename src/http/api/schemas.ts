/**
 * Zod schemas of the REST API: they validate requests and describe every body in the OpenAPI
 * document. Objects in request bodies are strict, so an unknown field is rejected.
 */
import { z } from "@hono/zod-openapi";
import { MAX_SEARCH_LIMIT } from "../../catalogue/search.ts";
import { MAX_UNIT_NODES } from "../../catalogue/units.ts";
import {
  COMMIT_PATTERN,
  COMMIT_RULE,
  checkRepositoryUrl,
  NAME_PATTERN,
  NAME_RULE,
  REPOSITORY_URL_RULE,
  SUMMARY_MAX_LENGTH,
  TOPIC_NAME_PATTERN,
  TOPIC_NAME_RULE,
} from "../../catalogue/validation.ts";
import {
  FOLLOW_STATES,
  GIT_PLATFORMS,
  ROW_SOURCES,
  UNIT_NODE_TYPES,
  VISIBILITY_LEVELS,
} from "../../db/schema/index.ts";

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "invalid_request" }),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi("Error");

export const VisibilitySchema = z.enum(VISIBILITY_LEVELS).openapi("Visibility");
export const PlatformSchema = z.enum(GIT_PLATFORMS).openapi("Platform");
const NodeTypeSchema = z.enum(UNIT_NODE_TYPES).openapi("UnitNodeType");

const NameSchema = z
  .string()
  .regex(NAME_PATTERN, NAME_RULE)
  .openapi({ example: "weather-station" });
const TimestampSchema = z.string().openapi({ format: "date-time" });

export const IdParamsSchema = z.object({
  id: z
    .guid("expected a UUID such as 0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44")
    .openapi({ param: { name: "id", in: "path" } }),
});

const cursorQuery = z
  .string()
  .min(1)
  .max(2000)
  .optional()
  .openapi({ description: "The `next` value of the previous page" });

const limitQuery = z.coerce
  .number({ error: `expected a whole number from 1 to ${MAX_SEARCH_LIMIT}` })
  .int(`expected a whole number from 1 to ${MAX_SEARCH_LIMIT}`)
  .min(1, `expected a whole number from 1 to ${MAX_SEARCH_LIMIT}`)
  .max(MAX_SEARCH_LIMIT, `expected a whole number from 1 to ${MAX_SEARCH_LIMIT}`)
  .default(20)
  .openapi({ type: "integer", minimum: 1, maximum: MAX_SEARCH_LIMIT, default: 20 });

export const PageQuerySchema = z.object({ limit: limitQuery, cursor: cursorQuery });

/** `host[:port]`, as in federation state; IPv6 hosts in brackets. */
export const HOST_PATTERN =
  /^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$/i;
const HOST_RULE =
  "expected local or an instance host such as node.example.com or node.example.com:8443";

export const CatalogueQuerySchema = PageQuerySchema.extend({
  origin: z.string().regex(HOST_PATTERN, HOST_RULE).optional(),
});

export const SearchQuerySchema = PageQuerySchema.extend({
  q: z
    .string()
    .max(200, "expected at most 200 characters")
    .optional()
    .openapi({ description: "Words in web search syntax; each word also matches as a prefix" }),
  platform: PlatformSchema.optional(),
  compilable: z
    .enum(["true", "false"], { error: "expected true or false" })
    .transform((value) => value === "true")
    .optional()
    .openapi({ type: "string", enum: ["true", "false"] }),
  origin: z
    .string()
    .refine((value) => value === "local" || HOST_PATTERN.test(value), HOST_RULE)
    .optional()
    .openapi({ description: "`local`, or the host of the instance that owns the Repo" }),
  unit: z
    .string()
    .min(1)
    .max(20, "expected at most 20 characters, the longest Unit name")
    .optional()
    .openapi({ description: "Keep Repos with a Unit whose name contains this text" }),
});

export const UnitListQuerySchema = PageQuerySchema.extend({
  repoId: z.guid("expected a Repo UUID").optional(),
});

const RepoVersionSchema = z
  .strictObject({
    tag: z.string().min(1).max(255).nullable(),
    commit: z.string().regex(COMMIT_PATTERN, COMMIT_RULE).nullable(),
  })
  .refine((version) => version.tag !== null || version.commit !== null, {
    message: "expected a tag, a commit or both",
  })
  .openapi("RepoVersion");

const RepositoryUrlSchema = z
  .string()
  .max(2000)
  .refine((value) => checkRepositoryUrl("repositoryUrl", value) === null, REPOSITORY_URL_RULE)
  .openapi({ format: "uri", example: "https://github.com/owner/weather-station.git" });

const repoFields = {
  name: NameSchema,
  summary: z.string().max(SUMMARY_MAX_LENGTH, `expected at most ${SUMMARY_MAX_LENGTH} characters`),
  repositoryUrl: RepositoryUrlSchema,
  platform: PlatformSchema,
  defaultBranch: z.string().min(1).max(255).nullable(),
  isCompilable: z.boolean(),
  visibility: VisibilitySchema,
  versions: z.array(RepoVersionSchema).max(1000),
};

export const RepoCreateSchema = z
  .strictObject({
    name: repoFields.name,
    summary: repoFields.summary.optional(),
    repositoryUrl: repoFields.repositoryUrl,
    platform: repoFields.platform,
    defaultBranch: repoFields.defaultBranch.optional(),
    isCompilable: repoFields.isCompilable.optional(),
    visibility: repoFields.visibility.optional(),
    versions: repoFields.versions.optional(),
  })
  .openapi("RepoCreate");

export const RepoUpdateSchema = RepoCreateSchema.partial().openapi("RepoUpdate");

export const RepoSchema = z
  .object({
    id: z.string(),
    iri: z.string().openapi({ description: "ActivityPub IRI of the Repo actor" }),
    ...repoFields,
    summary: z.string(),
    source: z.enum(ROW_SOURCES),
    createdAt: TimestampSchema,
    updatedAt: TimestampSchema,
  })
  .openapi("Repo");

const UnitNodeInputSchema = z
  .strictObject({
    type: NodeTypeSchema,
    topicName: z.string().regex(TOPIC_NAME_PATTERN, TOPIC_NAME_RULE),
    visibility: VisibilitySchema.optional(),
  })
  .openapi("UnitNodeInput");

const nodeList = z
  .array(UnitNodeInputSchema)
  .max(MAX_UNIT_NODES, `expected at most ${MAX_UNIT_NODES} nodes`);

export const UnitCreateSchema = z
  .strictObject({
    repoId: z.guid("expected the UUID of a local Repo"),
    name: NameSchema,
    visibility: VisibilitySchema.optional(),
    nodes: nodeList.optional(),
  })
  .openapi("UnitCreate");

export const UnitUpdateSchema = z
  .strictObject({
    name: NameSchema.optional(),
    visibility: VisibilitySchema.optional(),
    nodes: nodeList.optional().openapi({
      description: "The complete node list; nodes with the same type and topic keep their id",
    }),
  })
  .openapi("UnitUpdate");

export const UnitSchema = z
  .object({
    id: z.string(),
    repoId: z.string(),
    name: z.string(),
    visibility: VisibilitySchema,
    source: z.enum(ROW_SOURCES),
    nodes: z.array(
      z.object({
        id: z.string(),
        type: NodeTypeSchema,
        topicName: z.string(),
        visibility: VisibilitySchema,
      }),
    ),
    createdAt: TimestampSchema,
    updatedAt: TimestampSchema,
  })
  .openapi("Unit");

export const SearchHitSchema = z
  .object({
    iri: z.string(),
    pepeunitId: z.string().nullable(),
    origin: z.object({ host: z.string(), isLocal: z.boolean() }),
    name: z.string(),
    summary: z.string(),
    repositoryUrl: z.string(),
    platform: z.string(),
    defaultBranch: z.string().nullable(),
    isCompilable: z.boolean(),
    versions: z.array(RepoVersionSchema),
    updatedAt: TimestampSchema,
  })
  .openapi("RepoSearchHit");

export const FederatedRepoSchema = z
  .object({
    iri: z.string(),
    pepeunitId: z.string().nullable(),
    originHost: z.string(),
    name: z.string(),
    summary: z.string(),
    repositoryUrl: z.string(),
    platform: z.string(),
    defaultBranch: z.string().nullable(),
    isCompilable: z.boolean(),
    versions: z.array(RepoVersionSchema),
    publishedAt: TimestampSchema.nullable(),
    remoteUpdatedAt: TimestampSchema.nullable(),
    receivedAt: TimestampSchema,
    units: z.array(
      z.object({
        iri: z.string(),
        pepeunitId: z.string().nullable(),
        name: z.string(),
        nodes: z.array(z.object({ id: z.string(), type: NodeTypeSchema, topicName: z.string() })),
        remoteUpdatedAt: TimestampSchema.nullable(),
        receivedAt: TimestampSchema,
      }),
    ),
  })
  .openapi("FederatedRepo");

export const FollowBodySchema = z
  .strictObject({
    target: z
      .url({
        protocol: /^https?$/,
        error: "expected an http:// or https:// URL such as https://node.example.com",
      })
      .max(2000)
      .openapi({ example: "https://node.example.com" }),
  })
  .openapi("FollowTarget");

export const FollowedInstanceSchema = z
  .object({
    actorIri: z.string(),
    host: z.string(),
    state: z.enum(FOLLOW_STATES),
  })
  .openapi("FollowedInstance");

export const PeerSchema = z
  .object({
    id: z.string(),
    iri: z.string(),
    host: z.string(),
    type: z.string(),
    name: z.string().nullable(),
    isPepeunitNode: z.boolean(),
    outbound: z
      .object({ state: z.enum(FOLLOW_STATES), updatedAt: TimestampSchema })
      .nullable()
      .openapi({ description: "This node's follow of the peer, if any" }),
    inbound: z
      .object({ followsInstance: z.boolean(), followedRepoCount: z.number().int() })
      .openapi({ description: "The peer's follows of this node's actors" }),
  })
  .openapi("Peer");

/**
 * Builds the schema of a page of `item`: the items and the cursor of the next page, which is null
 * on the last page.
 */
export function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z.object({ items: z.array(item), next: z.string().nullable() }).openapi(name);
}
