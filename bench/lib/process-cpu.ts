/**
 * CPU time of processes from `/proc/<pid>/stat` (Linux only), and look-ups of the processes that
 * this benchmark started: the one listening on a loopback port, and all descendants with a
 * given command name.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** Clock ticks per second of the `utime` and `stime` fields (`getconf CLK_TCK`, 100 on common Linux builds). */
const CLOCK_TICKS_PER_SECOND = readClockTicks();

function readClockTicks(): number {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

interface ProcessStat {
  pid: number;
  command: string;
  parentPid: number;
  /** User and system CPU time in seconds. */
  cpuSeconds: number;
}

/** Parses `/proc/<pid>/stat`, or returns undefined when the process is gone. */
function readStat(pid: number): ProcessStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command is in brackets and may contain spaces and brackets itself, so the fields after
  // it start behind the last ")".
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const fields = text.slice(close + 2).split(" ");
  // Fields 4 (ppid), 14 (utime) and 15 (stime) of proc(5), counted from 1 before the command.
  const parentPid = Number(fields[1]);
  const ticks = Number(fields[11]) + Number(fields[12]);
  return {
    pid,
    command: text.slice(open + 1, close),
    parentPid,
    cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND,
  };
}

/** Returns the CPU seconds (user and system) that process `pid` has used, or NaN when it is gone. */
export function readCpuSeconds(pid: number): number {
  return readStat(pid)?.cpuSeconds ?? Number.NaN;
}

function listPids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^[0-9]+$/.test(name))
    .map(Number);
}

/** Returns the pids of all descendants of `ancestorPid` whose command name is `command`. */
export function findDescendants(ancestorPid: number, command: string): number[] {
  const stats = listPids()
    .map(readStat)
    .filter((stat) => stat !== undefined);
  const parents = new Map(stats.map((stat) => [stat.pid, stat.parentPid]));
  const isDescendant = (pid: number): boolean => {
    let parent = parents.get(pid);
    while (parent !== undefined && parent > 1) {
      if (parent === ancestorPid) return true;
      parent = parents.get(parent);
    }
    return false;
  };
  return stats
    .filter((stat) => stat.command === command && isDescendant(stat.pid))
    .map((stat) => stat.pid);
}

/**
 * Returns the pid of the child of this process that listens on `port` of 127.0.0.1. It matches
 * the socket inode in `/proc/net/tcp` with the open files of each child, which this process may
 * read because it started them.
 */
export function findChildListeningOn(port: number): number {
  const localAddress = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const listening = readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    // Column 1 is the local address, 3 the state (0A is LISTEN) and 9 the socket inode.
    .find((columns) => columns[1] === localAddress && columns[3] === "0A");
  if (!listening) throw new Error(`No socket listens on 127.0.0.1:${port} in /proc/net/tcp`);
  const socketLink = `socket:[${listening[9]}]`;

  const children = listPids().filter((pid) => readStat(pid)?.parentPid === process.pid);
  for (const pid of children) {
    let descriptors: string[];
    try {
      descriptors = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const descriptor of descriptors) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${descriptor}`) === socketLink) return pid;
      } catch {
        // The descriptor closed while we read the directory.
      }
    }
  }
  throw new Error(
    `Socket listening on 127.0.0.1:${port} not found among the open files of the children of process ${process.pid}`,
  );
}
