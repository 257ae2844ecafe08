/**
 * The wire format of Pepeunit entities. Repos travel as ActivityPub `Service` actors and Units
 * as `Document` objects attributed to their Repo, so any ActivityPub server can read them.
 * Pepeunit fields ride in `attachment` as `PropertyValue`s whose names start with `pepeunit:`;
 * Mastodon-like servers show them as profile fields, and peers parse them back here.
 * `docs/federation-protocol.md` documents the format with examples.
 */

import {
  type Object as APObject,
  type Application,
  Document,
  PropertyValue,
  type Service,
} from "@fedify/vocab";
import { Temporal as TemporalPolyfill } from "@js-temporal/polyfill";
import { z } from "zod";
import type { FederatedUnitNode, RepoVersion } from "../src/db/schema/index.ts";

export const PEPEUNIT_PROPERTY_PREFIX = "pepeunit:";

export const PROPERTY = {
  id: "pepeunit:id",
  kind: "pepeunit:kind",
  domain: "pepeunit:domain",
  repositoryUrl: "pepeunit:repositoryUrl",
  platform: "pepeunit:platform",
  defaultBranch: "pepeunit:defaultBranch",
  compilable: "pepeunit:compilable",
  versions: "pepeunit:versions",
  node: "pepeunit:unitNode",
} as const;

/**
 * Converts a Date to the Temporal.Instant that Fedify's vocabulary takes. Node 24 has no global
 * Temporal, so Fedify uses the polyfill at run time while its types name the standard one.
 */
export function toInstant(date: Date): Temporal.Instant {
  return TemporalPolyfill.Instant.fromEpochMilliseconds(
    date.getTime(),
  ) as unknown as Temporal.Instant;
}

/** Converts milliseconds to a Temporal.Duration for Fedify options; see {@link toInstant}. */
export function toDuration(milliseconds: number): Temporal.Duration {
  return TemporalPolyfill.Duration.from({ milliseconds }) as unknown as Temporal.Duration;
}

export function property(name: string, value: string): PropertyValue {
  return new PropertyValue({ name, value });
}

/** Reads `pepeunit:*` attachments into name → values (a name may repeat, e.g. unit nodes). */
export async function readProperties(object: APObject): Promise<Map<string, string[]>> {
  const properties = new Map<string, string[]>();
  for await (const attachment of object.getAttachments()) {
    if (!(attachment instanceof PropertyValue)) continue;
    const name = attachment.name?.toString();
    const value = attachment.value?.toString();
    if (!name?.startsWith(PEPEUNIT_PROPERTY_PREFIX) || value === undefined) continue;
    const values = properties.get(name) ?? [];
    values.push(value);
    properties.set(name, values);
  }
  return properties;
}

const versionSchema = z
  .array(
    z.strictObject({ tag: z.string().max(255).nullable(), commit: z.string().max(64).nullable() }),
  )
  .max(1000);

const nodeSchema = z.strictObject({
  id: z.uuid(),
  type: z.enum(["Input", "Output"]),
  topicName: z.string().min(1).max(255),
});

export function encodeVersions(versions: readonly RepoVersion[]): string {
  return JSON.stringify(versions);
}

export function encodeNode(node: FederatedUnitNode): string {
  return JSON.stringify({ id: node.id, type: node.type, topicName: node.topicName });
}

/** A Repo as read from a peer's `Service` actor. */
export interface WireRepo {
  iri: string;
  pepeunitId: string | null;
  name: string;
  summary: string;
  repositoryUrl: string;
  platform: "Gitlab" | "Github";
  defaultBranch: string | null;
  isCompilable: boolean;
  versions: RepoVersion[];
  published: Date | null;
  updated: Date | null;
}

/** A Unit as read from a peer's `Document`. */
export interface WireUnit {
  iri: string;
  repoIri: string;
  pepeunitId: string | null;
  name: string;
  nodes: FederatedUnitNode[];
  updated: Date | null;
}

/** Raised when a peer's object lacks a Pepeunit field or carries a malformed one. */
export class WireFormatError extends Error {
  constructor(iri: string, problem: string) {
    super(`Malformed Pepeunit object ${iri}: ${problem}`);
    this.name = "WireFormatError";
  }
}

function single(properties: Map<string, string[]>, name: string): string | undefined {
  return properties.get(name)?.[0];
}

function instantToDate(instant: Temporal.Instant | null | undefined): Date | null {
  return instant ? new Date(instant.epochMilliseconds) : null;
}

const optionalUuid = z.uuid().nullable();

/** Returns true when the actor declares itself a Pepeunit Repo. */
export async function isRepoActor(actor: Service | Application): Promise<boolean> {
  const properties = await readProperties(actor);
  return single(properties, PROPERTY.kind) === "repo";
}

export async function readRepoActor(actor: Service): Promise<WireRepo> {
  const iri = actor.id?.href;
  if (!iri) throw new WireFormatError("(no id)", "the actor has no id");
  const properties = await readProperties(actor);
  if (single(properties, PROPERTY.kind) !== "repo") {
    throw new WireFormatError(iri, `${PROPERTY.kind} is not "repo"`);
  }

  const name = actor.name?.toString() ?? actor.preferredUsername?.toString();
  if (!name || name.length > 100) throw new WireFormatError(iri, "name is missing or too long");

  const repositoryUrl = single(properties, PROPERTY.repositoryUrl);
  if (!repositoryUrl || !/^https?:\/\/\S+$/.test(repositoryUrl) || repositoryUrl.length > 2048) {
    throw new WireFormatError(iri, `${PROPERTY.repositoryUrl} is not an http(s) URL`);
  }
  const platform = single(properties, PROPERTY.platform);
  if (platform !== "Gitlab" && platform !== "Github") {
    throw new WireFormatError(iri, `${PROPERTY.platform} must be Gitlab or Github`);
  }
  const compilable = single(properties, PROPERTY.compilable);
  if (compilable !== undefined && compilable !== "true" && compilable !== "false") {
    throw new WireFormatError(iri, `${PROPERTY.compilable} must be true or false`);
  }

  let versions: RepoVersion[] = [];
  const versionsText = single(properties, PROPERTY.versions);
  if (versionsText !== undefined) {
    try {
      versions = versionSchema.parse(JSON.parse(versionsText));
    } catch {
      throw new WireFormatError(iri, `${PROPERTY.versions} is not a JSON list of {tag, commit}`);
    }
  }

  const pepeunitId = optionalUuid.safeParse(single(properties, PROPERTY.id) ?? null);
  const summary = actor.summary?.toString() ?? "";
  return {
    iri,
    pepeunitId: pepeunitId.success ? pepeunitId.data : null,
    name,
    summary: summary.slice(0, 2000),
    repositoryUrl,
    platform,
    defaultBranch: single(properties, PROPERTY.defaultBranch)?.slice(0, 255) ?? null,
    isCompilable: compilable === "true",
    versions,
    published: instantToDate(actor.published),
    updated: instantToDate(actor.updated),
  };
}

export async function readUnitObject(object: APObject): Promise<WireUnit> {
  const iri = object.id?.href;
  if (!iri) throw new WireFormatError("(no id)", "the object has no id");
  if (!(object instanceof Document)) throw new WireFormatError(iri, "a Unit must be a Document");
  const properties = await readProperties(object);
  if (single(properties, PROPERTY.kind) !== "unit") {
    throw new WireFormatError(iri, `${PROPERTY.kind} is not "unit"`);
  }
  const repoIri = object.attributionId?.href;
  if (!repoIri) throw new WireFormatError(iri, "attributedTo (the Repo actor) is missing");
  const name = object.name?.toString();
  if (!name || name.length > 100) throw new WireFormatError(iri, "name is missing or too long");

  const nodes: FederatedUnitNode[] = [];
  for (const text of properties.get(PROPERTY.node) ?? []) {
    try {
      nodes.push(nodeSchema.parse(JSON.parse(text)));
    } catch {
      throw new WireFormatError(iri, `${PROPERTY.node} is not a JSON {id, type, topicName}`);
    }
  }
  if (nodes.length > 1000) throw new WireFormatError(iri, "more than 1000 unit nodes");

  const pepeunitId = optionalUuid.safeParse(single(properties, PROPERTY.id) ?? null);
  return {
    iri,
    repoIri,
    pepeunitId: pepeunitId.success ? pepeunitId.data : null,
    name,
    nodes,
    updated: instantToDate(object.updated),
  };
}
