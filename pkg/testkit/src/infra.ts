/**
 * The usual fixture: one nats-server and one redis-server for a test file, disposed after it (even when it fails).
 *
 *   const infra = useInfra();           // at the top of a describe block or file
 *   test("...", async () => { infra.nats.url; infra.redis.url; });
 */
import { afterAll, beforeAll } from "vitest";
import { type NatsServer, type NatsServerOptions, startNats } from "./nats.js";
import { type RedisServer, type RedisServerOptions, startRedis } from "./redis.js";

export interface Infra {
  nats: NatsServer;
  redis: RedisServer;
}

export function useInfra(options: { nats?: NatsServerOptions; redis?: RedisServerOptions } = {}): Infra {
  const infra = {} as Infra;
  beforeAll(async () => {
    const [nats, redis] = await Promise.all([startNats(options.nats), startRedis(options.redis)]);
    infra.nats = nats;
    infra.redis = redis;
  });
  afterAll(async () => {
    await Promise.all([infra.nats?.dispose(), infra.redis?.dispose()]);
  });
  return infra;
}
