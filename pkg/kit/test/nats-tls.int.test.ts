/**
 * NATS over TLS with a private CA and client certificates (NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE, NATS_TLS_KEY_FILE)
 * against a real nats-server whose tls block verifies clients: a service connects, provisions its streams and
 * publishes; without the CA, or without a client certificate, it is refused; a wrong path stops the configuration
 * naming its variable; certificates rotated in their files (a new CA) are used at the next reconnection, no restart;
 * the service exports when its certificate and CA expire (tm_credential_not_after_timestamp_seconds).
 */
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_FLOW_SETTINGS, Subjects } from "@tm/flow";
import { createTlsFiles, type NatsServer, startNats, type TlsFiles, waitFor } from "@tm/testkit";
import { connect } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { baseConfigShape, loadConfig } from "../src/config.js";
import { validityOf } from "../src/credential-expiry.js";
import { createLogger } from "../src/logger.js";
import { connectNats, natsTlsOf } from "../src/nats.js";
import { defineService, startService } from "../src/service.js";

const log = createLogger("nats-tls-test", "silent");
let tls: TlsFiles;
let nats: NatsServer;

beforeAll(async () => {
  tls = createTlsFiles();
  // The test's certificate is both the server's and the client's (one CA signs both; nothing restricts its use).
  const files = { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile };
  nats = await startNats({
    extraConfig: `tls { cert_file: "${tls.certFile}", key_file: "${tls.keyFile}", ca_file: "${tls.caFile}", verify: true }`,
    readyAuth: { tls: files },
  });
}, 30_000);
afterAll(async () => {
  await nats?.dispose();
  tls?.dispose();
});

const configWith = (env: Record<string, string>) => loadConfig(baseConfigShape, { NATS_URL: nats.url, ...env });

test("with the CA and a client certificate, a service's connection provisions the streams and publishes", async () => {
  const config = configWith({
    NATS_TLS_CA_FILE: tls.caFile,
    NATS_TLS_CERT_FILE: tls.certFile,
    NATS_TLS_KEY_FILE: tls.keyFile,
  });
  const handle = await connectNats({
    url: config.NATS_URL,
    name: "tls-test",
    tls: natsTlsOf(config),
    settings: DEFAULT_FLOW_SETTINGS,
    log,
  });
  try {
    expect(handle.nc.info?.tls_required).toBe(true);
    const ack = await handle.js.publish(Subjects.audit, new TextEncoder().encode("{}"));
    expect(ack.stream).toBe("EVENTS");
  } finally {
    await handle.nc.close();
  }
});

test("a service started with the variables connects over TLS (startService reads them)", async () => {
  const probe = defineService({ name: "tls-probe", opsPort: 0, needs: { redis: false }, async start() {} });
  const service = await startService(probe, {
    NATS_URL: nats.url,
    OPS_PORT: "0",
    LOG_LEVEL: "silent",
    NATS_TLS_CA_FILE: tls.caFile,
    NATS_TLS_CERT_FILE: tls.certFile,
    NATS_TLS_KEY_FILE: tls.keyFile,
  });
  try {
    expect(service.runtime.nats.nc.info?.tls_required).toBe(true);
    await service.runtime.nats.nc.flush();
    // When its certificate and CA stop (and started) being valid, as gauges; no Redis here, so no Redis series.
    const metrics = await (await fetch(`http://127.0.0.1:${service.opsPort}/metrics`)).text();
    for (const [credential, file] of [
      ["nats_tls_cert", tls.certFile],
      ["nats_tls_ca", tls.caFile],
    ] as const) {
      const certificate = new X509Certificate(readFileSync(file));
      expect(gauge(metrics, "tm_credential_not_after_timestamp_seconds", credential)).toBe(
        Date.parse(certificate.validTo) / 1000,
      );
      expect(gauge(metrics, "tm_credential_not_before_timestamp_seconds", credential)).toBe(
        Date.parse(certificate.validFrom) / 1000,
      );
    }
    expect(metrics).not.toMatch(/credential="redis_tls/);
  } finally {
    await service.stop();
  }
});

/** A gauge's value for one credential in a /metrics text (NaN when there is no such series). */
function gauge(metrics: string, name: string, credential: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`credential="${credential}"`));
  return Number(line?.split(" ").at(-1));
}

test("a CA file of several certificates reports the one that expires first", async () => {
  const [longLived, shortLived] = [createTlsFiles({ days: 30 }), createTlsFiles({ days: 3 })];
  const bundle = join(longLived.dir, "bundle.pem");
  writeFileSync(bundle, readFileSync(longLived.caFile, "utf8") + readFileSync(shortLived.caFile, "utf8"));
  try {
    const validity = validityOf("nats_tls_ca", readFileSync(bundle, "utf8"));
    const first = new X509Certificate(readFileSync(shortLived.caFile));
    expect(validity).toEqual({ notBefore: new Date(first.validFrom), notAfter: new Date(first.validTo) });
    expect(validityOf("nats_tls_ca", "no certificate here")).toBeUndefined();
  } finally {
    longLived.dispose();
    shortLived.dispose();
  }
});

test("without the CA the server's certificate is refused; without a client certificate the server refuses us", async () => {
  const attempt = (tlsOptions: Record<string, string>) =>
    connect({ servers: nats.url, reconnect: false, timeout: 3_000, tls: tlsOptions });
  await expect(attempt({ certFile: tls.certFile, keyFile: tls.keyFile })).rejects.toThrow(
    /certificate|self[- ]signed/i,
  );
  // The server asked for a certificate and got none: its TLS alert, or its closing the connection, whichever the
  // client reads first.
  await expect(attempt({ caFile: tls.caFile })).rejects.toThrow(/alert|certificate|ECONNRESET/i);
  // And what the services' variables give, for that second case: the CA alone.
  expect(natsTlsOf(configWith({ NATS_TLS_CA_FILE: tls.caFile }))).toEqual({ caFile: tls.caFile });
});

test("a TLS file that cannot be read names its variable; a certificate without its key is refused", () => {
  const missing = join(tls.dir, "missing.pem");
  expect(() => natsTlsOf(configWith({ NATS_TLS_CA_FILE: missing }))).toThrow(
    /^NATS_TLS_CA_FILE: cannot read .*missing/,
  );
  expect(() => natsTlsOf(configWith({ NATS_TLS_KEY_FILE: missing }))).toThrow(/^NATS_TLS_KEY_FILE: cannot read/);
  expect(() => natsTlsOf(configWith({ NATS_TLS_CERT_FILE: tls.certFile }))).toThrow(
    "NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together",
  );
  expect(natsTlsOf(configWith({}))).toBeUndefined();
});

test("certificates rotated in their files (another CA on both sides) are used at the next reconnection", {
  timeout: 60_000,
}, async () => {
  // Where the server's and the service's files are mounted: copies, replaced in place as a rotation would.
  const [before, after] = [createTlsFiles(), createTlsFiles()];
  const mounted = mkdtempSync(join(tmpdir(), "tm-tls-rotate-"));
  const files = {
    caFile: join(mounted, "ca.crt"),
    certFile: join(mounted, "tls.crt"),
    keyFile: join(mounted, "tls.key"),
  };
  const mount = (from: TlsFiles) => {
    copyFileSync(from.caFile, files.caFile);
    copyFileSync(from.certFile, files.certFile);
    copyFileSync(from.keyFile, files.keyFile);
  };
  mount(before);
  const server = await startNats({
    extraConfig: `tls { cert_file: "${files.certFile}", key_file: "${files.keyFile}", ca_file: "${files.caFile}", verify: true }`,
    readyAuth: { tls: files },
  });
  try {
    const config = configWith({
      NATS_URL: server.url,
      NATS_TLS_CA_FILE: files.caFile,
      NATS_TLS_CERT_FILE: files.certFile,
      NATS_TLS_KEY_FILE: files.keyFile,
    });
    const handle = await connectNats({
      url: server.url,
      name: "tls-rotate",
      tls: natsTlsOf(config),
      settings: DEFAULT_FLOW_SETTINGS,
      log,
    });
    try {
      let reconnects = 0;
      handle.onReconnect(() => reconnects++);
      // The new CA's files replace the old ones; the server reads its own at its restart. A client that kept the old
      // CA would refuse the new server certificate (and present a certificate the server no longer trusts).
      await server.stop();
      mount(after);
      await server.start();
      await waitFor("the service reconnected with the rotated files", () => reconnects > 0, { timeoutMs: 20_000 });
      expect((await handle.js.publish(Subjects.audit, new TextEncoder().encode("{}"))).stream).toBe("EVENTS");
    } finally {
      await handle.nc.close();
    }
  } finally {
    await server.dispose();
    rmSync(mounted, { recursive: true, force: true });
    before.dispose();
    after.dispose();
  }
});
