/**
 * Serves the same handler objects as grpc-adapter.ts through connect-es (Connect protocol, gRPC-Web and gRPC over
 * HTTP/1.1 or HTTP/2), for browsers: `connectNodeAdapter({ routes: connectRoutes([[TaskService, handlers]]),
 * contextValues: peerContextValues })`. Handlers see the same CallContext (signal, header(name), peer) as under
 * grpc-js, so wrappers such as the gateway's auth guard apply unchanged. Errors thrown as ConnectError keep their
 * code; any other error becomes INTERNAL without leaking its message, as in grpc-adapter.ts.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { CallContext, ErrorObserver, ServiceHandlers } from "./grpc-adapter.js";

const peerKey = createContextKey<string>("unknown", { description: "the caller's address" });

/** For connectNodeAdapter's `contextValues`: records the caller's address so handlers can read ctx.peer. */
export function peerContextValues(request: {
  socket?: { remoteAddress?: string; remotePort?: number };
}): ContextValues {
  const values = createContextValues();
  const socket = request.socket;
  if (socket?.remoteAddress) values.set(peerKey, `${socket.remoteAddress}:${socket.remotePort ?? 0}`);
  return values;
}

/** A service with its handlers, as served by `connectRoutes`. */
// biome-ignore lint/suspicious/noExplicitAny: a list of services of different method sets
export type ServiceRegistration = readonly [GenService<any>, ServiceHandlers<any>];

/** The `routes` function of connectNodeAdapter serving each service with its handlers. */
export function connectRoutes(
  services: readonly ServiceRegistration[],
  onError?: ErrorObserver,
): (router: ConnectRouter) => void {
  return (router) => {
    for (const [service, handlers] of services)
      router.service(service, connectImplementation(service, handlers, onError));
  };
}

type AnyHandler = (request: unknown, ctx: CallContext) => unknown;

/** A connect-es service implementation calling our handlers. */
export function connectImplementation<S extends GenServiceMethods>(
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
  onError?: ErrorObserver,
): ServiceImpl<GenService<S>> {
  const implementation: Record<string, (request: unknown, context: HandlerContext) => unknown> = {};
  for (const method of service.methods) {
    const handler = (handlers as Record<string, AnyHandler>)[method.localName];
    if (typeof handler !== "function") throw new Error(`no handler for ${service.typeName}.${method.name}`);
    if (method.methodKind === "unary") {
      implementation[method.localName] = async (request, context) => {
        try {
          return await handler(request, callContextOf(context));
        } catch (error) {
          throw reported(method, error, onError);
        }
      };
    } else if (method.methodKind === "server_streaming") {
      implementation[method.localName] = async function* (request, context) {
        try {
          yield* handler(request, callContextOf(context)) as AsyncIterable<unknown>;
        } catch (error) {
          if (context.signal.aborted) return;
          throw reported(method, error, onError);
        }
      };
    } else {
      throw new Error(`${method.methodKind} methods are not supported (${service.typeName}.${method.name})`);
    }
  }
  return implementation as unknown as ServiceImpl<GenService<S>>;
}

function callContextOf(context: HandlerContext): CallContext {
  return {
    signal: context.signal,
    header: (name) => context.requestHeader.get(name) ?? undefined,
    peer: context.values.get(peerKey),
  };
}

function reported(method: DescMethod, error: unknown, onError?: ErrorObserver): ConnectError {
  onError?.(method, error);
  return error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal);
}
