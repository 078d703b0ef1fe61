/** Builds the gRPC clients for a command from the global options. */
import {
  type AdminClient,
  createAdminClient,
  createHealthClient,
  createTaskClient,
  type HealthClient,
  type TaskClient,
} from "@tm/proto";
import type { GlobalOptions } from "./args.js";

/** Unary calls give up after this long, so a black-holed address does not hang the CLI. */
export const UNARY_TIMEOUT_MS = 10_000;

export function taskClientFor(globals: GlobalOptions): TaskClient {
  return createTaskClient({ baseUrl: globals.addr, ...(globals.apiKey ? { apiKey: globals.apiKey } : {}) });
}

export function healthClientFor(globals: GlobalOptions): HealthClient {
  return createHealthClient({ baseUrl: globals.addr, ...(globals.apiKey ? { apiKey: globals.apiKey } : {}) });
}

export function adminClientFor(globals: GlobalOptions): AdminClient {
  return createAdminClient({ baseUrl: globals.addr, ...(globals.apiKey ? { apiKey: globals.apiKey } : {}) });
}
