/**
 * pino JSON logs with the service name on every line and, inside a span, its trace_id and span_id, so that logs
 * join traces in Grafana.
 */
import { context, trace } from "@opentelemetry/api";
import { type Logger, pino } from "pino";

export type { Logger };

export function createLogger(service: string, level = "info", destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ["authorization", "*.authorization", "headers.authorization", "req.headers.authorization"],
        censor: "[redacted]",
      },
      mixin() {
        const span = trace.getSpan(context.active());
        if (!span) return {};
        const { traceId, spanId, traceFlags } = span.spanContext();
        if (!traceId || /^0+$/.test(traceId)) return {};
        return { trace_id: traceId, span_id: spanId, trace_flags: `0${traceFlags.toString(16)}` };
      },
    },
    destination,
  );
}
