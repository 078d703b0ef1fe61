/**
 * What a system keeps in Redis, and how much of it each finished task costs: for capacity planning (the pipeline
 * keeps a task's records for TASK_RETENTION_SECONDS, 7 days by default).
 *
 * A snapshot is Redis's `INFO memory` used_memory, DBSIZE, and per key prefix (the part of the key before the first
 * ':', or the whole name of a key without one, e.g. `audit_events`) the number of keys (SCAN over every key) and an
 * estimate of their bytes: the mean of `MEMORY USAGE key SAMPLES 0` (every element counted) over at most
 * STORAGE_SAMPLE_MAX keys of the prefix, times the prefix's count. Two snapshots, before and after a number of
 * finished tasks, give the bytes and keys per task (storagePerTask). The pure parts (grouping, arithmetic,
 * formatting, the wait for a quiet DBSIZE) are tested in test/bench-storage.unit.test.ts.
 */
import { Redis } from "ioredis";

/** Keys per prefix whose MEMORY USAGE is asked for (their mean stands for the whole prefix). */
export const STORAGE_SAMPLE_MAX = 200;
/** SCAN's COUNT: keys Redis looks at per call (at benchmark sizes, a few dozen calls in all). */
export const SCAN_COUNT = 1000;

export interface PrefixUsage {
  prefix: string;
  keys: number;
  /** Keys whose MEMORY USAGE was read (at most STORAGE_SAMPLE_MAX; fewer when some expired in between). */
  sampledKeys: number;
  /** Mean MEMORY USAGE of the sampled keys × keys. */
  bytes: number;
}

export interface StorageSnapshot {
  /** `INFO memory` used_memory: everything Redis allocated (data, expiry table, buffers, scripts), bytes. */
  usedMemory: number;
  dbSize: number;
  byPrefix: PrefixUsage[];
  /** When the snapshot waited for DBSIZE to stop changing first (waitForQuiet): how long, and whether it did. */
  settle?: Settle;
}

export interface Settle {
  waitedMs: number;
  /** false: DBSIZE was still changing at the deadline (the snapshot was taken anyway). */
  quiet: boolean;
}

export interface PrefixPerTask {
  prefix: string;
  keysPerTask: number;
  bytesPerTask: number;
}

/** What one finished task costs in Redis: the difference of two snapshots divided by the tasks finished between. */
export interface StoragePerTask {
  tasks: number;
  /** Difference of used_memory per task (what the server really allocated, overheads included). */
  usedMemoryPerTask: number;
  /** Difference of DBSIZE per task. */
  keysPerTask: number;
  /** By key prefix, largest bytes per task first. */
  byPrefix: PrefixPerTask[];
  /** The after-snapshot's wait for a quiet DBSIZE. */
  settle?: Settle;
}

/** The part of a key before its first ':' (the whole key when it has none). */
export function prefixOf(key: string): string {
  const colon = key.indexOf(":");
  return colon < 0 ? key : key.slice(0, colon);
}

export interface PrefixGroup {
  keys: number;
  /** The first `sampleMax` keys seen (SCAN's order follows the hash table: neither the oldest nor the newest). */
  sample: string[];
}

/** Counts keys per prefix, keeping up to `sampleMax` of each to measure. Call `add` with each batch SCAN returns. */
export class PrefixGrouper {
  readonly groups = new Map<string, PrefixGroup>();
  constructor(private readonly sampleMax = STORAGE_SAMPLE_MAX) {}
  add(keys: Iterable<string>): void {
    for (const key of keys) {
      const prefix = prefixOf(key);
      let group = this.groups.get(prefix);
      if (!group) {
        group = { keys: 0, sample: [] };
        this.groups.set(prefix, group);
      }
      group.keys++;
      if (group.sample.length < this.sampleMax) group.sample.push(key);
    }
  }
}

/** Keys per prefix, with a sample of each (see PrefixGrouper). */
export function groupByPrefix(keys: Iterable<string>, sampleMax = STORAGE_SAMPLE_MAX): Map<string, PrefixGroup> {
  const grouper = new PrefixGrouper(sampleMax);
  grouper.add(keys);
  return grouper.groups;
}

/** Mean of the sampled sizes × the prefix's key count (null sizes, keys gone before they were measured, left out). */
export function estimateBytes(
  keys: number,
  sampleSizes: readonly (number | null)[],
): { bytes: number; sampled: number } {
  const sizes = sampleSizes.filter((size): size is number => typeof size === "number" && Number.isFinite(size));
  if (sizes.length === 0) return { bytes: 0, sampled: 0 };
  const mean = sizes.reduce((sum, size) => sum + size, 0) / sizes.length;
  return { bytes: mean * keys, sampled: sizes.length };
}

/** used_memory from the text of `INFO memory` (NaN when missing). */
export function parseUsedMemory(info: string): number {
  const match = /^used_memory:(\d+)\s*$/m.exec(info);
  return match ? Number(match[1]) : Number.NaN;
}

/** (after − before) ÷ tasks, overall and per prefix (a prefix missing from one snapshot counts as 0 keys there). */
export function storagePerTask(before: StorageSnapshot, after: StorageSnapshot, tasks: number): StoragePerTask {
  const per = (value: number) => (tasks > 0 ? value / tasks : 0);
  const prefixes = new Map<string, { keys: number; bytes: number }>();
  for (const [sign, snapshot] of [
    [-1, before],
    [1, after],
  ] as const)
    for (const p of snapshot.byPrefix) {
      const delta = prefixes.get(p.prefix) ?? { keys: 0, bytes: 0 };
      delta.keys += sign * p.keys;
      delta.bytes += sign * p.bytes;
      prefixes.set(p.prefix, delta);
    }
  const byPrefix = [...prefixes]
    .map(([prefix, delta]) => ({ prefix, keysPerTask: per(delta.keys), bytesPerTask: per(delta.bytes) }))
    .sort((a, b) => b.bytesPerTask - a.bytesPerTask || a.prefix.localeCompare(b.prefix));
  return {
    tasks,
    usedMemoryPerTask: per(after.usedMemory - before.usedMemory),
    keysPerTask: per(after.dbSize - before.dbSize),
    byPrefix,
    ...(after.settle ? { settle: after.settle } : {}),
  };
}

const bytesText = (value: number) => Math.round(value).toLocaleString("en-US");

/** The line above the table. */
export function storageHeadline(system: string, storage: StoragePerTask): string {
  const settle = storage.settle;
  const settled = !settle
    ? ""
    : settle.quiet
      ? `; DBSIZE quiet after ${(settle.waitedMs / 1000).toFixed(1)} s`
      : `; DBSIZE still changing at the ${(settle.waitedMs / 1000).toFixed(1)} s deadline`;
  return (
    `${system}: Redis per finished task (after warm-up + saturation: ${storage.tasks.toLocaleString("en-US")} tasks${settled}): ` +
    `used_memory ${bytesText(storage.usedMemoryPerTask)} bytes, ${storage.keysPerTask.toFixed(2)} keys; by key prefix ` +
    "(bytes = mean MEMORY USAGE of up to 200 keys × keys):"
  );
}

export const STORAGE_HEADERS = ["key prefix", "keys/task", "bytes/task", "share"];

/** One row per prefix (largest first), then the sum of the estimates; share = of that sum. */
export function storageRows(storage: StoragePerTask): string[][] {
  const total = storage.byPrefix.reduce((sum, p) => sum + p.bytesPerTask, 0);
  const keys = storage.byPrefix.reduce((sum, p) => sum + p.keysPerTask, 0);
  const share = (bytes: number) => (total > 0 ? `${((100 * bytes) / total).toFixed(0)}%` : "—");
  const rows = [
    ...storage.byPrefix.map((p) => [
      p.prefix,
      p.keysPerTask.toFixed(2),
      bytesText(p.bytesPerTask),
      share(p.bytesPerTask),
    ]),
    ["(sum of the prefixes)", keys.toFixed(2), bytesText(total), total > 0 ? "100%" : "—"],
  ];
  // The figures right-aligned, so their magnitudes line up.
  for (const column of [1, 2, 3]) {
    const width = Math.max(STORAGE_HEADERS[column]?.length ?? 0, ...rows.map((row) => row[column]?.length ?? 0));
    for (const row of rows) row[column] = (row[column] ?? "").padStart(width);
  }
  return rows;
}

export interface QuietOptions {
  /** How long the value must stay the same (default 1,000 ms). */
  quietMs?: number;
  /** The longest wait in all (default 5,000 ms): past it, the caller goes on with `quiet: false`. */
  deadlineMs?: number;
  /** Between reads (default 100 ms). */
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Polls `read` until its value has not changed for `quietMs`, or `deadlineMs` passed. */
export async function waitForQuiet(read: () => Promise<number>, options: QuietOptions = {}): Promise<Settle> {
  const { quietMs = 1000, deadlineMs = 5000, pollMs = 100 } = options;
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const start = now();
  let last = await read();
  let since = now();
  for (;;) {
    if (now() - since >= quietMs) return { waitedMs: now() - start, quiet: true };
    if (now() - start >= deadlineMs) return { waitedMs: now() - start, quiet: false };
    await sleep(pollMs);
    const value = await read();
    if (value !== last) {
      last = value;
      since = now();
    }
  }
}

/** A snapshot of everything in `redis`'s current database (see the module's comment). */
export async function snapshotStorage(redis: Redis, sampleMax = STORAGE_SAMPLE_MAX): Promise<StorageSnapshot> {
  const grouper = new PrefixGrouper(sampleMax);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "COUNT", SCAN_COUNT);
    grouper.add(keys);
    cursor = next;
  } while (cursor !== "0");
  const [info, dbSize] = await Promise.all([redis.info("memory"), redis.dbsize()]);
  const byPrefix: PrefixUsage[] = [];
  for (const [prefix, group] of grouper.groups) {
    const pipeline = redis.pipeline();
    for (const key of group.sample) pipeline.call("MEMORY", "USAGE", key, "SAMPLES", "0");
    const replies = (await pipeline.exec()) ?? [];
    const sizes = replies.map(([error, size]) => (error ? null : (size as number | null)));
    const { bytes, sampled } = estimateBytes(group.keys, sizes);
    byPrefix.push({ prefix, keys: group.keys, sampledKeys: sampled, bytes });
  }
  byPrefix.sort((a, b) => b.bytes - a.bytes);
  return { usedMemory: parseUsedMemory(info), dbSize, byPrefix };
}

/** A connection to take snapshots with; `settle` first waits (bounded) for DBSIZE to stop changing. */
export function redisStorage(url: string): {
  snapshot(options?: { settle?: boolean }): Promise<StorageSnapshot>;
  close(): void;
} {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  return {
    async snapshot(options = {}) {
      const settle = options.settle ? await waitForQuiet(() => redis.dbsize()) : undefined;
      const snapshot = await snapshotStorage(redis);
      return settle ? { ...snapshot, settle } : snapshot;
    },
    close() {
      redis.disconnect();
    },
  };
}
