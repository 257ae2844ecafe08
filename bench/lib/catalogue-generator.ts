/**
 * Deterministic generator of a realistic catalogue for the search benchmark: local Repos and
 * Units, federated Repos and Units of several origin hosts. Words follow a Zipf-like
 * distribution, so a few words appear in many Repos and most appear in very few, as in real text.
 * Rows go in with one multi-row `INSERT ... SELECT FROM unnest(...)` per batch.
 */
import type pg from "pg";

/** Returns mulberry32, a small and fast 32-bit PRNG for generated data, never for secrets. */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The most frequent words, most frequent first. Rank 1 is `sensor`, and `weather` sits at rank 6
 * so that the prefix `weath` matches a large share of the catalogue.
 */
// biome-ignore format: a word list reads better packed than one word per line
export const HEAD_WORDS = [
  "sensor", "temperature", "mqtt", "esp32", "firmware", "weather", "station", "humidity",
  "relay", "controller", "micropython", "monitor", "smart", "home", "light", "pump", "water",
  "soil", "garden", "energy", "meter", "power", "display", "led", "motor", "door", "switch",
  "gateway", "camera", "air", "quality", "co2", "pressure", "level", "tank", "greenhouse",
  "irrigation", "thermostat", "heating", "fan", "solar", "battery", "logger", "alarm", "motion",
  "bme280", "dht22", "ds18b20", "esp8266", "rp2040", "pico", "lora", "zigbee", "wifi", "ble",
  "node", "unit", "dashboard", "counter", "timer", "valve", "boiler", "window", "curtain",
  "weatherproof", "outdoor", "indoor", "kitchen", "garage", "barn", "aquarium", "feeder",
  "beehive", "scale", "rain", "wind", "anemometer", "uv", "lux", "noise", "vibration", "gps",
  "tracker", "bridge", "hub", "mesh", "strip", "matrix", "oled", "servo", "stepper", "ultrasonic",
  "distance", "flow", "leak", "smoke", "gas", "current", "voltage", "socket", "plug", "bell",
];

// biome-ignore format: a word list reads better packed than one word per line
export const UNIT_PLACES = [
  "roof", "garden", "kitchen", "boiler", "greenhouse", "garage", "cellar", "attic", "balcony",
  "barn", "pool", "porch", "hall", "office", "lab", "yard", "shed", "field", "pond", "gate",
];

export const ORIGIN_HOSTS = [
  "node.pepeunit-north.example",
  "pepeunit.lab.example",
  "iot.farm.example",
  "unit.city.example",
  "node.school.example",
  "pepeunit.makers.example",
];
const ORIGIN_WEIGHTS = [40, 25, 15, 10, 6, 4];

// biome-ignore format: a word list reads better packed than one word per line
const SYLLABLES = [
  "ka", "lo", "mi", "ra", "ven", "tor", "sel", "quo", "dri", "bex", "nu", "fa", "zel", "gor",
  "pim", "tas", "vor", "lin", "qua", "rex", "sor", "tul", "ym", "zan", "che", "dol", "fin", "hap",
];

/** Samples ranks 1..n with probability proportional to 1 / rank^exponent. */
class ZipfSampler {
  private readonly cumulative: Float64Array;
  private readonly random: () => number;

  constructor(size: number, exponent: number, random: () => number) {
    this.random = random;
    this.cumulative = new Float64Array(size);
    let total = 0;
    for (let rank = 1; rank <= size; rank++) {
      total += 1 / rank ** exponent;
      this.cumulative[rank - 1] = total;
    }
    for (let index = 0; index < size; index++) {
      this.cumulative[index] = (this.cumulative[index] as number) / total;
    }
  }

  /** Returns a zero-based rank. */
  next(): number {
    const target = this.random();
    let low = 0;
    let high = this.cumulative.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.cumulative[middle] as number) < target) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

export interface GeneratorOptions {
  seed: number;
  /** Total number of words: the head words followed by generated ones. */
  vocabularySize?: number;
}

/** Generates catalogue rows. Every call continues the same random sequence. */
export class CatalogueGenerator {
  readonly vocabulary: string[];
  private readonly random: () => number;
  private readonly words: ZipfSampler;
  private readonly nameWords: ZipfSampler;
  private readonly places: ZipfSampler;
  private readonly owners: string[];
  private localRepoCount = 0;
  private unitCount = 0;
  private readonly baseTime = Date.parse("2026-12-01T00:00:00Z");

  constructor(options: GeneratorOptions) {
    this.random = createRandom(options.seed);
    this.vocabulary = buildVocabulary(options.vocabularySize ?? 8000, this.random);
    this.words = new ZipfSampler(this.vocabulary.length, 1.07, this.random);
    // Names draw from the head words only, so they read like real Repo names.
    this.nameWords = new ZipfSampler(HEAD_WORDS.length, 0.9, this.random);
    this.places = new ZipfSampler(UNIT_PLACES.length, 1.0, this.random);
    this.owners = Array.from({ length: 2000 }, () => this.syllableWord(2, 3));
  }

  /** Returns the word at zero-based Zipf rank `rank`. */
  wordAt(rank: number): string {
    const word = this.vocabulary[rank];
    if (word === undefined) throw new Error(`No word at rank ${rank}`);
    return word;
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)] as T;
  }

  private chance(probability: number): boolean {
    return this.random() < probability;
  }

  private syllableWord(minimum: number, maximum: number): string {
    const length = minimum + Math.floor(this.random() * (maximum - minimum + 1));
    let word = "";
    for (let index = 0; index < length; index++) word += this.pick(SYLLABLES);
    return word;
  }

  uuid(): string {
    const hex = Array.from({ length: 32 }, () => Math.floor(this.random() * 16).toString(16));
    hex[12] = "4";
    hex[16] = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
    const text = hex.join("");
    return `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
  }

  private repoName(): string {
    const first = HEAD_WORDS[this.nameWords.next()] as string;
    const second = HEAD_WORDS[this.nameWords.next()] as string;
    return `${first}-${second}`.slice(0, 14);
  }

  private summary(): string {
    const length = 6 + Math.floor(this.random() * 15);
    const words = Array.from({ length }, () => this.wordAt(this.words.next()));
    const text = words.join(" ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  private repositoryUrl(name: string): { url: string; platform: "Github" | "Gitlab" } {
    const owner = this.pick(this.owners);
    return this.chance(0.7)
      ? { url: `https://github.com/${owner}/${name}.git`, platform: "Github" }
      : { url: `https://gitlab.com/${owner}/${name}.git`, platform: "Gitlab" };
  }

  /** Returns a time within the two years before the generator's base time. */
  private pastTime(): Date {
    return new Date(this.baseTime - Math.floor(this.random() * 730 * 86_400_000));
  }

  private versions(): string {
    const count = Math.floor(this.random() * 4);
    const versions = Array.from({ length: count }, (_, index) => ({
      tag: `v1.${index}.0`,
      commit: Array.from({ length: 40 }, () => Math.floor(this.random() * 16).toString(16)).join(
        "",
      ),
    }));
    return JSON.stringify(versions);
  }

  localRepo(): LocalRepoRow {
    const sequence = this.localRepoCount++;
    // The base-36 suffix keeps names unique (`repos_name_unique`) within 20 characters.
    const name = `${this.repoName()}-${sequence.toString(36)}`;
    const { url, platform } = this.repositoryUrl(name);
    const updatedAt = this.pastTime();
    const visibility = this.localVisibility();
    return {
      id: this.uuid(),
      name,
      summary: this.summary(),
      repositoryUrl: url,
      platform,
      defaultBranch: this.chance(0.8) ? "main" : "master",
      isCompilable: this.chance(0.4),
      visibility,
      versions: this.versions(),
      createdAt: new Date(updatedAt.getTime() - Math.floor(this.random() * 90 * 86_400_000)),
      updatedAt,
    };
  }

  /** Returns Public for 80% of local Repos, Internal for 12% and Private for 8%. */
  private localVisibility(): LocalRepoRow["visibility"] {
    const roll = this.random();
    if (roll < 0.8) return "Public";
    if (roll < 0.92) return "Internal";
    return "Private";
  }

  federatedRepo(): FederatedRepoRow {
    const originHost = ORIGIN_HOSTS[weightedIndex(ORIGIN_WEIGHTS, this.random())] as string;
    const id = this.uuid();
    const name = `${this.repoName()}-${Math.floor(this.random() * 46_656).toString(36)}`;
    const { url, platform } = this.repositoryUrl(name);
    const remoteUpdatedAt = this.chance(0.9) ? this.pastTime() : null;
    const publishedAt =
      remoteUpdatedAt && this.chance(0.9)
        ? new Date(remoteUpdatedAt.getTime() - Math.floor(this.random() * 90 * 86_400_000))
        : null;
    return {
      iri: `https://${originHost}/ap/actors/${id}`,
      originHost,
      pepeunitId: id,
      name,
      summary: this.summary(),
      repositoryUrl: url,
      platform,
      defaultBranch: this.chance(0.8) ? "main" : null,
      isCompilable: this.chance(0.4),
      versions: this.versions(),
      publishedAt,
      remoteUpdatedAt,
      receivedAt: this.pastTime(),
    };
  }

  /** Returns a Unit name such as `roof-1k3`, unique across Units (`units_name_unique`). */
  unitName(): string {
    const place = UNIT_PLACES[this.places.next()] as string;
    return `${place}-${(this.unitCount++).toString(36)}`;
  }

  /** Returns how many Units a Repo gets: none for most, a few for some (0.7 on average). */
  unitsPerRepo(): number {
    const roll = this.random();
    if (roll < 0.6) return 0;
    if (roll < 0.85) return 1;
    if (roll < 0.95) return 2;
    return 5;
  }

  isPublicUnit(): boolean {
    return this.chance(0.85);
  }
}

function weightedIndex(weights: readonly number[], roll: number): number {
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  let target = roll * total;
  for (let index = 0; index < weights.length; index++) {
    target -= weights[index] as number;
    if (target < 0) return index;
  }
  return weights.length - 1;
}

function buildVocabulary(size: number, random: () => number): string[] {
  const vocabulary = [...HEAD_WORDS];
  const seen = new Set(vocabulary);
  while (vocabulary.length < size) {
    const length = 2 + Math.floor(random() * 3);
    let word = "";
    for (let index = 0; index < length; index++) {
      word += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    }
    if (seen.has(word)) continue;
    seen.add(word);
    vocabulary.push(word);
  }
  return vocabulary;
}

export interface LocalRepoRow {
  id: string;
  name: string;
  summary: string;
  repositoryUrl: string;
  platform: "Github" | "Gitlab";
  defaultBranch: string;
  isCompilable: boolean;
  visibility: "Public" | "Internal" | "Private";
  versions: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface FederatedRepoRow {
  iri: string;
  originHost: string;
  pepeunitId: string;
  name: string;
  summary: string;
  repositoryUrl: string;
  platform: "Github" | "Gitlab";
  defaultBranch: string | null;
  isCompilable: boolean;
  versions: string;
  publishedAt: Date | null;
  remoteUpdatedAt: Date | null;
  receivedAt: Date;
}

export interface FillCounts {
  localRepos: number;
  federatedRepos: number;
  units: number;
  federatedUnits: number;
}

/** Share of Repos that are local. The rest are federated. */
const LOCAL_SHARE = 0.3;
const BATCH_SIZE = 5000;

/**
 * Adds `repoCount` Repos (local and federated) with their Units in batches, each batch in its
 * own transaction, and returns what was inserted.
 */
export async function fillCatalogue(
  pool: pg.Pool,
  generator: CatalogueGenerator,
  repoCount: number,
): Promise<FillCounts> {
  const counts: FillCounts = { localRepos: 0, federatedRepos: 0, units: 0, federatedUnits: 0 };
  for (let done = 0; done < repoCount; done += BATCH_SIZE) {
    const size = Math.min(BATCH_SIZE, repoCount - done);
    const localRepos: LocalRepoRow[] = [];
    const federatedRepos: FederatedRepoRow[] = [];
    for (let index = 0; index < size; index++) {
      if ((done + index) % 10 < LOCAL_SHARE * 10) localRepos.push(generator.localRepo());
      else federatedRepos.push(generator.federatedRepo());
    }
    const client = await pool.connect();
    try {
      await client.query("begin");
      counts.localRepos += await insertLocalRepos(client, localRepos);
      counts.units += await insertUnits(client, generator, localRepos);
      counts.federatedRepos += await insertFederatedRepos(client, federatedRepos);
      counts.federatedUnits += await insertFederatedUnits(client, generator, federatedRepos);
      await client.query("commit");
    } catch (error) {
      await client.query("rollback");
      throw error;
    } finally {
      client.release();
    }
  }
  return counts;
}

async function insertLocalRepos(client: pg.PoolClient, rows: LocalRepoRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  await client.query(
    `insert into repos (id, name, summary, repository_url, platform, default_branch,
       is_compilable, visibility, versions, created_at, updated_at)
     select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
       $7::boolean[], $8::text[], $9::jsonb[], $10::timestamptz[], $11::timestamptz[])`,
    [
      rows.map((row) => row.id),
      rows.map((row) => row.name),
      rows.map((row) => row.summary),
      rows.map((row) => row.repositoryUrl),
      rows.map((row) => row.platform),
      rows.map((row) => row.defaultBranch),
      rows.map((row) => row.isCompilable),
      rows.map((row) => row.visibility),
      rows.map((row) => row.versions),
      rows.map((row) => row.createdAt),
      rows.map((row) => row.updatedAt),
    ],
  );
  return rows.length;
}

async function insertUnits(
  client: pg.PoolClient,
  generator: CatalogueGenerator,
  repos: LocalRepoRow[],
): Promise<number> {
  const ids: string[] = [];
  const repoIds: string[] = [];
  const names: string[] = [];
  const visibilities: string[] = [];
  for (const repo of repos) {
    const count = generator.unitsPerRepo();
    for (let index = 0; index < count; index++) {
      ids.push(generator.uuid());
      repoIds.push(repo.id);
      names.push(generator.unitName());
      visibilities.push(generator.isPublicUnit() ? "Public" : "Private");
    }
  }
  if (ids.length === 0) return 0;
  await client.query(
    `insert into units (id, repo_id, name, visibility)
     select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])`,
    [ids, repoIds, names, visibilities],
  );
  return ids.length;
}

async function insertFederatedRepos(
  client: pg.PoolClient,
  rows: FederatedRepoRow[],
): Promise<number> {
  if (rows.length === 0) return 0;
  await client.query(
    `insert into federated_repos (iri, origin_host, pepeunit_id, name, summary, repository_url,
       platform, default_branch, is_compilable, versions, published_at, remote_updated_at,
       received_at)
     select * from unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
       $7::text[], $8::text[], $9::boolean[], $10::jsonb[], $11::timestamptz[],
       $12::timestamptz[], $13::timestamptz[])`,
    [
      rows.map((row) => row.iri),
      rows.map((row) => row.originHost),
      rows.map((row) => row.pepeunitId),
      rows.map((row) => row.name),
      rows.map((row) => row.summary),
      rows.map((row) => row.repositoryUrl),
      rows.map((row) => row.platform),
      rows.map((row) => row.defaultBranch),
      rows.map((row) => row.isCompilable),
      rows.map((row) => row.versions),
      rows.map((row) => row.publishedAt),
      rows.map((row) => row.remoteUpdatedAt),
      rows.map((row) => row.receivedAt),
    ],
  );
  return rows.length;
}

async function insertFederatedUnits(
  client: pg.PoolClient,
  generator: CatalogueGenerator,
  repos: FederatedRepoRow[],
): Promise<number> {
  const iris: string[] = [];
  const repoIris: string[] = [];
  const hosts: string[] = [];
  const names: string[] = [];
  for (const repo of repos) {
    const count = generator.unitsPerRepo();
    for (let index = 0; index < count; index++) {
      iris.push(`https://${repo.originHost}/ap/units/${generator.uuid()}`);
      repoIris.push(repo.iri);
      hosts.push(repo.originHost);
      names.push(generator.unitName());
    }
  }
  if (iris.length === 0) return 0;
  await client.query(
    `insert into federated_units (iri, repo_iri, origin_host, name)
     select * from unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
    [iris, repoIris, hosts, names],
  );
  return iris.length;
}
