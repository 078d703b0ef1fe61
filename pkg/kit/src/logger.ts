/**
 * pino JSON logs with the service name on every line and, inside a span, its trace_id and span_id, so that logs
 * join traces in Grafana.
 */
import { context, trace } from "@opentelemetry/api";
import { type Logger, pino } from "pino";

export type { Logger };

/** The most of an error's message and stack a log line keeps: a handler's error can carry a whole response body, and
 *  Loki (and promtail) refuse lines past 256 KB by default. */
export const LOGGED_ERROR_CHARS = 8_192;

const cut = (text: unknown) =>
  typeof text === "string" && text.length > LOGGED_ERROR_CHARS
    ? `${text.slice(0, LOGGED_ERROR_CHARS)}… (${text.length - LOGGED_ERROR_CHARS} more characters)`
    : text;

/** pino's error serializer, with the message and the stack cut to LOGGED_ERROR_CHARS. `err` is whatever a caller
 *  logged under that key (a string, a plain object): only an Error's fields are cut, anything else passes as pino would
 *  write it, a string cut too. */
function boundedError(error: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(error as Error);
  if (typeof serialized === "string") return cut(serialized);
  if (typeof serialized !== "object" || serialized === null || !(error instanceof Error)) return serialized;
  const fields = serialized as { message?: unknown; stack?: unknown };
  fields.message = cut(fields.message);
  fields.stack = cut(fields.stack);
  return serialized;
}

/** The active span's trace_id, span_id and trace_flags, as log lines carry them; {} outside a recorded trace. */
export function activeTraceFields(): Record<string, string> {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const { traceId, spanId, traceFlags } = span.spanContext();
  if (!traceId || /^0+$/.test(traceId)) return {};
  return { trace_id: traceId, span_id: spanId, trace_flags: `0${traceFlags.toString(16)}` };
}

export function createLogger(service: string, level = "info", destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: boundedError },
      redact: {
        paths: ["authorization", "*.authorization", "headers.authorization", "req.headers.authorization"],
        censor: "[redacted]",
      },
      mixin: activeTraceFields,
    },
    destination,
  );
}

/** Writes a JSON line to a logger's destination (pino's stream), between its own lines. */
export function writeToDestination(log: Logger, line: string): void {
  (log as unknown as Record<symbol, { write(line: string): void } | undefined>)[pino.symbols.streamSym]?.write(line);
}

/**
 * A child of `log` with `bindings` whose lines go to `write` instead of `log`'s destination. pino writes each line to
 * the logger's own `pino.symbols.streamSym` (read at every write), which a child inherits from its parent: the child
 * gets one of its own. A pino instance per use would do the same at a few hundred microseconds each (its options,
 * redaction among them, compiled anew: docs/PERFORMANCE.md, session 41); a child costs microseconds.
 */
export function childWritingTo(log: Logger, bindings: pino.Bindings, write: (line: string) => void): Logger {
  const child = log.child(bindings);
  (child as unknown as Record<symbol, { write(line: string): void }>)[pino.symbols.streamSym] = { write };
  return child;
}
