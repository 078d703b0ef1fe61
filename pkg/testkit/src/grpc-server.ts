/**
 * A grpc-js server for tests, on a free loopback port: plain-text, or TLS with the given PEM material, asking for a
 * client certificate when `requireClientCert` is set (a proxy terminating TLS in front of the gateways).
 */
import * as grpc from "@grpc/grpc-js";

export interface TestGrpcServer {
  server: grpc.Server;
  /** http://127.0.0.1:<port>, or https:// with TLS. */
  url: string;
}

export async function startGrpcServer(
  register: (server: grpc.Server) => void,
  options: { tls?: { ca: Buffer; cert: Buffer; key: Buffer }; requireClientCert?: boolean } = {},
): Promise<TestGrpcServer> {
  const server = new grpc.Server();
  register(server);
  const { tls } = options;
  const credentials = tls
    ? grpc.ServerCredentials.createSsl(
        tls.ca,
        [{ cert_chain: tls.cert, private_key: tls.key }],
        options.requireClientCert ?? false,
      )
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { server, url: `${tls ? "https" : "http"}://127.0.0.1:${port}` };
}
