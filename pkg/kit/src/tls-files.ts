/**
 * Files a service's configuration names (TLS material, an NKEY seed), read and checked at start so that a wrong path
 * or a wrong file stops the start naming its variable, instead of failing later at a connection's handshake.
 */
import { readFileSync } from "node:fs";

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
  prefix: "REDIS" | "NATS",
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
