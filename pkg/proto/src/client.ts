/**
 * A typed TaskService client over gRPC (HTTP/2) with connect-node. This is what the CLI and the tests use;
 * it talks to Envoy on :50051 or straight to a gateway.
 */
import type { SecureClientSessionOptions } from "node:http2";
import type { Client, Interceptor } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "./gen/grpc/health/v1/health_pb.js";
import { AdminService } from "./gen/taskmanager/v1/admin_pb.js";
import { TaskService } from "./gen/taskmanager/v1/taskmanager_pb.js";
import { refusedStreamAsUnavailable } from "./refused-stream.js";
import { traceCalls } from "./trace-calls.js";

export interface TaskClientOptions {
  /** e.g. http://127.0.0.1:50051 */
  baseUrl: string;
  /** Sent as `authorization: Bearer <key>` when set; a function is asked on each call (a key read from a file that
   *  rotates). */
  apiKey?: string | (() => string | Promise<string>);
  /** With an `https://` baseUrl, behind a proxy that terminates TLS with a private CA or asks for a client
   *  certificate (PEM): `ca` is trusted in place of the system's CAs; `cert` and `key` (both, or neither) are
   *  presented. Without it, https:// trusts the system's CAs. */
  tls?: TlsOptions;
}

export interface TlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export type TaskClient = Client<typeof TaskService>;
export type HealthClient = Client<typeof Health>;
export type AdminClient = Client<typeof AdminService>;

function transportFor(options: TaskClientOptions) {
  // Outermost first: the refused-stream mapping sees every error of the call, whatever the others do.
  // The span around the call sees its errors as the server sent them.
  const interceptors: Interceptor[] = [refusedStreamAsUnavailable, traceCalls];
  const { apiKey } = options;
  if (typeof apiKey === "function") {
    interceptors.push((next) => async (req) => {
      req.header.set("authorization", `Bearer ${await apiKey()}`);
      return next(req);
    });
  } else if (apiKey) {
    const value = `Bearer ${apiKey}`;
    interceptors.push((next) => (req) => {
      req.header.set("authorization", value);
      return next(req);
    });
  }
  return createGrpcTransport({ baseUrl: options.baseUrl, interceptors, ...tlsOptionsFor(options) });
}

/** The HTTP/2 session's TLS options, refusing what would silently not apply. */
function tlsOptionsFor({ baseUrl, tls }: TaskClientOptions): { nodeOptions?: SecureClientSessionOptions } {
  if (!tls) return {};
  if (!baseUrl.startsWith("https://"))
    throw new TypeError(`tls options need an https:// baseUrl (got ${JSON.stringify(baseUrl)})`);
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new TypeError("tls: give a client certificate and its key together (cert and key), or neither");
  const { ca, cert, key } = tls;
  return { nodeOptions: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } };
}

export function createTaskClient(options: TaskClientOptions): TaskClient {
  return createClient(TaskService, transportFor(options));
}

export function createHealthClient(options: TaskClientOptions): HealthClient {
  return createClient(Health, transportFor(options));
}

export function createAdminClient(options: TaskClientOptions): AdminClient {
  return createClient(AdminService, transportFor(options));
}
