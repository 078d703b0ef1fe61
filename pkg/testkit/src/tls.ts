/**
 * Certificates for TLS tests: a throwaway CA and a server certificate it signs, valid for 127.0.0.1 and localhost,
 * made with the openssl command (scripts/setup.sh test installs it). P-256 keys: quick to make.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "./binaries.js";

export interface TlsFiles {
  dir: string;
  /** The CA's certificate (PEM): what a client is told to trust. */
  caFile: string;
  /** The server's certificate and key (PEM). */
  certFile: string;
  keyFile: string;
  dispose(): void;
}

/** `days`: how long the CA and the server certificate are valid (2 by default). */
export function createTlsFiles({ days = 2 }: { days?: number } = {}): TlsFiles {
  const openssl = findBinary("openssl");
  const dir = mkdtempSync(join(tmpdir(), "tm-tls-"));
  const path = (name: string) => join(dir, name);
  const run = (...args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", String(days), "-subj", "/CN=tm test CA");
  run("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1");
  run(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    String(days),
    "-extfile",
    writeExtensions(dir),
  );
  return {
    dir,
    caFile: path("ca.crt"),
    certFile: path("server.crt"),
    keyFile: path("server.key"),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function writeExtensions(dir: string): string {
  const file = join(dir, "server.ext");
  writeFileSync(file, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  return file;
}
