/**
 * Serves protobuf-es service descriptors with @grpc/grpc-js.
 *
 * grpc-js wants a ServiceDefinition (paths plus serializers) and callback-style handlers. Generating a second
 * set of stubs (grpc-tools / protobufjs) would give two sources of truth for the same proto, so instead we derive
 * the definition from the protobuf-es descriptor and let handlers be plain async functions (unary) or async
 * generators (server streaming), in the style of connect-es. Errors thrown as ConnectError keep their code; any
 * other error becomes INTERNAL without leaking its message.
 */
import type { DescMessage, DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { context, propagation, SpanKind, SpanStatusCode, type TextMapGetter, trace } from "@opentelemetry/api";
import { recordServerCall } from "./rpc-metrics.js";

const tracer = trace.getTracer("@tm/proto");

/** What a handler knows about its call. */
export interface CallContext {
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
  /** Request metadata (lower-case keys; the first value of each). */
  header(name: string): string | undefined;
  /** The caller's address as grpc-js reports it. */
  peer: string;
}

type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => Promise<MessageInitShape<O>>;

type ServerStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => AsyncIterable<MessageInitShape<O>>;

/** The implementation of a service: one async function (or async generator) per method. */
export type ServiceHandlers<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? UnaryHandler<S[K]["input"], S[K]["output"]>
    : S[K]["methodKind"] extends "server_streaming"
      ? ServerStreamingHandler<S[K]["input"], S[K]["output"]>
      : never;
};

/** Optional hook to observe failures (logging) without changing what the client sees. */
export type ErrorObserver = (method: DescMethod, error: unknown) => void;

/** Builds the grpc-js ServiceDefinition (paths and codecs) from a protobuf-es descriptor. */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      originalName: method.localName,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (message) => Buffer.from(toBinary(method.input, message as MessageShape<DescMessage>)),
      requestDeserialize: (bytes: Buffer) => decodeRequest(method, bytes),
      responseSerialize: (message) => Buffer.from(toBinary(method.output, message as MessageShape<DescMessage>)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

/**
 * A request body the codec rejected (e.g. a Struct nested deeper than protobuf-es's recursion limit of 100). grpc-js
 * answers a throwing deserializer with INTERNAL; handing this marker to the handler adapters lets them answer
 * INVALID_ARGUMENT instead, as for any other client mistake.
 */
class UndecodableRequest {
  constructor(readonly problem: string) {}
}

function decodeRequest(method: DescMethod, bytes: Buffer): unknown {
  try {
    return fromBinary(method.input, bytes);
  } catch (error) {
    return new UndecodableRequest((error as Error).message);
  }
}

/** The call's decoded request; throws INVALID_ARGUMENT when it could not be decoded. */
function requestOf(call: { request: unknown }): MessageShape<DescMessage> {
  if (call.request instanceof UndecodableRequest) {
    throw new ConnectError(`request: ${call.request.problem}`, Code.InvalidArgument);
  }
  return call.request as MessageShape<DescMessage>;
}

/** Adds a protobuf-es service with async handlers to a grpc-js server. */
export function addService<S extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
  onError?: ErrorObserver,
): void {
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = (handlers as Record<string, unknown>)[method.localName];
    if (typeof handler !== "function") throw new Error(`no handler for ${service.typeName}.${method.name}`);
    if (method.methodKind === "unary") {
      implementation[method.localName] = adaptUnary(method, handler as UnaryHandler<DescMessage, DescMessage>, onError);
    } else if (method.methodKind === "server_streaming") {
      implementation[method.localName] = adaptServerStreaming(
        method,
        handler as ServerStreamingHandler<DescMessage, DescMessage>,
        onError,
      );
    } else {
      throw new Error(`${method.methodKind} methods are not supported (${service.typeName}.${method.name})`);
    }
  }
  server.addService(grpcServiceDefinition(service), implementation);
}

function adaptUnary(
  method: DescMethod,
  handler: UnaryHandler<DescMessage, DescMessage>,
  onError?: ErrorObserver,
): grpc.handleUnaryCall<MessageShape<DescMessage>, MessageShape<DescMessage>> {
  return (call, callback) => {
    const startedAt = performance.now();
    const { ctx, dispose } = contextOf(call);
    // Promise.resolve().then: a handler (or create) that throws synchronously still answers the call.
    Promise.resolve()
      .then(() => withServerSpan(method, call.metadata, () => handler(requestOf(call), ctx)))
      .then((init) => create(method.output, init))
      .then(
        (response) => {
          dispose();
          recordServerCall(method, grpc.status.OK, startedAt);
          callback(null, response);
        },
        (error: unknown) => {
          dispose();
          onError?.(method, error);
          const status = toServiceError(error);
          recordServerCall(method, status.code ?? grpc.status.UNKNOWN, startedAt);
          callback(status);
        },
      );
  };
}

function adaptServerStreaming(
  method: DescMethod,
  handler: ServerStreamingHandler<DescMessage, DescMessage>,
  onError?: ErrorObserver,
): grpc.handleServerStreamingCall<MessageShape<DescMessage>, MessageShape<DescMessage>> {
  return (call) => {
    const startedAt = performance.now();
    const { ctx, dispose } = contextOf(call);
    void (async () => {
      let code: number = grpc.status.OK;
      try {
        for await (const init of handler(requestOf(call), ctx)) {
          if (ctx.signal.aborted) break;
          // Respect back-pressure: wait for the socket to drain before producing more.
          if (!call.write(create(method.output, init))) {
            await new Promise<void>((resolve) => {
              const done = () => {
                call.off("drain", done);
                ctx.signal.removeEventListener("abort", done);
                resolve();
              };
              call.once("drain", done);
              ctx.signal.addEventListener("abort", done, { once: true });
            });
          }
        }
        if (!ctx.signal.aborted) call.end();
      } catch (error) {
        if (!ctx.signal.aborted) {
          onError?.(method, error);
          const status = toServiceError(error);
          code = status.code ?? grpc.status.UNKNOWN;
          // grpc-js turns an "error" event into the call's status (sent after the queued messages); destroy()
          // would tear the stream down without ever sending a status, leaving the client waiting forever.
          call.emit("error", status);
        }
      } finally {
        dispose();
        // A stream the client went away from ended as CANCELLED, whatever the handler was doing.
        recordServerCall(method, ctx.signal.aborted ? grpc.status.CANCELLED : code, startedAt);
      }
    })();
  };
}

const metadataGetter: TextMapGetter<grpc.Metadata> = {
  get: (metadata, key) => metadata.get(key).map(String),
  keys: (metadata) => Object.keys(metadata.getMap()),
};

/**
 * Runs a unary handler inside a server span, continuing the caller's trace from its `traceparent` metadata, so what
 * the handler publishes joins the client's trace. When @opentelemetry/instrumentation-grpc is active it has already
 * made that span (the handler runs inside it) and nothing is added; without it (in-process tests, a service started
 * without the preload) this is the span.
 */
function withServerSpan<T>(method: DescMethod, metadata: grpc.Metadata, run: () => Promise<T>): Promise<T> {
  if (trace.getSpan(context.active())) return run();
  const parent = propagation.extract(context.active(), metadata, metadataGetter);
  const name = `${method.parent.typeName}/${method.name}`;
  const attributes = { "rpc.system": "grpc", "rpc.service": method.parent.typeName, "rpc.method": method.name };
  return tracer.startActiveSpan(name, { kind: SpanKind.SERVER, attributes }, parent, async (span) => {
    try {
      return await run();
    } catch (error) {
      const code = error instanceof ConnectError ? error.code : Code.Internal;
      span.setAttribute("rpc.grpc.status_code", code);
      if (code === Code.Internal || code === Code.Unavailable || code === Code.Unknown) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      }
      throw error;
    } finally {
      span.end();
    }
  });
}

function contextOf(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): {
  ctx: CallContext;
  dispose: () => void;
} {
  const controller = new AbortController();
  const onCancel = () => controller.abort(new ConnectError("call cancelled by the client", Code.Canceled));
  call.once("cancelled", onCancel);
  const deadline = call.getDeadline();
  let timer: NodeJS.Timeout | undefined;
  if (deadline instanceof Date || (typeof deadline === "number" && Number.isFinite(deadline))) {
    const ms = Math.max(0, new Date(deadline).getTime() - Date.now());
    timer = setTimeout(() => controller.abort(new ConnectError("deadline exceeded", Code.DeadlineExceeded)), ms);
    timer.unref();
  }
  const metadata = call.metadata;
  return {
    ctx: {
      signal: controller.signal,
      header: (name) => {
        const value = metadata.get(name.toLowerCase())[0];
        return value === undefined ? undefined : value.toString();
      },
      peer: call.getPeer(),
    },
    dispose: () => {
      call.off("cancelled", onCancel);
      if (timer) clearTimeout(timer);
    },
  };
}

/** Headers a trailer must not carry: HTTP/2's own and the ones gRPC sets for the status (a ConnectError that came from
 *  another call's response can hold them). */
const NOT_TRAILERS = new Set([
  "content-type",
  "content-length",
  "te",
  "user-agent",
  "date",
  "grpc-status",
  "grpc-message",
]);

/** Maps a thrown value to a grpc-js error: ConnectError codes pass through with their metadata (sent as trailers,
 *  as connect-node sends them: e.g. a rate limit's `grpc-retry-pushback-ms`), anything else is INTERNAL. */
export function toServiceError(error: unknown): Partial<grpc.StatusObject> {
  if (error instanceof ConnectError) {
    const status: Partial<grpc.StatusObject> = { code: error.code as number as grpc.status, details: error.rawMessage };
    let metadata: grpc.Metadata | undefined;
    error.metadata.forEach((value, key) => {
      if (NOT_TRAILERS.has(key) || key.startsWith(":")) return;
      metadata ??= new grpc.Metadata();
      try {
        metadata.set(key, value);
      } catch {
        // a key grpc-js refuses (not a legal metadata key): not sent
      }
    });
    if (metadata) status.metadata = metadata;
    return status;
  }
  return { code: grpc.status.INTERNAL, details: "internal error" };
}
