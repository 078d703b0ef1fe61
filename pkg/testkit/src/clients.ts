/**
 * The connections and lifecycle most service tests share: the service under test started before the tests and
 * stopped after them, and a NATS and a Redis client of the test's own. Register after useInfra(); vitest runs
 * afterAll hooks in reverse, so clients close first, then the service stops, then the servers go.
 *
 *   const infra = useInfra();
 *   const service = useStarted(() => startService(scheduler, serviceEnv(infra)));
 *   const clients = useClients(infra);
 */
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll } from "vitest";
import type { Infra } from "./infra.js";

export interface Clients {
  readonly nc: NatsConnection;
  readonly redis: Redis;
}

export function useClients(infra: Infra): Clients {
  let nc: NatsConnection | undefined;
  let redis: Redis | undefined;
  beforeAll(async () => {
    nc = await connect({ servers: infra.nats.url });
    redis = new Redis(infra.redis.url);
    redis.on("error", () => undefined); // fault tests stop the server under it
  });
  afterAll(async () => {
    await nc?.drain().catch(() => undefined);
    redis?.disconnect();
  });
  return {
    get nc() {
      if (!nc) throw new Error("useClients: the NATS client exists only inside tests");
      return nc;
    },
    get redis() {
      if (!redis) throw new Error("useClients: the Redis client exists only inside tests");
      return redis;
    },
  };
}

/** Starts something before the file's tests and stops it after them; `.value` inside tests. */
export function useStarted<T extends { stop(): Promise<unknown> }>(start: () => Promise<T>): { readonly value: T } {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
  });
  afterAll(async () => {
    await started?.stop();
  });
  return {
    get value() {
      if (!started) throw new Error("useStarted: the value exists only inside tests");
      return started;
    },
  };
}

/** The environment of a service under test on the infra's servers, with free ports and quiet logs. */
export function serviceEnv(infra: Infra, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { NATS_URL: infra.nats.url, REDIS_URL: infra.redis.url, LOG_LEVEL: "warn", OPS_PORT: "0", ...extra };
}
