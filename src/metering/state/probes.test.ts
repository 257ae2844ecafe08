import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DirectoryTooLargeError, measureDirectory, readDiskSpace } from "./disk.ts";
import {
  createCpuProbe,
  createNetworkProbe,
  parseMeminfo,
  parseNetDev,
  readMemory,
} from "./host.ts";
import { parseMinioMetrics } from "./minio.ts";
import { ProbeTimeoutError, withTimeout } from "./probe.ts";

let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "node-state-probes-"));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const NET_DEV_HEADER =
  "Inter-|   Receive                                                |  Transmit\n" +
  " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

function netDevLine(name: string, received: number, transmitted: number): string {
  return `${name.padStart(6)}: ${received} 10 0 0 0 0 0 0 ${transmitted} 10 0 0 0 0 0 0\n`;
}

describe("parseMeminfo", () => {
  it("reads kB fields as bytes", () => {
    const fields = parseMeminfo(
      "MemTotal:       16303428 kB\nMemFree:          512000 kB\nMemAvailable:    8000000 kB\nHugePages_Total:       0\n",
    );
    expect(fields.get("MemTotal")).toBe(16303428 * 1024);
    expect(fields.get("MemAvailable")).toBe(8000000 * 1024);
    expect(fields.get("HugePages_Total")).toBe(0);
  });
});

describe("readMemory", () => {
  it("uses MemAvailable for available memory", async () => {
    const file = path.join(scratch, "meminfo");
    await writeFile(file, "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\n");
    const values = await readMemory(file);
    expect(values.host_memory_total_bytes).toBe(1000 * 1024);
    expect(values.host_memory_available_bytes).toBe(600 * 1024);
    expect(values.host_memory_used_bytes).toBe(400 * 1024);
    expect(values.process_memory_rss_bytes).toBeGreaterThan(0);
  });

  it("reads the real /proc/meminfo", async () => {
    const values = await readMemory();
    expect(values.host_memory_total_bytes).toBeGreaterThan(values.host_memory_used_bytes ?? 0);
  });
});

describe("network probe", () => {
  it("returns bytes per second from counter differences", async () => {
    const file = path.join(scratch, "net-dev");
    let clock = 0;
    const probe = createNetworkProbe(file, () => clock);
    await writeFile(
      file,
      NET_DEV_HEADER + netDevLine("lo", 100, 100) + netDevLine("eth0", 1000, 2000),
    );
    expect(await probe()).toEqual({});

    clock = 2000;
    await writeFile(
      file,
      NET_DEV_HEADER +
        netDevLine("lo", 300, 300) +
        netDevLine("eth0", 5000, 2400) +
        netDevLine("veth1", 10, 10),
    );
    const values = await probe();
    expect(values["host_network_receive_bytes_per_second:eth0"]).toBe(2000);
    expect(values["host_network_transmit_bytes_per_second:eth0"]).toBe(200);
    expect(values["host_network_receive_bytes_per_second:lo"]).toBe(100);
    // The total leaves out loopback; an interface new since the last reading has no rate yet.
    expect(values.host_network_receive_bytes_per_second).toBe(2000);
    expect(values["host_network_receive_bytes_per_second:veth1"]).toBeUndefined();
  });

  it("skips an interface whose counters went down", async () => {
    const file = path.join(scratch, "net-dev-reset");
    let clock = 0;
    const probe = createNetworkProbe(file, () => clock);
    await writeFile(file, NET_DEV_HEADER + netDevLine("eth0", 5000, 5000));
    await probe();
    clock = 1000;
    await writeFile(file, NET_DEV_HEADER + netDevLine("eth0", 10, 10));
    const values = await probe();
    expect(values["host_network_receive_bytes_per_second:eth0"]).toBeUndefined();
    expect(values.host_network_receive_bytes_per_second).toBe(0);
  });

  it("parses the real /proc/net/dev", async () => {
    const { readFile } = await import("node:fs/promises");
    const interfaces = parseNetDev(await readFile("/proc/net/dev", "utf8"));
    expect(interfaces.has("lo")).toBe(true);
  });
});

describe("cpu probe", () => {
  it("returns percentages within 0 to 100", async () => {
    const probe = createCpuProbe();
    const end = Date.now() + 50;
    let spin = 0;
    while (Date.now() < end) spin += 1;
    const values = await probe();
    expect(spin).toBeGreaterThan(0);
    expect(values.process_cpu_percent).toBeGreaterThan(0);
    expect(values.process_cpu_percent).toBeLessThanOrEqual(100);
    expect(values.host_cpu_percent).toBeGreaterThanOrEqual(0);
    expect(values.host_cpu_percent).toBeLessThanOrEqual(100);
  });
});

describe("measureDirectory", () => {
  it("sums regular files without following symlinks", async () => {
    const root = path.join(scratch, "cache");
    await mkdir(path.join(root, "repo-a", "src"), { recursive: true });
    await writeFile(path.join(root, "repo-a", "README.md"), "x".repeat(100));
    await writeFile(path.join(root, "repo-a", "src", "main.py"), "y".repeat(250));
    // A loop back to the root and a link to a large file outside must not be counted.
    await symlink(root, path.join(root, "repo-a", "loop"));
    await writeFile(path.join(scratch, "outside.bin"), "z".repeat(10_000));
    await symlink(path.join(scratch, "outside.bin"), path.join(root, "outside-link"));

    const size = await measureDirectory(root, new AbortController().signal);
    expect(size).toEqual({ bytes: 350, files: 2 });
  });

  it("stops at the entry limit", async () => {
    const root = path.join(scratch, "many");
    await mkdir(root);
    for (let index = 0; index < 5; index += 1) await writeFile(path.join(root, `f${index}`), "a");
    await expect(measureDirectory(root, new AbortController().signal, 3)).rejects.toBeInstanceOf(
      DirectoryTooLargeError,
    );
  });

  it("stops when the signal aborts", async () => {
    const controller = new AbortController();
    controller.abort(new Error("time is up"));
    await expect(measureDirectory(path.join(scratch, "many"), controller.signal)).rejects.toThrow(
      "time is up",
    );
  });
});

describe("readDiskSpace", () => {
  it("counts one filesystem once", async () => {
    const values = await readDiskSpace(
      new Map([
        ["first", scratch],
        ["second", path.join(scratch, "cache")],
      ]),
    );
    expect(values["disk_free_bytes:first"]).toBeGreaterThan(0);
    expect(values["disk_free_bytes:second"]).toBe(values["disk_free_bytes:first"]);
    expect(values.disk_free_bytes).toBe(values["disk_free_bytes:first"]);
    expect(values.disk_total_bytes).toBeGreaterThanOrEqual(values.disk_free_bytes ?? 0);
  });

  it("leaves out a missing path", async () => {
    const values = await readDiskSpace(
      new Map([
        ["present", scratch],
        ["missing", path.join(scratch, "does-not-exist")],
      ]),
    );
    expect(values["disk_free_bytes:missing"]).toBeUndefined();
    expect(values["disk_free_bytes:present"]).toBeGreaterThan(0);
  });

  it("throws when no path can be read", async () => {
    await expect(
      readDiskSpace(new Map([["missing", path.join(scratch, "does-not-exist")]])),
    ).rejects.toThrow(/ENOENT/);
  });
});

describe("withTimeout", () => {
  it("rejects a probe that ignores its signal", async () => {
    const never = () => new Promise<never>(() => undefined);
    await expect(withTimeout("slow", 20, never)).rejects.toBeInstanceOf(ProbeTimeoutError);
  });
});

describe("parseMinioMetrics", () => {
  it("reads bucket usage and capacity", () => {
    const values = parseMinioMetrics(
      [
        "# HELP minio_cluster_usage_buckets_total_bytes Total bucket size in bytes",
        "# TYPE minio_cluster_usage_buckets_total_bytes gauge",
        'minio_cluster_usage_buckets_total_bytes{bucket="firmware"} 1048576',
        'minio_cluster_usage_buckets_total_bytes{bucket="backups"} 2048',
        "# TYPE minio_cluster_health_capacity_usable_free_bytes gauge",
        "minio_cluster_health_capacity_usable_free_bytes 5e+09",
        "# TYPE minio_cluster_health_capacity_usable_total_bytes gauge",
        "minio_cluster_health_capacity_usable_total_bytes 1e+10",
      ].join("\n"),
    );
    expect(values["minio_bucket_used_bytes:firmware"]).toBe(1048576);
    expect(values["minio_bucket_used_bytes:backups"]).toBe(2048);
    expect(values.minio_used_bytes).toBe(1048576 + 2048);
    expect(values.minio_free_bytes).toBe(5e9);
    expect(values.minio_total_bytes).toBe(1e10);
  });
});
