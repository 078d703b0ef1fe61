/**
 * The HTTP call to the enricher, with the failure classification the consumer's ack policy needs:
 *   4xx                                   → EnricherRejectedError (a PermanentError: resending the same task
 *                                            cannot fix it, so it is dead-lettered at once)
 *   5xx, timeout, connection refused/reset,
 *   an answer that is not a valid enrichment → EnricherUnavailableError (retried with the contract's delays)
 * Every call is bounded by a timeout: a hung enricher costs one attempt, never a stuck consumer slot.
 */
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
}

export interface EnricherClient {
  enrich(task: TaskMessage, signal?: AbortSignal): Promise<Enrichment>;
}

const DETAIL_LIMIT = 500;
const tracer = trace.getTracer("@tm/ingest");

export function createEnricherClient({ baseUrl, timeoutMs }: EnricherClientOptions): EnricherClient {
  const url = `${baseUrl.replace(/\/+$/, "")}/enrich`;
  return {
    // An explicit client span: the trace shows the enricher call (and its failures) even where the undici
    // instrumentation is not active; where it is, its HTTP span and the enricher's server span nest under this one.
    enrich: (task, signal) =>
      tracer.startActiveSpan(
        "enricher enrich",
        { kind: SpanKind.CLIENT, attributes: { "task.id": task.taskId, "url.full": url, "tm.service": "ingest" } },
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
  };

  async function callEnricher(task: TaskMessage, signal: AbortSignal | undefined): Promise<Enrichment> {
    const timeout = AbortSignal.timeout(timeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(task),
        signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
      });
      text = await response.text();
    } catch (error) {
      throw new EnricherUnavailableError(
        `enricher unreachable at ${url}: ${describeFetchError(error, timeout, timeoutMs)}`,
      );
    }
    if (response.status >= 400 && response.status < 500) {
      throw new EnricherRejectedError(response.status, text.slice(0, DETAIL_LIMIT));
    }
    if (!response.ok) {
      throw new EnricherUnavailableError(`enricher answered HTTP ${response.status}: ${text.slice(0, DETAIL_LIMIT)}`);
    }
    return parseEnrichment(text);
  }
}

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

function describeFetchError(error: unknown, timeout: AbortSignal, timeoutMs: number): string {
  if (timeout.aborted) return `no answer within ${timeoutMs} ms`;
  const e = error as { message?: string; cause?: { code?: string; message?: string } };
  // undici hides the useful part (ECONNREFUSED, ECONNRESET…) in `cause`.
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e.message} (${cause})` : String(e?.message ?? error);
}
