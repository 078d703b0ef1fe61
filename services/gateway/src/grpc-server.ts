/** The gRPC server's life: bind (with a clear message when the port is taken) and a bounded graceful stop. */
import * as grpc from "@grpc/grpc-js";

/** Binds 0.0.0.0:<port> without TLS (Envoy or the mesh terminates TLS); resolves with the bound port. */
export function bindGrpc(server: grpc.Server, port: number): Promise<number> {
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
export async function stopGrpc(server: grpc.Server, deadlineMs: number): Promise<void> {
  const graceful = new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true)));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), deadlineMs);
  });
  const finished = await Promise.race([graceful, timedOut]);
  clearTimeout(timer);
  if (!finished) server.forceShutdown();
}
