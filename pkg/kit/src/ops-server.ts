/**
 * The ops endpoints every service has: /healthz (the process is alive), /readyz (its dependencies actually answer)
 * and /metrics (Prometheus). Services with an HTTP API register these routes on their API app instead.
 */
import type { Server } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import { withDeadline } from "./deadline.js";
import type { Logger } from "./logger.js";
import { telemetry } from "./telemetry.js";

/** A readiness check: resolves when the dependency answers, rejects (or returns false) when it does not. */
export type ReadinessCheck = () => Promise<unknown>;

export interface OpsRoutesOptions {
  service: string;
  checks: Record<string, ReadinessCheck>;
  /** Turns /readyz 503 during shutdown so load balancers stop sending work first. */
  isShuttingDown?: () => boolean;
  checkTimeoutMs?: number;
}

export function registerOpsRoutes(app: FastifyInstance, options: OpsRoutesOptions): void {
  const timeoutMs = options.checkTimeoutMs ?? 2_000;
  app.get("/healthz", async () => ({ status: "ok", service: options.service, pid: process.pid }));
  app.get("/readyz", async (_request, reply) => {
    // service and pid say which process answered: a port taken over by another process is seen for what it is.
    const instance = { service: options.service, pid: process.pid };
    if (options.isShuttingDown?.()) return reply.code(503).send({ status: "shutting down", ...instance });
    const results = await Promise.all(
      Object.entries(options.checks).map(async ([name, check]) => {
        try {
          const ok = await withDeadline(check(), timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`));
          return [name, ok === false ? "failed" : "ok"] as const;
        } catch (error) {
          return [name, `failed: ${(error as Error).message}`] as const;
        }
      }),
    );
    const checks = Object.fromEntries(results);
    const ready = results.every(([, result]) => result === "ok");
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not ready", ...instance, checks });
  });
  app.get("/metrics", (request, reply) => {
    reply.hijack();
    telemetry(options.service).prometheus.getMetricsRequestHandler(request.raw, reply.raw);
  });
}

export function createOpsServer(log: Logger, options: OpsRoutesOptions): FastifyInstance {
  const app = Fastify({ loggerInstance: log.child({ component: "ops" }, { level: "warn" }) });
  registerOpsRoutes(app as unknown as FastifyInstance, options);
  return app as unknown as FastifyInstance;
}

/** How long an HTTP server's requests in flight get to finish when it closes (closeApp). */
export const HTTP_CLOSE_GRACE_MS = 3_000;

/**
 * Closes a Fastify app: no new connections, idle ones closed, and the connections still busy given `graceMs` to
 * finish, then destroyed (and logged, with `log`). Fastify's close alone waits for every connection to end: a request
 * whose answer never comes (a handler that hangs) or a client that opened a connection and sent half a request holds
 * it for ever, and the shutdown runs into its hard deadline (exit 1): the combined process's SIGTERM test did, now
 * and then, with every ops server of the process.
 */
export function closeApp(app: FastifyInstance, graceMs = HTTP_CLOSE_GRACE_MS, log?: Logger): Promise<void> {
  return closeWithGrace(app.server, () => app.close(), graceMs, log);
}

/**
 * Runs `close` (which stops `server` taking connections and waits for the open ones to end); connections still open
 * after `graceMs` are destroyed, and counted in a warning with `log`. For any node:http server: closeApp's Fastify
 * apps, the gateway's web console.
 */
export async function closeWithGrace(
  server: Server,
  close: () => Promise<unknown>,
  graceMs: number,
  log?: Logger,
): Promise<void> {
  const force = setTimeout(() => {
    server.getConnections((_error, count) => {
      log?.warn({ connections: count, graceMs }, "HTTP connections still busy after the close's grace: closed");
    });
    server.closeAllConnections();
  }, graceMs);
  try {
    await close();
  } finally {
    clearTimeout(force);
  }
}

/** Listens, turning "port in use" into a clear message. */
export async function listen(
  app: FastifyInstance,
  port: number,
  host = "0.0.0.0",
  what = "HTTP server",
): Promise<number> {
  try {
    await app.listen({ port, host });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      throw new Error(`${what}: port ${port} is already in use (another instance running? set a different port)`);
    }
    throw error;
  }
  const address = app.server.address();
  return typeof address === "object" && address ? address.port : port;
}
