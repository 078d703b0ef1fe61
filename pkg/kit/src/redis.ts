/**
 * ioredis with reconnect-forever and bounded command queueing: while Redis is down commands wait (up to the
 * retry limit) rather than fail at once, so a Redis restart costs latency, not tasks. It follows a failover too: a
 * demoted primary's READONLY makes it reconnect (to whatever the address now leads to), Sentinel mode finds the new
 * primary itself, and a client ioredis gave up on is connected again.
 */
import type { RedisOptions } from "ioredis";
import type { BaseConfig } from "./config.js";
import { Redis } from "./ioredis-module.js";
import { LogThrottle } from "./log-throttle.js";
import type { Logger } from "./logger.js";
import { keepRedisCommandContext } from "./redis-context.js";
import { spansRecorded } from "./telemetry.js";
import { readTlsFiles, renewedTlsMaterial, type TlsMaterial } from "./tls-files.js";

/** Where a service's Redis is: a URL, or Sentinels to ask for the primary (with the URL's credentials, db and TLS). */
export interface RedisTarget {
  url: string;
  sentinels?: Array<{ host: string; port: number }>;
  sentinelMaster?: string;
  sentinelPassword?: string;
  sentinelUsername?: string;
  /** Reach the Sentinels over TLS. */
  sentinelTls?: boolean;
  /** TLS material (PEM): the CA(s) to trust instead of the system's, and a client certificate with its key. */
  tls?: RedisTls;
  /** The files `tls` was read from, read again at each connection (renewedTlsMaterial). */
  tlsFiles?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined };
}

export type RedisTls = TlsMaterial;

/** The Redis target of a service's configuration (REDIS_URL, REDIS_SENTINELS, ...); the TLS files checked now. */
export function redisTargetOf(config: BaseConfig): RedisTarget {
  const tlsFiles = { ca: config.REDIS_TLS_CA_FILE, cert: config.REDIS_TLS_CERT_FILE, key: config.REDIS_TLS_KEY_FILE };
  const tls = readTlsFiles("REDIS", tlsFiles);
  return {
    url: config.REDIS_URL,
    sentinels: config.REDIS_SENTINELS,
    sentinelMaster: config.REDIS_SENTINEL_MASTER,
    sentinelPassword: config.REDIS_SENTINEL_PASSWORD,
    sentinelUsername: config.REDIS_SENTINEL_USERNAME,
    sentinelTls: config.REDIS_SENTINEL_TLS,
    ...(tls ? { tls, tlsFiles } : {}),
  };
}

/** ioredis's options for Sentinel: it asks the Sentinels for the primary on every (re)connect and checks the role of
 *  the server it reaches, so a failover costs a reconnect. */
function sentinelOptions(target: RedisTarget): RedisOptions {
  if (!target.sentinels?.length) return {};
  return {
    sentinels: target.sentinels,
    name: target.sentinelMaster ?? "mymaster",
    sentinelPassword: target.sentinelPassword,
    sentinelUsername: target.sentinelUsername,
    // Listens to the Sentinels' +switch-master and reconnects at once. Without it the client learns of a failover only
    // when its server closes the connection or answers READONLY: an old primary cut off from the Sentinels but not
    // from this client would take its writes until the partition heals, and lose them when it rejoins as a replica.
    failoverDetector: true,
    // A rediss:// URL asks for TLS to the data nodes; ioredis applies it in Sentinel mode only with this flag.
    enableTLSForSentinelMode: target.url.startsWith("rediss:"),
    // Not copied: its getters must be read at each connection (renewedTlsMaterial).
    ...(target.sentinelTls ? { sentinelTLS: target.tls ?? {} } : {}),
  };
}

export function connectRedis(target: RedisTarget | string, name: string, log: Logger, extra: RedisOptions = {}): Redis {
  const { url, tlsFiles, ...given } = typeof target === "string" ? { url: target } : target;
  // Certificates renewed in their files are used from the next connection on, without a restart.
  const where =
    given.tls && tlsFiles ? { ...given, tls: renewedTlsMaterial("REDIS", tlsFiles, given.tls, log) } : given;
  // Auto-pipelining (below) would otherwise send a command in the context of another caller: redis-context.ts.
  // Only Redis spans read that context, and they exist only when spans record (telemetry-start.ts).
  if (spansRecorded()) keepRedisCommandContext();
  // Reconnect loops emit an error per attempt; one warning a few seconds is enough.
  const warnings = new LogThrottle(5_000);
  const demotions = new LogThrottle(5_000);
  const redis = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: 20,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    ...sentinelOptions({ url, ...where }),
    // rediss://: TLS to the data nodes, trusting the given CA rather than only the system's, with the client
    // certificate if one is given. In Sentinel mode the same options reach the node the Sentinels name.
    ...(url.startsWith("rediss:") && where.tls !== undefined ? { tls: where.tls } : {}),
    reconnectOnError: (error) => {
      if (!answeredReadOnly(error)) return false;
      const heldBack = demotions.pass();
      if (heldBack !== undefined)
        log.warn({ err: error.message, heldBack }, "Redis answered READONLY: reconnecting to reach the primary");
      return RECONNECT_AND_RESEND;
    },
    ...extra,
  });
  redis.on("error", (error) => {
    const heldBack = warnings.pass();
    if (heldBack !== undefined) log.warn({ err: error.message, heldBack }, "Redis connection problem");
  });
  redis.on("ready", () => {
    everReady.add(redis);
    log.info("connected to Redis");
  });
  reviveWhenGivenUp(redis, log);
  return redis;
}

/**
 * ioredis ends a client for good ("end": every command fails "Connection is closed." from then on) when a connect
 * attempt fails inside its connector rather than on the socket: a reconnect asked for while one is under way (a
 * READONLY reply or Sentinel's +switch-master during a failover, seen in redis-sentinel.int.test.ts under load), or
 * Sentinels that cannot be asked. Its retry strategy is not consulted then, and the process would go on without
 * Redis until restarted (ioredis issue 1683). A client that ends without having been closed is connected again.
 */
function reviveWhenGivenUp(redis: Redis, log: Logger): void {
  let closedOnPurpose = false;
  const disconnect = redis.disconnect.bind(redis);
  redis.disconnect = (reconnect = false) => {
    if (!reconnect) closedOnPurpose = true;
    disconnect(reconnect);
  };
  const quit = redis.quit.bind(redis);
  redis.quit = ((...args: Parameters<Redis["quit"]>) => {
    closedOnPurpose = true;
    return quit(...args);
  }) as Redis["quit"];
  redis.on("end", () => {
    if (closedOnPurpose) return;
    log.warn("the Redis client gave up on its connection; connecting again");
    setTimeout(() => {
      if (!closedOnPurpose && redis.status === "end") redis.connect().catch(() => undefined);
    }, REVIVE_AFTER_MS).unref();
  });
}
const REVIVE_AFTER_MS = 500;

/**
 * A managed failover (ElastiCache, Memorystore, Sentinel or an operator behind a DNS name or a Kubernetes Service)
 * demotes the old primary without closing its connections: it goes on answering every write with READONLY for as
 * long as the connection lives, so a service would hold its deliveries (READONLY is an outage, outage.ts) until it was
 * restarted. A new connection to the same address reaches the new primary; the command that met READONLY did not run
 * (nor did a transaction or script that held it: EXECABORT, no write done), so it is sent again once reconnected. A
 * REDIS_URL that names a replica for good therefore retries its writes until a primary answers there, logging this
 * warning every few seconds.
 */
function answeredReadOnly(error: Error): boolean {
  return error.message.startsWith("READONLY");
}
/** ioredis's reconnectOnError answer for "reconnect, then send the failed command again". */
const RECONNECT_AND_RESEND = 2;

/** Clients that have been ready once: after that, not being ready means the connection was lost. */
const everReady = new WeakSet<Redis>();

/**
 * True while a client that was connected has lost its connection and not yet got it back. Its commands would then
 * wait in the offline queue through the whole reconnect budget (tens of seconds), longer than a caller should wait
 * to learn that it must retry: callers that answer someone fail fast instead. This covers every state of the
 * reconnect loop, not only "reconnecting": a reconnect attempt passes through "connecting" and "connect" (and stays
 * in "connect" when the port accepts but Redis does not answer). Before the first ready, commands queue as intended:
 * that is start-up, not an outage.
 */
export function redisConnectionLost(redis: Redis): boolean {
  if (redis.status === "ready") return false;
  return everReady.has(redis) || LOST_STATES.has(redis.status);
}
const LOST_STATES = new Set(["reconnecting", "close", "end"]);

export type { Redis };
