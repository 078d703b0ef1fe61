/**
 * A CLIENT span around every call of @tm/proto's clients, and the caller's trace context (W3C `traceparent`,
 * `tracestate`) sent with it, so a program that traces its own work sees each call (how long the gateway took to
 * answer, or a server stream to end, and its gRPC status) and, under it, the task's whole journey. connect-node speaks
 * HTTP/2 itself, which no auto-instrumentation covers, hence this. Without a registered OpenTelemetry SDK the tracer
 * and the propagator are no-ops: no span is made and nothing is sent, and the gateway then starts the trace.
 *
 * Named and attributed as OpenTelemetry's RPC conventions (and @opentelemetry/instrumentation-grpc's server spans
 * on the gateway) have it: `taskmanager.v1.TaskService/SubmitTask`, rpc.system "grpc", rpc.service, rpc.method and
 * rpc.grpc.status_code.
 */
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapSetter,
  trace,
} from "@opentelemetry/api";

const tracer = trace.getTracer("@tm/proto");
/** gRPC's OK, which connect's Code (the error codes) leaves out. */
const GRPC_OK = 0;
const headerSetter: TextMapSetter<Headers> = { set: (headers, key, value) => headers.set(key, value) };

export const traceCalls: Interceptor = (next) => async (req) => {
  const service = req.service.typeName;
  const span = tracer.startSpan(`${service}/${req.method.name}`, {
    kind: SpanKind.CLIENT,
    attributes: { "rpc.system": "grpc", "rpc.service": service, "rpc.method": req.method.name },
  });
  const callContext = trace.setSpan(context.active(), span);
  propagation.inject(callContext, req.header, headerSetter);
  try {
    const res = await context.with(callContext, () => next(req));
    if (!res.stream) {
      ended(span);
      return res;
    }
    // A server stream's call lasts until its last message (or its error, or the reader stopping early).
    return { ...res, message: endingWith(res.message, span) };
  } catch (error) {
    ended(span, error);
    throw error;
  }
};

async function* endingWith<T>(messages: AsyncIterable<T>, span: Span): AsyncIterable<T> {
  let failure: unknown;
  try {
    yield* messages;
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    ended(span, failure);
  }
}

/** Ends a call's span with its gRPC status: OK, or the error's code and message. */
function ended(span: Span, error?: unknown): void {
  if (error === undefined) {
    span.setAttribute("rpc.grpc.status_code", GRPC_OK);
  } else {
    const failure = ConnectError.from(error);
    span.setAttribute("rpc.grpc.status_code", failure.code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: failure.rawMessage });
  }
  span.end();
}
