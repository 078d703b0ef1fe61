/**
 * The HTTP API: GET /results/:id. Built apart from the service so tests drive it with app.inject.
 * Client mistakes get a 4xx JSON body naming the problem; Redis being unreachable is a 503 (try again), never a
 * hang: a read waits at most `readTimeoutMs`, and none is attempted while the connection is down.
 */
import { type Logger, withDeadline } from "@tm/kit";
import { readResult } from "@tm/store";
import Fastify, { type FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import { type ErrorBody, invalidIdProblem, notFound, toResultResponse } from "./results.js";

export interface AppOptions {
  redis: Redis;
  log?: Logger;
  /** Longest a request waits for Redis before answering 503. */
  readTimeoutMs?: number;
}

class UnavailableError extends Error {
  override readonly name = "UnavailableError";
}

export function buildApp({ redis, log, readTimeoutMs = 2_000 }: AppOptions): FastifyInstance {
  const app = (log
    ? Fastify({ loggerInstance: log.child({ component: "http" }, { level: "warn" }) })
    : Fastify()) as unknown as FastifyInstance;

  app.get<{ Params: { id: string } }>("/results/:id", async (request, reply) => {
    const { id } = request.params;
    const problem = invalidIdProblem(id);
    if (problem) return reply.code(400).send(problem);
    const stored = await withDeadline(
      readWhenConnected(redis, id),
      readTimeoutMs,
      () => new UnavailableError(`Redis did not answer within ${readTimeoutMs} ms`),
    );
    if (!stored) return reply.code(404).send(notFound(id));
    return reply.send(toResultResponse(stored));
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send({ error: "not_found", message: `no route ${request.method} ${request.url}` } satisfies ErrorBody);
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status < 500) {
      // Fastify's own client errors (bad content type, body too large, ...): keep the status, name the problem.
      return reply.code(status).send({ error: (error.code ?? "bad_request").toLowerCase(), message: error.message });
    }
    if (error instanceof UnavailableError || isRedisError(error)) {
      request.log.warn({ err: error.message }, "Redis unavailable");
      return reply.code(503).send({ error: "unavailable", message: "result storage is unavailable; retry later" });
    }
    request.log.error({ err: error }, "request failed");
    return reply.code(500).send({ error: "internal", message: "internal error" });
  });

  return app;
}

function readWhenConnected(redis: Redis, id: string) {
  // ioredis queues commands while reconnecting; a reader should hear "unavailable" at once instead.
  if (redis.status !== "ready") return Promise.reject(new UnavailableError(`Redis is ${redis.status}`));
  return readResult(redis, id);
}

function isRedisError(error: Error): boolean {
  return /redis|ECONNREFUSED|ECONNRESET|Connection is closed|max retries/i.test(`${error.name} ${error.message}`);
}
