/**
 * W3C trace context carried inside each message body (the contract: it survives copying into dead letters) and as
 * a `traceparent` header (what standard propagators read). NATS has no OpenTelemetry auto-instrumentation for JS,
 * so this is the TextMap getter/setter that links the asynchronous hops into one trace.
 */

import { randomFillSync } from "node:crypto";
import { type Context, context as otelContext, ROOT_CONTEXT, TraceFlags, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { MsgHdrs } from "nats";

const propagator = new W3CTraceContextPropagator();

export interface TraceCarrier {
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

/** The trace context of `ctx` as message fields. Without an active span, a fresh root trace id is minted so the
 *  task still has one id that its logs and events share. */
export function injectTrace(ctx: Context = otelContext.active()): { traceparent: string; tracestate?: string } {
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, {
    set: (c, key, value) => {
      c[key] = value;
    },
  });
  const traceparent = carrier.traceparent ?? newTraceparent();
  return carrier.tracestate ? { traceparent, tracestate: carrier.tracestate } : { traceparent };
}

/** The context a consumer continues from: the message body first (the contract), then the header. */
export function extractTrace(body: TraceCarrier | undefined, headers?: MsgHdrs): Context {
  const traceparent = body?.traceparent ?? headers?.get("traceparent");
  if (!traceparent) return ROOT_CONTEXT;
  const tracestate = body?.tracestate ?? headers?.get("tracestate");
  const carrier: Record<string, string> = { traceparent };
  if (tracestate) carrier.tracestate = tracestate;
  return propagator.extract(ROOT_CONTEXT, carrier, {
    get: (c, key) => c[key],
    keys: (c) => Object.keys(c),
  });
}

/** The trace id in a traceparent (for logs and links), or undefined. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const id = traceparent?.split("-")[1];
  return id && id.length === 32 ? id : undefined;
}

// Random bytes for new trace and span ids, drawn from one pooled buffer: two randomBytes() calls per new id were
// ~2 % of the gateway's CPU under load (each is a synchronous call into OpenSSL).
const POOL_BYTES = 24 * 256;
const pool = Buffer.alloc(POOL_BYTES);
let poolOffset = POOL_BYTES;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString("hex", poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-0${TraceFlags.SAMPLED}`;
}

export { trace };
