/** Builds the gRPC clients for a command from the global options. */
import { readFileSync } from "node:fs";
import {
  type AdminClient,
  createAdminClient,
  createHealthClient,
  createTaskClient,
  type HealthClient,
  type TaskClient,
  type TaskClientOptions,
  type TlsOptions,
} from "@tm/proto";
import type { GlobalOptions, TlsFiles } from "./args.js";
import { UsageError } from "./exit-codes.js";

/** Unary calls give up after this long, so a black-holed address does not hang the CLI. */
export const UNARY_TIMEOUT_MS = 10_000;

export function taskClientFor(globals: GlobalOptions): TaskClient {
  return createTaskClient(clientOptions(globals));
}

export function healthClientFor(globals: GlobalOptions): HealthClient {
  return createHealthClient(clientOptions(globals));
}

export function adminClientFor(globals: GlobalOptions): AdminClient {
  return createAdminClient(clientOptions(globals));
}

function clientOptions(globals: GlobalOptions): TaskClientOptions {
  return {
    baseUrl: globals.addr,
    ...(globals.apiKey ? { apiKey: globals.apiKey } : {}),
    ...(globals.tlsFiles ? { tls: readTlsFiles(globals.tlsFiles) } : {}),
  };
}

/** The PEM files' contents; a file that cannot be read is a usage error naming its option. */
function readTlsFiles(files: TlsFiles): TlsOptions {
  const tls: TlsOptions = {};
  for (const part of ["ca", "cert", "key"] as const) {
    const file = files[part];
    if (!file) continue;
    try {
      tls[part] = readFileSync(file);
    } catch (error) {
      throw new UsageError(`--tls-${part}-file: cannot read ${file}: ${(error as Error).message}`);
    }
  }
  return tls;
}
