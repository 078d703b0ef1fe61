/**
 * What the Redis server itself says about its room and its replicas (INFO memory and replication), for GetQueueStats
 * and the gateway's gauges: how close it is to `maxmemory` (at which, under noeviction, every write is refused: the
 * stages hold their deliveries and submissions fail UNAVAILABLE), whether its policy would evict task records, and
 * how many replicas are online (what REDIS_WAIT_REPLICAS waits for).
 */
import type { Redis } from "ioredis";

export interface RedisServerInfo {
  usedMemoryBytes: number;
  /** 0: no limit (Redis grows until the machine or the container's limit stops it). */
  maxMemoryBytes: number;
  /** e.g. noeviction, allkeys-lru. */
  maxMemoryPolicy: string;
  /** master or slave (Redis's words). */
  role: string;
  /** Replicas past their first sync, acknowledging writes. */
  replicasOnline: number;
}

/** Parses INFO's `field:value` lines (every section given). */
export function parseRedisInfo(text: string): RedisServerInfo {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const number = (name: string) => Number(fields.get(name) ?? 0) || 0;
  let replicasOnline = 0;
  for (const [name, value] of fields) if (/^slave\d+$/.test(name) && value.includes("state=online")) replicasOnline++;
  return {
    usedMemoryBytes: number("used_memory"),
    maxMemoryBytes: number("maxmemory"),
    maxMemoryPolicy: fields.get("maxmemory_policy") ?? "",
    role: fields.get("role") ?? "",
    replicasOnline,
  };
}

/** One round trip: INFO memory and replication together. */
export async function readRedisServerInfo(redis: Redis): Promise<RedisServerInfo> {
  const [memory, replication] = await Promise.all([redis.info("memory"), redis.info("replication")]);
  return parseRedisInfo(`${memory}\n${replication}`);
}

/** Policies under which Redis deletes keys to make room: task records, statuses and results among them. */
export function evicts(policy: string): boolean {
  return policy !== "" && policy !== "noeviction";
}
