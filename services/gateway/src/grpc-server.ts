/** The gRPC server's life: create, bind (with a clear message when the port is taken) and a bounded graceful stop. */

import { createRequire } from "node:module";
import type * as GrpcJs from "@grpc/grpc-js";

// require(), not import: OpenTelemetry's grpc instrumentation patches @grpc/grpc-js (the server's method
// registration, in place) when it is require()d; no ESM loader hook is registered (pkg/kit/src/ioredis-module.ts says
// why). Every server this process creates is created here, after that require.
const grpc: typeof GrpcJs = createRequire(import.meta.url)("@grpc/grpc-js");

export function createGrpcServer(options: GrpcJs.ServerOptions): GrpcJs.Server {
  return new grpc.Server(options);
}

/** Binds 0.0.0.0:<port> without TLS (Envoy or the mesh terminates TLS); resolves with the bound port. */
export function bindGrpc(server: GrpcJs.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`0.0.0.0:${port}`, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
      if (!error) return resolve(boundPort);
      const inUse = /EADDRINUSE|address already in use/i.test(error.message);
      reject(
        new Error(
          inUse
            ? `GRPC_PORT ${port} is already in use on 0.0.0.0: stop the other process or choose another GRPC_PORT`
            : `could not bind gRPC on 0.0.0.0:${port} (GRPC_PORT): ${error.message}`,
        ),
      );
    });
  });
}

/** Lets in-flight calls finish for up to `deadlineMs`, then cuts the rest. */
export async function stopGrpc(server: GrpcJs.Server, deadlineMs: number): Promise<void> {
  const graceful = new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true)));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), deadlineMs);
  });
  const finished = await Promise.race([graceful, timedOut]);
  clearTimeout(timer);
  if (!finished) server.forceShutdown();
}
