/**
 * The collector against the test PostgreSQL, a temporary repository cache, and a fake MinIO: a
 * local HTTP server that serves metrics in the shape MinIO's metrics v3 reference documents
 * (`minio_cluster_usage_buckets_total_bytes{bucket}`, `minio_cluster_health_capacity_usable_*`).
 * It is a fake, not MinIO.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { loadConfig } from "../../config.ts";
import { createNodeStateProbes, NodeStateCollector } from "./collector.ts";

const MINIO_TOKEN = "fake-minio-bearer-token";

let database: TestDatabase;
let scratch: string;
let minio: Server;
let minioUrl: string;
let minioRequests = 0;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "node-state");
  scratch = await mkdtemp(path.join(tmpdir(), "node-state-collector-"));
  await mkdir(path.join(scratch, "repo_cache", "a1"), { recursive: true });
  await writeFile(path.join(scratch, "repo_cache", "a1", "main.py"), "p".repeat(1234));

  minio = createServer((request, response) => {
    minioRequests += 1;
    if (request.headers.authorization !== `Bearer ${MINIO_TOKEN}`) {
      response.writeHead(403).end();
      return;
    }
    response.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    response.end(
      [
        "# HELP minio_cluster_usage_buckets_total_bytes Total bucket size in bytes",
        "# TYPE minio_cluster_usage_buckets_total_bytes gauge",
        'minio_cluster_usage_buckets_total_bytes{bucket="firmware"} 4096',
        "# HELP minio_cluster_health_capacity_usable_free_bytes Total cluster usable storage free in bytes.",
        "# TYPE minio_cluster_health_capacity_usable_free_bytes gauge",
        "minio_cluster_health_capacity_usable_free_bytes 1000000",
        "# TYPE minio_cluster_health_capacity_usable_total_bytes gauge",
        "minio_cluster_health_capacity_usable_total_bytes 2000000",
      ].join("\n"),
    );
  });
  await new Promise<void>((resolve) => minio.listen(0, "127.0.0.1", resolve));
  minioUrl = `http://127.0.0.1:${(minio.address() as AddressInfo).port}/minio/metrics/v3`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => minio.close(() => resolve()));
  await rm(scratch, { recursive: true, force: true });
  await database.drop();
});

describe("NodeStateCollector", () => {
  it("leaves out a failing or slow probe", async () => {
    const collector = new NodeStateCollector(
      [
        { name: "good", collect: async () => ({ good_value: 1 }) },
        {
          name: "broken",
          collect: async () => {
            throw new Error("boom");
          },
        },
        { name: "slow", timeoutMs: 20, collect: () => new Promise(() => undefined) },
        { name: "odd", collect: async () => ({ not_a_number: Number.NaN }) },
      ],
      { now: () => new Date("2026-12-04T10:00:00Z") },
    );
    const sample = await collector.collect();
    expect(sample).toEqual({ at: new Date("2026-12-04T10:00:00Z"), values: { good_value: 1 } });
  });

  it("collects the configured probes", async () => {
    const config = loadConfig({
      PU_NODE_ENV: "test",
      PU_NODE_DATA_DIR: scratch,
      PU_NODE_DATABASE_URL: database.url,
      PU_NODE_REPO_CACHE_DIR: path.join(scratch, "repo_cache"),
      PU_NODE_MINIO_METRICS_URL: minioUrl,
      PU_NODE_MINIO_METRICS_TOKEN: MINIO_TOKEN,
    });
    const { probes, close } = createNodeStateProbes(config, {
      db: database.db,
      brokerUptime: async () => 42,
    });
    try {
      const collector = new NodeStateCollector(probes);
      const sample = await collector.collect();
      const { values } = sample;
      expect(values.postgres_database_bytes).toBeGreaterThan(0);
      expect(values.repo_cache_bytes).toBe(1234);
      expect(values.repo_cache_files).toBe(1);
      expect(values["minio_bucket_used_bytes:firmware"]).toBe(4096);
      expect(values.minio_free_bytes).toBe(1_000_000);
      expect(values.broker_uptime_seconds).toBe(42);
      expect(values.process_uptime_seconds).toBeGreaterThan(0);
      expect(values.host_memory_total_bytes).toBeGreaterThan(0);
      expect(values["disk_free_bytes:repo_cache"]).toBeGreaterThan(0);
      expect(values["disk_free_bytes:data_dir"]).toBeGreaterThan(0);
      // An external PostgreSQL's disk is not measured.
      expect(values["disk_free_bytes:postgres"]).toBeUndefined();
      expect(minioRequests).toBe(1);

      const second = await collector.collect();
      expect(second.values.host_cpu_percent).toBeGreaterThanOrEqual(0);
      expect(second.values.host_network_receive_bytes_per_second).toBeGreaterThanOrEqual(0);
    } finally {
      await close();
    }
  });

  it("leaves out MinIO when it rejects the token", async () => {
    const config = loadConfig({
      PU_NODE_ENV: "test",
      PU_NODE_DATA_DIR: scratch,
      PU_NODE_DATABASE_URL: database.url,
      PU_NODE_MINIO_METRICS_URL: minioUrl,
      PU_NODE_MINIO_METRICS_TOKEN: "wrong",
    });
    const { probes, close } = createNodeStateProbes(config, { db: database.db });
    const sample = await new NodeStateCollector(probes).collect();
    await close();
    expect(Object.keys(sample.values).some((name) => name.startsWith("minio_"))).toBe(false);
    expect(sample.values.postgres_database_bytes).toBeGreaterThan(0);
  });
});
