/**
 * Redis over TLS with a private CA (REDIS_TLS_CA_FILE): a rediss:// REDIS_URL reaches a TLS-only redis-server port,
 * verifying its certificate against that CA (and refusing it without); Sentinels over TLS (REDIS_SENTINEL_TLS) name a
 * primary reached over TLS too. Certificates are made per file with openssl (createTlsFiles); a bad CA file stops the
 * configuration with the variable's name.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createTlsFiles, type RedisServer, startRedis, startRedisSentinel, type TlsFiles, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { baseConfigShape, loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { connectRedis, redisTargetOf } from "../src/redis.js";

const log = createLogger("redis-tls-test", "silent");
let tls: TlsFiles;
let server: RedisServer;

beforeAll(async () => {
  tls = createTlsFiles();
  server = await startRedis({ tls });
});
afterAll(async () => {
  await server?.dispose();
  tls?.dispose();
});

test("rediss:// with REDIS_TLS_CA_FILE: the server's certificate is verified against that CA, and writes go through", async () => {
  const config = loadConfig(baseConfigShape, { REDIS_URL: server.tlsUrl, REDIS_TLS_CA_FILE: tls.caFile });
  const redis = connectRedis(redisTargetOf(config), "tls-test", log);
  try {
    await redis.set("over-tls", "yes");
    // The same server's plain port sees it: this went to that server, over TLS (its tls-port accepts nothing else).
    const plain = connectRedis(server.url, "plain-check", log);
    expect(await plain.get("over-tls")).toBe("yes");
    plain.disconnect();
  } finally {
    redis.disconnect();
  }
});

test("without REDIS_TLS_CA_FILE a certificate from a private CA is refused: no connection, the reason logged", async () => {
  const redis = connectRedis(server.tlsUrl, "tls-untrusted", log);
  const errors: string[] = [];
  redis.on("error", (error: Error) => errors.push(error.message));
  try {
    await waitFor("the certificate refused", () => errors.some((m) => /self[- ]signed|certificate/i.test(m)));
    expect(redis.status).not.toBe("ready");
  } finally {
    redis.disconnect();
  }
});

test("Sentinels over TLS (REDIS_SENTINEL_TLS): the client asks them over TLS and reaches the primary over TLS", async () => {
  const sentinel = await startRedisSentinel(server, { tls });
  const config = loadConfig(baseConfigShape, {
    REDIS_URL: "rediss://not-used.invalid:6379/0",
    REDIS_SENTINELS: `${sentinel.tlsAddress.host}:${sentinel.tlsAddress.port}`,
    REDIS_SENTINEL_TLS: "true",
    REDIS_TLS_CA_FILE: tls.caFile,
  });
  const redis = connectRedis(redisTargetOf(config), "sentinel-tls-test", log);
  try {
    await redis.set("through-sentinel-tls", "yes");
    expect(Number(/tcp_port:(\d+)/.exec(await redis.info("server"))?.[1])).toBe(server.port);
    expect(await redis.get("through-sentinel-tls")).toBe("yes");
  } finally {
    redis.disconnect();
    await sentinel.dispose();
  }
}, 30_000);

test("a CA file that cannot be read, or holds no certificate, names REDIS_TLS_CA_FILE; REDIS_SENTINEL_TLS takes true or false", () => {
  const target = (env: Record<string, string>) => redisTargetOf(loadConfig(baseConfigShape, env));
  expect(() => target({ REDIS_TLS_CA_FILE: join(tls.dir, "missing.pem") })).toThrow(
    /^REDIS_TLS_CA_FILE: cannot read .*missing\.pem/,
  );
  const notPem = join(tls.dir, "not.pem");
  writeFileSync(notPem, "hello");
  expect(() => target({ REDIS_TLS_CA_FILE: notPem })).toThrow("REDIS_TLS_CA_FILE: " + notPem + " holds no PEM");
  expect(target({ REDIS_SENTINEL_TLS: "yes" }).sentinelTls).toBe(true);
  expect(target({}).sentinelTls).toBe(false);
  expect(() => target({ REDIS_SENTINEL_TLS: "maybe" })).toThrow("REDIS_SENTINEL_TLS");
});
