/**
 * Files a service's configuration names (TLS material, an NKEY seed), read and checked at start so that a wrong path
 * or a wrong file stops the start naming its variable, instead of failing later at a connection's handshake.
 */
import { readFileSync } from "node:fs";
import type { Logger } from "./logger.js";

/** A file's text; one that cannot be read throws naming `variable`. */
export function readConfigFile(variable: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`${variable}: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** A PEM file's text, checked to hold a block whose label ends with `label` (CERTIFICATE; PRIVATE KEY, EC PRIVATE KEY). */
function readPem(variable: string, path: string, label: string): string {
  const text = readConfigFile(variable, path);
  if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(text)) {
    throw new Error(`${variable}: ${path} holds no PEM ${label.toLowerCase()} (-----BEGIN ${label}-----)`);
  }
  return text;
}

/** PEM texts: the CA(s) to trust instead of the system's, and a client certificate with its key. */
export interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
}

/**
 * `<prefix>_TLS_CA_FILE`, `<prefix>_TLS_CERT_FILE` and `<prefix>_TLS_KEY_FILE` (the paths given), read and checked; a
 * client certificate needs its key, and the key its certificate. Undefined when none is set.
 */
export function readTlsFiles(
  prefix: "REDIS" | "NATS" | "WORKER_GATEWAY",
  paths: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined },
): TlsMaterial | undefined {
  const tls: TlsMaterial = {};
  if (paths.ca !== undefined) tls.ca = readPem(`${prefix}_TLS_CA_FILE`, paths.ca, "CERTIFICATE");
  if (paths.cert !== undefined) tls.cert = readPem(`${prefix}_TLS_CERT_FILE`, paths.cert, "CERTIFICATE");
  if (paths.key !== undefined) tls.key = readPem(`${prefix}_TLS_KEY_FILE`, paths.key, "PRIVATE KEY");
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new Error(
      `${prefix}_TLS_CERT_FILE and ${prefix}_TLS_KEY_FILE go together: a client certificate needs its key`,
    );
  }
  return Object.keys(tls).length > 0 ? tls : undefined;
}

/**
 * `material` whose PEM texts are read again from their files each time one is asked for, so that certificates renewed
 * in place (a mounted Secret updated by cert-manager) are used from the next connection on without a restart: ioredis
 * copies its `tls` options into Node's tls.connect options at every connection, which reads these getters. A file that
 * cannot be read, or holds no PEM block of its kind (being rewritten), keeps its last good text, with a warning once.
 */
export function renewedTlsMaterial(
  prefix: "REDIS",
  paths: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined },
  material: TlsMaterial,
  log: Logger,
): TlsMaterial {
  const live: TlsMaterial = {};
  const labels = { ca: "CERTIFICATE", cert: "CERTIFICATE", key: "PRIVATE KEY" } as const;
  for (const part of ["ca", "cert", "key"] as const) {
    const path = paths[part];
    const initial = material[part];
    if (path === undefined || initial === undefined) continue;
    const current = lastGoodOf(
      () => readPem(`${prefix}_TLS_${part.toUpperCase()}_FILE`, path, labels[part]),
      log,
      "a TLS file cannot be used as it is now: keeping what it held before",
      initial,
    );
    Object.defineProperty(live, part, { enumerable: true, get: current });
  }
  return live;
}

/**
 * A file the service reads again while it runs (renewed credentials): `read()` now, or, when that throws (the file
 * being rewritten, or no longer checking out), what it last returned, with `warning` logged once per such spell.
 * Without an `initial` value, a first read that throws throws.
 */
export function lastGoodOf<T>(read: () => T, log: Logger, warning: string, initial?: T): () => T {
  let lastGood = initial;
  let warned = false;
  return () => {
    try {
      lastGood = read();
      warned = false;
    } catch (error) {
      if (lastGood === undefined) throw error;
      if (!warned) log.warn({ err: error }, warning);
      warned = true;
    }
    return lastGood;
  };
}
