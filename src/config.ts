/**
 * Typed configuration of the node. This is the only module that reads `process.env`;
 * every other module receives a {@link Config}. The settings table in
 * `docs/configuration.md` lists the same variables.
 */
import path from "node:path";
import { z } from "zod";
import { InvalidPaymentRequestError } from "./money/payments/errors.ts";
import { parseDecimalPrice } from "./money/payments/price.ts";

export const ROLES = ["all", "web", "worker", "tap"] as const;
export type Role = (typeof ROLES)[number];

export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const RUN_MODES = ["production", "development", "test"] as const;
export type RunMode = (typeof RUN_MODES)[number];

/**
 * `open`: every domain federates unless a deny rule names it. `allowlist`: only domains with an
 * allow rule federate, and a deny rule still wins over an allow rule.
 */
export const FEDERATION_MODES = ["open", "allowlist"] as const;
export type FederationMode = (typeof FEDERATION_MODES)[number];

export interface Config {
  readonly mode: RunMode;
  readonly role: Role;
  readonly listenHost: string;
  readonly port: number;
  /** Canonical origin of every ActivityPub URI this node mints, e.g. `https://node.example.com`. */
  readonly origin: URL;
  /** The Pepeunit instance domain: the first level of every MQTT topic of this instance. */
  readonly pepeunitDomain: string;
  readonly nodeName: string;
  readonly dataDir: string;
  /** `undefined` means: start embedded PostgreSQL under `dataDir/postgres`. */
  readonly databaseUrl: string | undefined;
  readonly embeddedPostgresPort: number;
  readonly databasePoolSize: number;
  /** `undefined` means: generate one and keep it in `dataDir/admin-token`. */
  readonly adminToken: string | undefined;
  readonly logLevel: LogLevel;
  readonly logFormat: "text" | "json";
  /** Test and development only: lets Fedify fetch from loopback and private addresses. */
  readonly allowPrivateAddress: boolean;
  readonly maxInboxBodyBytes: number;
  readonly maxApiBodyBytes: number;
  readonly pepeunitDatabaseUrl: string | undefined;
  readonly pepeunitImportIntervalSeconds: number;
  readonly queuePollIntervalMs: number;
  /** Broker the tap reads; `undefined` means the embedded aedes broker. */
  readonly mqttUrl: URL | undefined;
  readonly mqttUsername: string | undefined;
  readonly mqttPassword: string | undefined;
  /** Port of the embedded aedes broker on 127.0.0.1 when `mqttUrl` is unset. */
  readonly embeddedMqttPort: number;
  /** Pepeunit's `PU_SECRET_KEY`: signs the Backend JWT that the tap uses as its MQTT username. */
  readonly pepeunitSecretKey: string | undefined;
  /** Shared-subscription group of the taps; taps in one group split the stream. */
  readonly tapGroup: string;
  /** Identifier of this tap in counter batches; defaults to `<hostname>-<pid>`. */
  readonly tapId: string | undefined;
  /** Milliseconds between two counter flushes of the tap. */
  readonly tapFlushIntervalMs: number;
  /** ClickHouse HTTP URL of the time-series store; `undefined` keeps time series in PostgreSQL. */
  readonly clickhouseUrl: URL | undefined;
  readonly emqxApiUrl: URL | undefined;
  readonly emqxApiKey: string | undefined;
  readonly emqxApiSecret: string | undefined;
  /** Prometheus endpoint of the Pepeunit backend, e.g. `https://unit.example.com/pepeunit/metrics`. */
  readonly pepeunitMetricsUrl: URL | undefined;
  /** ClickHouse of the Pepeunit instance (DataPipe tables), for aggregation storage figures. */
  readonly pepeunitClickhouseUrl: URL | undefined;
  /** Pepeunit's repository cache directory (`PU_SAVE_REPO_PATH`), measured for space used. */
  readonly repoCacheDir: string | undefined;
  /** MinIO Prometheus metrics v3 URL and bearer token, for bucket space figures. */
  readonly minioMetricsUrl: URL | undefined;
  readonly minioMetricsToken: string | undefined;
  /** Token that authenticates the usage-event and error ingest endpoints of the backend. */
  readonly ingestToken: string | undefined;
  /** Federation mode: every domain but the denied ones (`open`), or only allowed ones. */
  readonly federationMode: FederationMode;
  /** Inbox POSTs per minute that one (claimed host, client IP) pair may send on average. */
  readonly inboxRatePerMinute: number;
  /** Inbox POSTs that one (claimed host, client IP) pair may send at once before the rate applies. */
  readonly inboxBurst: number;
  /** Thresholds of automatic bans; `docs/policy.md` explains each condition. */
  readonly bans: BanThresholds;
  /** The broker that runs MQTT bridges; `off` keeps agreements in the database only. */
  readonly bridgeDriver: BridgeDriverKind;
  /** The broker address other instances connect to for bridges this instance exports. */
  readonly bridgeBrokerUrl: URL | undefined;
  /** Highest rate, in messages per second per UnitNode, that this instance agrees to export. */
  readonly bridgeMaxMps: number;
  /** Seconds between two reconciliations of the broker with the agreed bridges. */
  readonly bridgeReconcileSeconds: number;
  /** Window over which the rate of a bridged topic is measured against its agreed limit. */
  readonly bridgeRateWindowSeconds: number;
  /** PEM file of the CAs that sign remote brokers' certificates, for `mqtts://` bridges. */
  readonly bridgeCaFile: string | undefined;
  /** Files and commands of the Mosquitto bridge driver. */
  readonly mosquitto: MosquittoBridgeConfig;
  /** Capacity and thresholds of the hourly grading; docs/grading.md explains each. */
  readonly grading: GradingConfig;
  /** First values of the aggregation and free-load billing settings, and the topic unit size. */
  readonly loadReport: LoadReportConfig;
  /** Payment providers, token prices and order limits; docs/payments.md explains each. */
  readonly payments: PaymentsConfig;
  /** Defaults of the monetisation settings and the broker that stops Units; docs/billing.md. */
  readonly billing: BillingConfig;
  /** Bot commands and notice delivery of the Telegram bot; docs/telegram.md. */
  readonly telegram: TelegramConfig;
}

export interface TelegramConfig {
  /** Whom users ask for a refund, shown by the bot's `/paysupport`, such as `@admin`. */
  readonly supportContact: string | undefined;
  /** Seconds between two rounds of the notice sender. */
  readonly noticeIntervalSeconds: number;
}

export const UNIT_ACCESS_DRIVERS = ["off", "emqx"] as const;
export type UnitAccessDriverKind = (typeof UNIT_ACCESS_DRIVERS)[number];

export interface BillingConfig {
  /** Whether billing charges users, until the administrator changes it in the settings. */
  readonly enabled: boolean;
  /** Free tokens every user gets on the first day of each UTC month. */
  readonly monthlyAllowance: number;
  /** Price K in tokens of one hour of load at half the instance's capacity. */
  readonly halfCapacityPrice: number;
  /** The region of this instance; its price is K until a region price is set. */
  readonly region: string;
  /** The mechanism that takes MQTT access from stopped Units: EMQX authorization rules, or `off` (state only). */
  readonly unitAccessDriver: UnitAccessDriverKind;
}

export interface GradingConfig {
  /** Messages per second, summed over all topics, that the instance is sized for. */
  readonly capacityMps: number;
  /** Percent of capacity or of a resource (CPU, memory, disk) from which a sample is yellow. */
  readonly yellowPercent: number;
  /** Percent of capacity or of a resource from which a sample is red. */
  readonly redPercent: number;
  /** Five-minute samples of the twelve in an hour that must reach a level to set the status. */
  readonly minSamples: number;
  /** Percentile of Unit load from which a Unit is yellow. */
  readonly unitYellowPercentile: number;
  /** Percentile of Unit load from which a Unit is red. */
  readonly unitRedPercentile: number;
  /** Number of busiest Units listed as hot in each run. */
  readonly hotUnits: number;
}

/**
 * The load report publishes the billing settings in force, not these values: the first three
 * only give the settings their first values (docs/billing.md).
 */
export interface LoadReportConfig {
  /** First value of the billing setting `freeMps`: mean MPS of one Unit over an hour that is free. */
  readonly freeMps: number;
  /** First value of the billing setting `freeAggregationTopics`. */
  readonly freeAggregationTopics: number;
  /** First value of the billing setting `pricePerAggregationTopic`, in tokens per unit and day. */
  readonly pricePerAggregationTopic: number;
  /** Bytes on disk per aggregation topic unit: a topic counts one unit per started block. */
  readonly aggregationTopicBytes: number;
}

export interface PaymentsConfig {
  /** Token of the Telegram bot that sells tokens for Stars; Stars payments are off without it. */
  readonly telegramToken: string | undefined;
  /** Bot API server, `https://api.telegram.org` unless a local Bot API server is used. */
  readonly telegramApiRoot: URL;
  /** Whole Stars that one token costs. */
  readonly tokenPriceStars: number;
  /** Crypto Pay app token; Crypto Pay payments are off without it. */
  readonly cryptoPayToken: string | undefined;
  readonly cryptoPayApiUrl: URL;
  /** The crypto asset of Crypto Pay invoices, such as `USDT`. */
  readonly cryptoPayAsset: string;
  /** Decimal price of one token in `cryptoPayAsset`, such as `0.01`. */
  readonly tokenPriceCryptoPay: string;
  readonly maxTokensPerOrder: number;
  /** Seconds an invoice stays payable. */
  readonly orderTtlSeconds: number;
  /** Seconds between two reconciliations with each provider. */
  readonly reconcileIntervalSeconds: number;
}

export const BRIDGE_DRIVERS = ["off", "mosquitto", "emqx"] as const;
export type BridgeDriverKind = (typeof BRIDGE_DRIVERS)[number];

export interface MosquittoBridgeConfig {
  /** The include file with the node's `connection` sections. */
  readonly bridgeFile: string | undefined;
  readonly passwordFile: string | undefined;
  readonly aclFile: string | undefined;
  /** Shell command that restarts Mosquitto, which loads bridge sections only at start. */
  readonly restartCommand: string | undefined;
  /** Shell command that makes Mosquitto reread its password and ACL files; the restart when unset. */
  readonly reloadCommand: string | undefined;
}

/** One detector's threshold: `count` events within `windowSeconds`; a count of 0 turns it off. */
export interface BanThreshold {
  readonly count: number;
  readonly windowSeconds: number;
}

export interface BanThresholds {
  /** 429 `rate_limited` responses of the inbox gate to one claimed host. */
  readonly rateLimited: BanThreshold;
  /** Inbox POSTs of one claimed host that failed signature verification (401). */
  readonly signatureFailures: BanThreshold;
  /** Inbox POSTs of one claimed host with response status 400, 413 or 415. */
  readonly invalidPayloads: BanThreshold;
  /** Topic bans of one domain that cause a ban of the whole domain. */
  readonly topicBansForDomain: BanThreshold;
}

/** Raised when a setting is missing or malformed; the message names each variable and the fix. */
export class ConfigError extends Error {
  readonly issues: readonly string[];

  constructor(issues: readonly string[]) {
    super(`Invalid configuration:\n  - ${issues.join("\n  - ")}`);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

const booleanText = z
  .enum(["true", "false", "1", "0", "yes", "no"], {
    error: "expected true or false (1, 0, yes and no also work)",
  })
  .transform((value) => value === "true" || value === "1" || value === "yes");

const portText = z.coerce
  .number({ error: "expected a TCP port number" })
  .int("expected a whole number")
  .min(1, "expected a port from 1 to 65535")
  .max(65535, "expected a port from 1 to 65535");

function positiveInteger(unit: string) {
  return z.coerce
    .number({ error: `expected a whole number of ${unit}` })
    .int(`expected a whole number of ${unit}`)
    .positive(`expected a positive number of ${unit}`);
}

function percentText(low: number, high: number) {
  return z.coerce
    .number({ error: `expected a number from ${low} to ${high}` })
    .min(low, `expected a number from ${low} to ${high}`)
    .max(high, `expected a number from ${low} to ${high}`);
}

function nonNegativeInteger(unit: string) {
  return z.coerce
    .number({ error: `expected a whole number of ${unit}` })
    .int(`expected a whole number of ${unit}`)
    .nonnegative(`expected a whole number of ${unit}, 0 or more`);
}

/** Parses a whole number of events, where 0 turns the check off. */
function countOrOff(unit: string) {
  return z.coerce
    .number({ error: `expected a whole number of ${unit}, or 0 to turn the check off` })
    .int(`expected a whole number of ${unit}, or 0 to turn the check off`)
    .nonnegative(`expected a whole number of ${unit}, or 0 to turn the check off`);
}

const postgresUrl = z.string().refine((value) => /^postgres(ql)?:\/\//.test(value), {
  message: "expected a URL such as postgres://user:password@127.0.0.1:5432/pepeunit_node",
});

const originText = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: "custom", message: "expected a URL such as https://node.example.com" });
    return z.NEVER;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    ctx.addIssue({ code: "custom", message: "expected an http:// or https:// URL" });
    return z.NEVER;
  }
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") {
    ctx.addIssue({
      code: "custom",
      message: `expected an origin without path, query or fragment, such as ${url.origin}`,
    });
    return z.NEVER;
  }
  return new URL(url.origin);
});

const domainText = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/,
    "expected a lower-case domain name such as unit.example.com",
  );

/** Parses a URL with one of `protocols`. ClickHouse and EMQX credentials may be in the URL. */
function urlText(protocols: string[], example: string) {
  return z.string().transform((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: "custom", message: `expected a URL such as ${example}` });
      return z.NEVER;
    }
    if (!protocols.includes(url.protocol)) {
      ctx.addIssue({
        code: "custom",
        message: `expected a ${protocols.join(" or ")} URL such as ${example}`,
      });
      return z.NEVER;
    }
    return url;
  });
}

const tokenText = z
  .string()
  .min(32, "expected at least 32 characters; generate one with `openssl rand -hex 32`");

const environmentSchema = z.object({
  PU_NODE_ENV: z.enum(RUN_MODES).default("production"),
  PU_NODE_ROLE: z.enum(ROLES).default("all"),
  PU_NODE_LISTEN_HOST: z.string().min(1).default("127.0.0.1"),
  PU_NODE_PORT: portText.default(8080),
  PU_NODE_ORIGIN: originText.optional(),
  PU_NODE_PEPEUNIT_DOMAIN: domainText.optional(),
  PU_NODE_NAME: z.string().min(1).max(100).default("Pepeunit Node"),
  PU_NODE_DATA_DIR: z.string().min(1).default("./data"),
  PU_NODE_DATABASE_URL: postgresUrl.optional(),
  PU_NODE_EMBEDDED_POSTGRES_PORT: portText.default(5439),
  PU_NODE_DATABASE_POOL_SIZE: positiveInteger("connections").default(10),
  PU_NODE_ADMIN_TOKEN: tokenText.optional(),
  PU_NODE_LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  PU_NODE_LOG_FORMAT: z.enum(["text", "json"]).default("text"),
  PU_NODE_ALLOW_PRIVATE_ADDRESS: booleanText.default(false),
  PU_NODE_MAX_INBOX_BODY_BYTES: positiveInteger("bytes").default(262144),
  PU_NODE_MAX_API_BODY_BYTES: positiveInteger("bytes").default(1048576),
  PU_NODE_PEPEUNIT_DATABASE_URL: postgresUrl.optional(),
  PU_NODE_PEPEUNIT_IMPORT_INTERVAL_SECONDS: positiveInteger("seconds").default(300),
  PU_NODE_QUEUE_POLL_INTERVAL_MS: positiveInteger("milliseconds").default(1000),
  PU_NODE_MQTT_URL: urlText(["mqtt:", "mqtts:", "ws:", "wss:"], "mqtt://127.0.0.1:1883").optional(),
  PU_NODE_MQTT_USERNAME: z.string().min(1).optional(),
  PU_NODE_MQTT_PASSWORD: z.string().min(1).optional(),
  // 0 lets the kernel pick a free port, which tests and several nodes on one machine use.
  PU_NODE_EMBEDDED_MQTT_PORT: z.coerce
    .number({ error: "expected a TCP port number, or 0 for any free port" })
    .int("expected a whole number")
    .min(0, "expected a port from 0 to 65535")
    .max(65535, "expected a port from 0 to 65535")
    .default(1884),
  PU_NODE_PEPEUNIT_SECRET_KEY: z.string().min(16, "expected Pepeunit's PU_SECRET_KEY").optional(),
  PU_NODE_TAP_GROUP: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "expected 1 to 64 letters, digits, _ or -")
    .default("pepeunit-node"),
  PU_NODE_TAP_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "expected 1 to 64 letters, digits, _, . or -")
    .optional(),
  PU_NODE_TAP_FLUSH_INTERVAL_MS: positiveInteger("milliseconds").default(1000),
  PU_NODE_CLICKHOUSE_URL: urlText(["http:", "https:"], "http://127.0.0.1:8123").optional(),
  PU_NODE_EMQX_API_URL: urlText(["http:", "https:"], "http://127.0.0.1:18083").optional(),
  PU_NODE_EMQX_API_KEY: z.string().min(1).optional(),
  PU_NODE_EMQX_API_SECRET: z.string().min(1).optional(),
  PU_NODE_PEPEUNIT_METRICS_URL: urlText(
    ["http:", "https:"],
    "https://unit.example.com/pepeunit/metrics",
  ).optional(),
  PU_NODE_PEPEUNIT_CLICKHOUSE_URL: urlText(["http:", "https:"], "http://127.0.0.1:8123").optional(),
  PU_NODE_REPO_CACHE_DIR: z.string().min(1).optional(),
  PU_NODE_MINIO_METRICS_URL: urlText(
    ["http:", "https:"],
    "http://127.0.0.1:9000/minio/metrics/v3",
  ).optional(),
  PU_NODE_MINIO_METRICS_TOKEN: z.string().min(1).optional(),
  PU_NODE_INGEST_TOKEN: tokenText.optional(),
  PU_NODE_FEDERATION_MODE: z
    .enum(FEDERATION_MODES, { error: "expected open or allowlist" })
    .default("open"),
  PU_NODE_INBOX_RATE_PER_MINUTE: positiveInteger("requests per minute").default(300),
  PU_NODE_INBOX_BURST: positiveInteger("requests").default(60),
  PU_NODE_BAN_RATE_LIMITED: countOrOff("rejections").default(600),
  PU_NODE_BAN_RATE_LIMITED_WINDOW_SECONDS: positiveInteger("seconds").default(600),
  PU_NODE_BAN_SIGNATURE_FAILURES: countOrOff("failures").default(100),
  PU_NODE_BAN_SIGNATURE_FAILURES_WINDOW_SECONDS: positiveInteger("seconds").default(3600),
  PU_NODE_BAN_INVALID_PAYLOADS: countOrOff("requests").default(100),
  PU_NODE_BAN_INVALID_PAYLOADS_WINDOW_SECONDS: positiveInteger("seconds").default(3600),
  PU_NODE_BAN_TOPIC_BANS_FOR_DOMAIN: countOrOff("topic bans").default(3),
  PU_NODE_BAN_TOPIC_BANS_WINDOW_SECONDS: positiveInteger("seconds").default(86400),
  PU_NODE_BRIDGE_DRIVER: z
    .enum(BRIDGE_DRIVERS, { error: "expected off, mosquitto or emqx" })
    .optional(),
  PU_NODE_BRIDGE_BROKER_URL: urlText(
    ["mqtt:", "mqtts:"],
    "mqtts://mqtt.unit.example.com:8883",
  ).optional(),
  PU_NODE_BRIDGE_MAX_MPS: positiveInteger("messages per second").default(10),
  PU_NODE_BRIDGE_RECONCILE_SECONDS: positiveInteger("seconds").default(30),
  PU_NODE_BRIDGE_RATE_WINDOW_SECONDS: positiveInteger("seconds").default(60),
  PU_NODE_MOSQUITTO_BRIDGE_FILE: z.string().min(1).optional(),
  PU_NODE_MOSQUITTO_PASSWORD_FILE: z.string().min(1).optional(),
  PU_NODE_MOSQUITTO_ACL_FILE: z.string().min(1).optional(),
  PU_NODE_MOSQUITTO_RESTART_COMMAND: z.string().min(1).optional(),
  PU_NODE_MOSQUITTO_RELOAD_COMMAND: z.string().min(1).optional(),
  PU_NODE_BRIDGE_CA_FILE: z.string().min(1).optional(),
  PU_NODE_TELEGRAM_TOKEN: z
    .string()
    .regex(
      /^[0-9]+:[A-Za-z0-9_-]+$/,
      "expected a bot token from @BotFather, such as 123456:ABC-DEF",
    )
    .optional(),
  PU_NODE_TELEGRAM_API_ROOT: urlText(["http:", "https:"], "https://api.telegram.org").optional(),
  PU_NODE_SUPPORT_CONTACT: z
    .string()
    .trim()
    .min(1)
    .max(200, "expected at most 200 characters, such as @admin or support@example.com")
    .regex(/^[^\r\n]*$/, "expected one line, such as @admin or support@example.com")
    .optional(),
  PU_NODE_TELEGRAM_NOTICE_INTERVAL_SECONDS: positiveInteger("seconds").default(30),
  PU_NODE_TOKEN_PRICE_STARS: positiveInteger("Stars").default(1),
  PU_NODE_CRYPTOPAY_TOKEN: z.string().min(1).optional(),
  PU_NODE_CRYPTOPAY_API_URL: urlText(["http:", "https:"], "https://pay.crypt.bot/api").optional(),
  PU_NODE_CRYPTOPAY_ASSET: z
    .string()
    .regex(/^[A-Z0-9]{2,10}$/, "expected an upper-case asset code such as USDT or TON")
    .default("USDT"),
  // Checked by the parser that prices invoices, so the node starts only with a usable price.
  PU_NODE_TOKEN_PRICE_CRYPTOPAY: z
    .string()
    .superRefine((value, context) => {
      try {
        parseDecimalPrice(value, "USDT");
      } catch (error) {
        if (!(error instanceof InvalidPaymentRequestError)) throw error;
        context.addIssue({ code: "custom", message: error.reason });
      }
    })
    .default("0.01"),
  PU_NODE_PAYMENT_MAX_TOKENS: positiveInteger("tokens").default(100000),
  // Crypto Pay accepts invoice lifetimes of at most 31 days.
  PU_NODE_PAYMENT_ORDER_TTL_SECONDS: positiveInteger("seconds")
    .max(2678400, "expected at most 2678400 seconds (31 days)")
    .default(3600),
  PU_NODE_PAYMENT_RECONCILE_INTERVAL_SECONDS: positiveInteger("seconds").default(86400),
  PU_NODE_CAPACITY_MPS: z.coerce
    .number({ error: "expected a number of messages per second" })
    .positive("expected a positive number of messages per second")
    .default(4000),
  PU_NODE_GRADE_YELLOW_PERCENT: percentText(1, 1000).default(90),
  PU_NODE_GRADE_RED_PERCENT: percentText(1, 1000).default(100),
  PU_NODE_GRADE_MIN_SAMPLES: positiveInteger("samples")
    .max(12, "expected at most 12 samples, the five-minute samples of one hour")
    .default(3),
  PU_NODE_UNIT_YELLOW_PERCENTILE: percentText(0, 100).default(50),
  PU_NODE_UNIT_RED_PERCENTILE: percentText(0, 100).default(80),
  PU_NODE_HOT_UNITS: nonNegativeInteger("Units").max(500, "expected at most 500 Units").default(10),
  PU_NODE_FREE_MPS: z.coerce
    .number({ error: "expected a number of messages per second" })
    .nonnegative("expected a number of messages per second, 0 or more")
    .default(1),
  PU_NODE_FREE_AGGREGATION_TOPICS: nonNegativeInteger("topics").default(5),
  PU_NODE_PRICE_PER_AGGREGATION_TOPIC: nonNegativeInteger("tokens").default(10),
  PU_NODE_AGGREGATION_TOPIC_BYTES: positiveInteger("bytes").default(1048576),
  PU_NODE_BILLING_ENABLED: booleanText.default(false),
  PU_NODE_MONTHLY_FREE_TOKENS: nonNegativeInteger("tokens").default(1000),
  PU_NODE_HALF_CAPACITY_PRICE: nonNegativeInteger("tokens").default(100000),
  PU_NODE_BILLING_REGION: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9_-]{0,62}$/,
      "expected a region name of lower-case letters, digits, - and _, such as eu-west",
    )
    .default("default"),
  PU_NODE_UNIT_ACCESS_DRIVER: z
    .enum(UNIT_ACCESS_DRIVERS, { error: "expected off or emqx" })
    .optional(),
});

/**
 * Variables that earlier releases read and this one rejects, so that a deployment does not keep
 * a setting that silently stopped working. Each maps to what replaces it.
 */
const REMOVED_VARIABLES: Record<string, string> = {
  PU_NODE_PRICE_PER_MPS:
    "removed because hourly charges follow the progressive price curve with the price K of the billing settings, not a price per MPS (docs/pricing.md); unset it and change K with PUT /api/v1/billing/settings (instancePrice or regionPrices), or with PU_NODE_HALF_CAPACITY_PRICE before the first start",
};

/** Example values shown in error messages, one per variable. */
const EXAMPLES: Record<string, string> = {
  PU_NODE_ENV: "production",
  PU_NODE_ROLE: "all",
  PU_NODE_PORT: "8080",
  PU_NODE_ORIGIN: "https://node.example.com",
  PU_NODE_PEPEUNIT_DOMAIN: "unit.example.com",
  PU_NODE_DATABASE_URL: "postgres://pepeunit:secret@127.0.0.1:5432/pepeunit_node",
  PU_NODE_ADMIN_TOKEN: "$(openssl rand -hex 32)",
  PU_NODE_LOG_LEVEL: "info",
  PU_NODE_ALLOW_PRIVATE_ADDRESS: "false",
  PU_NODE_FEDERATION_MODE: "allowlist",
  PU_NODE_BRIDGE_DRIVER: "mosquitto",
  PU_NODE_MOSQUITTO_RESTART_COMMAND: "systemctl restart mosquitto",
  PU_NODE_CAPACITY_MPS: "4000",
  PU_NODE_GRADE_YELLOW_PERCENT: "90",
  PU_NODE_UNIT_YELLOW_PERCENTILE: "50",
  PU_NODE_SUPPORT_CONTACT: "@pepeunit_admin",
  PU_NODE_TELEGRAM_NOTICE_INTERVAL_SECONDS: "30",
};

/** Reads every `PU_NODE_*` setting from `env`, or throws {@link ConfigError} listing all problems. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(environmentSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }

  const removed = Object.entries(REMOVED_VARIABLES)
    .filter(([variable]) => env[variable] !== undefined && env[variable] !== "")
    .map(([variable, replacement]) => `${variable}: ${replacement}`);

  const parsed = environmentSchema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? "environment");
      const example = EXAMPLES[variable];
      const received = input[variable];
      const receivedText =
        received === undefined ? "" : ` (got ${JSON.stringify(redact(variable, received))})`;
      return `${variable}: ${issue.message}${receivedText}${example ? `; example: ${variable}=${example}` : ""}`;
    });
    throw new ConfigError([...removed, ...issues]);
  }

  const values = parsed.data;
  const problems: string[] = [...removed];

  if (values.PU_NODE_ALLOW_PRIVATE_ADDRESS && values.PU_NODE_ENV === "production") {
    problems.push(
      "PU_NODE_ALLOW_PRIVATE_ADDRESS: true is refused in production because it lets peers make " +
        "the node fetch private addresses; set PU_NODE_ENV=development or test, or remove it",
    );
  }

  const origin = values.PU_NODE_ORIGIN ?? new URL(`http://localhost:${values.PU_NODE_PORT}`);
  const pepeunitDomain = values.PU_NODE_PEPEUNIT_DOMAIN ?? origin.hostname;

  const bridgeDriver =
    values.PU_NODE_BRIDGE_DRIVER ?? (values.PU_NODE_EMQX_API_URL ? "emqx" : "off");
  if (bridgeDriver === "emqx" && !values.PU_NODE_EMQX_API_URL) {
    problems.push(
      "PU_NODE_BRIDGE_DRIVER: emqx needs PU_NODE_EMQX_API_URL, PU_NODE_EMQX_API_KEY and PU_NODE_EMQX_API_SECRET; set them or choose mosquitto or off",
    );
  }
  const bridgeFile = values.PU_NODE_MOSQUITTO_BRIDGE_FILE;
  if (bridgeFile !== undefined && !bridgeFile.endsWith(".conf")) {
    problems.push(
      `PU_NODE_MOSQUITTO_BRIDGE_FILE: Mosquitto's include_dir reads only files ending in .conf (got ${JSON.stringify(bridgeFile)}); example: PU_NODE_MOSQUITTO_BRIDGE_FILE=/var/lib/pepeunit-node/mosquitto/bridges.d/pepeunit-node.conf`,
    );
  }
  if (bridgeDriver === "mosquitto") {
    for (const variable of [
      "PU_NODE_MOSQUITTO_BRIDGE_FILE",
      "PU_NODE_MOSQUITTO_PASSWORD_FILE",
      "PU_NODE_MOSQUITTO_ACL_FILE",
      "PU_NODE_MOSQUITTO_RESTART_COMMAND",
    ] as const) {
      if (!values[variable]) {
        problems.push(
          `${variable}: required when PU_NODE_BRIDGE_DRIVER=mosquitto; see docs/bridges.md for the Mosquitto setup`,
        );
      }
    }
  }

  const unitAccessDriver =
    values.PU_NODE_UNIT_ACCESS_DRIVER ?? (values.PU_NODE_EMQX_API_URL ? "emqx" : "off");
  if (unitAccessDriver === "emqx" && !values.PU_NODE_EMQX_API_URL) {
    problems.push(
      "PU_NODE_UNIT_ACCESS_DRIVER: emqx needs PU_NODE_EMQX_API_URL, PU_NODE_EMQX_API_KEY and PU_NODE_EMQX_API_SECRET; set them or choose off",
    );
  }

  if (values.PU_NODE_GRADE_YELLOW_PERCENT >= values.PU_NODE_GRADE_RED_PERCENT) {
    problems.push(
      `PU_NODE_GRADE_YELLOW_PERCENT: ${values.PU_NODE_GRADE_YELLOW_PERCENT} must be below PU_NODE_GRADE_RED_PERCENT (${values.PU_NODE_GRADE_RED_PERCENT}); lower it or raise the red threshold`,
    );
  }
  if (values.PU_NODE_UNIT_YELLOW_PERCENTILE >= values.PU_NODE_UNIT_RED_PERCENTILE) {
    problems.push(
      `PU_NODE_UNIT_YELLOW_PERCENTILE: ${values.PU_NODE_UNIT_YELLOW_PERCENTILE} must be below PU_NODE_UNIT_RED_PERCENTILE (${values.PU_NODE_UNIT_RED_PERCENTILE}); lower it or raise the red percentile`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);

  return {
    mode: values.PU_NODE_ENV,
    role: values.PU_NODE_ROLE,
    listenHost: values.PU_NODE_LISTEN_HOST,
    port: values.PU_NODE_PORT,
    origin,
    pepeunitDomain,
    nodeName: values.PU_NODE_NAME,
    dataDir: path.resolve(values.PU_NODE_DATA_DIR),
    databaseUrl: values.PU_NODE_DATABASE_URL,
    embeddedPostgresPort: values.PU_NODE_EMBEDDED_POSTGRES_PORT,
    databasePoolSize: values.PU_NODE_DATABASE_POOL_SIZE,
    adminToken: values.PU_NODE_ADMIN_TOKEN,
    logLevel: values.PU_NODE_LOG_LEVEL,
    logFormat: values.PU_NODE_LOG_FORMAT,
    allowPrivateAddress: values.PU_NODE_ALLOW_PRIVATE_ADDRESS,
    maxInboxBodyBytes: values.PU_NODE_MAX_INBOX_BODY_BYTES,
    maxApiBodyBytes: values.PU_NODE_MAX_API_BODY_BYTES,
    pepeunitDatabaseUrl: values.PU_NODE_PEPEUNIT_DATABASE_URL,
    pepeunitImportIntervalSeconds: values.PU_NODE_PEPEUNIT_IMPORT_INTERVAL_SECONDS,
    queuePollIntervalMs: values.PU_NODE_QUEUE_POLL_INTERVAL_MS,
    mqttUrl: values.PU_NODE_MQTT_URL,
    mqttUsername: values.PU_NODE_MQTT_USERNAME,
    mqttPassword: values.PU_NODE_MQTT_PASSWORD,
    embeddedMqttPort: values.PU_NODE_EMBEDDED_MQTT_PORT,
    pepeunitSecretKey: values.PU_NODE_PEPEUNIT_SECRET_KEY,
    tapGroup: values.PU_NODE_TAP_GROUP,
    tapId: values.PU_NODE_TAP_ID,
    tapFlushIntervalMs: values.PU_NODE_TAP_FLUSH_INTERVAL_MS,
    clickhouseUrl: values.PU_NODE_CLICKHOUSE_URL,
    emqxApiUrl: values.PU_NODE_EMQX_API_URL,
    emqxApiKey: values.PU_NODE_EMQX_API_KEY,
    emqxApiSecret: values.PU_NODE_EMQX_API_SECRET,
    pepeunitMetricsUrl: values.PU_NODE_PEPEUNIT_METRICS_URL,
    pepeunitClickhouseUrl: values.PU_NODE_PEPEUNIT_CLICKHOUSE_URL,
    repoCacheDir: values.PU_NODE_REPO_CACHE_DIR,
    minioMetricsUrl: values.PU_NODE_MINIO_METRICS_URL,
    minioMetricsToken: values.PU_NODE_MINIO_METRICS_TOKEN,
    ingestToken: values.PU_NODE_INGEST_TOKEN,
    federationMode: values.PU_NODE_FEDERATION_MODE,
    inboxRatePerMinute: values.PU_NODE_INBOX_RATE_PER_MINUTE,
    inboxBurst: values.PU_NODE_INBOX_BURST,
    bans: {
      rateLimited: {
        count: values.PU_NODE_BAN_RATE_LIMITED,
        windowSeconds: values.PU_NODE_BAN_RATE_LIMITED_WINDOW_SECONDS,
      },
      signatureFailures: {
        count: values.PU_NODE_BAN_SIGNATURE_FAILURES,
        windowSeconds: values.PU_NODE_BAN_SIGNATURE_FAILURES_WINDOW_SECONDS,
      },
      invalidPayloads: {
        count: values.PU_NODE_BAN_INVALID_PAYLOADS,
        windowSeconds: values.PU_NODE_BAN_INVALID_PAYLOADS_WINDOW_SECONDS,
      },
      topicBansForDomain: {
        count: values.PU_NODE_BAN_TOPIC_BANS_FOR_DOMAIN,
        windowSeconds: values.PU_NODE_BAN_TOPIC_BANS_WINDOW_SECONDS,
      },
    },
    bridgeDriver,
    bridgeBrokerUrl: values.PU_NODE_BRIDGE_BROKER_URL,
    bridgeMaxMps: values.PU_NODE_BRIDGE_MAX_MPS,
    bridgeReconcileSeconds: values.PU_NODE_BRIDGE_RECONCILE_SECONDS,
    bridgeRateWindowSeconds: values.PU_NODE_BRIDGE_RATE_WINDOW_SECONDS,
    bridgeCaFile: values.PU_NODE_BRIDGE_CA_FILE,
    mosquitto: {
      bridgeFile: values.PU_NODE_MOSQUITTO_BRIDGE_FILE,
      passwordFile: values.PU_NODE_MOSQUITTO_PASSWORD_FILE,
      aclFile: values.PU_NODE_MOSQUITTO_ACL_FILE,
      restartCommand: values.PU_NODE_MOSQUITTO_RESTART_COMMAND,
      reloadCommand: values.PU_NODE_MOSQUITTO_RELOAD_COMMAND,
    },
    payments: {
      telegramToken: values.PU_NODE_TELEGRAM_TOKEN,
      telegramApiRoot: values.PU_NODE_TELEGRAM_API_ROOT ?? new URL("https://api.telegram.org"),
      tokenPriceStars: values.PU_NODE_TOKEN_PRICE_STARS,
      cryptoPayToken: values.PU_NODE_CRYPTOPAY_TOKEN,
      cryptoPayApiUrl: values.PU_NODE_CRYPTOPAY_API_URL ?? new URL("https://pay.crypt.bot/api"),
      cryptoPayAsset: values.PU_NODE_CRYPTOPAY_ASSET,
      tokenPriceCryptoPay: values.PU_NODE_TOKEN_PRICE_CRYPTOPAY,
      maxTokensPerOrder: values.PU_NODE_PAYMENT_MAX_TOKENS,
      orderTtlSeconds: values.PU_NODE_PAYMENT_ORDER_TTL_SECONDS,
      reconcileIntervalSeconds: values.PU_NODE_PAYMENT_RECONCILE_INTERVAL_SECONDS,
    },
    grading: {
      capacityMps: values.PU_NODE_CAPACITY_MPS,
      yellowPercent: values.PU_NODE_GRADE_YELLOW_PERCENT,
      redPercent: values.PU_NODE_GRADE_RED_PERCENT,
      minSamples: values.PU_NODE_GRADE_MIN_SAMPLES,
      unitYellowPercentile: values.PU_NODE_UNIT_YELLOW_PERCENTILE,
      unitRedPercentile: values.PU_NODE_UNIT_RED_PERCENTILE,
      hotUnits: values.PU_NODE_HOT_UNITS,
    },
    loadReport: {
      freeMps: values.PU_NODE_FREE_MPS,
      freeAggregationTopics: values.PU_NODE_FREE_AGGREGATION_TOPICS,
      pricePerAggregationTopic: values.PU_NODE_PRICE_PER_AGGREGATION_TOPIC,
      aggregationTopicBytes: values.PU_NODE_AGGREGATION_TOPIC_BYTES,
    },
    billing: {
      enabled: values.PU_NODE_BILLING_ENABLED,
      monthlyAllowance: values.PU_NODE_MONTHLY_FREE_TOKENS,
      halfCapacityPrice: values.PU_NODE_HALF_CAPACITY_PRICE,
      region: values.PU_NODE_BILLING_REGION,
      unitAccessDriver,
    },
    telegram: {
      supportContact: values.PU_NODE_SUPPORT_CONTACT,
      noticeIntervalSeconds: values.PU_NODE_TELEGRAM_NOTICE_INTERVAL_SECONDS,
    },
  };
}

function redact(variable: string, value: string): string {
  if (/_(TOKEN|SECRET|PASSWORD|SECRET_KEY)$/.test(variable)) return "<hidden>";
  if (variable.endsWith("_URL")) return value.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:<hidden>@");
  return value;
}
