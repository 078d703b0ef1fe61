/**
 * The enricher's HTTP app, built in one function so tests drive it with app.inject() and the service listens on it.
 * Every client mistake gets a 4xx with a JSON body naming the problem; a 500 means a bug here.
 */
import { setTimeout as delay } from "node:timers/promises";
import { type Meter, metrics } from "@opentelemetry/api";
import { describeIssues, TaskMessageSchema } from "@tm/flow";
import type { Logger } from "@tm/kit";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from "fastify";
import { enrich } from "./enrich.js";

/** The contract's limit on a request body; fastify answers 413 above it. */
export const BODY_LIMIT_BYTES = 1024 * 1024;

export interface AppOptions {
  /** Delay added to every /enrich request (demos of a slow dependency). */
  latencyMs?: number;
  /** Fraction (0..1) of /enrich requests answered 503, to demonstrate and test the callers' retries. */
  failureRate?: number;
  /** Source of randomness for failure injection (tests pass a fixed one). */
  random?: () => number;
  logger?: Logger;
  meter?: Meter;
}

export function buildApp(options: AppOptions = {}): FastifyInstance {
  const { latencyMs = 0, failureRate = 0, random = Math.random } = options;
  const app = Fastify({
    bodyLimit: BODY_LIMIT_BYTES,
    ...(options.logger ? { loggerInstance: options.logger.child({ component: "http" }) } : { logger: false }),
  }) as unknown as FastifyInstance;
  const requests = (options.meter ?? metrics.getMeter("tm.enricher")).createCounter("tm_enrich_requests_total", {
    description: "POST /enrich requests by HTTP status code",
  });

  // Only JSON is a task: without this, fastify would parse text/plain into a string and answer 400 instead of 415.
  app.removeContentTypeParser("text/plain");
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: "not found", message: `no route ${request.method} ${request.url}` });
  });
  app.addHook("onResponse", async (request, reply) => {
    if (request.routeOptions.url === "/enrich") requests.add(1, { status_code: reply.statusCode });
  });

  app.post("/enrich", async (request, reply) => {
    if (latencyMs > 0) await delay(latencyMs);
    if (failureRate > 0 && random() < failureRate) {
      return reply.code(503).send({ error: "injected failure" });
    }
    const parsed = TaskMessageSchema.safeParse(request.body);
    if (!parsed.success) {
      return reply.code(400).send({ error: "invalid task", message: describeIssues(parsed.error) });
    }
    return enrich(parsed.data);
  });
  return app;
}

/** Statuses of fastify's own errors that are the client's fault, with a message a client can act on. */
const CLIENT_ERRORS: Record<string, { status: number; error: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, error: "malformed JSON" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, error: "empty body" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, error: "bad content-length" },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, error: "body too large" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, error: "unsupported media type" },
};

function errorHandler(this: FastifyInstance, error: FastifyError, _request: unknown, reply: FastifyReply) {
  const known = error.code ? CLIENT_ERRORS[error.code] : undefined;
  if (known) {
    const message =
      known.status === 413
        ? `request body exceeds ${BODY_LIMIT_BYTES} bytes`
        : known.status === 415
          ? "send the task as application/json"
          : error.message;
    return reply.code(known.status).send({ error: known.error, message });
  }
  // Any other 4xx fastify raises is also the client's doing: keep its status and message.
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return reply.code(error.statusCode).send({ error: "bad request", message: error.message });
  }
  this.log.error({ err: error }, "unhandled error");
  return reply.code(500).send({ error: "internal error", message: "the enricher failed; see its logs" });
}
