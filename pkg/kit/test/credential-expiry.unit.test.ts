import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Meter, ObservableResult } from "@opentelemetry/api";
import { waitFor } from "@tm/testkit";
import { afterAll, describe, expect, test } from "vitest";
import { baseConfigShape, loadConfig } from "../src/config.js";
import { credentialFilesOf, exportCredentialExpiry, validityOf } from "../src/credential-expiry.js";

const dir = mkdtempSync(join(tmpdir(), "tm-credential-expiry-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A .creds file's text around a JWT with these claims (unsigned: only its dates are read here). */
function creds(claims: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const jwt = `${part({ typ: "JWT", alg: "ed25519-nkey" })}.${part(claims)}.c2ln`;
  return `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAX\n------END USER NKEY SEED------\n`;
}

/** Just enough of a Meter to read what the gauges observe. */
function recordingMeter() {
  const callbacks = new Map<string, Set<(result: ObservableResult) => void>>();
  const meter = {
    createObservableGauge(name: string) {
      const set = new Set<(result: ObservableResult) => void>();
      callbacks.set(name, set);
      return { addCallback: (cb: never) => set.add(cb), removeCallback: (cb: never) => set.delete(cb) };
    },
  } as unknown as Meter;
  const read = (name: string) => {
    const seen: Record<string, number> = {};
    for (const callback of callbacks.get(name) ?? []) {
      callback({
        observe: (value: number, labels?: { credential?: string }) => (seen[labels?.credential ?? ""] = value),
      });
    }
    return seen;
  };
  return { meter, read };
}

describe("credential expiry", () => {
  test("a creds file's JWT: issued at and expires at; without exp, no expiry; not a creds file: nothing", () => {
    expect(validityOf("nats_creds", creds({ iat: 1_800_000_000, exp: 1_800_003_600 }))).toEqual({
      notBefore: new Date(1_800_000_000_000),
      notAfter: new Date(1_800_003_600_000),
    });
    expect(validityOf("nats_creds", creds({ iat: 1_800_000_000 }))).toEqual({
      notBefore: new Date(1_800_000_000_000),
      notAfter: undefined,
    });
    expect(validityOf("nats_creds", "not a creds file")).toBeUndefined();
    expect(validityOf("nats_creds", "-----BEGIN NATS USER JWT-----\nnot.a-jwt.at-all\n")).toBeUndefined();
  });

  test("the files a configuration names, each with its kind", () => {
    const config = loadConfig(baseConfigShape, {
      NATS_CREDS_FILE: "/c",
      REDIS_TLS_CA_FILE: "/ca",
      REDIS_TLS_CERT_FILE: "/cert",
      REDIS_TLS_KEY_FILE: "/key",
    });
    expect(credentialFilesOf(config)).toEqual([
      { credential: "nats_creds", path: "/c" },
      { credential: "redis_tls_ca", path: "/ca" },
      { credential: "redis_tls_cert", path: "/cert" },
    ]);
    expect(credentialFilesOf(loadConfig(baseConfigShape, {}))).toEqual([]);
  });

  test("a renewed file shows its new dates at the next reading; a removed one no series; stopped, none", async () => {
    const path = join(dir, "user.creds");
    writeFileSync(path, creds({ iat: 1_800_000_000, exp: 1_800_003_600 }));
    const { meter, read } = recordingMeter();
    const stop = exportCredentialExpiry(meter, [{ credential: "nats_creds", path }], 20);
    try {
      expect(read("tm_credential_not_after_timestamp_seconds")).toEqual({ nats_creds: 1_800_003_600 });
      expect(read("tm_credential_not_before_timestamp_seconds")).toEqual({ nats_creds: 1_800_000_000 });
      writeFileSync(path, creds({ iat: 1_800_003_000, exp: 1_800_006_600 }));
      await waitFor(
        "the renewed dates",
        () => read("tm_credential_not_after_timestamp_seconds").nats_creds === 1_800_006_600,
      );
      unlinkSync(path);
      await waitFor(
        "no series for a file gone",
        () => Object.keys(read("tm_credential_not_after_timestamp_seconds")).length === 0,
      );
    } finally {
      stop();
    }
    writeFileSync(path, creds({ iat: 1_800_000_000, exp: 1_800_003_600 }));
    expect(read("tm_credential_not_after_timestamp_seconds")).toEqual({});
  });

  test("without files nothing is registered", () => {
    const { meter, read } = recordingMeter();
    exportCredentialExpiry(meter, [])();
    expect(read("tm_credential_not_after_timestamp_seconds")).toEqual({});
  });
});
