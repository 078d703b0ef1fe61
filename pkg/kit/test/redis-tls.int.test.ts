/**
 * Redis over TLS with a private CA (REDIS_TLS_CA_FILE): a rediss:// REDIS_URL reaches a TLS-only redis-server port,
 * verifying its certificate against that CA (and refusing it without); a server that verifies clients gets the
 * client certificate (REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE); Sentinels over TLS (REDIS_SENTINEL_TLS) name a
 * primary reached over TLS too. Certificates are made per file with openssl (createTlsFiles); a bad CA file stops the
 * configuration with the variable's name; certificates renewed in their files (another CA) are used at the next
 * connection, without a restart.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTlsFiles, type RedisServer, startRedis, startRedisSentinel, type TlsFiles, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { baseConfigShape, loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { connectRedis, redisTargetOf } from "../src/redis.js";
import { renewedTlsMaterial } from "../src/tls-files.js";

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

test("a server that verifies clients (tls-auth-clients yes): REDIS_TLS_CERT_FILE and _KEY_FILE are presented; without them it refuses", async () => {
  const verifying = await startRedis({ tls, tlsAuthClients: true });
  const env = { REDIS_URL: verifying.tlsUrl, REDIS_TLS_CA_FILE: tls.caFile };
  // The test's certificate is both the server's and the client's (one CA signs both; nothing restricts its use).
  const redis = connectRedis(
    redisTargetOf(
      loadConfig(baseConfigShape, { ...env, REDIS_TLS_CERT_FILE: tls.certFile, REDIS_TLS_KEY_FILE: tls.keyFile }),
    ),
    "mtls-test",
    log,
  );
  const anonymous = connectRedis(redisTargetOf(loadConfig(baseConfigShape, env)), "mtls-anonymous", log);
  const refusals: string[] = [];
  anonymous.on("error", (error: Error) => refusals.push(error.message));
  try {
    await redis.set("with-client-certificate", "yes");
    expect(await redis.get("with-client-certificate")).toBe("yes");
    await waitFor("the client without a certificate refused", () => refusals.length > 0);
    expect(anonymous.status).not.toBe("ready");
  } finally {
    redis.disconnect();
    anonymous.disconnect();
    await verifying.dispose();
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
  expect(() => target({ REDIS_TLS_CERT_FILE: tls.certFile })).toThrow(
    "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together",
  );
  expect(() => target({ REDIS_TLS_CERT_FILE: tls.certFile, REDIS_TLS_KEY_FILE: tls.certFile })).toThrow(
    /^REDIS_TLS_KEY_FILE: .* holds no PEM private key/,
  );
  expect(target({ REDIS_SENTINEL_TLS: "yes" }).sentinelTls).toBe(true);
  expect(target({}).sentinelTls).toBe(false);
  expect(() => target({ REDIS_SENTINEL_TLS: "maybe" })).toThrow("REDIS_SENTINEL_TLS");
});

test("certificates renewed in their files (another CA on both sides) are used at the next connection", {
  timeout: 60_000,
}, async () => {
  // Where the server's and the service's files are mounted: copies, replaced in place as a renewal would.
  const [before, after] = [createTlsFiles(), createTlsFiles()];
  const dir = mkdtempSync(join(tmpdir(), "tm-redis-tls-renew-"));
  const mounted: TlsFiles = {
    dir,
    caFile: join(dir, "ca.crt"),
    certFile: join(dir, "tls.crt"),
    keyFile: join(dir, "tls.key"),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
  const mount = (from: TlsFiles) => {
    copyFileSync(from.caFile, mounted.caFile);
    copyFileSync(from.certFile, mounted.certFile);
    copyFileSync(from.keyFile, mounted.keyFile);
  };
  mount(before);
  const renewing = await startRedis({ tls: mounted, tlsAuthClients: true });
  const config = loadConfig(baseConfigShape, {
    REDIS_URL: renewing.tlsUrl,
    REDIS_TLS_CA_FILE: mounted.caFile,
    REDIS_TLS_CERT_FILE: mounted.certFile,
    REDIS_TLS_KEY_FILE: mounted.keyFile,
  });
  const redis = connectRedis(redisTargetOf(config), "tls-renew", log);
  try {
    await redis.set("before-renewal", "yes");
    // The server reads its own files at its restart. A client that kept the first CA would refuse the new server
    // certificate (and present a certificate the server no longer trusts).
    await renewing.stop();
    mount(after);
    await renewing.start();
    await redis.set("after-renewal", "yes");
    expect(await redis.get("after-renewal")).toBe("yes");
  } finally {
    redis.disconnect();
    await renewing.dispose();
    mounted.dispose();
    before.dispose();
    after.dispose();
  }
});

test("a renewed file read mid-rewrite (no PEM yet) keeps its last good text, with one warning", () => {
  const dir = mkdtempSync(join(tmpdir(), "tm-tls-live-"));
  try {
    const caFile = join(dir, "ca.crt");
    copyFileSync(tls.caFile, caFile);
    const warnings: string[] = [];
    const captured = createLogger("tls-live", "warn", { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const first = readFileSync(tls.caFile, "utf8");
    const live = renewedTlsMaterial("REDIS", { ca: caFile }, { ca: first }, captured);
    expect(Object.keys(live)).toEqual(["ca"]); // enumerable: ioredis copies it into each connection's options
    writeFileSync(caFile, "");
    expect([live.ca, live.ca]).toEqual([first, first]);
    expect(warnings).toEqual(["a TLS file cannot be used as it is now: keeping what it held before"]);
    const renewed = createTlsFiles();
    copyFileSync(renewed.caFile, caFile);
    expect(live.ca).toBe(readFileSync(renewed.caFile, "utf8"));
    expect(live.ca).not.toBe(first);
    renewed.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
