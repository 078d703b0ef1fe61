/**
 * The HTTP call to the enricher, with the failure classification the consumer's ack policy needs:
 *   4xx                                   → EnricherRejectedError (a PermanentError: resending the same task
 *                                            cannot fix it, so it is dead-lettered at once)
 *   5xx, timeout, connection refused/reset,
 *   an answer that is not a valid enrichment → EnricherUnavailableError (retried with the contract's delays)
 * Every call is bounded by a timeout: a hung enricher costs one attempt, never a stuck consumer slot.
 */
import { createRequire } from "node:module";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { describeIssues, type Enrichment, EnrichmentSchema, PermanentError, type TaskMessage } from "@tm/flow";

export class EnricherRejectedError extends PermanentError {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(`enricher rejected the task (HTTP ${status}): ${detail}`);
  }
}

export class EnricherUnavailableError extends Error {
  override readonly name = "EnricherUnavailableError";
}

export interface EnricherClientOptions {
  /** e.g. http://127.0.0.1:8081 (no trailing /enrich). */
  baseUrl: string;
  timeoutMs: number;
  /** Keep-alive connections kept open to the enricher (one per request in flight). */
  maxSockets?: number;
}

export interface EnricherClient {
  enrich(task: TaskMessage, signal?: AbortSignal): Promise<Enrichment>;
  /** Closes the kept-alive connections. */
  close(): void;
}

// The http instrumentation patches the module object (what require() returns, and ESM's default export), not ESM's
// named bindings: through `import * as http` requests would go untraced and the enricher's span lose its parent.
const require = createRequire(import.meta.url);
const http: typeof import("node:http") = require("node:http");
const https: typeof import("node:https") = require("node:https");

const DETAIL_LIMIT = 500;
const MAX_ANSWER_BYTES = 1024 * 1024;
const tracer = trace.getTracer("@tm/ingest");

export function createEnricherClient({ baseUrl, timeoutMs, maxSockets = 64 }: EnricherClientOptions): EnricherClient {
  const url = new URL(`${baseUrl.replace(/\/+$/, "")}/enrich`);
  const href = url.href;
  // node:http with a keep-alive agent rather than the global fetch: on Node 20 fetch (undici's WHATWG layer, plus
  // AbortSignal.timeout/any per call) took ~30 % of ingest's CPU under load; this takes a few percent, and the
  // http instrumentation still traces each call.
  const transport = url.protocol === "https:" ? https : http;
  const agent = new transport.Agent({ keepAlive: true, maxSockets });
  return {
    // An explicit client span: the trace shows the enricher call (and its failures) even where the http
    // instrumentation is not active; where it is, its HTTP span and the enricher's server span nest under this one.
    enrich: (task, signal) =>
      tracer.startActiveSpan(
        "enricher enrich",
        { kind: SpanKind.CLIENT, attributes: { "task.id": task.taskId, "url.full": href, "tm.service": "ingest" } },
        async (span) => {
          try {
            return await callEnricher(task, signal);
          } catch (error) {
            span.recordException(error as Error);
            span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
            throw error;
          } finally {
            span.end();
          }
        },
      ),
    close: () => agent.destroy(),
  };

  async function callEnricher(task: TaskMessage, signal: AbortSignal | undefined): Promise<Enrichment> {
    let answer: { status: number; text: string };
    try {
      answer = await post(JSON.stringify(task), signal);
    } catch (error) {
      throw new EnricherUnavailableError(`enricher unreachable at ${href}: ${describeRequestError(error)}`);
    }
    const { status, text } = answer;
    if (status >= 400 && status < 500) {
      throw new EnricherRejectedError(status, text.slice(0, DETAIL_LIMIT));
    }
    if (status < 200 || status >= 300) {
      throw new EnricherUnavailableError(`enricher answered HTTP ${status}: ${text.slice(0, DETAIL_LIMIT)}`);
    }
    return parseEnrichment(text);
  }

  /** One POST, bounded by timeoutMs from start to the last byte of the answer, and ended early by `signal`. */
  function post(body: string, signal: AbortSignal | undefined): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new RequestAbortedError(`aborted: ${String(signal.reason)}`));
      const request = transport.request(url, {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          accept: "application/json",
          "content-length": Buffer.byteLength(body),
        },
      });
      const timer = setTimeout(
        () => request.destroy(new RequestTimeoutError(`no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onAbort = () => request.destroy(new RequestAbortedError(`aborted: ${String(signal?.reason)}`));
      signal?.addEventListener("abort", onAbort, { once: true });
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      request.on("error", (error) => {
        settle();
        reject(error);
      });
      request.on("response", (response) => {
        const chunks: Buffer[] = [];
        let received = 0;
        response.on("data", (chunk: Buffer) => {
          received += chunk.length;
          // An enrichment is at most 16 KiB of JSON: a far larger answer is a broken enricher, not one to buffer.
          if (received > MAX_ANSWER_BYTES) {
            request.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.on("error", (error) => {
          settle();
          reject(error);
        });
        response.on("end", () => {
          settle();
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
        });
      });
      request.end(body);
    });
  }
}

class RequestTimeoutError extends Error {}
class RequestAbortedError extends Error {}

/** A malformed answer is the enricher's bug (or a version skew during a deploy), not the task's: retry it. */
function parseEnrichment(text: string): Enrichment {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new EnricherUnavailableError(`enricher answered non-JSON: ${text.slice(0, 100)}`);
  }
  const parsed = EnrichmentSchema.safeParse(body);
  if (!parsed.success) {
    throw new EnricherUnavailableError(`enricher answered an invalid enrichment: ${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

function describeRequestError(error: unknown): string {
  if (error instanceof RequestTimeoutError || error instanceof RequestAbortedError) return error.message;
  const e = error as { message?: string; code?: string };
  // Connection failures carry the useful part (ECONNREFUSED, ECONNRESET…) as `code`.
  return e?.code && !String(e.message).includes(e.code) ? `${e.message} (${e.code})` : String(e?.message ?? error);
}
