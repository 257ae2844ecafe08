/**
 * MinIO space figures from its Prometheus metrics v3 endpoint (`/minio/metrics/v3`). Metric names
 * follow MinIO's metrics v3 reference: per-bucket usage under `/cluster/usage/buckets`, the
 * cluster total under `/cluster/usage/objects`, and capacity under `/cluster/health`.
 */
import { parsePrometheusText } from "../channels/prometheus-text.ts";
import { labelledName } from "./host.ts";

const BUCKET_BYTES = "minio_cluster_usage_buckets_total_bytes";
const CLUSTER_USED_BYTES = "minio_cluster_usage_objects_total_bytes";
const CAPACITY_FREE_BYTES = "minio_cluster_health_capacity_usable_free_bytes";
const CAPACITY_TOTAL_BYTES = "minio_cluster_health_capacity_usable_total_bytes";

/**
 * Turns a MinIO metrics v3 scrape into `minio_bucket_used_bytes:<bucket>`,
 * `minio_used_bytes` (the cluster total, or the sum of the buckets when MinIO reports no total),
 * and `minio_free_bytes` / `minio_total_bytes` (usable capacity) when present. MinIO leaves the
 * usage metrics out until its scanner has run once; then only capacity is returned.
 */
export function parseMinioMetrics(text: string): Record<string, number> {
  const values: Record<string, number> = {};
  let bucketSum = 0;
  let bucketCount = 0;
  for (const family of parsePrometheusText(text)) {
    for (const metric of family.metrics) {
      const value = Number(metric.value);
      if (!Number.isFinite(value)) continue;
      switch (family.name) {
        case BUCKET_BYTES: {
          const bucket = metric.labels?.bucket;
          if (bucket === undefined) break;
          values[labelledName("minio_bucket_used_bytes", bucket)] = value;
          bucketSum += value;
          bucketCount += 1;
          break;
        }
        case CLUSTER_USED_BYTES:
          values.minio_used_bytes = value;
          break;
        case CAPACITY_FREE_BYTES:
          values.minio_free_bytes = value;
          break;
        case CAPACITY_TOTAL_BYTES:
          values.minio_total_bytes = value;
          break;
      }
    }
  }
  if (values.minio_used_bytes === undefined && bucketCount > 0) values.minio_used_bytes = bucketSum;
  return values;
}

/** Scrapes `url` (with `token` as bearer token when set) and parses it. */
export async function readMinioSpace(
  url: URL,
  token: string | undefined,
  signal: AbortSignal,
): Promise<Record<string, number>> {
  const headers: Record<string, string> = { accept: "text/plain;version=0.0.4" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { headers, signal });
  if (!response.ok) {
    throw new Error(
      `MinIO metrics at ${url.origin}${url.pathname} responded with HTTP ${response.status}`,
    );
  }
  return parseMinioMetrics(await response.text());
}
