/**
 * The gateway's web port (GATEWAY_WEB_PORT): TaskService and AdminService over the Connect protocol, gRPC-Web and
 * gRPC (connect-node, HTTP/1.1), for browsers that cannot speak gRPC's HTTP/2 trailers, plus the web console's
 * static files (@tm/console) and /console-config.json. Any other GET without a file extension answers index.html,
 * so the console's client-side routes (/tasks/<id>) survive a reload. Every RPC is timed in tm_rpc_server_duration_ms
 * with `server="web"`, beside the gRPC port's `server="grpc"` series (pkg/proto rpc-metrics.ts).
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { closeWithGrace } from "@tm/kit";
import { peerContextValues, rpcMetricsInterceptor } from "@tm/proto";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

export interface WebServerOptions {
  routes: (router: ConnectRouter) => void;
  /** The built console: index.html and assets/ (content-hashed names). */
  assetsDir: string;
  /** Served as /console-config.json. */
  consoleConfig: Record<string, unknown>;
}

export function createWebServer(options: WebServerOptions): Server {
  const serveStatic = staticFiles(options.assetsDir, JSON.stringify(options.consoleConfig));
  const handler = connectNodeAdapter({
    routes: options.routes,
    contextValues: peerContextValues,
    interceptors: [rpcMetricsInterceptor],
    // The server below is node:http, so requests and responses are HTTP/1.1 ones.
    fallback: (request, response) =>
      void serveStatic(request as IncomingMessage, response as ServerResponse).catch(() => {
        if (response.headersSent) response.destroy();
        else answer(response as ServerResponse, 400, "text/plain; charset=utf-8", "bad request");
      }),
  });
  // Status streams stay open for as long as a task runs: no request timeout on this server.
  return createServer({ requestTimeout: 0 }, handler);
}

/** Binds 0.0.0.0:<port> (0: a free port); resolves with the bound port. */
export function listenWeb(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === "EADDRINUSE"
            ? `GATEWAY_WEB_PORT ${port} is already in use on 0.0.0.0: stop the other process or choose another GATEWAY_WEB_PORT`
            : `could not bind the web port 0.0.0.0:${port} (GATEWAY_WEB_PORT): ${error.message}`,
        ),
      ),
    );
    server.listen(port, "0.0.0.0", () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    });
  });
}

/** Stops accepting, lets requests finish for up to `deadlineMs`, then closes every connection. */
export function stopWeb(server: Server, deadlineMs: number): Promise<void> {
  return closeWithGrace(
    server,
    () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      return closed;
    },
    deadlineMs,
  );
}

function staticFiles(root: string, configJson: string) {
  const index = join(root, "index.html");
  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return answer(response, 405, "text/plain; charset=utf-8", "method not allowed", { allow: "GET, HEAD" });
    }
    const path = decodeURIComponent(new URL(request.url ?? "/", "http://console").pathname);
    if (path === "/console-config.json") {
      return answer(response, 200, CONTENT_TYPES[".json"]!, configJson, { "cache-control": "no-cache" });
    }
    const file = normalize(join(root, path));
    if (!file.startsWith(root.endsWith(sep) ? root : root + sep)) {
      return answer(response, 400, "text/plain; charset=utf-8", "bad path");
    }
    const extension = extname(file);
    const target = extension === "" ? index : file;
    const info = await stat(target).catch(() => undefined);
    if (!info?.isFile()) {
      return extension === "" && target === index
        ? answer(response, 503, "text/plain; charset=utf-8", "the console is not built: run pnpm build")
        : answer(response, 404, "text/plain; charset=utf-8", "not found");
    }
    // Files under assets/ carry a content hash in their name: cache them for a year. index.html must be revalidated
    // so a new build (new hashes) is picked up at once.
    const immutable = target.startsWith(join(root, "assets") + sep);
    response.writeHead(200, {
      "content-type": CONTENT_TYPES[extname(target)] ?? "application/octet-stream",
      "content-length": info.size,
      "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
      "x-content-type-options": "nosniff",
    });
    if (request.method === "HEAD") return void response.end();
    createReadStream(target).pipe(response);
  };
}

function answer(
  response: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body), ...headers });
  response.end(body);
}
