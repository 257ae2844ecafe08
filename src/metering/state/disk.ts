/** Disk probes: free space of filesystems and the size of a directory tree. */
import { lstat, opendir, stat, statfs } from "node:fs/promises";
import path from "node:path";
import { labelledName } from "./host.ts";

export interface FilesystemSpace {
  /** Bytes an unprivileged process can still write (`f_bavail`, not `f_bfree`). */
  freeBytes: number;
  totalBytes: number;
  /** Device id of the path; equal ids mean the same filesystem. */
  device: number;
}

export async function readFilesystemSpace(target: string): Promise<FilesystemSpace> {
  const [space, info] = await Promise.all([statfs(target), stat(target)]);
  return {
    freeBytes: space.bavail * space.bsize,
    totalBytes: space.blocks * space.bsize,
    device: info.dev,
  };
}

/**
 * Returns `disk_free_bytes:<name>` and `disk_total_bytes:<name>` for each named path, and
 * `disk_free_bytes` / `disk_total_bytes` summed over the distinct filesystems among them, so two
 * paths on one disk count once. A path that cannot be read is left out; when none can, this
 * throws the first error.
 */
export async function readDiskSpace(
  paths: ReadonlyMap<string, string>,
): Promise<Record<string, number>> {
  const values: Record<string, number> = {};
  const devices = new Map<number, FilesystemSpace>();
  let firstError: unknown;
  for (const [name, target] of paths) {
    try {
      const space = await readFilesystemSpace(target);
      values[labelledName("disk_free_bytes", name)] = space.freeBytes;
      values[labelledName("disk_total_bytes", name)] = space.totalBytes;
      devices.set(space.device, space);
    } catch (error) {
      firstError ??= error;
    }
  }
  if (devices.size === 0 && firstError !== undefined) throw firstError;
  let free = 0;
  let total = 0;
  for (const space of devices.values()) {
    free += space.freeBytes;
    total += space.totalBytes;
  }
  values.disk_free_bytes = free;
  values.disk_total_bytes = total;
  return values;
}

/** Raised when a directory walk meets its entry limit; its partial total is not a measurement. */
export class DirectoryTooLargeError extends Error {
  constructor(directory: string, maxEntries: number) {
    super(`Directory ${directory} has more than ${maxEntries} entries; its size was not measured`);
    this.name = "DirectoryTooLargeError";
  }
}

export interface DirectorySize {
  bytes: number;
  files: number;
}

/**
 * Sums the sizes of the regular files under `root`. Symbolic links are not followed (their own
 * size is not counted either), so a link to `/` cannot make the walk leave the tree. The walk
 * stops with the signal's reason when `signal` aborts, and with {@link DirectoryTooLargeError}
 * after `maxEntries` entries, so it is bounded in time and memory.
 */
export async function measureDirectory(
  root: string,
  signal: AbortSignal,
  maxEntries = 1_000_000,
): Promise<DirectorySize> {
  const rootInfo = await lstat(root);
  if (!rootInfo.isDirectory()) throw new Error(`${root} is not a directory`);

  let bytes = 0;
  let files = 0;
  let entries = 0;
  const pending = [root];
  while (pending.length > 0) {
    const directory = pending.pop() as string;
    const handle = await opendir(directory);
    for await (const entry of handle) {
      signal.throwIfAborted();
      entries += 1;
      if (entries > maxEntries) throw new DirectoryTooLargeError(root, maxEntries);
      const full = path.join(directory, entry.name);
      if (entry.isDirectory()) {
        pending.push(full);
      } else if (entry.isFile()) {
        try {
          bytes += (await lstat(full)).size;
          files += 1;
        } catch (error) {
          // A file deleted between listing and lstat no longer takes space.
          if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
        }
      }
    }
  }
  return { bytes, files };
}
