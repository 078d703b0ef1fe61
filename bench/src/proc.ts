/**
 * CPU and memory of processes, read from /proc (Linux): utime+stime for CPU, VmHWM (peak resident set) and VmRSS
 * (current resident set, sampled by the soak) for memory. The benchmark process itself uses process.cpuUsage /
 * resourceUsage / memoryUsage, which cover the same quantities.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

export interface WatchedProcess {
  /** e.g. "hop-3", "nats-server", "worker#2" */
  role: string;
  /** "system" (the system under test), "infra" (nats-server, redis-server) or "driver" (this process). */
  kind: "system" | "infra" | "driver";
  pid: number;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User+system CPU seconds a process has used so far. */
export function cpuSecondsOf(pid: number): number {
  if (pid === process.pid) {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1e6;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces and parentheses: count fields after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond();
}

/** Read and write system calls a process (all its threads) has made so far, from /proc/<pid>/io: how many socket
 *  reads and writes its messages took, i.e. how well they were batched. */
export function syscallsOf(pid: number): { reads: number; writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(io)?.[1] ?? 0);
  return { reads: field("syscr"), writes: field("syscw") };
}

/** Peak resident set size in MB (VmHWM) of a live process. */
export function peakRssMbOf(pid: number): number {
  if (pid === process.pid) return process.resourceUsage().maxRSS / 1024;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmHWM:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) / 1024 : 0;
}

/**
 * Current resident set size in MB (VmRSS) of a process; undefined when it cannot be read (the process is gone, or
 * is a zombie without a VmRSS line), so a soak that outlives a crashed service records a gap instead of stopping.
 */
export function currentRssMbOf(pid: number): number | undefined {
  if (pid === process.pid) return process.memoryUsage.rss() / (1024 * 1024);
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) / 1024 : undefined;
}

export interface CpuSnapshot {
  at: Map<number, number>;
}

export function snapshotCpu(processes: readonly WatchedProcess[]): CpuSnapshot {
  return { at: new Map(processes.map((p) => [p.pid, cpuSecondsOf(p.pid)])) };
}

export interface ProcessUsage extends WatchedProcess {
  /** CPU seconds used between two snapshots. */
  cpuSeconds: number;
}

export function cpuBetween(
  processes: readonly WatchedProcess[],
  before: CpuSnapshot,
  after: CpuSnapshot,
): ProcessUsage[] {
  return processes.map((p) => ({
    ...p,
    cpuSeconds: (after.at.get(p.pid) ?? 0) - (before.at.get(p.pid) ?? 0),
  }));
}
